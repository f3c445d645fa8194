"""Verified caches: a corrupt, truncated, foreign or NaN entry is warned about once, deleted and recomputed;
two processes writing one cache never tear an entry."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from GenMedEvalLib.errors import GenMedEvalWarning
from GenMedEvalLib.experiments.resultcache import ResultCache
from GenMedEvalLib.features import cache as cache_module
from GenMedEvalLib.features.cache import FeatureCache, content_hash


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the 'reported once per cache' state of a new process."""
    monkeypatch.setattr(cache_module, "_warned_roots", set())


def _stored(tmp_path, n: int = 3):
    cache = FeatureCache(tmp_path / "c")
    rows = {}
    for i in range(n):
        digest = content_hash(np.full((4, 4), i, np.float32))
        rows[digest] = np.arange(8, dtype=np.float32) + i
        cache.put(digest, "enc-v1", "pool", rows[digest])
    return cache, rows


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) - 5])
    elif how == "flipped":
        path.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    elif how == "garbage":
        path.write_bytes(b"\x93NUMPY garbage")
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage", "empty"])
def test_damaged_feature_entry_is_reported_once_deleted_and_recomputed(tmp_path, how):
    cache, rows = _stored(tmp_path)
    digests = list(rows)
    for digest in digests[:2]:
        _damage(cache.path(digest, "enc-v1", "pool"), how)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found, missing = cache.lookup(digests, "enc-v1", ("pool",))
    assert missing == [0, 1]  # both damaged entries are misses: recomputed by the caller
    np.testing.assert_array_equal(found["pool"][2], rows[digests[2]])  # the good one is a hit
    reports = [w for w in caught if issubclass(w.category, GenMedEvalWarning)]
    assert len(reports) == 1 and "deleted and recomputed" in str(reports[0].message)
    assert not cache.path(digests[0], "enc-v1", "pool").exists()  # deleted
    cache.put(digests[0], "enc-v1", "pool", rows[digests[0]])
    np.testing.assert_array_equal(cache.get(digests[0], "enc-v1", "pool"), rows[digests[0]])


def test_foreign_entry_and_other_code_are_not_reused(tmp_path, monkeypatch):
    cache, rows = _stored(tmp_path)
    a, b = list(rows)[:2]
    # an entry copied under another key (a different input) is foreign
    cache.path(b, "enc-v1", "pool").write_bytes(cache.path(a, "enc-v1", "pool").read_bytes())
    with pytest.warns(GenMedEvalWarning, match="another key"):
        assert cache.get(b, "enc-v1", "pool") is None
    # entries written by other encoder code are not trusted either
    monkeypatch.setattr(cache_module, "encoder_code_digest", lambda: "other-code")
    monkeypatch.setattr(cache_module, "_warned_roots", set())
    with pytest.warns(GenMedEvalWarning, match="another code"):
        assert cache.get(a, "enc-v1", "pool") is None


def test_nan_features_are_never_stored_nor_served(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    cache.put("ab" * 32, "enc", "pool", np.array([1.0, np.nan], np.float32))
    assert not cache.path("ab" * 32, "enc", "pool").exists()
    # a NaN entry with a valid checksum (as a buggy writer could leave) is refused at reading
    values = np.array([1.0, np.nan], "<f4")
    meta = dict(FeatureCache._expect("cd" * 32, "enc", "pool"), shape=[2])
    cache_module.write_entry(cache.path("cd" * 32, "enc", "pool"), values.tobytes(), meta)
    with pytest.warns(GenMedEvalWarning, match="NaN"):
        assert cache.get("cd" * 32, "enc", "pool") is None
    assert not cache.path("cd" * 32, "enc", "pool").exists()


def test_result_cache_recomputes_damaged_tables_and_scores(tmp_path):
    results = ResultCache(tmp_path / "r")
    rng = np.random.default_rng(0)
    features = {"reference": rng.normal(size=(30, 4)), "generated": rng.normal(size=(30, 4)) + 0.5}
    first = results.suite(features, ["fd"])
    calls = []

    def compute():
        calls.append(1)
        return 0.75, np.ones((2, 3, 4), np.uint8)

    image = np.zeros((2, 3, 4), np.float32)
    results.score(image, (1.0, 1.0, 1.0), "seg", compute)
    for entry in (tmp_path / "r").rglob("*.gmr"):
        _damage(entry, "flipped")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = results.suite(features, ["fd"])
        score, mask = results.score(image, (1.0, 1.0, 1.0), "seg", compute)
    assert [w for w in caught if issubclass(w.category, GenMedEvalWarning)]  # reported (once)
    assert again.to_records() == first.to_records() and score == 0.75 and mask.sum() == 24
    assert len(calls) == 2 and results.misses == 4 and results.hits == 0
    score, _ = results.score(image, (1.0, 1.0, 1.0), "seg", compute)  # recomputed entries are sound again
    assert len(calls) == 2 and results.hits == 1


WRITER = r"""
import sys, numpy as np
from GenMedEvalLib.features.cache import FeatureCache
cache = FeatureCache(sys.argv[1])
seed = int(sys.argv[2])
for round_ in range(60):
    for key in range(8):
        digest = f"{key:064x}"
        # both processes write the same content-addressed entries (as parallel sweeps do), over and over
        cache.put(digest, "enc", "pool", np.full(4096, key, np.float32))
        got = cache.get(digest, "enc", "pool")
        if got is not None and not (got.shape == (4096,) and np.all(got == key)):
            print("TORN", key); sys.exit(3)
print("ok")
"""


def test_two_processes_writing_one_cache_never_tear_an_entry(tmp_path):
    root = tmp_path / "shared"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, "-W", "error::UserWarning", str(script), str(root), str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", (out, err[-2000:])  # a torn read warns -> error
    cache = FeatureCache(root)
    for key in range(8):
        np.testing.assert_array_equal(cache.get(f"{key:064x}", "enc", "pool"), np.full(4096, key, np.float32))
    assert not list(root.rglob("*.tmp*"))
