"""RAFT-small, a learned optical-flow backend (Teed & Deng, "RAFT: Recurrent All-Pairs Field
Transforms for Optical Flow", ECCV 2020), for actors with a GPU (it also runs on CPU, slower).

The modules follow the reference implementation (princeton-vl/RAFT, BSD 3-Clause: ``core/raft.py``,
``core/extractor.py``, ``core/update.py``, ``core/corr.py``, ``core/utils/utils.py``) closely enough
that its published ``raft-small.pth`` state dict loads with a strict key *and* shape match:

* feature encoder ``fnet`` and context encoder ``cnet``: :class:`SmallEncoder` (7x7 stride-2 stem,
  three stages of two :class:`BottleneckBlock` s at 32/64/96 channels, stride 1/2/2, a 1x1 head);
  instance norm (no affine parameters) in ``fnet``, no norm in ``cnet``; output at 1/8 resolution,
  128 feature channels, 96 + 64 context channels (GRU hidden state ``tanh``, context input ``relu``);
* all-pairs correlation (dot products / sqrt(128)) pooled into 4 levels, looked up in a 7x7 window
  (radius 3) around the current correspondence by bilinear sampling (:class:`CorrBlock`);
* :class:`SmallUpdateBlock`: :class:`SmallMotionEncoder` + :class:`ConvGRU` (hidden 96) +
  :class:`FlowHead`, applied ``iters`` times (default 12) to coordinates at 1/8 resolution;
* the flow is upsampled x8 bilinearly (``upflow8``: ``align_corners=True``, values x8) — the small
  model has no learned upsampling mask;
* frames are padded to a multiple of 8 by edge replication, split evenly top/bottom and left/right
  (:class:`InputPadder`, the reference's "sintel" mode), and cropped back after.

Images are RGB in 0..255, normalised as the reference does: ``2 * (img / 255) - 1``.

:class:`RAFTFlow` is the :class:`~dynocc.factory.core.flow.FlowBackend`: weights loaded once (a local
file, its bytes or a state dict; URLs through :mod:`dynocc.factory.io.weights`), pairs stacked into batches of ``batch_size`` by frame size, inference under
``torch.inference_mode``, fp16 autocast on CUDA by default. Choose it with
``FlowConfig(backend="raft-small", weights=...)`` or ``dynocc mine --flow raft-small --flow-weights PATH``.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Literal, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "RAFTSmall",
    "RAFTFlow",
    "RAFTWeightsError",
    "InputPadder",
    "load_raft_small",
    "read_state_dict",
    "clean_state_dict",
]


# --------------------------------------------------------------------------------------------
# Encoders (core/extractor.py)


def _norm(norm_fn: str, channels: int) -> nn.Module:
    if norm_fn == "instance":
        return nn.InstanceNorm2d(channels)  # affine=False: no parameters, as the reference
    if norm_fn == "none":
        return nn.Sequential()
    raise ValueError(f"unsupported norm {norm_fn!r} (RAFT-small uses 'instance' and 'none')")


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 residual block with planes/4 inner channels."""

    def __init__(self, in_planes: int, planes: int, norm_fn: str = "none", stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes // 4, kernel_size=1, padding=0)
        self.conv2 = nn.Conv2d(planes // 4, planes // 4, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(planes // 4, planes, kernel_size=1, padding=0)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = _norm(norm_fn, planes // 4)
        self.norm2 = _norm(norm_fn, planes // 4)
        self.norm3 = _norm(norm_fn, planes)
        if stride == 1:
            self.downsample = None
        else:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride), _norm(norm_fn, planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class SmallEncoder(nn.Module):
    """The reference's ``SmallEncoder``: 1/8 resolution, ``output_dim`` channels."""

    def __init__(self, output_dim: int = 128, norm_fn: str = "none"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=7, stride=2, padding=3)
        self.norm1 = _norm(norm_fn, 32)
        self.relu1 = nn.ReLU(inplace=True)
        self.in_planes = 32
        self.layer1 = self._make_layer(32, norm_fn, stride=1)
        self.layer2 = self._make_layer(64, norm_fn, stride=2)
        self.layer3 = self._make_layer(96, norm_fn, stride=2)
        self.conv2 = nn.Conv2d(96, output_dim, kernel_size=1)  # dropout is 0 at inference: omitted

    def _make_layer(self, dim: int, norm_fn: str, stride: int) -> nn.Sequential:
        layer = nn.Sequential(
            BottleneckBlock(self.in_planes, dim, norm_fn, stride=stride),
            BottleneckBlock(dim, dim, norm_fn, stride=1),
        )
        self.in_planes = dim
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv2(x)


# --------------------------------------------------------------------------------------------
# Correlation (core/corr.py, core/utils/utils.py)


def coords_grid(batch: int, ht: int, wd: int, device) -> torch.Tensor:
    """(batch, 2, ht, wd) pixel coordinates, channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(
        torch.arange(ht, device=device, dtype=torch.float32),
        torch.arange(wd, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=0)[None].repeat(batch, 1, 1, 1)


def bilinear_sampler(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (N, C, H, W) at pixel coordinates ``coords`` (N, h, w, 2 = x, y); zeros outside.

    The reference normalises with ``2x / (W - 1) - 1`` and ``align_corners=True``; ``(2x + 1) / W - 1``
    with ``align_corners=False`` samples the very same points and also works where a pyramid level
    is one pixel high or wide (frames under 128 px), where the reference divides by zero.
    """
    h, w = img.shape[-2:]
    xgrid, ygrid = coords.split([1, 1], dim=-1)
    xgrid = (2 * xgrid + 1) / w - 1
    ygrid = (2 * ygrid + 1) / h - 1
    grid = torch.cat([xgrid, ygrid], dim=-1)
    return F.grid_sample(img, grid, align_corners=False)


class CorrBlock:
    """All-pairs correlation volume, average-pooled into ``num_levels`` levels, with a lookup in a
    (2r+1)^2 window around given coordinates (the reference's ``CorrBlock``)."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, num_levels: int = 4, radius: int = 3):
        self.num_levels = num_levels
        self.radius = radius
        batch, dim, h1, w1 = fmap1.shape
        # <f1, f2> / sqrt(dim), the scale folded into fmap1 (one pass less over the whole volume)
        fmap1 = fmap1.reshape(batch, dim, h1 * w1) * (1.0 / dim**0.5)
        corr = torch.matmul(fmap1.transpose(1, 2), fmap2.reshape(batch, dim, -1))
        corr = corr.reshape(batch * h1 * w1, 1, *fmap2.shape[-2:])
        self.pyramid = [corr]
        for _ in range(num_levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)
        r = radius
        d = torch.linspace(-r, r, 2 * r + 1, device=fmap1.device)
        # As the reference: stack(meshgrid(dy, dx)) adds the *first* window index to x. The trained
        # weights expect this channel order, so keep it.
        self.delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        coords = coords.permute(0, 2, 3, 1)
        batch, h1, w1, _ = coords.shape
        out = []
        for i, corr in enumerate(self.pyramid):
            centroid = coords.reshape(batch * h1 * w1, 1, 1, 2) / 2**i
            sampled = bilinear_sampler(corr, centroid + self.delta)
            out.append(sampled.view(batch, h1, w1, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous().float()


# --------------------------------------------------------------------------------------------
# Update block (core/update.py)


class FlowHead(nn.Module):
    def __init__(self, input_dim: int = 96, hidden_dim: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class ConvGRU(nn.Module):
    def __init__(self, hidden_dim: int = 96, input_dim: int = 146):
        super().__init__()
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class SmallMotionEncoder(nn.Module):
    def __init__(self, corr_levels: int = 4, corr_radius: int = 3):
        super().__init__()
        cor_planes = corr_levels * (2 * corr_radius + 1) ** 2
        self.convc1 = nn.Conv2d(cor_planes, 96, 1, padding=0)
        self.convf1 = nn.Conv2d(2, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 32, 3, padding=1)
        self.conv = nn.Conv2d(128, 80, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc1(corr))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class SmallUpdateBlock(nn.Module):
    def __init__(self, corr_levels: int = 4, corr_radius: int = 3, hidden_dim: int = 96, context_dim: int = 64):
        super().__init__()
        self.encoder = SmallMotionEncoder(corr_levels, corr_radius)
        self.gru = ConvGRU(hidden_dim=hidden_dim, input_dim=82 + context_dim)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=128)

    def forward(self, net, inp, corr, flow):
        motion = self.encoder(flow, corr)
        net = self.gru(net, torch.cat([inp, motion], dim=1))
        return net, self.flow_head(net)


# --------------------------------------------------------------------------------------------
# The model (core/raft.py)


def upflow8(flow: torch.Tensor) -> torch.Tensor:
    """x8 bilinear upsampling of a 1/8-resolution flow (values scaled by 8), as the reference."""
    h, w = flow.shape[-2:]
    return 8 * F.interpolate(flow, size=(8 * h, 8 * w), mode="bilinear", align_corners=True)


class InputPadder:
    """Pads images so their sides are multiples of 8 (edge replication), the reference's "sintel"
    mode: the padding is split evenly (floor before, ceil after) on both axes; :meth:`unpad` crops."""

    def __init__(self, dims: Sequence[int], multiple: int = 8):
        ht, wd = dims[-2:]
        pad_ht = (-ht) % multiple
        pad_wd = (-wd) % multiple
        self.pad = (pad_wd // 2, pad_wd - pad_wd // 2, pad_ht // 2, pad_ht - pad_ht // 2)  # F.pad order

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if not any(self.pad):
            return list(inputs)
        return [F.pad(x, self.pad, mode="replicate") for x in inputs]

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        ht, wd = x.shape[-2:]
        left, right, top, bottom = self.pad
        return x[..., top:ht - bottom, left:wd - right]


class RAFTSmall(nn.Module):
    """RAFT-small. ``forward(image1, image2)`` takes (B, 3, H, W) RGB in 0..255, H and W multiples
    of 8, and returns the flow from image1 to image2 at full resolution, (B, 2, H, W), (dx, dy)."""

    hidden_dim = 96
    context_dim = 64
    corr_levels = 4
    corr_radius = 3

    def __init__(self):
        super().__init__()
        self.fnet = SmallEncoder(output_dim=128, norm_fn="instance")
        self.cnet = SmallEncoder(output_dim=self.hidden_dim + self.context_dim, norm_fn="none")
        self.update_block = SmallUpdateBlock(self.corr_levels, self.corr_radius, self.hidden_dim, self.context_dim)

    def forward(
        self,
        image1: torch.Tensor,
        image2: torch.Tensor,
        iters: int = 12,
        autocast_dtype: Optional[torch.dtype] = None,
        return_low: bool = False,
    ):
        batch = image1.shape[0]
        index = torch.arange(batch, device=image1.device)
        return self.estimate(torch.cat([image1, image2], dim=0), index, index + batch, iters, autocast_dtype, return_low)

    def estimate(
        self,
        images: torch.Tensor,
        first: torch.Tensor,
        second: torch.Tensor,
        iters: int = 12,
        autocast_dtype: Optional[torch.dtype] = None,
        return_low: bool = False,
    ):
        """Flow from ``images[first[k]]`` to ``images[second[k]]`` for each k: each distinct frame goes
        through the encoders once (the miner asks for F(a->b) and F(b->a) together)."""
        if images.shape[-2] % 8 or images.shape[-1] % 8:
            raise ValueError(f"image sides must be multiples of 8 (pad with InputPadder), got {tuple(images.shape)}")
        if min(images.shape[-2:]) < 64:
            raise ValueError(f"RAFT-small needs frames of at least 64x64 px (its 4-level pyramid at 1/8), "
                             f"got {tuple(images.shape[-2:])}")
        amp = dict(device_type=images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
        images = 2 * (images / 255.0) - 1.0
        with torch.autocast(**amp):
            fmaps = self.fnet(images)
        fmaps = fmaps.float()
        corr_fn = CorrBlock(fmaps[first], fmaps[second], num_levels=self.corr_levels, radius=self.corr_radius)
        with torch.autocast(**amp):
            cnet = self.cnet(images[first])
            net, inp = torch.split(cnet, [self.hidden_dim, self.context_dim], dim=1)
            net = torch.tanh(net)
            inp = torch.relu(inp)
        n = len(first)
        h, w = fmaps.shape[-2:]
        coords0 = coords_grid(n, h, w, fmaps.device)
        coords1 = coords0.clone()
        for _ in range(iters):
            corr = corr_fn(coords1)
            flow = coords1 - coords0
            with torch.autocast(**amp):
                net, delta = self.update_block(net, inp, corr, flow)
            coords1 = coords1 + delta.float()
        low = coords1 - coords0
        up = upflow8(low)
        return (low, up) if return_low else up


# --------------------------------------------------------------------------------------------
# Loading


class RAFTWeightsError(ValueError):
    """The weights file cannot be read or does not match the RAFT-small architecture."""


Weights = Union[str, os.PathLike, bytes, Mapping[str, torch.Tensor]]


def read_state_dict(weights: Weights, source: Optional[str] = None) -> dict[str, torch.Tensor]:
    """A state dict from a local file, the bytes of one (``torch.load(..., weights_only=True)``) or a
    state dict. URLs are read by :mod:`dynocc.factory.io.weights`, which hands the bytes here."""
    if isinstance(weights, Mapping):
        return dict(weights)
    source = source or (f"{len(weights)} bytes" if isinstance(weights, bytes) else os.fspath(weights))
    if isinstance(weights, bytes):
        data = weights
    else:
        if "://" in source:
            raise RAFTWeightsError(f"RAFT weights {source}: a URL; read it with dynocc.factory.io.weights")
        try:
            with open(source, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise RAFTWeightsError(f"RAFT weights not found: {source}") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise RAFTWeightsError(f"cannot read RAFT weights {source}: {type(e).__name__}: {e}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise RAFTWeightsError(f"RAFT weights {source} hold a {type(obj).__name__}, not a state dict")
    return obj


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the ``module.`` prefix that ``nn.DataParallel`` put on the reference's keys."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Load with a strict key and shape match; the error names every missing, unexpected or
    mis-shaped key."""
    state = clean_state_dict(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{k} {tuple(state[k].shape)} (model: {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if mis_shaped:
            parts.append(f"shape mismatch: {', '.join(mis_shaped)}")
        raise RAFTWeightsError(f"{source} does not match RAFT-small ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)


def load_raft_small(weights: Weights, device: str | torch.device = "cpu", source: Optional[str] = None) -> RAFTSmall:
    """RAFT-small with ``weights`` (a local file, its bytes or a state dict; ``source`` names them in
    errors), in eval mode on ``device``. Raises :class:`RAFTWeightsError` naming missing/unexpected keys.
    For a URL: :func:`dynocc.factory.io.weights.load_raft_small`."""
    model = RAFTSmall()
    state = read_state_dict(weights, source)
    name = source or (os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else "state dict")
    load_state_dict_strict(model, state, source=f"RAFT weights {name}")
    return model.to(resolve_device(device)).eval()


def resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but CUDA is not available (use device='auto' or 'cpu')")
    return torch.device(device)


# --------------------------------------------------------------------------------------------
# The flow backend

_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class RAFTFlow:
    """:class:`~dynocc.factory.core.flow.FlowBackend` running RAFT-small.

    ``weights``: a local RAFT-small state dict file (e.g. ``raft-small.pth``), its bytes or the state dict
    (``source`` names it in messages; from a URL: :func:`dynocc.factory.io.weights.flow_backend`);
    ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``;
    ``batch_size``: pairs of the same size per forward pass;
    ``precision``: ``auto`` (fp16 autocast on CUDA, fp32 on CPU), ``fp32``, ``fp16``, ``bf16``
    (autocast covers the convolutions; correlation and coordinates stay fp32, as the reference).
    """

    def __init__(
        self,
        weights: Weights,
        iters: int = 12,
        device: str = "auto",
        batch_size: int = 8,
        precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
        channels_last: bool = False,
        source: Optional[str] = None,
    ):
        if iters < 1 or batch_size < 1:
            raise ValueError("iters and batch_size must be >= 1")
        self.device = resolve_device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
        self.precision = precision
        self.iters = int(iters)
        self.batch_size = int(batch_size)
        self.weights = source or (os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else "state dict")
        # channels_last: no gain measured on CPU for this net (1.48 vs 1.49 s per 854x480 pair, 2 cores),
        # so off unless asked for (benchmarks/bench_flow.py measures both on CUDA)
        self.channels_last = bool(channels_last)
        self.model = load_raft_small(weights, self.device, source)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.name = f"raft-small-{self.iters}it-{self.device.type}-{self.precision}"
        self._lock = threading.Lock()  # one forward at a time (the miner calls from a worker thread)

    def _tensor(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        arr = np.stack([f if f.ndim == 3 else np.repeat(f[..., None], 3, axis=2) for f in frames])
        if arr.shape[-1] != 3:
            raise ValueError(f"frames must be RGB (H, W, 3) or grey (H, W), got {arr.shape[1:]}")
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
        t = t.permute(0, 3, 1, 2).float()
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t.contiguous()

    @torch.inference_mode()
    def _run(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        frames: list[np.ndarray] = []
        index: list[list[int]] = [[], []]
        for pair in pairs:
            for side, frame in enumerate(pair):
                k = next((j for j, f in enumerate(frames) if f is frame), None)  # the same object: encode once
                if k is None:
                    k = len(frames)
                    frames.append(frame)
                index[side].append(k)
        images = self._tensor(frames)
        padder = InputPadder(images.shape)
        (images,) = padder(images)
        first, second = (torch.tensor(i, device=self.device) for i in index)
        flow = self.model.estimate(images, first, second, self.iters, _PRECISIONS[self.precision])
        flow = padder.unpad(flow).permute(0, 2, 3, 1).float()
        return flow.cpu().numpy().astype(np.float32, copy=False)

    def flows(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Flow from the first to the second frame of each pair, (H, W, 2) float32 (dx, dy)."""
        out: list[Optional[np.ndarray]] = [None] * len(pairs)
        by_size: dict[tuple, list[int]] = {}
        for i, (a, b) in enumerate(pairs):
            if a.shape[:2] != b.shape[:2]:
                raise ValueError(f"pair {i}: frames differ in size, {a.shape[:2]} vs {b.shape[:2]}")
            by_size.setdefault(tuple(a.shape[:2]), []).append(i)
        with self._lock:
            for idx in by_size.values():
                for s in range(0, len(idx), self.batch_size):
                    chunk = idx[s:s + self.batch_size]
                    result = self._run([pairs[i] for i in chunk])
                    for k, i in enumerate(chunk):
                        out[i] = np.ascontiguousarray(result[k])
        return out  # type: ignore[return-value]
