"""Pick a segmenter by path: the shipped model, a GenMedEval checkpoint, TorchScript or a MONAI bundle."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import InputError, first_line
from .base import Segmenter

DEFAULT_SEGMENTER = "segmenter.pt"  # one contrast of the demo cohort's kind (T1, T2 or an unnamed volume)
MULTI_SEGMENTER = "segmenter_flair_t1c.pt"  # FLAIR + T1c cases
T1C_SEGMENTER = "segmenter_t1c.pt"  # T1c without FLAIR
FLAIR_SEGMENTER = "segmenter_flair.pt"  # FLAIR without T1c
# The shipped files' digests: a changed or corrupt file is refused (retraining: update them and Resources/Models/README.md).
SEGMENTER_SHA256 = "ad4d2e6aa197c0c47f40d84bce8eb7c8d0108b94a5cf2852a77b2deca89b4c26"
MULTI_SEGMENTER_SHA256 = "decd4211c13efd8fee1b1bbb845a15ac75b43a70a1ac4300e2134c48c43c62ba"
T1C_SEGMENTER_SHA256 = "31058577d4d0b858cee15333f49078cf6fcb1b14e5af2c14292120efc70ce4b7"
FLAIR_SEGMENTER_SHA256 = "035ab16b38e38a2b63a11329d53b02f7de9a82f5f8938034ae2f1ae3ff0e37fc"
#: the shipped files by kind: (file name, SHA-256); ``t1c`` and ``flair`` are the real-scan one-contrast models
SHIPPED = {"single": (DEFAULT_SEGMENTER, SEGMENTER_SHA256), "multi": (MULTI_SEGMENTER, MULTI_SEGMENTER_SHA256),
           "t1c": (T1C_SEGMENTER, T1C_SEGMENTER_SHA256), "flair": (FLAIR_SEGMENTER, FLAIR_SEGMENTER_SHA256)}


def default_segmenter_path() -> Path:
    """``Resources/Models/segmenter.pt`` (not verified; ``shipped_segmenter`` verifies)."""
    from ..data import models_dir

    return models_dir() / DEFAULT_SEGMENTER


def shipped_segmenter(kind: str = "single") -> Path:
    """The shipped weights (``single``, ``multi``, ``t1c`` or ``flair``) after checking their SHA-256; one line when
    missing or altered."""
    from ..features.weights import WeightsSpec, resolve_weights

    name, digest = SHIPPED[kind]
    spec = WeightsSpec(f"shipped segmenter ({kind})", name, digest)
    return resolve_weights(spec, cache=default_segmenter_path().parent, download=False)


def shipped_segmenter_files() -> list[Path]:
    """Every shipped file (single, multi, t1c, flair), verified: what a result made with the default segmenter
    depends on."""
    return [shipped_segmenter(kind) for kind in SHIPPED]


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives carry a ``code/`` folder; plain ``torch.save`` files do not."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in name for name in zf.namelist())
    except zipfile.BadZipFile:
        return False


def load_segmenter(path: str | Path | None = None, *, device: str | None = None, roi: int = 96,
                   trust_bundle: bool | None = None) -> Segmenter:
    """The segmenter stored at ``path`` (default: the shipped U-Net); one-line errors for bad paths.

    A MONAI bundle folder runs its config's code, so it loads only with ``trust_bundle=True``
    (``None``: the process default, ``plugins.trust_bundles``); checkpoints load with
    ``weights_only=True`` and TorchScript through ``torch.jit.load``, which run no Python.
    """
    import torch

    from .builtin import SliceUNetSegmenter, is_checkpoint
    from .plugins import load_bundle, load_torchscript

    if path is None:
        return _shipped_router(device)
    target = Path(path)
    if target.is_dir():
        return load_bundle(target, device=device, trust=trust_bundle)
    if not target.is_file():
        raise InputError("segmenter not found", target)
    if _is_torchscript(target):
        return load_torchscript(target, device=device, roi=roi)
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is a bad input file
        raise InputError(f"not a segmenter file: neither TorchScript nor a GenMedEval checkpoint "
                         f"({first_line(exc, 120)})", target) from exc
    if not is_checkpoint(payload):
        raise InputError("not a segmenter file: a torch file without the GenMedEval segmenter format; "
                         "export your model with torch.jit.script/trace or give a MONAI bundle folder", target)
    return SliceUNetSegmenter(payload, source=str(target), device=device)


def _shipped_router(device: str | None) -> Segmenter:
    """The default: the FLAIR + T1c model for cases that have both, a real-scan one-contrast model for cases with
    T1c or FLAIR alone, the demo cohort's model otherwise."""
    from .builtin import ContrastRouter

    single, multi, t1c, flair = (load_segmenter(p, device=device) for p in shipped_segmenter_files())
    return ContrastRouter(multi, single, {"t1c": t1c, "flair": flair})  # type: ignore[arg-type, dict-item]
