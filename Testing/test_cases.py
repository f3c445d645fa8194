"""Multi-contrast cases: names, reading, targets, perturbation, and every folder command on case folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from GenMedEvalLib.cases import (
    CaseOptions,
    case_files,
    contrast_of,
    contrast_seeds,
    is_label_name,
    list_cases,
    perturb_case,
    read_case,
    resolve_contrast,
    target_mask,
)
from GenMedEvalLib.cli import main
from GenMedEvalLib.errors import InputError, ParameterError

BRATS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "brats"
SHAPE = (12, 20, 18)  # z, y, x
SPACING = (1.5, 1.0, 2.0)  # x, y, z
DIRECTION = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _write(path: Path, array: np.ndarray, spacing=SPACING, direction=DIRECTION) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin((10.0, -5.0, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _contrasts(seed: int) -> dict[str, np.ndarray]:
    """A FLAIR bright in one block, a T1c bright in another, a label over the FLAIR block (BraTS 2013 values)."""
    rng = np.random.default_rng(seed)
    flair = rng.uniform(0, 0.2, SHAPE).astype(np.float32)
    t1c = rng.uniform(0, 0.2, SHAPE).astype(np.float32)
    flair[3:8, 4:12, 3:10] += 1.0
    t1c[6:11, 12:18, 10:16] += 1.0
    label = np.zeros(SHAPE, np.uint8)
    label[3:8, 4:12, 3:10] = 2
    label[4:7, 6:10, 5:8] = 1
    label[5:6, 7:9, 6:7] = 4
    return {"Flair_subtrMeanDivStd.nii.gz": flair, "T1c_subtrMeanDivStd.nii.gz": t1c, "OTMultiClass.nii.gz": label,
            "brainmask.nii.gz": np.ones(SHAPE, np.uint8)}


def make_cases(root: Path, n: int = 3, seed: int = 0) -> Path:
    """``root/patNNNN/`` case folders in the BraTS example layout."""
    for k in range(n):
        for name, array in _contrasts(seed + k).items():
            _write(root / f"pat{k:04d}" / name, array)
    return root


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.mark.parametrize(("name", "contrast"), [
    ("T1c_subtrMeanDivStd.nii.gz", "t1c"), ("Flair_subtrMeanDivStd.nii.gz", "flair"), ("BraTS2021_00001_t1ce.nii.gz", "t1c"),
    ("BraTS2021_00001_t1.nii.gz", "t1"), ("BraTS2021_00001_t2.nii.gz", "t2"), ("BraTS-GLI-00001-000-t2f.nii.gz", "flair"),
    ("BraTS-GLI-00001-000-t1n.nii.gz", "t1"), ("BraTS-GLI-00001-000-t1c.nii.gz", "t1c"), ("case_T1GD.nrrd", "t1c"),
    ("case_t1_gd.mha", "t1c"), ("T1.nii", "t1"), ("t1c.nii", "t1c"), ("OTMultiClass.nii.gz", None),
    ("BraTS2021_00001_seg.nii.gz", None), ("brainmask.nii.gz", None), ("weightMap0.nii.gz", None),
    ("brain1_image.nrrd", None), ("t1cfoo.nii", None),
])
def test_contrast_names_keep_t1c_and_t1_apart(name, contrast):
    assert contrast_of(name) == contrast


def test_label_names_are_never_contrasts():
    for name in ("seg.nii.gz", "label.nii", "OTMultiClass.nii.gz", "BraTS2021_1_seg.nii.gz", "t1c_seg.nii.gz",
                 "flair_label.nii.gz"):
        assert is_label_name(name) and contrast_of(name) is None, name
    assert not is_label_name("brainmask.nii.gz") and not is_label_name("brain_mask.nii.gz")
    with pytest.raises(InputError, match="several contrasts"):
        contrast_of("t1_t2.nii.gz")


def test_targets_under_each_convention():
    label = np.array([0, 1, 2, 3, 4, 4, 2])
    assert target_mask(label).tolist() == [0, 1, 1, 1, 1, 1, 1]
    assert target_mask(label, "core", "brats2013").tolist() == [0, 1, 0, 1, 1, 1, 0]
    assert target_mask(label, "enhancing", "brats2013").tolist() == [0, 0, 0, 0, 1, 1, 0]
    no3 = np.array([0, 1, 2, 4])
    assert target_mask(no3, "core", "brats2017").tolist() == [0, 1, 0, 1]
    no4 = np.array([0, 1, 2, 3])
    assert target_mask(no4, "core", "brats2023").tolist() == [0, 1, 0, 1]
    assert target_mask(no4, "enhancing", "brats2023").tolist() == [0, 0, 0, 1]
    with pytest.raises(InputError, match=r"label values \[3\] are outside the brats2017"):
        target_mask(label, "whole", "brats2017", source="seg.nii.gz")
    with pytest.raises(InputError, match=r"\[4\] are outside the brats2023"):
        target_mask(label, "core", "brats2023")
    with pytest.raises(ParameterError, match="needs --label-convention"):
        target_mask(label, "core")


def test_case_folder_reads_contrasts_in_canonical_order_on_one_grid(tmp_path):
    folder = make_cases(tmp_path / "cases", n=1) / "pat0000"
    _write(folder / "x_t2.nii.gz", np.full(SHAPE, 0.5, np.float32))
    case = read_case(folder)
    assert list(case.contrasts) == ["flair", "t1c", "t2"]  # canonical order, whatever the file order
    assert case.folder and case.name == "pat0000" and case.mask_name == "pat0000.nii.gz"
    assert case.primary_name() == "flair" and case.primary("t1c").path.name == "T1c_subtrMeanDivStd.nii.gz"
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "T1c_subtrMeanDivStd.nii.gz")))
    np.testing.assert_array_equal(case.primary("t1c").array, raw)
    assert case.grid.spacing == SPACING and case.grid.direction == DIRECTION
    assert case.label.path.name == "OTMultiClass.nii.gz"
    assert int(case.tumour().sum()) == 5 * 8 * 7
    assert int(case.tumour("core", "brats2013").sum()) == 3 * 4 * 3  # labels 1 and 4
    assert int(case.tumour("enhancing", "brats2013").sum()) == 2
    with pytest.raises(InputError, match="pat0000: has no t1 contrast"):
        case.primary("t1")


def test_list_cases_mixes_files_and_case_folders_sorted(tmp_path):
    root = make_cases(tmp_path / "set", n=2)
    _write(root / "a_single.nii.gz", np.ones(SHAPE, np.float32))
    items = list_cases(root)
    assert [i.name for i in items] == ["a_single", "pat0000", "pat0001"]
    assert items[1].mask == root / "pat0000" / "OTMultiClass.nii.gz" and items[0].mask is None
    assert resolve_contrast(items) == "flair" and resolve_contrast(items, "t1c") == "t1c"
    with pytest.raises(InputError, match="pat0000: has no t2 contrast"):
        resolve_contrast(items, "t2")


def test_perturbation_gives_each_contrast_independent_noise_from_one_seed(tmp_path):
    from GenMedEvalLib.perturb import apply_perturbation

    case = read_case(make_cases(tmp_path / "c", n=1) / "pat0000").normalized()
    same = case.with_arrays({"flair": case.contrasts["flair"].array, "t1c": case.contrasts["flair"].array})
    noisy = perturb_case(same, "gaussian_noise", {"sigma": 0.1}, seed=5)
    flair_noise = noisy.contrasts["flair"].array - same.contrasts["flair"].array
    t1c_noise = noisy.contrasts["t1c"].array - same.contrasts["t1c"].array
    assert abs(np.corrcoef(flair_noise.ravel(), t1c_noise.ravel())[0, 1]) < 0.1  # independent draws
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(5).spawn(2)]
    assert contrast_seeds(5, 2) == seeds and contrast_seeds(5, 1) == [5]
    expected = apply_perturbation("gaussian_noise", same.contrasts["t1c"].array, sigma=0.1, seed=seeds[1],
                                  spacing=same.spacing_zyx)
    np.testing.assert_array_equal(noisy.contrasts["t1c"].array, expected)
    mask = case.tumour()
    blurred = perturb_case(case, "boundary_blur", {"sigma": 2.0}, seed=0, mask=mask)
    from scipy.ndimage import binary_dilation

    near = binary_dilation(mask > 0, iterations=3)
    for name in case.contrasts:  # the one tumour mask: only voxels near its boundary change, in every contrast
        changed = blurred.contrasts[name].array != case.contrasts[name].array
        assert changed.any() and not (changed & ~near).any(), name


def test_bad_cases_are_one_line_exit_2_nothing_written(tmp_path, capsys):
    bad = {
        "grid": lambda f: _write(f / "Flair_x.nii.gz", np.ones((12, 20, 17), np.float32)),
        "spacing": lambda f: _write(f / "Flair_x.nii.gz", np.ones(SHAPE, np.float32), spacing=(1.0, 1.0, 2.0)),
        "nocontrast": lambda f: [(f / n).unlink() for n in ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz")],
        "zero": lambda f: _write(f / "T1c_subtrMeanDivStd.nii.gz", np.zeros(SHAPE, np.float32)),
        "fourd": lambda f: sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, *SHAPE), np.float32), isVector=False),
                                           str(f / "T1c_subtrMeanDivStd.nii.gz")),
        "twice": lambda f: _write(f / "other_t1c.nii.gz", np.ones(SHAPE, np.float32)),
    }
    expect = {"grid": "T1c_subtrMeanDivStd.nii.gz: size (18, 20, 12) differs from Flair_x.nii.gz's (17, 20, 12)",
              "spacing": "T1c_subtrMeanDivStd.nii.gz: spacing (1.5, 1.0, 2.0) differs from Flair_x.nii.gz's",
              "nocontrast": "pat0001: no recognisable contrast", "zero": "T1c_subtrMeanDivStd.nii.gz: is all zero",
              "fourd": "T1c_subtrMeanDivStd.nii.gz: is 4D", "twice": "pat0001: two files of contrast t1c"}
    for key, spoil in bad.items():
        root = make_cases(tmp_path / key, n=2)
        if key in ("grid", "spacing"):
            (root / "pat0001" / "Flair_subtrMeanDivStd.nii.gz").unlink()
        spoil(root / "pat0001")
        out = tmp_path / f"{key}_out"
        code, captured = run(["perturb", root, out, "--kind", "gaussian_noise", "--sigma", "0.05"], capsys)
        lines = captured.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err, (key, captured.err)
        assert expect[key] in lines[0], (key, lines[0])
        assert not out.exists(), key
    root = make_cases(tmp_path / "labels", n=2)  # labels 1, 2, 4: BraTS 2013-2021, not 2023
    for convention, code_expected in (("brats2023", 2), ("brats2017", 0)):
        out = tmp_path / f"l_out_{convention}"
        code, captured = run(["perturb", root, out, "--kind", "boundary_blur", "--sigma", "1", "--target", "core",
                              "--label-convention", convention], capsys)
        assert code == code_expected, captured.err
        assert out.exists() == (code == 0)
    lines = run(["perturb", root, tmp_path / "l3", "--kind", "boundary_blur", "--target", "core",
                 "--label-convention", "brats2023"], capsys)[1].err.strip().splitlines()
    assert len(lines) == 1 and "pat0000/OTMultiClass.nii.gz: label values [4] are outside the brats2023" in lines[0]


def test_perturb_writes_case_folders_as_case_folders(tmp_path, capsys):
    root = make_cases(tmp_path / "cases", n=2)
    out = tmp_path / "blurred"
    code, captured = run(["perturb", root, out, "--kind", "boundary_blur", "--sigma", "2", "--seed", "1"], capsys)
    assert code == 0, captured.err
    assert sorted(p.name for p in (out / "pat0000").iterdir()) == [
        "Flair_subtrMeanDivStd.nii.gz", "OTMultiClass.nii.gz", "T1c_subtrMeanDivStd.nii.gz"]
    before, after = read_case(root / "pat0000").normalized(), read_case(out / "pat0000")
    assert after.grid.direction == DIRECTION and after.grid.spacing == SPACING and after.grid.origin == (10.0, -5.0, 3.0)
    np.testing.assert_array_equal(after.label.array, before.label.array)
    for name in ("flair", "t1c"):
        diff = np.abs(after.contrasts[name].array - before.contrasts[name].array)
        assert diff.max() > 1e-3 and diff[before.tumour() == 0].size  # both contrasts changed


def _threshold_model(path: Path) -> Path:
    """A TorchScript 'segmenter' whose logits are the normalised intensity minus 0.5 (mask = bright voxels)."""
    import torch

    class Threshold(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - 0.5

    torch.jit.script(Threshold()).save(str(path))
    return path


def test_segment_and_quality_take_case_folders(tmp_path, capsys):
    from GenMedEvalLib.io import normalize_intensity, read_mask

    root = make_cases(tmp_path / "cases", n=2)
    model = _threshold_model(tmp_path / "threshold.ts")
    code, captured = run(["segment", root, tmp_path / "masks", "--model", model], capsys)
    assert code == 0, captured.err
    assert sorted(p.name for p in (tmp_path / "masks").iterdir() if not p.name.startswith(".")) == ["pat0000.nii.gz", "pat0001.nii.gz"]
    case = read_case(root / "pat0000")
    mask = read_mask(tmp_path / "masks" / "pat0000.nii.gz", like=case.grid).array  # on the case's grid
    bright_flair = normalize_intensity(case.contrasts["flair"].array) > 0.5
    bright_t1c = normalize_intensity(case.contrasts["t1c"].array) > 0.5
    assert (mask == bright_flair).mean() > 0.99 and (mask == bright_t1c).mean() < 0.9  # the default reads FLAIR
    quality_model = _tiny_quality_model(tmp_path / "q.pt")
    code, captured = run(["quality", "--images", root, "--predictions", tmp_path / "masks", "--model", quality_model,
                          "--out", tmp_path / "q.csv", "--contrast", "t1c"], capsys)
    assert code == 0, captured.err
    import csv

    rows = list(csv.DictReader((tmp_path / "q.csv").open()))
    from GenMedEvalLib.quality import dice_score

    expected = dice_score(mask, case.tumour())
    assert [r["volume"] for r in rows] == ["pat0000", "pat0001"]
    assert float(rows[0]["true_dice"]) == pytest.approx(expected, abs=1e-4)  # the folder's own label


def _tiny_quality_model(path: Path) -> Path:
    import torch

    from GenMedEvalLib.quality.model import build_regressor, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(build_regressor(), path, size=64, margin=0.5, min_mm=16.0, meta={})


def test_features_sweep_and_compare_on_case_folders(tmp_path, monkeypatch, capsys):
    from GenMedEvalLib.experiments.compare import run_compare
    from GenMedEvalLib.experiments.config import DataSet, parse_config
    from GenMedEvalLib.experiments.sweep import run_sweep

    monkeypatch.setenv("GENMEDEVAL_CACHE", str(tmp_path / "cache"))
    ref, base, other = (make_cases(tmp_path / n, n=2, seed=s) for n, s in (("ref", 0), ("base", 10), ("other", 20)))
    code, captured = run(["features", ref, "--encoder", "domain", "--contrast", "t1c"], capsys)
    assert code == 0, captured.err
    assert "2 volumes, 16 slices" in captured.out  # 6 evenly spaced + 2 through the tumour, per case
    code, captured = run(["metrics", "--reference", ref, "--generated", base, "--encoder", "domain", "--metrics", "fd",
                          "--out", tmp_path / "m.csv", "--contrast", "t1c"], capsys)
    assert code == 0 and "fd" in (tmp_path / "m.csv").read_text(), captured.err
    model = _threshold_model(tmp_path / "threshold.ts")
    config = parse_config({"data": {"base": str(base), "reference": str(ref)}, "metrics": ["fd"], "bootstrap": 0,
                           "downstream": {"enabled": True, "segmenter": str(model)},
                           "perturbations": {"gaussian_noise": ["0.05"]}, "cases": {"contrast": "t1c"}},
                          base_dir=tmp_path)
    out = run_sweep(config, tmp_path / "run", report=False)
    views = json.loads((out / "views.json").read_text())
    assert views["contrast"] == "t1c" and views["perturbed_name"].endswith("/T1c_subtrMeanDivStd.nii.gz")
    seg = out / views["segmentations"]["baseline"]
    assert seg.name == f"{views['case']}.nii.gz"
    from GenMedEvalLib.io import normalize_intensity, read_mask

    case = read_case(base / views["case"])
    flair_bright = normalize_intensity(case.contrasts["flair"].array) > 0.5  # the segmenter saw every contrast: FLAIR
    assert (read_mask(seg, like=case.grid).array == flair_bright).mean() > 0.99
    written = out / "perturbed" / "gaussian_noise" / "0.05" / "pat0001"
    assert sorted(p.name for p in written.iterdir()) == [
        "Flair_subtrMeanDivStd.nii.gz", "OTMultiClass.nii.gz", "T1c_subtrMeanDivStd.nii.gz"]
    assert read_case(written).grid.direction == DIRECTION
    cmp = run_compare(DataSet(ref), {"base": DataSet(base), "other": DataSet(other)}, tmp_path / "cmp",
                      metrics=["fd"], downstream=False, report=False, cases=CaseOptions(contrast="flair"))
    summary = json.loads((cmp / "compare.json").read_text())
    assert summary["contrast"] == "flair" and summary["max_slices"] == 6 and summary["tumour_slices"] == 2


def test_case_files_of_the_real_brats_cases():
    if not BRATS.is_dir():
        pytest.skip(f"BraTS example cases not found at {BRATS} (a user's clone has no shared/)")
    items = list_cases(BRATS)
    assert [i.name for i in items] == ["pat0003", "pat0004", "pat0005", "pat0006"]
    files = case_files(BRATS / "pat0003")
    assert {k: v.name for k, v in files.contrasts.items()} == {"flair": "Flair_subtrMeanDivStd.nii.gz",
                                                               "t1c": "T1c_subtrMeanDivStd.nii.gz"}
    assert files.label.name == "OTMultiClass.nii.gz"
    case = read_case(BRATS / "pat0003")
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(BRATS / "pat0003" / "OTMultiClass.nii.gz")))
    assert int(case.tumour().sum()) == 173928 == int((label > 0).sum())  # the README's whole-tumour count
    assert int(case.tumour("core", "brats2013").sum()) == int(np.isin(label, (1, 3, 4)).sum())
    assert case.grid.array.shape == (155, 240, 240)
