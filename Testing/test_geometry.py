"""One geometry through the pipeline: an oblique, anisotropic, sagittally stored file gives byte-identical slices
and features through ``metrics``, ``sweep``, ``compare`` and the Slicer logic's library path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from GenMedEvalLib.features import extract as extract_module
from GenMedEvalLib.features.slicing import DEFAULT_SLICES, plane_axes

SHAPE = (14, 22, 26)  # array (z, y, x) = index (k, j, i)
SPACING = (1.0, 3.0, 1.0)  # index (i, j, k) in mm: 3 mm across the axial axis


def _direction() -> tuple[float, ...]:
    """Index i -> anterior (y), j -> superior (z), k -> left-right (x): stored sagittally, then turned 20 degrees."""
    stored = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    a = math.radians(20)
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
    return tuple((tilt @ stored).ravel())


def _write_set(folder: Path, seed: int, n: int = 2) -> Path:
    """Volumes (a bright lobulated blob on a textured head) with their tumour masks, written by SimpleITK."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    z, y, x = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    for k in range(n):
        head = ((z - 7) / 6.0) ** 2 + ((y - 11) / 9.0) ** 2 + ((x - 13) / 11.0) ** 2 < 1
        image = (head * (80 + 20 * np.sin(x / 3.0 + k) + rng.normal(0, 5, SHAPE))).astype(np.float32)
        tumour = ((z - 6) / 3.0) ** 2 + ((y - 12 + k) / 4.0) ** 2 + ((x - 12) / 4.0) ** 2 < 1
        image[tumour] += 60
        for name, array in ((f"case{k}.nii.gz", image), (f"case{k}_mask.nii.gz", tumour.astype(np.uint8))):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(SPACING)
            itk.SetDirection(_direction())
            itk.SetOrigin((-30.0, 12.5, 4.0))
            sitk.WriteImage(itk, str(folder / name))
    return folder


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Every ``extract_features`` call's network inputs and pooled features, from whichever entry point."""
    calls: list[tuple[list[np.ndarray], np.ndarray]] = []
    original = extract_module.extract_features

    def recording(volumes, encoder, **kwargs):
        kwargs["keep_slices"] = True
        fs = original(volumes, encoder, **kwargs)
        calls.append((list(fs.slices), np.array(fs.pool, copy=True)))
        return fs

    import GenMedEvalLib.features as features_package
    import GenMedEvalLib.features.evaluate as evaluate_module

    for module in (extract_module, features_package, evaluate_module):
        monkeypatch.setattr(module, "extract_features", recording)
    monkeypatch.setenv("GENMEDEVAL_CACHE", str(tmp_path / "cache"))
    return calls


def _same(a: tuple[list[np.ndarray], np.ndarray], b: tuple[list[np.ndarray], np.ndarray]) -> bool:
    """Byte-identical slices (dtype, shape, bytes) and features."""
    return (len(a[0]) == len(b[0]) and all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                                           for x, y in zip(a[0], b[0], strict=True))
            and a[1].dtype == b[1].dtype and a[1].tobytes() == b[1].tobytes())


def test_one_file_gives_the_same_slices_and_features_through_every_entry_point(tmp_path, recorded, scene):
    from GenMedEvalLib.cli import main
    from GenMedEvalLib.experiments.compare import run_compare
    from GenMedEvalLib.experiments.config import DataSet, parse_config
    from GenMedEvalLib.experiments.sweep import run_sweep
    from GenMedEvalLib.io import normalize_intensity, read_volume
    from GenMedEvalLib.scene_logic import SceneLogic

    ref, gen, gen2 = (_write_set(tmp_path / name, seed) for name, seed in (("ref", 1), ("gen", 2), ("gen2", 3)))
    assert main(["metrics", "--reference", str(ref), "--generated", str(gen), "--encoder", "domain", "--metrics", "fd",
                 "--out", str(tmp_path / "m.csv")]) == 0
    metrics_ref = recorded[0]
    recorded.clear()
    config = parse_config({"data": {"base": str(gen), "reference": str(ref)}, "metrics": ["fd"], "bootstrap": 0,
                           "downstream": False, "perturbations": {"internal_duplication": [{"rate": 0.5}]}},
                          base_dir=tmp_path)  # a set-level condition: re-indexed features, no new slices
    run_sweep(config, tmp_path / "sweep", report=False)
    sweep_ref = recorded[1]  # sets in config order: base, reference
    recorded.clear()
    run_compare(DataSet(ref), {"a": DataSet(gen), "b": DataSet(gen2)}, tmp_path / "cmp", metrics=["fd"],
                downstream=False, report=False)
    compare_ref = recorded[0]
    recorded.clear()
    SceneLogic(scene).evaluate_folders(ref, gen, encoder="domain", metrics="fd")
    scene_ref = recorded[0]
    assert _same(metrics_ref, sweep_ref) and _same(metrics_ref, compare_ref) and _same(metrics_ref, scene_ref)

    # The slices follow the file's geometry: axial = the index axis nearest physical z (array axis 1, 3 mm);
    # its in-plane pixels are 1 x 1 mm, so each slice is the plane itself, zero-padded to a square.
    volume = read_volume(ref / "case0.nii.gz")
    assert plane_axes(volume.direction)["axial"] == 1
    slices = metrics_ref[0]
    per_volume = DEFAULT_SLICES.max_slices + DEFAULT_SLICES.tumour_slices
    assert len(slices) == 2 * per_volume
    assert all(s.shape == (max(SHAPE[0], SHAPE[2]),) * 2 for s in slices)
    normalised = normalize_intensity(volume.array)  # normalised once: a second pass would change the bytes
    planes = [np.take(normalised, j, axis=1) for j in range(SHAPE[1])]
    top = (SHAPE[2] - SHAPE[0]) // 2
    found = [j for j, plane in enumerate(planes) if plane.tobytes() == slices[0][top:top + SHAPE[0]].tobytes()]
    assert found and not slices[0][:top].any()
    assert normalize_intensity(normalised).tobytes() != normalised.tobytes()
