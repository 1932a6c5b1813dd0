"""Typed configuration of ``dynocc train`` (YAML ``--config`` keys, ``--set key=value``, flags).

Origins: ``redweb`` = Xian et al. 2018 (``shared/papers/redweb-paper.md``), sections 3.2 and 4;
``dynocc`` = Wang et al. (``shared/papers/dynocc-paper.txt``), sections 3.3 and 4.1-4.3;
``ours`` = not given by either paper.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(_Strict):
    """One shard root (a ``dynocc mine`` / ``mine-stereo`` output, any fsspec URL) and its weight."""

    url: str = Field(min_length=1, description="output folder of a mining job; only committed files are read")
    weight: float = Field(1.0, gt=0, description="sampling multiplier per epoch (dynocc 4.2: ReDWeb x30 beside DIW)")
    keep_rate: Optional[float] = Field(
        None, gt=0, le=1, description="fraction of a row's stored pairs used per step; None = data.keep_rate")


class ModelConfig(_Strict):
    backbone: Literal["resnet18", "resnet34", "resnet50"] = Field("resnet50", description="encoder (redweb: ResNet-50)")
    backbone_weights: Optional[str] = Field(
        None, description="torchvision-format ImageNet weights, path or fsspec URL (redweb/dynocc: ImageNet)")
    decoder_channels: int = Field(256, ge=8, description="transition conv channels (redweb Fig. 4: 256)")
    head_channels: int = Field(128, ge=4, description="first output conv channels (redweb Fig. 4: 128)")
    channels_last: bool = Field(True, description="NHWC memory format (ours: faster for convs on CPU)")


class DataConfig(_Strict):
    sources: list[DataSource] = Field(default_factory=list, description="shard roots (--data URL[:weight])")
    image_size: int = Field(384, ge=32, description="square training crop, px (redweb: 384x384)")
    keep_rate: float = Field(0.1, gt=0, le=1, description="stored pairs kept per row per step (dynocc 3.3: 10%)")
    min_confidence: float = Field(
        0.0, ge=0, le=1,
        description="stored pairs with pair_confidence below this are not used (ours; rows without the column, "
        "i.e. schema 1 or stereo rows, are used as they are)")
    stereo_pairs: int = Field(3000, ge=1, description="random pairs sampled online per stereo image (redweb: 3K)")
    stereo_edge_pairs: int = Field(0, ge=0, description="extra depth-edge pairs per stereo image (ours; redweb: 0)")
    sigma: float = Field(0.02, gt=0, description="equal-depth threshold of redweb eq. 1 (redweb: 0.02)")
    max_pairs: int = Field(3000, ge=1, description="pairs per image after sampling; rows are padded to this (ours)")
    scale_range: tuple[float, float] = Field(
        (1.0, 1.5), description="the short side is resized to image_size x U(range) before the crop (ours)")
    flip: bool = Field(True, description="random horizontal flip (redweb)")
    shuffle_buffer: int = Field(64, ge=0, description="rows in each worker's local shuffle buffer (ours)")
    storage_options: dict = Field(default_factory=dict, description="fsspec options for the shard URLs")

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")
        return self


class LossConfig(_Strict):
    keep_hard: float = Field(0.75, gt=0, le=1, description="fraction of ordered pairs kept, hardest first "
                             "(redweb eq. 2: the easiest 25% ignored; dynocc 4.1: top 75%)")
    reduction: Literal["mean", "sum"] = Field(
        "mean", description="mean over used pairs (ours: lr independent of pair counts), or the papers' sum "
        "per image (redweb eq. 2), averaged over the batch")


class OptimConfig(_Strict):
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="redweb section 4: SGD")
    lr: float = Field(1e-4, gt=0, description="dynocc 4.2: 1e-4 pre-training, 1e-5 fine-tuning")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ours)")
    weight_decay: float = Field(0.0, ge=0, description="(ours)")
    batch_size: int = Field(4, ge=1, description="global batch, split over the workers (redweb: 4)")
    steps: int = Field(1000, ge=1, description="optimizer steps in total (a resumed run continues to it)")
    epochs: Optional[float] = Field(
        None, gt=0, description="if set, steps = epochs x mixed rows / batch_size (dynocc 4.2: 20, then 10)")


class ScaleConfig(_Strict):
    workers: int = Field(1, ge=1, description="Ray Train workers (one DDP process each)")
    use_gpu: bool = False
    cpus_per_worker: Optional[float] = Field(
        None, gt=0, description="None: on CPU sized by the free CPUs (at least one left to Ray Data); 1 with GPUs")
    address: Optional[str] = Field(None, description="Ray cluster address (default: $RAY_ADDRESS, else local)")


class RunConfig(_Strict):
    checkpoint_every: int = Field(500, ge=1, description="steps between checkpoints (and one at the end)")
    keep_checkpoints: int = Field(3, ge=1, description="newest checkpoint files kept under OUT/checkpoints")
    log_every: int = Field(10, ge=1, description="steps between console lines (metrics.csv gets every step)")
    seed: int = 0
    init_from: Optional[str] = Field(
        None, description="a checkpoint (file or run) whose model weights start a fine-tuning run (step 0)")


class TrainConfig(_Strict):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    scale: ScaleConfig = ScaleConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.optim.batch_size % self.scale.workers:
            raise ValueError(f"optim.batch_size ({self.optim.batch_size}) must be a multiple of "
                             f"scale.workers ({self.scale.workers})")
        return self


def parse_data_arg(text: str) -> DataSource:
    """``URL[:weight]`` -> :class:`DataSource`; the weight is the part after the last ':' if it is a
    number (``s3://b/redweb:30``), else the whole text is the URL (``s3://b/redweb``)."""
    url, sep, tail = text.rpartition(":")
    if sep and url and not tail.startswith("//"):
        try:
            return DataSource(url=url, weight=float(tail))
        except ValueError:
            pass
    return DataSource(url=text)
