"""Content-addressed cache of the study's results, so that a second run over the same data is fast.

Feature vectors are already cached per slice (``features/cache.py``); this caches what is computed
from them: a metric table is keyed by the exact bytes of its input feature matrices, the metric
names, bootstrap count, seed and the metric code's own source (a change in the metrics invalidates
it); a downstream score is keyed by the image's bytes, its spacing and the segmenter and quality
model files. Entries live under ``$GENMEDEVAL_CACHE/_results`` and are written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..digest import array_digest
from ..io import atomic_path, write_text


@lru_cache(maxsize=16)
def file_digest(path: str) -> str:
    """Hex SHA-256 of a file's bytes (a model's identity)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def metrics_code_digest() -> str:
    """Hex SHA-256 of the metric package's source files: cached tables are only valid for this code."""
    folder = Path(__file__).resolve().parent.parent / "metrics"
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class ResultCache:
    """Metric tables and downstream scores keyed by their inputs' content; counts hits and misses."""

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True):
        from ..features.cache import default_cache_dir

        self.root = Path(root) if root is not None else default_cache_dir() / "_results"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def suite(self, features: dict[str, np.ndarray], names: Sequence[str], *, bootstrap: int = 0, seed: int = 0):
        """``compute_suite(features, names, bootstrap=, seed=)``, from the cache when computed before."""
        from ..metrics import compute_suite
        from ..metrics.suite import MetricRow, SuiteResult

        roles = sorted(features)
        key = array_digest(*(features[r] for r in roles),
                           extra=json.dumps([roles, list(names), bootstrap, seed, metrics_code_digest()]))
        path = self._path("suite", key, ".json")
        if self.enabled and path.is_file():
            try:
                rows = [MetricRow(**r) for r in json.loads(path.read_text())]
                self.hits += 1
                return SuiteResult(rows)
            except (ValueError, TypeError):
                pass  # unreadable entry: recompute and overwrite
        self.misses += 1
        result = compute_suite(features, list(names), bootstrap=bootstrap, seed=seed)
        if self.enabled:
            write_text(path, json.dumps(result.to_records()))
        return result

    def score(self, image: np.ndarray, spacing: Sequence[float], identity: str,
              compute: Callable[[], tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
        """A downstream (score, mask) for ``image``; ``compute`` runs only on a miss."""
        key = array_digest(image, extra=json.dumps([list(map(float, spacing)), identity]))
        path = self._path("downstream", key, ".npz")
        if self.enabled and path.is_file():
            try:
                with np.load(path) as data:
                    self.hits += 1
                    return float(data["score"]), data["mask"].astype(np.uint8)
            except (OSError, ValueError, KeyError):
                pass
        self.misses += 1
        score, mask = compute()
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, score=np.float64(score), mask=np.asarray(mask, np.uint8))
        return score, mask
