"""ResNet-50, DINOv2 and MedicalNet 3D encoders loaded from test-made checkpoints with official key names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from GenMedEvalLib.features.weights import WeightsUnavailable


def save_checkpoint(state: dict, folder: Path, filename: str) -> str:
    """Save ``state`` as ``folder/filename``; return its SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / filename)
    return hashlib.sha256((folder / filename).read_bytes()).hexdigest()


def random_state(model: torch.nn.Module, seed: int) -> dict:
    """The model's state dict with every float tensor redrawn (small, seeded; variances positive)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            value = torch.rand(value.shape, generator=gen) * 0.2 + (0.9 if "running_var" in key else -0.1)
        state[key] = value.clone()
    return state


@pytest.fixture
def grey(rng) -> np.ndarray:
    return rng.random((2, 40, 48), dtype=np.float32)


# --- ResNet-50 -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet_state() -> dict:
    from GenMedEvalLib.features.encoders.resnet import build_resnet50

    return random_state(build_resnet50(), seed=1)


def test_resnet_keys_are_torchvision_names(resnet_state):
    expected = {"conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                "layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn3.weight": (2048,), "fc.weight": (1000, 2048)}
    for key, shape in expected.items():
        assert tuple(resnet_state[key].shape) == shape
    assert len([k for k in resnet_state if k.endswith("num_batches_tracked")]) == 53


@pytest.fixture(scope="module")
def resnet_saved(tmp_path_factory, resnet_state):
    """The checkpoint saved once under its torchvision name: (folder, SHA-256)."""
    folder = tmp_path_factory.mktemp("resnet")
    return folder, save_checkpoint(resnet_state, folder, "resnet50-0676ba61.pth")


@pytest.fixture(scope="module")
def resnet_features(resnet_saved):
    """Features of two fixed grey slices from the saved checkpoint, and the encoder."""
    from GenMedEvalLib.features.encoders.resnet import ResNet50Encoder

    folder, digest = resnet_saved
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMEDEVAL_WEIGHTS", str(folder))
        encoder = ResNet50Encoder(device="cpu", sha256=digest)
        grey = np.random.default_rng(0).random((2, 40, 48), dtype=np.float32)
        return grey, encoder, encoder.encode_batch(grey)["pool"]


def test_resnet_loads_checkpoint_and_uses_it(resnet_state, resnet_features):
    from GenMedEvalLib.features.encoders.resnet import load_resnet50

    grey, encoder, out = resnet_features
    assert out.shape == (2, 2048) and out.dtype == np.float32
    np.testing.assert_array_equal(out, encoder.encode_batch(grey)["pool"])
    assert torch.equal(encoder._net().conv1.weight, resnet_state["conv1.weight"])
    # The checkpoint is used end to end: moving one deep weight moves the features.
    changed = dict(resnet_state)
    changed["layer4.2.bn3.bias"] = resnet_state["layer4.2.bn3.bias"] + 1.0
    encoder2 = type(encoder)(device="cpu", sha256="x")
    encoder2._model = load_resnet50(changed)
    assert np.abs(encoder2.encode_batch(grey)["pool"] - out).max() > 0.1


def test_radimagenet_sequential_keys_map_to_same_features(tmp_path, monkeypatch, resnet_state, resnet_features):
    from GenMedEvalLib.features.encoders.resnet import ResNet50Encoder

    grey, _, expected = resnet_features
    names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    sequential = {}
    for key, value in resnet_state.items():
        head, _, rest = key.partition(".")
        if head in names and not key.endswith("num_batches_tracked"):
            sequential[f"backbone.{names[head]}.{rest}"] = value
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    digest = save_checkpoint(sequential, tmp_path, "RadImageNet-ResNet50_notop.pth")
    encoder = ResNet50Encoder(device="cpu", weights="radimagenet", sha256=digest)
    assert encoder.identity().startswith("resnet50-radimagenet-")
    np.testing.assert_allclose(encoder.encode_batch(grey)["pool"], expected, rtol=1e-6)


def test_resnet_wrong_hash_is_refused(tmp_path, monkeypatch, resnet_state, grey):
    from GenMedEvalLib.features.encoders.resnet import ResNet50Encoder

    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    save_checkpoint({"conv1.weight": resnet_state["conv1.weight"]}, tmp_path, "RadImageNet-ResNet50_notop.pth")
    from dataclasses import replace

    encoder = ResNet50Encoder(device="cpu", weights="radimagenet", sha256="0" * 64)
    encoder._spec = replace(encoder.weights, url=None)  # never download in a test
    with pytest.raises(WeightsUnavailable, match="does not match"):
        encoder.encode_batch(grey)


# --- DINOv2 ----------------------------------------------------------------------------------------

def test_dinov2_vitb14_has_official_layout():
    from GenMedEvalLib.features.encoders.dinov2 import build_vit, vit_config

    state = build_vit().state_dict()
    expected = {"cls_token": (1, 1, 768), "pos_embed": (1, 1370, 768), "mask_token": (1, 768),
                "patch_embed.proj.weight": (768, 3, 14, 14), "blocks.11.attn.qkv.weight": (2304, 768),
                "blocks.0.ls1.gamma": (768,), "blocks.0.mlp.fc1.weight": (3072, 768), "norm.bias": (768,)}
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape
    assert vit_config(state) == {"dim": 768, "depth": 12, "heads": 12, "grid": 37, "mlp_ratio": 4.0}


def manual_cls(state: dict, x: torch.Tensor, heads: int) -> torch.Tensor:
    """An independent DINOv2 forward written from the paper's equations, for a checkpoint ``state``."""
    import torch.nn.functional as F  # noqa: N812

    dim = state["cls_token"].shape[-1]
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    tokens = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=14)
    side = tokens.shape[-1]
    tokens = tokens.flatten(2).transpose(1, 2)
    pos = state["pos_embed"][:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, scale_factor=((side + 0.1) / grid,) * 2, mode="bicubic")
    pos = torch.cat([state["pos_embed"][:, :1], pos.permute(0, 2, 3, 1).reshape(1, -1, dim)], 1)
    h = torch.cat([state["cls_token"].expand(len(x), -1, -1), tokens], 1) + pos
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        p = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        y = F.layer_norm(h, (dim,), p["norm1.weight"], p["norm1.bias"], 1e-6)
        q, k, v = (y @ p["attn.qkv.weight"].T + p["attn.qkv.bias"]).chunk(3, dim=-1)
        split = lambda t: t.reshape(len(x), -1, heads, dim // heads).transpose(1, 2)  # noqa: E731
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (dim // heads) ** 0.5, -1) @ split(v)
        att = att.transpose(1, 2).reshape(len(x), -1, dim) @ p["attn.proj.weight"].T + p["attn.proj.bias"]
        h = h + p["ls1.gamma"] * att
        y = F.layer_norm(h, (dim,), p["norm2.weight"], p["norm2.bias"], 1e-6)
        y = F.gelu(y @ p["mlp.fc1.weight"].T + p["mlp.fc1.bias"]) @ p["mlp.fc2.weight"].T + p["mlp.fc2.bias"]
        h = h + p["ls2.gamma"] * y
    return F.layer_norm(h, (dim,), state["norm.weight"], state["norm.bias"], 1e-6)[:, 0]


def test_dinov2_small_checkpoint_matches_independent_forward(tmp_path, monkeypatch, grey):
    from GenMedEvalLib.features.encoders import grey_to_input
    from GenMedEvalLib.features.encoders.dinov2 import DinoV2Encoder, build_vit

    state = random_state(build_vit(dim=64, depth=2, heads=1, grid=37), seed=2)
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    digest = save_checkpoint(state, tmp_path, "dinov2_vitb14_pretrain.pth")
    encoder = DinoV2Encoder(device="cpu", sha256=digest)
    out = encoder.encode_batch(grey)["pool"]
    assert out.shape == (2, 64)
    with torch.inference_mode():
        expected = manual_cls(state, grey_to_input(torch.from_numpy(grey), 224), heads=1).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out, DinoV2Encoder(device="cpu", sha256=digest).encode_batch(grey)["pool"])


# --- MedicalNet 3D ---------------------------------------------------------------------------------

def test_medicalnet_official_keys_load_and_are_used(tmp_path, monkeypatch, rng):
    from GenMedEvalLib.features.encoders.medicalnet import MedicalNet3DEncoder, build_resnet3d

    state = {f"module.{k}": v for k, v in random_state(build_resnet3d(10), seed=3).items()}
    assert tuple(state["module.conv1.weight"].shape) == (64, 1, 7, 7, 7)
    assert tuple(state["module.layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1, 1)
    state["module.conv_seg.0.weight"] = torch.zeros(32, 512, 3, 3, 3)  # the head, ignored
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # as in old files
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    digest = save_checkpoint({"state_dict": state}, tmp_path, "resnet_10_23dataset.pth")
    volumes = rng.random((2, 12, 20, 20), dtype=np.float32)
    encoder = MedicalNet3DEncoder(device="cpu", size=24, sha256=digest)
    out = encoder.encode_batch(volumes)["pool"]
    assert out.shape == (2, 512) and np.isfinite(out).all()
    np.testing.assert_array_equal(out, MedicalNet3DEncoder(device="cpu", size=24, sha256=digest).encode_batch(volumes)["pool"])
    assert torch.equal(encoder._net().layer4[0].conv2.weight, state["module.layer4.0.conv2.weight"])
    assert encoder._net().layer4[0].conv2.dilation == (4, 4, 4)  # MedicalNet's dilated layer4
    assert not np.allclose(out[0], out[1])


def test_mismatched_checkpoints_are_refused(resnet_state):
    from GenMedEvalLib.features.encoders.medicalnet import build_resnet3d, load_resnet3d
    from GenMedEvalLib.features.encoders.resnet import load_resnet50

    partial = {k: v for k, v in resnet_state.items() if not k.startswith("layer4.2.")}
    with pytest.raises(ValueError, match="missing"):
        load_resnet50(partial)
    state = build_resnet3d(10).state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        load_resnet3d(state)
