"""Pick a segmenter by path: the shipped model, a GenMedEval checkpoint, TorchScript or a MONAI bundle."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import InputError
from .base import Segmenter

DEFAULT_SEGMENTER = "segmenter.pt"
# The shipped file's digest: a changed or corrupt file is refused (retraining: update it and Resources/Models/README.md).
SEGMENTER_SHA256 = "ad4d2e6aa197c0c47f40d84bce8eb7c8d0108b94a5cf2852a77b2deca89b4c26"


def default_segmenter_path() -> Path:
    """``Resources/Models/segmenter.pt`` (not verified; ``shipped_segmenter`` verifies)."""
    from ..data import models_dir

    return models_dir() / DEFAULT_SEGMENTER


def shipped_segmenter() -> Path:
    """The shipped weights after checking their SHA-256; one-line error when missing or altered."""
    from ..features.weights import WeightsSpec, resolve_weights

    spec = WeightsSpec("shipped segmenter", DEFAULT_SEGMENTER, SEGMENTER_SHA256)
    return resolve_weights(spec, cache=default_segmenter_path().parent, download=False)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives carry a ``code/`` folder; plain ``torch.save`` files do not."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in name for name in zf.namelist())
    except zipfile.BadZipFile:
        return False


def load_segmenter(path: str | Path | None = None, *, device: str | None = None, roi: int = 96) -> Segmenter:
    """The segmenter stored at ``path`` (default: the shipped U-Net); one-line errors for bad paths."""
    import torch

    from .builtin import SliceUNetSegmenter, is_checkpoint
    from .plugins import load_bundle, load_torchscript

    target = Path(path) if path is not None else shipped_segmenter()
    if target.is_dir():
        return load_bundle(target, device=device)
    if not target.is_file():
        raise InputError("segmenter not found", target)
    if _is_torchscript(target):
        return load_torchscript(target, device=device, roi=roi)
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is a bad input file
        raise InputError(f"not a segmenter file: neither TorchScript nor a GenMedEval checkpoint "
                         f"({str(exc).splitlines()[0][:120]})", target) from exc
    if not is_checkpoint(payload):
        raise InputError("not a segmenter file: a torch file without the GenMedEval segmenter format; "
                         "export your model with torch.jit.script/trace or give a MONAI bundle folder", target)
    return SliceUNetSegmenter(payload, source=str(target), device=device)
