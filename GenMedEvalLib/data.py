"""Real data that ships offline: the MNI ICBM152 2009a template and its tissue maps (``nilearn``),
and the optional shared clinical case used by tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

_MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def mni_template_path(kind: str = "t1") -> Path:
    """Path of the MNI152 2009a template (``t1``) or its grey/white-matter map (``gm``/``wm``)."""
    import nilearn

    path = Path(nilearn.__file__).parent / "datasets" / "data" / _MNI_FILES[kind]
    if not path.exists():
        from .errors import InputError

        raise InputError("MNI template missing from the nilearn wheel; reinstall nilearn", path)
    return path


def shared_real_dir() -> Path | None:
    """``shared/data/real`` beside the checkout (or ``GENMEDEVAL_REAL_DATA``), when present."""
    env = os.environ.get("GENMEDEVAL_REAL_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "shared" / "data" / "real", here / "shared" / "data" / "real"]
    for candidate in candidates:
        if (candidate / "brain1_image.nrrd").exists():
            return candidate
    return None


def resources_dir() -> Path:
    """The extension's ``Resources/`` folder (shipped weights, UI, icons).

    ``$GENMEDEVAL_RESOURCES`` when set (containers, installed copies), else the folder beside
    the library in a checkout or an installed Slicer extension.
    """
    env = os.environ.get("GENMEDEVAL_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "Resources"


def models_dir() -> Path:
    """``Resources/Models``: the small trained weights GenMedEval ships."""
    return resources_dir() / "Models"
