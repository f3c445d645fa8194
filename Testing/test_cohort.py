"""The demo cohort: looks like brain MRI with tumours, has the promised classes, groups and splits."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

from GenMedEvalLib.cli import main
from GenMedEvalLib.cohort import make_case, make_cohort
from GenMedEvalLib.cohort.build import _physical
from GenMedEvalLib.io import read_cohort, read_mask, read_volume

SPACING = 3.0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("cohort") / "demo", n=10, seed=0, spacing=SPACING)


def test_layout_and_csv_readable_by_read_cohort(cohort):
    items = read_cohort(cohort / "images")
    assert [i.name for i in items] == [f"case_{i:03d}" for i in range(10)]
    assert all(i.mask is not None and i.label and i.group and i.split for i in items)
    for item in items[:3]:
        image = read_volume(item.image)
        mask = read_mask(item.mask, like=image)  # same geometry or InputError
        assert mask.array.any() == (item.label != "none")


def test_classes_groups_and_splits_are_balanced():
    from GenMedEvalLib.cohort import case_design

    designs = [case_design(i) for i in range(40)]
    labels = Counter(d[0] for d in designs)
    assert labels == {"left": 16, "right": 16, "none": 8}  # 'none' is the rarest class
    assert Counter(d[1] for d in designs) == {"A": 20, "B": 20}
    splits = Counter(d[2] for d in designs)
    assert splits == {"train": 10, "reference": 10, "eval": 10, "test": 10}
    for split in splits:
        members = [d for d in designs if d[2] == split]
        assert {d[1] for d in members} == {"A", "B"} and {d[0] for d in members} == {"none", "left", "right"}


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_tumour_inside_brain_on_the_labelled_side(i):
    image, mask, info, geometry = make_case(i, seed=0, spacing=SPACING)
    assert mask.any()
    centre = np.argwhere(mask).mean(axis=0)
    x_phys = _physical(geometry, centre)[0]  # LPS: +x is the patient's left
    assert (x_phys > 0) == (info.label == "left")
    assert image[mask > 0].min() > 0  # painted inside the brain
    assert 8 <= info.tumour_diameter_mm <= 36


def test_deterministic_and_seed_dependent():
    a = make_case(3, seed=0, spacing=SPACING)[0]
    b = make_case(3, seed=0, spacing=SPACING)[0]
    c = make_case(3, seed=1, spacing=SPACING)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_scanner_groups_differ_measurably():
    """Group B is noisier: the background noise floor (Rician) is higher than group A's."""
    def noise_floor(i):
        image, _, info, _ = make_case(i, seed=0, spacing=SPACING)
        brain = image > 0
        return info.group, float(np.std(image[brain] - np.median(image[brain])))

    groups = dict(noise_floor(i) for i in (0, 5))  # case 0 is group A, case 5 group B
    assert set(groups) == {"A", "B"}
    contrast = {}
    for i in (1, 6):
        image, mask, info, _ = make_case(i, seed=0, spacing=SPACING)
        contrast[info.group] = float(np.percentile(image[image > 0], 50))
    assert contrast["A"] != pytest.approx(contrast["B"], rel=0.02)


def test_renders_like_brain_mri(artifacts_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(9, 6))
    for k, i in enumerate((0, 1, 6)):
        image, mask, info, _ = make_case(i, seed=0, spacing=2.0)
        z = int(np.argmax(mask.sum(axis=(1, 2)))) if mask.any() else image.shape[0] // 2
        y = int(np.argmax(mask.sum(axis=(0, 2)))) if mask.any() else image.shape[1] // 2
        axes[0, k].imshow(image[z], cmap="gray", origin="lower")
        axes[1, k].imshow(image[:, y], cmap="gray", origin="lower")
        axes[0, k].set_title(f"{info.name}: {info.label}, scanner {info.group}")
        # a brain: a compact bright object filling a good part of the slice, dark background
        brain_fraction = float((image[z] > 0.1).mean())
        assert 0.2 < brain_fraction < 0.8
        if mask.any():
            tumour, brain = image[mask > 0], image[(image > 0.1) & (mask == 0)]
            assert abs(np.median(tumour) - np.median(brain)) > 0.05  # visible tumour
    fig.savefig(artifacts_dir / "cohort_cases.png", dpi=70)
    plt.close(fig)
    assert (artifacts_dir / "cohort_cases.png").stat().st_size > 10_000


def test_cli_cohort_and_bad_arguments(tmp_path, capsys):
    assert main(["cohort", str(tmp_path / "c"), "--n", "2", "--spacing", "4"]) == 0
    with (tmp_path / "c" / "cohort.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["case_000", "case_001"]
    capsys.readouterr()
    assert main(["cohort", str(tmp_path / "c"), "--n", "2", "--spacing", "4"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["cohort", str(tmp_path / "d"), "--n", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--n must be at least 1" in err
    assert not (tmp_path / "d").exists()
