"""Shared fixtures: the real clinical case (skipped when ../shared is absent) and the MNI template."""

from __future__ import annotations

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # before torch loads in any test: as GenMedEvalLib/__init__.py
os.environ.setdefault("GENMEDEVAL_NO_PROGRESS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for images tests save for a person to look at (ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """``../shared/data/real``; tests using it skip with a clear message when it is absent."""
    from GenMedEvalLib.data import shared_real_dir

    path = shared_real_dir()
    if path is None:
        pytest.skip("real MRI not found: ../shared/data/real/brain1_image.nrrd is absent (a user's clone has no shared/)")
    return path


@pytest.fixture(scope="session")
def real_case(real_dir):
    """(normalised image Volume, mask Volume) of the real clinical brain MRI with its tumour label."""
    from GenMedEvalLib.io import normalize_intensity, read_mask, read_volume

    image = read_volume(real_dir / "brain1_image.nrrd")
    mask = read_mask(real_dir / "brain1_label.nrrd", like=image)
    return image.with_array(normalize_intensity(image.array)), mask


@pytest.fixture(scope="session")
def mni_t1():
    """The normalised MNI152 T1 template as a Volume (197 x 233 x 189, 1 mm)."""
    from GenMedEvalLib.data import mni_template_path
    from GenMedEvalLib.io import normalize_intensity, read_volume

    vol = read_volume(mni_template_path("t1"))
    return vol.with_array(normalize_intensity(vol.array))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def app():
    """The process-wide trame-slicer application: a real MRML scene with Slicer's logics."""
    from GenMedEvalLib import mrml

    return mrml.get_app()


@pytest.fixture
def scene(app):
    """The application's scene, cleared after each test."""
    yield app.scene
    app.scene.Clear(0)
