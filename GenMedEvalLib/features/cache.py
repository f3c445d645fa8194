"""A content-addressed feature cache on disk: features are computed once per distinct input.

An entry's key is the SHA-256 of the network input's bytes (a float32 slice after slicing, or a
whole float32 volume for 3D encoders, with its shape), combined with the encoder's identity and
the output kind. A mask-local perturbation therefore recomputes only the slices it changed, and a
set-level perturbation (copies, subsets) needs no network pass at all.

Entries are single ``.gmf`` files in sharded folders under ``$GENMEDEVAL_CACHE`` or
``~/.cache/genmedeval/features``: a header line (the entry's key, encoder identity, output kind,
the encoder code's digest, dtype, shape and the SHA-256 of the values) and the float32 values.
Each is written to a temporary name and renamed, so parallel processes never see a torn entry.
An entry that is truncated, corrupted, written for another key or by other encoder code, or holds
NaN/Inf values is reported once (a ``GenMedEvalWarning``), deleted and recomputed
(:func:`read_entry`, :func:`write_entry`; the result cache uses the same format). The counters
feed the sweeps' "forward passes vs naive" figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import GenMedEvalWarning
from ..io import atomic_path

ENTRY_MAGIC = b"GenMedEval cache entry 1\n"
_MAX_HEADER = 1 << 16
_warned_roots: set[str] = set()


class CorruptEntry(ValueError):
    """A cache entry that cannot be trusted; the message says why."""


@lru_cache(maxsize=1)
def encoder_code_digest() -> str:
    """Hex SHA-256 of the encoders' source: features cached by other encoder code are not reused."""
    folder = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([folder / "base.py", *(folder / "encoders").glob("*.py")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def encode_entry(payload: bytes, meta: dict) -> bytes:
    """Magic line, JSON header (``meta`` plus the payload's SHA-256 and length), newline, payload."""
    header = dict(meta, sha256=hashlib.sha256(payload).hexdigest(), bytes=len(payload))
    return ENTRY_MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def decode_entry(data: bytes, expect: dict) -> tuple[dict, bytes]:
    """(header, payload) of an entry whose header matches ``expect`` and whose payload matches its checksum."""
    if not data.startswith(ENTRY_MAGIC):
        raise CorruptEntry("not a GenMedEval cache entry")
    end = data.find(b"\n", len(ENTRY_MAGIC), len(ENTRY_MAGIC) + _MAX_HEADER)
    if end < 0:
        raise CorruptEntry("header is truncated")
    try:
        header = json.loads(data[len(ENTRY_MAGIC):end].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptEntry("header is corrupt") from None
    if not isinstance(header, dict):
        raise CorruptEntry("header is corrupt")
    foreign = sorted(k for k, v in expect.items() if header.get(k) != v)
    if foreign:
        raise CorruptEntry(f"written for another {', '.join(foreign)}")
    payload = data[end + 1:]
    if len(payload) != header.get("bytes") or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CorruptEntry("is truncated or corrupt (checksum mismatch)")
    return header, payload


def write_entry(path: Path, payload: bytes, meta: dict) -> None:
    """Write an entry atomically (temporary file, then rename: no reader ever sees it half-written)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_entry(payload, meta))


def read_entry(path: Path, expect: dict, root: Path) -> tuple[dict, bytes] | None:
    """A verified entry, or None when absent or untrustworthy (then deleted, reported once per cache root)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        discard_entry(path, f"unreadable ({exc.strerror})", root)
        return None
    try:
        return decode_entry(data, expect)
    except CorruptEntry as exc:
        discard_entry(path, str(exc), root)
        return None


def discard_entry(path: Path, reason: str, root: Path) -> None:
    """Delete a bad entry; the first per cache root is reported as a warning."""
    key = str(root)
    if key not in _warned_roots:
        _warned_roots.add(key)
        warnings.warn(GenMedEvalWarning(f"cache entry {path}: {reason}; deleted and recomputed "
                                        f"(further bad entries in {root} are replaced without a word)"), stacklevel=3)
    try:
        path.unlink()
    except OSError:
        pass


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
        return self.root / self._safe(identity) / self._safe(kind) / digest[:2] / f"{digest}.gmf"

    @staticmethod
    def _expect(digest: str, identity: str, kind: str) -> dict:
        return {"key": digest, "identity": identity, "kind": kind, "code": encoder_code_digest(), "dtype": "<f4"}

    def get(self, digest: str, identity: str, kind: str) -> np.ndarray | None:
        """The stored float32 features, or None when absent; a bad entry is reported once, deleted, recomputed."""
        if not self.enabled:
            return None
        path = self.path(digest, identity, kind)
        entry = read_entry(path, self._expect(digest, identity, kind), self.root)
        if entry is None:
            return None
        header, payload = entry
        shape = tuple(header.get("shape") or ())
        values = np.frombuffer(payload, dtype="<f4")
        if values.size != int(np.prod(shape)) or not np.all(np.isfinite(values)):
            discard_entry(path, "holds NaN/Inf or a wrong number of values", self.root)
            return None
        return values.reshape(shape).astype(np.float32)

    def put(self, digest: str, identity: str, kind: str, features: np.ndarray) -> None:
        """Store finite features atomically (temporary file, then rename); non-finite ones are not stored."""
        if not self.enabled:
            return
        values = np.ascontiguousarray(features, dtype="<f4")
        if not np.all(np.isfinite(values)):
            return
        meta = dict(self._expect(digest, identity, kind), shape=list(values.shape))
        write_entry(self.path(digest, identity, kind), values.tobytes(), meta)

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
