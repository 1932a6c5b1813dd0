"""EncDecResNet: torchvision's ResNet state-dict names, the ReDWeb decoder, backbone weight loading."""

from __future__ import annotations

import fsspec
import pytest
import torch

from dynocc.trainer.model import EncDecResNet, ResNetEncoder, build_model, load_backbone_weights

# A sample of torchvision.models.resnet18().state_dict() keys and shapes (torchvision 0.2x).
RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,),
    "bn1.running_mean": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.running_var": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_mean": (128,),
    "layer3.1.conv2.weight": (256, 256, 3, 3),
    "layer4.0.downsample.1.weight": (512,),
    "layer4.1.bn2.bias": (512,),
}
RESNET50_KEYS = {
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.bn3.weight": (256,),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.conv3.weight": (1024, 256, 1, 1),
    "layer4.2.bn3.running_var": (2048,),
}


def test_resnet18_encoder_uses_torchvision_key_names():
    state = ResNetEncoder("resnet18").state_dict()
    for key, shape in RESNET18_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert len(state) == 122 - 2  # torchvision's resnet18 has 122 keys; fc.weight and fc.bias are dropped
    assert not any(k.startswith(("fc.", "avgpool")) for k in state)


def test_resnet50_encoder_is_torchvision_v1_5():
    enc = ResNetEncoder("resnet50")
    state = enc.state_dict()
    for key, shape in RESNET50_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert len(state) == 320 - 2
    assert enc.layer2[0].conv2.stride == (2, 2) and enc.layer2[0].conv1.stride == (1, 1)  # stride on the 3x3


def test_model_keys_nest_the_encoder_and_the_decoder_follows_fig_4():
    model = EncDecResNet("resnet18")
    keys = model.state_dict().keys()
    assert "encoder.layer4.1.conv2.weight" in keys
    assert all(f.transition.out_channels == 256 and f.transition.kernel_size == (3, 3) for f in model.fusion)
    assert [f.transition.in_channels for f in model.fusion] == [64, 128, 256, 512]
    assert (model.head[0].out_channels, model.head[1].out_channels) == (128, 1)


@pytest.mark.parametrize("channels_last", [True, False])
def test_output_is_one_channel_at_the_input_size(channels_last):
    model = build_model("resnet18", 32, 16, channels_last=channels_last).eval()
    x = torch.rand(2, 3, 64, 96)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        assert model.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        z = model(x)
    assert z.shape == (2, 1, 64, 96) and torch.isfinite(z).all()


def _torchvision_like_file(tmp_path, backbone="resnet18", seed=1):
    torch.manual_seed(seed)
    state = ResNetEncoder(backbone).state_dict()
    state["fc.weight"] = torch.zeros(1000, 512 if backbone != "resnet50" else 2048)
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / f"{backbone}.pth"
    torch.save(state, path)
    return path, state


def test_backbone_weights_load_from_a_path_and_any_fsspec_url(tmp_path):
    path, state = _torchvision_like_file(tmp_path)
    for url in (str(path), f"file://{path}"):
        enc = ResNetEncoder("resnet18")
        report = load_backbone_weights(enc, url)
        assert report == {"loaded": 120, "ignored": ["fc.bias", "fc.weight"]}
        assert torch.equal(enc.state_dict()["layer3.0.downsample.0.weight"], state["layer3.0.downsample.0.weight"])
    with open(path, "rb") as f:
        fsspec.filesystem("memory").pipe("/weights/r18.pth", f.read())
    enc = ResNetEncoder("resnet18")
    load_backbone_weights(enc, "memory://weights/r18.pth")
    assert torch.equal(enc.state_dict()["conv1.weight"], state["conv1.weight"])


def test_backbone_weights_are_strict_for_the_encoder(tmp_path):
    path, state = _torchvision_like_file(tmp_path)
    missing = dict(state)
    del missing["layer1.0.bn1.running_var"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing \['layer1.0.bn1.running_var'\]"):
        load_backbone_weights(ResNetEncoder("resnet18"), str(tmp_path / "missing.pth"))
    torch.save({**state, "head.extra": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected \['head.extra'\]"):
        load_backbone_weights(ResNetEncoder("resnet18"), str(tmp_path / "extra.pth"))
    with pytest.raises(ValueError, match="missing"):  # resnet34 has more blocks
        load_backbone_weights(ResNetEncoder("resnet34"), str(path))
