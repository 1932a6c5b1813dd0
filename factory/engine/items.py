"""What an engine needs from an item miner: the :class:`ItemMiner` protocol and its :class:`ItemResult`.

An item miner turns one work item (a video, a frame folder, a stereo photo) into frame rows and
failure rows and never raises for a bad input. The engines (:mod:`.job`'s local engine,
:mod:`.ray_engine`) only see this interface, so every kind of item runs on the same planning,
resume, failure handling, writer and Ray actor pool. :mod:`.miners` picks the miner for a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from dynocc.factory.config import SourceOptions
from dynocc.factory.core.miner import MinedFrame
from dynocc.factory.io.decode import is_damage
from dynocc.factory.io.sources import WorkItem


@dataclass
class ItemResult:
    item_key: str
    video_id: Optional[str]
    frame_rows: list[dict]
    failures: list[dict]
    frames_decoded: int = 0
    frames_mined: int = 0
    pairs: int = 0
    seconds: float = 0.0
    frames_skipped: int = 0  # frames lost to damage inside the item (io.decode's damaged stretches)

    @property
    def ok(self) -> bool:
        """Mined: no failure row, or only rows recording damaged stretches skipped inside it."""
        return all(is_damage(f) for f in self.failures)



class ItemMiner(Protocol):
    """One kind of work: ``resolve`` inputs into work items, ``mine`` one of them."""

    config: Any
    media: Any  # the input walker's hooks (:class:`~dynocc.factory.io.sources.Media`; None: videos)

    @staticmethod
    def resolve(inputs: list[str], source: Optional[SourceOptions] = None) -> tuple[list[WorkItem], list[dict]]:
        """(work items, failure dicts of inputs that did not resolve)."""
        ...

    def mine(self, item: WorkItem, on_frame: Optional[Callable[[MinedFrame], None]] = None,
             on_row: Optional[Callable[[dict], None]] = None, prefetched: Any = None) -> ItemResult:
        """Frame rows and failure rows of one item (a bad input is a failure row, never an exception).

        ``on_row(row)`` receives the frame rows as they are made (else they go to
        ``result.frame_rows``); ``prefetched`` is the item as the fetch stage downloaded it."""
        ...
