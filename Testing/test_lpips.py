"""LPIPS with test-made AlexNet and lin weights: zero on identical images, symmetric, equal to a direct computation."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from GenMedEvalLib.features.weights import WeightsUnavailable
from GenMedEvalLib.metrics import lpips as lp

SHAPES = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}


@pytest.fixture(scope="module")
def weights():
    """Random AlexNet (torchvision keys) and lin layers (lpips keys, non-negative)."""
    gen = torch.Generator().manual_seed(0)
    backbone = {}
    for i, shape in SHAPES.items():
        fan_in = shape[1] * shape[2] * shape[3]
        backbone[f"features.{i}.weight"] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        backbone[f"features.{i}.bias"] = torch.rand(shape[0], generator=gen) * 0.1
    lin = {f"lin{k}.model.1.weight": torch.rand(1, shape[0], 1, 1, generator=gen)
           for k, shape in enumerate(SHAPES.values())}
    return backbone, lin


@pytest.fixture(scope="module")
def network(weights):
    return lp.LPIPSNetwork(*weights, device="cpu")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    base = [np.sin(6 * xx) * 0.5 + 0.5, yy, (xx + yy) / 2, rng.random((64, 64))]
    return np.stack(base).astype(np.float32)


def direct_lpips(weights, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS written out: scale, AlexNet ReLUs, unit-normalise channels, squared diff, lin, mean, sum."""
    backbone, lin = weights
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(img):
        x = (torch.from_numpy(img)[None, None].repeat(1, 3, 1, 1) * 2 - 1 - shift) / scale
        out = []
        x = F.relu(F.conv2d(x, backbone["features.0.weight"], backbone["features.0.bias"], stride=4, padding=2))
        out.append(x)
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), backbone["features.3.weight"], backbone["features.3.bias"], padding=2))
        out.append(x)
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), backbone["features.6.weight"], backbone["features.6.bias"], padding=1))
        out.append(x)
        x = F.relu(F.conv2d(x, backbone["features.8.weight"], backbone["features.8.bias"], padding=1))
        out.append(x)
        x = F.relu(F.conv2d(x, backbone["features.10.weight"], backbone["features.10.bias"], padding=1))
        out.append(x)
        return out

    total = 0.0
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b), strict=True)):
        na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total += F.conv2d((na - nb) ** 2, lin[f"lin{k}.model.1.weight"]).mean().item()
    return total


def test_identical_images_give_zero(network, images):
    assert lp.lpips_distance(images[0], images[0], network) == 0.0


def test_symmetric_and_matches_direct_computation(network, weights, images):
    ab = lp.lpips_distance(images[0], images[1], network)
    assert ab == pytest.approx(lp.lpips_distance(images[1], images[0], network), rel=1e-6)
    assert ab > 0
    for i, j in [(0, 1), (2, 3), (1, 3)]:
        assert lp.lpips_distance(images[i], images[j], network) == pytest.approx(
            direct_lpips(weights, images[i], images[j]), rel=1e-4)


def test_diversity_is_mean_of_all_pairs(network, weights, images):
    expected = np.mean([direct_lpips(weights, images[i], images[j]) for i in range(4) for j in range(i + 1, 4)])
    assert lp.lpips_diversity(images, network=network) == pytest.approx(expected, rel=1e-4)
    assert lp.lpips_diversity(np.stack([images[0]] * 3), network=network) == pytest.approx(0.0, abs=1e-9)


def test_diversity_subsampling_is_seeded(network, images):
    a = lp.lpips_diversity(images, network=network, max_pairs=3, seed=1)
    assert a == lp.lpips_diversity(images, network=network, max_pairs=3, seed=1)
    assert len(lp.sample_pairs(4, 3, seed=1)) == 3 and len(lp.sample_pairs(4, 100, seed=1)) == 6


def test_fidelity_is_mean_nearest_reference(network, weights, images):
    gen, ref = images[:2], images[1:]
    expected = np.mean([min(direct_lpips(weights, g, r) for r in ref) for g in gen])
    assert lp.lpips_fidelity(gen, ref, network=network) == pytest.approx(expected, rel=1e-4)
    assert lp.lpips_fidelity(images[1:3], images, network=network) == pytest.approx(0.0, abs=1e-9)


def test_weights_loaded_from_cache_with_hash(tmp_path, monkeypatch, weights, images, network):
    backbone, lin = weights
    torch.save(backbone, tmp_path / lp.ALEXNET.filename)
    torch.save(lin, tmp_path / lp.LPIPS_ALEX_LIN.filename)
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    for env, name in (("GENMEDEVAL_ALEXNET_SHA256", lp.ALEXNET.filename),
                      ("GENMEDEVAL_LPIPS_ALEX_SHA256", lp.LPIPS_ALEX_LIN.filename)):
        monkeypatch.setenv(env, hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    loaded = lp.LPIPSNetwork.from_weights(device="cpu")
    assert lp.lpips_distance(images[0], images[2], loaded) == lp.lpips_distance(images[0], images[2], network)


def test_missing_weights_raise_unavailable(tmp_path, monkeypatch, images):
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    monkeypatch.delenv("GENMEDEVAL_ALEXNET_SHA256", raising=False)
    with pytest.raises(WeightsUnavailable, match="GENMEDEVAL_ALEXNET_SHA256"):
        lp.lpips_diversity(images)
    monkeypatch.setenv("GENMEDEVAL_ALEXNET_SHA256", "0" * 64)
    monkeypatch.setattr(lp, "ALEXNET", replace(lp.ALEXNET, url=None))  # never download in a test
    with pytest.raises(WeightsUnavailable, match="alexnet-owt-7be5be79.pth not found"):
        lp.lpips_diversity(images)


def test_bad_shape_is_refused(network):
    with pytest.raises(ValueError, match="expected grey images"):
        lp.lpips_diversity(np.zeros((2, 3, 4, 4)), network=network)
