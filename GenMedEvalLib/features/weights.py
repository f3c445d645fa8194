"""Network weights: files with a known SHA-256 in a local cache, downloaded only when online.

The cache folder is ``$GENMEDEVAL_WEIGHTS`` or ``~/.cache/genmedeval/weights``. A file is used
only when its SHA-256 matches; a download goes to a temporary name and is renamed after its
hash is checked, so a broken transfer never leaves a file that looks valid.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import GenMedEvalError
from ..io import atomic_path


class WeightsUnavailable(GenMedEvalError):
    """The weights file is absent (or corrupt) and could not be downloaded."""


@dataclass(frozen=True)
class WeightsSpec:
    """A weights file: its name in the cache, its SHA-256, where to download it (optional)."""

    name: str
    filename: str
    sha256: str
    url: str | None = None
    size_mb: float | None = None
    licence: str | None = None


def weights_dir() -> Path:
    """The local weights cache folder (``$GENMEDEVAL_WEIGHTS`` or ``~/.cache/genmedeval/weights``)."""
    env = os.environ.get("GENMEDEVAL_WEIGHTS")
    return Path(env) if env else Path.home() / ".cache" / "genmedeval" / "weights"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _download(spec: WeightsSpec, target: Path, timeout: float) -> None:
    """Download ``spec.url`` to ``target`` atomically, checking the SHA-256 before the rename."""
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(spec.url, timeout=timeout) as response, tmp.open("wb") as out:  # noqa: S310
                while block := response.read(1 << 20):
                    out.write(block)
            got = sha256_file(tmp)
            if got != spec.sha256:
                raise WeightsUnavailable(
                    f"{spec.name}: download from {spec.url} has SHA-256 {got[:12]}..., expected {spec.sha256[:12]}...; "
                    "file discarded")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsUnavailable(
            f"{spec.name}: weights file {spec.filename} is not in {target.parent} and the download from {spec.url} "
            f"failed ({reason}); put the file there (SHA-256 {spec.sha256})") from None


def resolve_weights(spec: WeightsSpec, *, cache: str | Path | None = None, download: bool = True,
                    timeout: float = 30.0) -> Path:
    """Path of a verified weights file: from the cache, else downloaded when a URL is known.

    Raises ``WeightsUnavailable`` saying which file is missing and where to put it.
    """
    folder = Path(cache) if cache is not None else weights_dir()
    target = folder / spec.filename
    if target.exists():
        got = sha256_file(target)
        if got == spec.sha256:
            return target
        if not (download and spec.url):
            raise WeightsUnavailable(
                f"{target}: SHA-256 {got[:12]}... does not match the expected {spec.sha256[:12]}... for {spec.name}; "
                "replace the file")
    if not (download and spec.url):
        raise WeightsUnavailable(
            f"{spec.name}: weights file {spec.filename} not found in {folder}; put it there "
            f"(SHA-256 {spec.sha256}) or set GENMEDEVAL_WEIGHTS to the folder that holds it")
    _download(spec, target, timeout)
    return target
