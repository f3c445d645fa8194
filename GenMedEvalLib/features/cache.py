"""A content-addressed feature cache on disk: features are computed once per distinct input.

An entry's key is the SHA-256 of the network input's bytes (a float32 slice after slicing, or a
whole float32 volume for 3D encoders, with its shape), combined with the encoder's identity and
the output kind. A mask-local perturbation therefore recomputes only the slices it changed, and a
set-level perturbation (copies, subsets) needs no network pass at all.

Entries are single ``.npy`` files (float32) in sharded folders under ``$GENMEDEVAL_CACHE`` or
``~/.cache/genmedeval/features``; each is written to a temporary name and renamed, so parallel
processes never see half-written entries. The counters feed the sweeps' "forward passes vs
naive" figures.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_path


def default_cache_dir() -> Path:
    """``$GENMEDEVAL_CACHE`` or ``~/.cache/genmedeval/features``."""
    env = os.environ.get("GENMEDEVAL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "genmedeval" / "features"


def content_hash(array: np.ndarray) -> str:
    """Hex SHA-256 of a float32 array's shape and bytes (C order)."""
    data = np.ascontiguousarray(array, dtype=np.float32)
    digest = hashlib.sha256(repr(data.shape).encode())
    digest.update(data.tobytes())
    return digest.hexdigest()


@dataclass
class CacheStats:
    """Counters: entries found, entries missing, inputs sent through the network, requests made."""

    hits: int = 0
    misses: int = 0
    forward_passes: int = 0
    requested: int = 0

    def reset(self) -> None:
        """Zero every counter."""
        self.hits = self.misses = self.forward_passes = self.requested = 0

    def summary(self) -> str:
        """One line: requested inputs, hits, misses and network forward passes."""
        return (f"{self.requested} inputs, {self.hits} cache hits, {self.misses} misses, "
                f"{self.forward_passes} network forward passes")


class FeatureCache:
    """Features keyed by (input content, encoder identity, output kind), stored as float32 ``.npy``.

    ``root=None`` uses :func:`default_cache_dir`. ``enabled=False`` stores nothing and finds
    nothing, which still counts forward passes (the naive count).
    """

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.stats = CacheStats()

    @staticmethod
    def _safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text)

    def path(self, digest: str, identity: str, kind: str) -> Path:
        """Where the entry for ``digest`` under this encoder identity and output kind lives."""
        return self.root / self._safe(identity) / self._safe(kind) / digest[:2] / f"{digest}.npy"

    def get(self, digest: str, identity: str, kind: str) -> np.ndarray | None:
        """The stored float32 features, or None when absent (or unreadable: treated as absent)."""
        if not self.enabled:
            return None
        path = self.path(digest, identity, kind)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, digest: str, identity: str, kind: str, features: np.ndarray) -> None:
        """Store features atomically (temporary file, then rename)."""
        if not self.enabled:
            return
        target = self.path(digest, identity, kind)
        with atomic_path(target) as tmp, tmp.open("wb") as handle:
            np.save(handle, np.asarray(features, dtype=np.float32), allow_pickle=False)

    def lookup(self, digests: list[str], identity: str, kinds: tuple[str, ...]) -> tuple[dict[str, list], list[int]]:
        """Stored features per kind (None where missing) and the positions missing any kind; counts hits/misses."""
        found: dict[str, list] = {kind: [None] * len(digests) for kind in kinds}
        missing = []
        for i, digest in enumerate(digests):
            for kind in kinds:
                found[kind][i] = self.get(digest, identity, kind)
            if any(found[kind][i] is None for kind in kinds):
                missing.append(i)
        self.stats.requested += len(digests)
        self.stats.misses += len(missing)
        self.stats.hits += len(digests) - len(missing)
        return found, missing

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, enabled={self.enabled}, {self.stats.summary()})"
