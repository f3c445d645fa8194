"""The demo job end to end on a tiny cohort: every condition, every metric, the study's trends."""

from __future__ import annotations

import csv
import json

import pytest

from GenMedEvalLib.experiments.demo import paper_conditions, run_demo


def test_paper_conditions_are_exactly_the_studys():
    names = [c.name for c in paper_conditions()]
    assert len(names) == len(set(names)) == 32
    for kind in ("gaussian_noise", "rician_noise", "poisson_noise"):
        assert [n for n in names if n.startswith(kind)] == [f"{kind}@{lvl}" for lvl in ("0.01", "0.05", "0.1")]
    assert [n for n in names if n.startswith("external_duplication")] == [
        f"external_duplication@{r}%" for r in (5, 15, 30, 45)]
    assert [n for n in names if n.startswith("density_shift")] == [
        f"density_shift@{p}" for p in ("10:90", "25:75", "75:25", "90:10")]
    assert "mode_collapse@drop-rarest-1:5" in names
    assert [n for n in names if n.startswith("boundary_blur")] == ["boundary_blur@1", "boundary_blur@2", "boundary_blur@3"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cache = tmp_path_factory.mktemp("cache")
    import os

    os.environ["GENMEDEVAL_CACHE"] = str(cache)
    report = run_demo(out, n=20, spacing=4.0, encoder="domain", max_slices=4, bootstrap=8)
    return out, report


def test_demo_tables_have_every_condition_and_metric(demo_run):
    out, report = demo_run
    with (out / "upstream.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    conditions = {r["condition"] for r in rows}
    assert conditions == {c.name for c in paper_conditions()}
    metrics = {r["metric"] for r in rows}
    assert {"fd", "fd_inf", "kd", "mmd", "asw", "precision", "recall", "density", "coverage", "realism",
            "authpct", "vendi"} <= metrics
    assert len(rows) == len(conditions) * len(metrics)
    value = {(r["condition"], r["metric"]): float(r["value"]) for r in rows if r["value"]}
    # the study's trends: FD grows with Gaussian noise level
    assert value[("gaussian_noise@0.01", "fd")] < value[("gaussian_noise@0.1", "fd")]
    # ... and AuthPct falls when training volumes are copied into the evaluated set
    baseline = {r["metric"]: float(r["baseline"]) for r in rows if r["baseline"]}
    assert value[("external_duplication@45%", "authpct")] < baseline["authpct"]
    reuse = json.loads((out / "reuse.json").read_text())
    assert reuse["network_forward_passes"] < reuse["naive_forward_passes"]  # set-level conditions re-use features
    page = report.read_text()
    assert "data:image/png;base64," in page and "gaussian_noise@0.1" in page
    assert (out / "perturbed" / "boundary_blur" / "2").is_dir()
