"""RAFT-small's weights read from a bucket with the job's storage options, as each Ray actor builds
its item miner (``VideoItemMiner`` / ``StereoItemMiner`` -> ``dynocc.factory.io.weights.flow_backend``)."""

from __future__ import annotations

import pytest

from dynocc.factory.config import FlowConfig, MinerConfig, SourceOptions, StereoJobConfig
from support import SHARED

WEIGHTS = SHARED / "models" / "raft-small.pth"
pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason=f"needs {WEIGHTS} (shared/models)")


def test_item_miners_read_raft_weights_from_a_bucket_with_the_jobs_storage_options(s3, monkeypatch):
    from dynocc.factory.engine.stereo_items import StereoItemMiner
    from dynocc.factory.engine.video_items import VideoItemMiner

    url = s3.put("models/raft-small.pth", WEIGHTS)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # only the storage options lead to the bucket
    flow = FlowConfig(backend="raft-small", weights=url, iters=2, device="cpu")
    source = SourceOptions(storage_options={"s3": s3.storage_options})  # per protocol, as for inputs
    video = VideoItemMiner(MinerConfig(flow=flow, source=source))
    assert video.miner.flow.name.startswith("raft-small") and video.miner.flow.weights == url
    stereo = StereoItemMiner(StereoJobConfig(stereo={"flow": flow}, source={"storage_options": s3.storage_options}))
    assert stereo.flow.name.startswith("raft-small")  # flat options work too


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    from dynocc.factory.core.raft import RAFTWeightsError
    from dynocc.factory.io.weights import flow_backend

    with pytest.raises(RAFTWeightsError, match="not found"):
        flow_backend(FlowConfig(backend="raft-small", weights=str(tmp_path / "nope.pth")))
    with pytest.raises(RAFTWeightsError, match="a URL"):
        from dynocc.factory.core.flow import make_flow_backend  # the algorithm layer reads local files only

        make_flow_backend(FlowConfig(backend="raft-small", weights="s3://bucket/raft-small.pth"))
