"""Which item miner a job runs: one line per kind of work, chosen by the type of the job's config.

To add a kind of work: an :class:`~.items.ItemMiner` in its own module of this folder, its config
model in :mod:`dynocc.factory.config`, and one entry in :data:`ITEM_MINERS`.
"""

from __future__ import annotations

from typing import Callable

from dynocc.factory.config import MinerConfig, StereoJobConfig
from dynocc.factory.engine.items import ItemMiner
from dynocc.factory.engine.stereo_items import StereoItemMiner
from dynocc.factory.engine.video_items import VideoItemMiner

ITEM_MINERS: dict[type, type] = {
    MinerConfig: VideoItemMiner,  # DynOcc: videos and frame folders
    StereoJobConfig: StereoItemMiner,  # ReDWeb: stereo photos
}


def _miner_class(config) -> type:
    try:
        return ITEM_MINERS[type(config)]
    except KeyError:
        raise TypeError(f"no item miner for a {type(config).__name__}; known: "
                        f"{', '.join(c.__name__ for c in ITEM_MINERS)}") from None


def item_miner_for(config) -> ItemMiner:
    """The item miner a job's config asks for (built here: loads its flow backend)."""
    return _miner_class(config)(config)


def resolver_for(config) -> Callable:
    """The input resolver of that item miner (no miner is built)."""
    return _miner_class(config).resolve


def media_for(config):
    """The input walker's hooks of that item miner (:class:`~dynocc.factory.io.sources.Media`;
    None: videos)."""
    return _miner_class(config).media
