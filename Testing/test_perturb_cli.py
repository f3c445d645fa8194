"""The perturb commands end to end, and every kind of bad input: one line, exit 2, no output file."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from GenMedEvalLib.cli import main
from GenMedEvalLib.io import Volume, read_mask, read_volume, write_volume


@pytest.fixture
def case(tmp_path):
    """A small anisotropic volume with a tumour mask, written as NIfTI."""
    rng = np.random.default_rng(0)
    array = rng.random((12, 40, 48)).astype(np.float32) * 100
    mask = np.zeros(array.shape, np.uint8)
    mask[4:8, 15:25, 20:30] = 1
    vol = Volume(array, spacing=(0.8, 0.9, 3.0), origin=(1.0, -2.0, 5.0),
                 direction=(1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    image_path = write_volume(vol, tmp_path / "in" / "case.nii.gz")  # outputs go beside the input folder, never in it
    mask_path = write_volume(vol, tmp_path / "in" / "case_mask.nii.gz", mask)
    return image_path, mask_path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_perturb_file_keeps_geometry_and_is_seeded(case, tmp_path, capsys):
    image, mask = case
    before = image.read_bytes()
    out1, out2 = tmp_path / "o1.nii.gz", tmp_path / "o2.nii.gz"
    for out in (out1, out2):
        code, _ = run(["perturb", image, out, "--kind", "boundary_blur", "--mask", mask, "--level", "2"], capsys)
        assert code == 0
    a, b, src = read_volume(out1), read_volume(out2), read_volume(image)
    for got, want in ((a.spacing, src.spacing), (a.origin, src.origin), (a.direction, src.direction)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.array_equal(a.array, b.array)
    assert image.read_bytes() == before  # input untouched


def test_perturb_folder_with_params_and_progress(case, tmp_path, capsys):
    image, _ = case
    out_dir = tmp_path / "noisy"
    code, captured = run(["perturb", image.parent, out_dir, "--kind", "gaussian_noise", "--sigma", "0.1", "--seed", "3"], capsys)
    assert code == 0, captured.err
    written = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith("."))  # not the output marker
    assert written == ["case.nii.gz"]
    residual = read_volume(out_dir / "case.nii.gz").array
    assert 0.05 < np.std(residual - np.clip(residual, 0, 1)) + np.std(residual) < 1.0


def test_perturb_list_shows_levels(capsys):
    code, captured = run(["perturb", "--list"], capsys)
    assert code == 0
    assert "boundary_blur" in captured.out and "levels: 1, 2, 3" in captured.out and "mm" in captured.out


def _bad(argv, capsys, tmp_path, expect):
    out = tmp_path / "out.nii.gz"
    code, captured = run([*argv[:1], *argv[1:]], capsys)
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert expect in lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".out.nii.gz*"))  # no temporary left behind


def test_bad_inputs_one_line_exit_2_no_output(case, tmp_path, capsys):
    image, mask = case
    out = tmp_path / "out.nii.gz"
    # missing file
    _bad(["perturb", tmp_path / "nope.nii.gz", out, "--kind", "gaussian_noise"], capsys, tmp_path, "nope.nii.gz: file not found")
    # unreadable file
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image")
    _bad(["perturb", junk, out, "--kind", "gaussian_noise"], capsys, tmp_path, "junk.nii.gz: cannot read")
    # 2D image
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 10), np.float32)), str(flat))
    _bad(["perturb", flat, out, "--kind", "gaussian_noise"], capsys, tmp_path, "is 2D")
    # 4D image
    four = tmp_path / "four.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False), str(four))
    _bad(["perturb", four, out, "--kind", "gaussian_noise"], capsys, tmp_path, "4D")
    # NaN voxels
    nan = tmp_path / "nan.mha"
    arr = np.ones((4, 5, 6), np.float32)
    arr[1, 2, 3] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(nan))
    _bad(["perturb", nan, out, "--kind", "gaussian_noise"], capsys, tmp_path, "nan.mha: contains 1 NaN")
    # mask geometry differs
    other = tmp_path / "other_mask.nii.gz"
    write_volume(Volume(np.ones((12, 40, 48), np.float32), spacing=(1.0, 1.0, 1.0)), other, np.ones((12, 40, 48), np.uint8))
    _bad(["perturb", image, out, "--kind", "boundary_blur", "--mask", other], capsys, tmp_path, "spacing")
    # empty mask
    empty = tmp_path / "empty_mask.nii.gz"
    write_volume(read_mask(mask), empty, np.zeros((12, 40, 48), np.uint8))
    _bad(["perturb", image, out, "--kind", "radial_gradient", "--mask", empty], capsys, tmp_path, "empty")
    # missing mask
    _bad(["perturb", image, out, "--kind", "radial_gradient"], capsys, tmp_path, "needs a tumour mask")
    # unknown perturbation, unknown parameter, value out of range, bad level
    _bad(["perturb", image, out, "--kind", "salt"], capsys, tmp_path, "unknown perturbation 'salt'")
    _bad(["perturb", image, out, "--kind", "gaussian_noise", "--sigmaa", "1"], capsys, tmp_path, "no parameter sigmaa")
    _bad(["perturb", image, out, "--kind", "gaussian_noise", "--sigma", "5"], capsys, tmp_path, "outside [0.0, 1.0]")
    _bad(["perturb", image, out, "--kind", "gaussian_noise", "--level", "9"], capsys, tmp_path, "no level '9'")


def _cohort(tmp_path, n=20):
    folder = tmp_path / "set"
    folder.mkdir()
    rows = []
    for i in range(n):
        vol = Volume(np.full((4, 5, 6), float(i), np.float32))
        write_volume(vol, folder / f"c{i:02d}.nii.gz")
        rows.append({"name": f"c{i:02d}", "label": ["none", "left", "right", "left", "right"][i % 5],
                     "group": "A" if i < n // 2 else "B"})
    with (folder / "cohort.csv").open("w", newline="") as h:
        w = csv.DictWriter(h, fieldnames=["name", "label", "group"])
        w.writeheader()
        w.writerows(rows)
    return folder


def test_perturb_set_external_duplication_and_density_shift(tmp_path, capsys):
    folder = _cohort(tmp_path)
    train = tmp_path / "train"
    train.mkdir()
    for i in range(5):
        write_volume(Volume(np.full((4, 5, 6), 100.0 + i, np.float32)), train / f"t{i}.nii.gz")
    out = tmp_path / "dup"
    code, captured = run(["perturb-set", folder, out, "--kind", "external_duplication", "--rate", "0.3", "--train", train], capsys)
    assert code == 0, captured.err
    with (out / "provenance.csv").open() as h:
        prov = list(csv.DictReader(h))
    assert sum(r["source_set"] == "train" for r in prov) == 6
    copied = [read_volume(p).array.mean() for p in sorted(out.glob("*.nii.gz"))]
    assert sum(v >= 100 for v in copied) == 6
    out2 = tmp_path / "shift"
    code, _ = run(["perturb-set", folder, out2, "--kind", "density_shift", "--level", "10:90"], capsys)
    assert code == 0
    with (out2 / "cohort.csv").open() as h:
        groups = [r["group"] for r in csv.DictReader(h)]
    assert groups.count("A") == 2 and groups.count("B") == 18
    code, captured = run(["perturb-set", folder, tmp_path / "x", "--kind", "external_duplication", "--rate", "0.3"], capsys)
    assert code == 2 and "--train" in captured.err
