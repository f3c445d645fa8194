"""Content-addressed cache of the study's results, so that a second run over the same data is fast.

Feature vectors are already cached per slice (``features/cache.py``); this caches what is computed
from them: a metric table is keyed by the exact bytes of its input feature matrices, the metric
names, bootstrap count, seed and the metric code's own source (a change in the metrics invalidates
it); a downstream score is keyed by the image's bytes, its spacing and the segmenter and quality
model files. Entries live under ``$GENMEDEVAL_CACHE/_results``, are written atomically and carry
their key, the code's digest and a checksum (``features.cache.read_entry``): a truncated, corrupt,
foreign or non-finite entry is reported once, deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..digest import array_digest
from ..features.cache import discard_entry, read_entry, write_entry


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

    @staticmethod
    def _expect(kind: str, key: str) -> dict:
        return {"key": key, "kind": kind, "code": metrics_code_digest()}

    def suite(self, features: dict[str, np.ndarray], names: Sequence[str], *, bootstrap: int = 0, seed: int = 0,
              local: dict[str, dict[str, np.ndarray]] | None = None,
              groups: dict[str, dict[str, np.ndarray]] | None = None):
        """``compute_suite(features, names, bootstrap=, seed=, local=, groups=)``, from the cache when computed before."""
        from ..metrics import compute_suite
        from ..metrics.suite import MetricRow, SuiteResult

        local, groups = local or {}, groups or {}
        roles = sorted(features)
        local_roles = sorted((kind, role) for kind in local for role in local[kind])
        group_roles = sorted((kind, role) for kind in groups for role in groups[kind])
        key = array_digest(*(features[r] for r in roles), *(local[k][r] for k, r in local_roles),
                           *(groups[k][r] for k, r in group_roles),
                           extra=json.dumps([roles, local_roles, group_roles, list(names), bootstrap, seed,
                                             metrics_code_digest()]))
        path = self._path("suite", key, ".gmr")
        entry = read_entry(path, self._expect("suite", key), self.root) if self.enabled else None
        if entry is not None:
            try:
                rows = [MetricRow(**r) for r in json.loads(entry[1].decode())]
                self.hits += 1
                return SuiteResult(rows)
            except (ValueError, TypeError, AttributeError):
                discard_entry(path, "holds no metric table", self.root)
        self.misses += 1
        result = compute_suite(features, list(names), bootstrap=bootstrap, seed=seed, local=local, groups=groups)
        if self.enabled:
            write_entry(path, json.dumps(result.to_records()).encode(), self._expect("suite", key))
        return result

    def score(self, image: np.ndarray, spacing: Sequence[float], identity: str,
              compute: Callable[[], tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
        """A downstream (score, mask) for ``image``; ``compute`` runs only on a miss."""
        key = array_digest(image, extra=json.dumps([list(map(float, spacing)), identity]))
        path = self._path("downstream", key, ".gmr")
        entry = read_entry(path, self._expect("downstream", key), self.root) if self.enabled else None
        if entry is not None:
            found = self._decode_score(entry, path)
            if found is not None:
                self.hits += 1
                return found
        self.misses += 1
        score, mask = compute()
        if self.enabled and not np.isinf(score):  # NaN is the score of an empty mask (no tumour found)
            mask = np.asarray(mask, np.uint8)
            payload = np.float64(score).tobytes() + np.ascontiguousarray(mask).tobytes()
            write_entry(path, payload, dict(self._expect("downstream", key), shape=list(mask.shape)))
        return score, mask

    def _decode_score(self, entry: tuple[dict, bytes], path: Path) -> tuple[float, np.ndarray] | None:
        """(score, mask) of a verified downstream entry; None (entry deleted) when its values make no sense."""
        header, payload = entry
        shape = tuple(header.get("shape") or ())
        if len(payload) != 8 + int(np.prod(shape)):
            discard_entry(path, "holds a wrong number of values", self.root)
            return None
        score = float(np.frombuffer(payload[:8], dtype=np.float64)[0])
        mask = np.frombuffer(payload[8:], dtype=np.uint8).reshape(shape).copy()
        if np.isinf(score) or (np.isnan(score) and mask.any()) or mask.max(initial=0) > 1:
            discard_entry(path, "holds an impossible score or a mask that is not 0/1", self.root)
            return None
        return score, mask
