"""``genmedeval demo --data DIR``: the study on a folder of real case folders, inputs untouched."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from GenMedEvalLib.cli import main
from GenMedEvalLib.experiments.realdemo import real_conditions, real_splits
from GenMedEvalLib.io import Volume, write_volume


def _case(folder: Path, i: int) -> None:
    rng = np.random.default_rng(i)
    z, y, x = np.indices((12, 32, 32))
    cx = 10 if (i // 2) % 2 else 22  # each split holds a tumour in each hemisphere
    mask = ((z - 6) ** 2 + (y - 16) ** 2 + (x - cx) ** 2 < 16).astype(np.float32)
    brain = ((y - 16) ** 2 + (x - 16) ** 2 < 180).astype(np.float32)
    for name, bright in (("flair", 0.5), ("t1c", -0.3)):
        image = (0.4 + rng.uniform(0, 0.1)) * brain + bright * mask + 0.02 * rng.standard_normal(mask.shape)
        write_volume(Volume(image.astype(np.float32), origin=(-16.0, -16.0, 0.0)), folder / f"{name}.nii.gz")
    write_volume(Volume(mask * 2, origin=(-16.0, -16.0, 0.0)), folder / "seg.nii.gz")


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_splits_alternate_and_density_shift_is_left_out():
    assert real_splits(["b", "a", "d", "c"]) == {"a": "eval", "b": "reference", "c": "eval", "d": "reference"}
    names = {c.perturbation for c in real_conditions()}
    assert "mode_collapse" not in {c.perturbation for c in real_conditions(eval_classes=1)}
    assert [c.level for c in real_conditions(eval_classes=2) if c.perturbation == "mode_collapse"] == ["drop-rarest"]
    assert "density_shift" not in names and {"boundary_blur", "external_duplication", "mode_collapse"} <= names


def test_demo_on_real_case_folders_writes_the_study_and_leaves_inputs_alone(tmp_path, capsys):
    data = tmp_path / "cases"
    for i in range(4):
        _case(data / f"p{i}", i)
    before = _digests(data)
    out = tmp_path / "study"
    code = main(["demo", "--data", str(data), "--out", str(out), "--no-downstream", "--bootstrap", "0",
                 "--encoder", "domain"])
    assert code == 0, capsys.readouterr().err
    assert _digests(data) == before  # inputs never modified
    with (out / "cohort" / "cohort.csv").open() as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert {r["split"] for r in rows.values()} == {"eval", "reference"}
    assert {rows["p0"]["label"], rows["p2"]["label"]} == {"left", "right"}  # from each label's centre of mass
    assert rows["p0"]["label"] == rows["p1"]["label"]
    upstream = (out / "upstream.csv").read_text()
    assert "boundary_blur" in upstream and "density_shift" not in upstream
    assert (out / "report.html").is_file()
    assert main(["demo", "--data", str(data), "--out", str(data / "p0")]) == 2  # never into an input
