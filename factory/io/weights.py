"""Model weights from storage: the RAFT-small state dict read from any fsspec path or URL.

The algorithm layer (:mod:`dynocc.factory.core.raft`) loads weights from a local file, bytes or a
state dict; reading a URL with the job's storage options happens here, so a Ray actor that builds
its flow backend reads ``s3://.../raft-small.pth`` with the same options as the inputs
(``source.storage_options``, flat or per protocol: :func:`~dynocc.factory.io.storage.options_for`).
"""

from __future__ import annotations

from typing import Optional

from dynocc.factory.config import FlowConfig, SourceOptions
from dynocc.factory.core.flow import FlowBackend, make_flow_backend
from dynocc.factory.io.storage import open_url


def read_weights(path_or_url: str, storage_options: Optional[dict] = None) -> bytes:
    """The bytes of a weights file at any fsspec path or URL; RAFTWeightsError if it is not there."""
    from dynocc.factory.core.raft import RAFTWeightsError

    try:
        with open_url(path_or_url, "rb", storage_options) as f:
            return f.read()
    except FileNotFoundError:
        raise RAFTWeightsError(f"RAFT weights not found: {path_or_url}") from None


def load_raft_small(path_or_url: str, device: str = "cpu", storage_options: Optional[dict] = None):
    """RAFT-small with the weights at ``path_or_url`` (any fsspec path or URL), in eval mode on ``device``."""
    from dynocc.factory.core.raft import load_raft_small as from_weights

    return from_weights(read_weights(path_or_url, storage_options), device, source=str(path_or_url))


def flow_backend(config: FlowConfig, source: Optional[SourceOptions] = None) -> FlowBackend:
    """The flow backend of ``config``, its weights (RAFT-small) read from any URL with the options of
    ``source``: what the engines build in each actor."""
    if config.backend != "raft-small":
        return make_flow_backend(config)
    from dynocc.factory.core.raft import RAFTFlow

    data = read_weights(config.weights, source.storage_options if source is not None else None)
    return RAFTFlow(data, iters=config.iters, device=config.device, batch_size=config.batch_size,
                    precision=config.precision, source=str(config.weights))
