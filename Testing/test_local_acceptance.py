"""Issue #16's acceptance, measured by real sweeps on fixed seeds: the local metrics see the tumour, FD does not.

On the built-in cohort (the demo's: 40 cases at 2 mm, eval against reference): a local metric reaches
|z| >= 3 at the mildest boundary blur (sigma 1 mm) and the mildest radial gradient (10 %) while FD
stays below |z| 2, and stays quiet (|z| < 2) under every level of external duplication and density
shift. On the four real BraTS cases (two evaluated against two reference; density shift needs
scanner groups they do not have): the boundary sharpness sees sigma 1 mm and the interior profile
the 10 % radial gradient, FD sees neither, and the boundary sharpness stays quiet under duplication.
With four cases the reference doubles as the training set, so there "duplication" copies the
reference's own tumours into the evaluated set: a real change of its tumours, which the interior
profile reports (the README's table says so); it is quiet under duplication on the cohort, whose
training set is separate.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from GenMedEvalLib.experiments.config import Condition, DataSet, SweepConfig
from GenMedEvalLib.experiments.sweep import run_sweep
from GenMedEvalLib.perturb import PERTURBATIONS

METRICS = ["fd", "boundary", "edge_width", "interior", "frd", "frd_roi"]
BRATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "brats"


def conditions(levels: dict[str, list[str]]) -> list[Condition]:
    return [Condition(kind, level, PERTURBATIONS[kind].validate(PERTURBATIONS[kind].presets[level]), 0)
            for kind, names in levels.items() for level in names]


def z_table(out: Path) -> dict[tuple[str, str], float]:
    with (out / "upstream.csv").open() as handle:
        return {(r["condition"], r["metric"]): float(r["z"]) for r in csv.DictReader(handle) if r["z"]}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    os.environ["GENMEDEVAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def cohort_z(tmp_path_factory, cache):
    from GenMedEvalLib.cohort import make_cohort

    root = tmp_path_factory.mktemp("cohort")
    make_cohort(root / "cohort", n=40, seed=0, spacing=2.0)  # the demo's cohort
    images = root / "cohort" / "images"
    config = SweepConfig(
        name="local acceptance", data={"base": DataSet(images, "eval"), "reference": DataSet(images, "reference"),
                                       "train": DataSet(images, "train")},
        conditions=conditions({"boundary_blur": ["1"], "radial_gradient": ["1"],
                               "external_duplication": ["5%", "15%", "30%", "45%"],
                               "density_shift": ["10:90", "25:75", "75:25", "90:10"]}),
        encoder="domain", metrics=METRICS, bootstrap=20, seed=0, downstream=False)
    out = run_sweep(config, root / "out", report=False)
    scores = list(csv.DictReader((out / "region_scores.csv").open()))
    return {**z_table(out), "scores": scores}


def test_the_per_image_scores_are_written_per_volume_and_condition(cohort_z):
    scores = cohort_z["scores"]
    by = {(r["condition"], r["volume"]): r for r in scores}
    volumes = {r["volume"] for r in scores if r["condition"] == "baseline"}
    assert len(volumes) == 10 and {r["condition"] for r in scores} == {"baseline", "boundary_blur@1",
                                                                        "radial_gradient@1"}
    blurred = [float(by[("boundary_blur@1", v)]["boundary_sharpness"]) < float(by[("baseline", v)]["boundary_sharpness"])
               for v in volumes if by[("baseline", v)]["boundary_sharpness"]]
    assert sum(blurred) >= 0.8 * len(blurred)  # a blur lowers the boundary's detail, volume by volume


def test_a_local_metric_sees_the_mildest_tumour_changes_on_the_cohort_while_fd_does_not(cohort_z):
    z = cohort_z
    for mild in ("boundary_blur@1", "radial_gradient@1"):
        assert abs(z[(mild, "fd")]) < 2, mild
        assert abs(z[(mild, "edge_width")]) >= 3, (mild, z[(mild, "edge_width")])
    assert abs(z[("boundary_blur@1", "boundary")]) >= 3
    assert abs(z[("radial_gradient@1", "interior")]) >= 3


def test_frd_and_frd_roi_respond_beside_fd_to_every_condition(cohort_z):
    pytest.importorskip("frd_score", reason="FRD needs frd-score and pyradiomics-bhklab (make install)")
    conditions = {k[0] for k in cohort_z if k != "scores"}
    assert len(conditions) == 10
    assert all((c, m) in cohort_z for c in conditions for m in ("fd", "frd", "frd_roi"))
    assert abs(cohort_z[("radial_gradient@1", "frd_roi")]) > abs(cohort_z[("radial_gradient@1", "frd")])


@pytest.mark.parametrize("metric", ["edge_width", "interior"])
def test_the_local_metrics_stay_quiet_under_duplication_and_density_shift_on_the_cohort(cohort_z, metric):
    quiet = {k[0]: z for k, z in cohort_z.items() if k != "scores" and k[1] == metric and
             k[0].split("@")[0] in ("external_duplication", "density_shift")}
    assert len(quiet) == 8 and all(abs(z) < 2 for z in quiet.values()), quiet


@pytest.fixture(scope="module")
def brats_z(tmp_path_factory, cache):
    if not BRATS.is_dir():
        pytest.skip(f"the real BraTS cases are not at {BRATS}")
    root = tmp_path_factory.mktemp("brats")
    for name, cases in (("eval", ("pat0003", "pat0005")), ("reference", ("pat0004", "pat0006"))):
        (root / name).mkdir()
        for case in cases:
            (root / name / case).symlink_to(BRATS / case, target_is_directory=True)
    config = SweepConfig(
        name="local acceptance, BraTS", data={"base": DataSet(root / "eval"), "reference": DataSet(root / "reference"),
                                              "train": DataSet(root / "reference")},
        conditions=conditions({"boundary_blur": ["1"], "radial_gradient": ["1", "2"],
                               "external_duplication": ["30%", "45%"]}),
        encoder="domain", metrics=METRICS, bootstrap=20, seed=0, downstream=False)
    return z_table(run_sweep(config, root / "out", report=False))


def test_on_real_brats_the_boundary_sharpness_sees_sigma_1_and_fd_does_not(brats_z):
    z = brats_z
    assert abs(z[("boundary_blur@1", "fd")]) < 2
    assert abs(z[("boundary_blur@1", "boundary")]) >= 3
    assert all(abs(z[(c, "boundary")]) < 2 for c in ("external_duplication@30%", "external_duplication@45%"))


def test_on_real_brats_the_interior_profile_sees_the_mildest_radial_gradient_and_fd_does_not(brats_z):
    z = brats_z
    for level in ("radial_gradient@1", "radial_gradient@2"):
        assert abs(z[(level, "fd")]) < 2, level
        assert abs(z[(level, "interior")]) >= 3, (level, z[(level, "interior")])
    assert abs(z[("radial_gradient@2", "interior")]) > abs(z[("radial_gradient@1", "interior")])
