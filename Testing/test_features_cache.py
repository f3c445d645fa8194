"""The content-addressed feature cache and batched extraction, with a counting toy encoder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from GenMedEvalLib.errors import ParameterError
from GenMedEvalLib.features import FeatureCache, SliceSettings, extract_features, get_encoder
from GenMedEvalLib.features.base import Encoder

SETTINGS = SliceSettings(min_foreground=0.0)


class CountingEncoder(Encoder):
    """Deterministic toy features (row/column means and moments) that counts what it encodes."""

    name = "toy"
    dim = 4
    input_size = 8
    outputs = ("pool", "logits")

    def __init__(self, device: str | None = "cpu", batch_size: int = 4, tag: str = "a"):
        super().__init__(device, batch_size)
        self.tag = tag
        self.seen = 0

    @property
    def weights(self):
        return None

    def identity(self) -> str:
        return f"toy-{self.tag}"

    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.seen += int(batch.reshape(len(batch), -1).any(axis=1).sum())  # real inputs, not the zero padding
        flat = batch.reshape(len(batch), -1).astype(np.float64)
        pool = np.stack([flat.mean(1), flat.std(1), flat.max(1), (flat ** 2).mean(1)], axis=1)
        return {"pool": pool.astype(np.float32), "logits": pool[:, :2].astype(np.float32)}


def _toy_expected(slice_: np.ndarray) -> np.ndarray:
    flat = slice_.astype(np.float64).ravel()
    return np.array([flat.mean(), flat.std(), flat.max(), (flat ** 2).mean()], dtype=np.float32)


@pytest.fixture
def volumes(rng):
    return [rng.random((6, 8, 8), dtype=np.float32), rng.random((5, 8, 8), dtype=np.float32)]


def test_features_match_direct_computation_and_metadata(volumes, tmp_path):
    encoder = CountingEncoder()
    fs = extract_features(volumes, encoder, slices=SETTINGS, cache=FeatureCache(tmp_path), show_progress=False)
    assert fs.pool.shape == (11, 4) and fs.pool.dtype == np.float32
    assert list(fs.volume_index) == [0] * 6 + [1] * 5
    np.testing.assert_allclose(fs.pool[8], _toy_expected(volumes[1][2]), rtol=1e-6)
    means = fs.per_volume()
    assert means.dtype == np.float64
    np.testing.assert_allclose(means[1], fs.pool[6:].astype(np.float64).mean(0))


def test_second_pass_makes_no_forward_pass(volumes, tmp_path):
    cache = FeatureCache(tmp_path)
    encoder = CountingEncoder()
    first = extract_features(volumes, encoder, slices=SETTINGS, cache=cache, outputs=("pool", "logits"),
                             show_progress=False)
    assert cache.stats.forward_passes == encoder.seen == 11
    cache.stats.reset()
    second = extract_features(volumes, encoder, slices=SETTINGS, cache=cache, outputs=("pool", "logits"),
                              show_progress=False)
    assert encoder.seen == 11 and cache.stats.forward_passes == 0
    assert (cache.stats.hits, cache.stats.misses) == (11, 0)
    np.testing.assert_array_equal(first.features["logits"], second.features["logits"])


def test_changing_one_slice_recomputes_exactly_that_slice(volumes, tmp_path):
    cache = FeatureCache(tmp_path)
    extract_features(volumes, CountingEncoder(), slices=SETTINGS, cache=cache, show_progress=False)
    edited = [volumes[0], volumes[1].copy()]
    edited[1][3, 2, 2] += 0.5
    encoder = CountingEncoder()
    cache.stats.reset()
    fs = extract_features(edited, encoder, slices=SETTINGS, cache=cache, show_progress=False)
    assert encoder.seen == 1 and cache.stats.misses == 1 and cache.stats.hits == 10
    np.testing.assert_allclose(fs.pool[9], _toy_expected(edited[1][3]), rtol=1e-6)
    assert volumes[1][3, 2, 2] != edited[1][3, 2, 2]  # input not modified


def test_copies_inside_one_set_are_encoded_once(volumes, tmp_path):
    encoder = CountingEncoder()
    fs = extract_features([volumes[0]] * 3, encoder, slices=SETTINGS, cache=FeatureCache(tmp_path), show_progress=False)
    assert encoder.seen == 6 and fs.pool.shape == (18, 4)


def test_key_changes_with_encoder_identity(volumes, tmp_path):
    cache = FeatureCache(tmp_path)
    extract_features(volumes, CountingEncoder(tag="a"), slices=SETTINGS, cache=cache, show_progress=False)
    other = CountingEncoder(tag="b")
    extract_features(volumes, other, slices=SETTINGS, cache=cache, show_progress=False)
    assert other.seen == 11


def test_cache_survives_a_new_process(volumes, tmp_path):
    cache = FeatureCache(tmp_path / "c")
    first = extract_features(volumes[:1], CountingEncoder(), slices=SETTINGS, cache=cache, show_progress=False)
    np.save(tmp_path / "vol.npy", volumes[0])
    script = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from test_features_cache import CountingEncoder, SETTINGS\n"
        "from GenMedEvalLib.features import FeatureCache, extract_features\n"
        "enc = CountingEncoder(); cache = FeatureCache(sys.argv[1])\n"
        "fs = extract_features([np.load(sys.argv[2])], enc, slices=SETTINGS, cache=cache, show_progress=False)\n"
        "np.save(sys.argv[2] + '.out.npy', fs.pool); print(enc.seen, cache.stats.hits)\n"
    )
    from pathlib import Path

    here = str(Path(__file__).parent)
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "c"), str(tmp_path / "vol.npy"), here],
                         capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["0", "6"]
    np.testing.assert_array_equal(np.load(tmp_path / "vol.npy.out.npy"), first.pool)
    assert not list((tmp_path / "c").rglob("*.tmp*"))  # no temporary files left behind


def test_missing_output_and_unknown_encoder_raise(volumes, tmp_path):
    with pytest.raises(ParameterError, match="spatial"):
        extract_features(volumes, CountingEncoder(), outputs=("spatial",), cache=FeatureCache(tmp_path))
    with pytest.raises(ParameterError, match="inception, dinov2"):
        get_encoder("vgg")


def test_disabled_cache_counts_naive_passes(volumes, tmp_path):
    cache = FeatureCache(tmp_path, enabled=False)
    for _ in range(2):
        extract_features(volumes, CountingEncoder(), slices=SETTINGS, cache=cache, show_progress=False)
    assert cache.stats.forward_passes == 22 and not list(tmp_path.iterdir())


def test_features_do_not_depend_on_companions_or_cache_state(tmp_path):
    """A slice's features are bit-identical encoded alone, among others, or after the cache held some of them
    (every batch is padded to the encoder's batch size: one shape, one arithmetic)."""
    from GenMedEvalLib.features.registry import get_encoder

    encoder = get_encoder("domain", "cpu")
    rng = np.random.default_rng(3)
    images = rng.random((45, encoder.input_size, encoder.input_size), dtype=np.float32)
    together = encoder.encode(images, show_progress=False)["pool"]
    for i in (0, 7, 44):
        alone = encoder.encode(images[i:i + 1], show_progress=False)["pool"][0]
        assert np.array_equal(alone, together[i])
    three = encoder.encode(images[10:13], show_progress=False)["pool"]
    assert np.array_equal(three, together[10:13])
    from GenMedEvalLib.features.extract import encode_cached

    cache = FeatureCache(tmp_path)
    encode_cached(list(images[::4]), encoder, cache)  # a partly warm cache changes which inputs are batched together
    warm = encode_cached(list(images), encoder, cache)["pool"]
    assert np.array_equal(warm, together) and cache.stats.forward_passes == len(images[::4]) + 45 - len(images[::4])
