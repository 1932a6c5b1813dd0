"""EncDecResNet: a ResNet encoder and the ReDWeb decoder (Xian et al. 2018, section 3.2, Fig. 4).

**Output convention**: the network predicts *relative inverse depth* z — larger z means closer to
the camera — so that the project's ordinal (+1 = A closer) reads ``zA > zB`` (see
:mod:`dynocc.trainer.loss`), the same direction as the stereo branch's inverse-depth maps.

**Encoder**: ResNet-18/34 (BasicBlock) or ResNet-50 (Bottleneck, stride on the 3×3 conv, "v1.5"),
written here with torchvision's state-dict key names (``conv1``, ``bn1``, ``layer1``..``layer4``,
blocks ``conv1/bn1/conv2/bn2[/conv3/bn3]/downsample.0/.1``), so ImageNet weights saved by
torchvision load by path or URL (:func:`load_backbone_weights`); the pooling and ``fc`` are
removed, as in the paper, and ``fc.*`` keys of a checkpoint are ignored.

**Decoder** (Fig. 4): for each encoder stage, from the deepest, a feature-fusion module: a 3×3
transition conv to ``decoder_channels`` (paper: 256), a residual conv block (ReLU-conv3×3-ReLU-
conv3×3 + identity), summation with the previous module's output, a second residual block and a
×2 bilinear upsampling. The output module: conv3×3 to ``head_channels`` (paper: 128), conv3×3 to
1 (no ReLU between: see ``EncDecResNet``), then bilinear upsampling to the input size.

The input is RGB in [0, 1], (N, 3, H, W); ImageNet mean/std normalisation happens inside the model.
H and W should be multiples of 32.
"""

from __future__ import annotations

import io
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
             "resnet50": ("bottleneck", (3, 4, 6, 3))}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetEncoder(nn.Module):
    """torchvision's ResNet without avgpool/fc; returns the outputs of layer1..layer4."""

    def __init__(self, name: str = "resnet50"):
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}")
        kind, layers = BACKBONES[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.channels = tuple(c * block.expansion for c in (64, 128, 256, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return c1, c2, c3, self.layer4(c3)


class ResidualConv(nn.Module):
    """Fig. 4(c): ReLU-conv3×3-ReLU-conv3×3 plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusion(nn.Module):
    """Fig. 4(b): transition conv, residual block, + previous, residual block, ×2 upsampling."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.transition = nn.Conv2d(in_channels, channels, 3, 1, 1)
        self.adapt = ResidualConv(channels)
        self.fuse = ResidualConv(channels)

    def forward(self, feature, previous=None):
        x = self.adapt(self.transition(feature))
        if previous is not None:
            x = x + previous
        x = self.fuse(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class EncDecResNet(nn.Module):
    """ResNet encoder + ReDWeb decoder; ``forward(rgb01) -> (N, 1, H, W)`` relative inverse depth."""

    def __init__(self, backbone: str = "resnet50", decoder_channels: int = 256, head_channels: int = 128):
        super().__init__()
        self.encoder = ResNetEncoder(backbone)
        self.fusion = nn.ModuleList(FeatureFusion(c, decoder_channels) for c in self.encoder.channels)
        # Two convs, no ReLU between them: the paper names none, and with one the head's units died
        # on equal-pair-heavy data (measured: 29 of 32 dead, a constant output, WHDR 0.99).
        self.head = nn.Sequential(nn.Conv2d(decoder_channels, head_channels, 3, 1, 1),
                                  nn.Conv2d(head_channels, 1, 3, 1, 1))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        size = x.shape[-2:]
        feats = self.encoder((x - self.mean) / self.std)
        y = None
        for fusion, feat in zip(reversed(self.fusion), reversed(feats)):
            if y is not None and y.shape[-2:] != feat.shape[-2:]:
                y = F.interpolate(y, size=feat.shape[-2:], mode="bilinear", align_corners=False)
            y = fusion(feat, y)
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)


def build_model(backbone: str = "resnet50", decoder_channels: int = 256, head_channels: int = 128,
                channels_last: bool = True) -> EncDecResNet:
    model = EncDecResNet(backbone, decoder_channels, head_channels)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _read_state_dict(path_or_url: str, storage_options: Optional[dict] = None) -> dict:
    from dynocc.factory.io.storage import open_url

    with open_url(path_or_url, "rb", storage_options) as f:
        blob = f.read()
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone_weights(encoder: ResNetEncoder, path_or_url: str,
                          storage_options: Optional[dict] = None) -> dict:
    """Load torchvision-format ResNet weights (a local path or any fsspec URL) into ``encoder``.

    Strict for the encoder: every encoder key must be present with its shape, and nothing else
    but the classifier (``fc.*``) may be in the file; otherwise ``ValueError`` names the keys.
    Returns ``{"loaded": n, "ignored": [fc keys]}``.
    """
    state = _read_state_dict(path_or_url, storage_options)
    ignored = sorted(k for k in state if k.startswith("fc."))
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shape:
        raise ValueError(f"backbone weights {path_or_url} do not fit the encoder: missing {missing[:8]} "
                         f"({len(missing)}), unexpected {unexpected[:8]} ({len(unexpected)}), "
                         f"wrong shape {shape[:8]} ({len(shape)})")
    encoder.load_state_dict(state, strict=True)
    return {"loaded": len(state), "ignored": ignored}
