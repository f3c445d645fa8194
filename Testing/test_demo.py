"""The study end to end on a small cohort: sweep tables, the paper's trends, downstream, Phase 2 and the report."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from GenMedEvalLib.cli import main
from GenMedEvalLib.experiments.demo import paper_conditions, run_demo

PAPER = (["gaussian_noise@0.01", "gaussian_noise@0.05", "gaussian_noise@0.1",
          "rician_noise@0.01", "rician_noise@0.05", "rician_noise@0.1",
          "poisson_noise@0.01", "poisson_noise@0.05", "poisson_noise@0.1",
          "boundary_blur@1", "boundary_blur@2", "boundary_blur@3",
          "radial_gradient@1", "radial_gradient@2", "radial_gradient@3",
          "contrast_invention@0.05", "contrast_invention@0.07", "contrast_invention@0.1"]
         + [f"{k}@{r}%" for k in ("external_duplication", "internal_duplication") for r in (5, 15, 30, 45)]
         + ["mode_collapse@drop-rarest", "mode_collapse@drop-rarest-1:5"]
         + [f"density_shift@{p}" for p in ("10:90", "25:75", "75:25", "90:10")])


def test_paper_conditions_are_exactly_the_studys():
    assert [c.name for c in paper_conditions()] == PAPER
    radial = {c.level: c.params["amplitude"] for c in paper_conditions() if c.perturbation == "radial_gradient"}
    assert radial == pytest.approx({"1": 0.1, "2": 0.2, "3": 0.3})
    assert next(c for c in paper_conditions() if c.name == "mode_collapse@drop-rarest-1:5").params["ratio"] == "1:5"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    import os

    out = tmp_path_factory.mktemp("demo")
    os.environ["GENMEDEVAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    report = run_demo(out, n=40, spacing=3.0, encoder="domain", max_slices=4, tumour_slices=2, bootstrap=8,
                      downstream_max_volumes=2, samples=24)
    return out, report


def test_views_show_a_segmented_case_with_its_segmentations(demo_run):
    """The representative case is one the downstream step segmented, so its views can overlay the output."""
    out, _ = demo_run
    info = json.loads((out / "views.json").read_text())
    assert {"baseline", "boundary_blur@3"} <= set(info["segmentations"])
    assert all((out / p).is_file() and not Path(p).is_absolute() for p in info["segmentations"].values())


def read_csv(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_sweep_tables_have_every_condition_and_metric(demo_run):
    out, _ = demo_run
    rows = read_csv(out / "upstream.csv")
    assert list(dict.fromkeys(r["condition"] for r in rows)) == PAPER
    metrics = {r["metric"] for r in rows}
    assert {"fd", "fd_inf", "kd", "mmd", "asw", "precision", "recall", "density", "coverage", "realism",
            "authpct", "ct", "vendi"} <= metrics
    assert len(rows) == len(PAPER) * len(metrics)
    assert all(r["z"] != "" for r in rows if r["metric"] in ("fd", "kd", "precision"))
    # every condition's metrics carry a bootstrap 95 % interval (issue #6), not only the baseline's
    for r in (r for r in rows if r["metric"] in ("fd", "mmd", "precision", "coverage", "authpct", "vendi")):
        assert r["ci_low"] != "" and float(r["ci_low"]) <= float(r["ci_high"]), r
    assert all(float(r["ci_high"]) > float(r["ci_low"]) for r in rows if r["metric"] == "fd")


def test_sweep_reproduces_the_studys_upstream_trends(demo_run):
    out, _ = demo_run
    rows = read_csv(out / "upstream.csv")
    value = {(r["condition"], r["metric"]): float(r["value"]) for r in rows if r["value"]}
    baseline = {r["metric"]: float(r["baseline"]) for r in rows if r["baseline"]}
    fd = [value[(f"gaussian_noise@{s}", "fd")] for s in ("0.01", "0.05", "0.1")]
    assert baseline["fd"] < fd[0] < fd[1] < fd[2]  # FD grows with the noise level
    assert value[("external_duplication@45%", "fd")] < baseline["fd"]  # ... improves when training data is copied
    assert value[("external_duplication@45%", "authpct")] < baseline["authpct"]  # while AuthPct falls


def test_downstream_table_has_every_condition(demo_run):
    out, _ = demo_run
    rows = read_csv(out / "downstream.csv")
    assert [r["condition"] for r in rows] == ["baseline", *PAPER]
    base = float(rows[0]["predicted_dice"])
    assert 0.3 < base <= 1.0
    flat = [float(r["predicted_dice"]) for r in rows if r["perturbation"] in ("internal_duplication", "density_shift")]
    assert max(abs(d - base) for d in flat) < 0.15  # set-level conditions re-index the same volumes' scores
    run = json.loads((out / "run.json").read_text())
    assert run["volumes_segmented"] == 2 * (1 + 18) + 10  # baseline + per-volume conditions, + train for duplication


def test_downstream_reports_true_dice_beside_predicted_per_condition_and_volume(demo_run):
    """The masks of the perturbed images are known: true Dice, predicted Dice and the predictor's error."""
    from GenMedEvalLib.io import read_mask
    from GenMedEvalLib.quality import dice_score

    out, _ = demo_run
    rows = {r["condition"]: r for r in read_csv(out / "downstream.csv")}
    volumes = read_csv(out / "downstream_volumes.csv")
    by_condition = {}
    for v in volumes:
        by_condition.setdefault(v["condition"], []).append(v)
    assert set(by_condition) == set(rows)
    for condition, row in rows.items():
        entries = by_condition[condition]
        assert int(row["n_volumes"]) == len(entries) and int(row["n_true"]) == len(entries)  # empty outputs stay in
        true = [float(v["true_dice"]) for v in entries]
        predicted = [float(v["predicted_dice"]) for v in entries]
        assert float(row["true_dice"]) == pytest.approx(sum(true) / len(true))
        assert float(row["error"]) == pytest.approx(sum(predicted) / len(predicted) - sum(true) / len(true))
        assert float(row["mae"]) == pytest.approx(sum(abs(p - t) for p, t in zip(predicted, true, strict=True))
                                                  / len(true))
        assert float(row["true_dice_ci_low"]) <= float(row["true_dice"]) <= float(row["true_dice_ci_high"])
    assert len(by_condition["boundary_blur@3"]) == 2  # the two segmented eval volumes
    # a set-level condition re-indexes the segmented volumes' own records, train copies included
    provenance = json.loads((out / "perturbed" / "external_duplication" / "45%" / "provenance.json").read_text())
    kept = [(s, i) for s, i in provenance if s == "train" or i < 2]
    duplicated = by_condition["external_duplication@45%"]
    assert [v["source"] for v in duplicated] == [s for s, _ in kept] and {"eval", "train"} <= {s for s, _ in kept}
    # the baseline's true Dice is the Dice of the written segmentation against the case's mask
    info = json.loads((out / "views.json").read_text())
    assert len(info["cases"]) == 2
    baseline = {v["volume"]: float(v["true_dice"]) for v in by_condition["baseline"]}
    for case in info["cases"]:
        seg, truth = read_mask(out / case["segmentation"]).array, read_mask(out / case["truth"]).array
        assert baseline[case["case"]] == pytest.approx(dice_score(seg, truth))


def test_findings_give_verdict_test_and_sample_size(demo_run):
    out, report = demo_run
    page = report.read_text()
    findings = page[page.index("<h2>Findings"):page.index("<h2>Phase 1")]
    verdicts = re.findall(r"<em>(holds|fails|not testable)</em>", findings)
    assert len(verdicts) == 13  # 5 upstream + 3 local metrics (beyond the paper) + 5 downstream claims
    assert findings.count("Beyond the paper: a local metric") == 3
    assert findings.count("Test: ") == 13 and len(re.findall(r"; n \d+ (volumes|evaluated slices)", findings)) >= 8
    assert "on the true Dice" in findings  # the downstream claims use the masks the perturbations keep
    # two segmented volumes cannot reach p < 0.05 in a paired test: the downstream trends are not testable here
    assert "Boundary blur lowers the Dice as it gets stronger</b>: <em>not testable</em>" in findings
    assert "Every downstream condition against the baseline" in page


def test_reuse_is_measured(demo_run):
    out, _ = demo_run
    run = json.loads((out / "run.json").read_text())
    assert 0 < run["network_forward_passes"] < run["naive_forward_passes"] < run["naive_forward_passes_all_sets"]
    assert run["reduction"] == pytest.approx(run["naive_forward_passes"] / run["network_forward_passes"], rel=0.01)


def test_report_embeds_every_heat_map_and_view(demo_run):
    out, report = demo_run
    page = report.read_text()
    pngs = (sorted(out.glob("heatmap*.png")) + sorted((out / "views").glob("*.png"))
            + [out / "phase2" / n for n in ("compare_heatmap.png", "samples_grid.png", "nearest_training.png")])
    assert len(list(out.glob("heatmap_*.png"))) == 5  # one per perturbation family
    assert len(list((out / "views").glob("*.png"))) >= 8  # each segmented case, original, perturbed, differences
    assert {p.name for p in (out / "views").glob("case_*.png")} == {f"case_{c['case']}.png" for c in
                                                                   json.loads((out / "views.json").read_text())["cases"]}
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert "Findings" in page and "Kendall tau" in page and "as if they were models" not in page
    assert "What memorisation looks like" in page and "agreement with the generated mask" in page
    assert re.search(r"Network forward passes \d+: a naive run that encodes every condition.s slices makes \d+", page)


def test_phase2_compares_the_shipped_generators_with_rank_agreement(demo_run):
    out, _ = demo_run
    summary = json.loads((out / "phase2" / "compare.json").read_text())
    assert list(summary["models"]) == ["real (eval, 64 grid)", "real (eval volumes)", "vae", "gan", "ddpm",
                                       "memoriser"]
    assert summary["baseline"] == "real (eval, 64 grid)" and summary["bootstrap"] == 8
    assert set(summary["predicted_dice"]) == set(summary["models"])
    for kind in ("vae", "gan", "ddpm", "memoriser"):
        info = json.loads((out / "generated" / kind / "generated.json").read_text())
        assert info["generator"] == kind and info["n"] == 24
    grid = json.loads((out / "generated" / "real_grid" / "generated.json").read_text())
    eval_names = {r["name"] for r in read_csv(out / "cohort" / "cohort.csv") if r["split"] == "eval"}
    assert grid["n"] == 24 and {s.split("#")[0] for s in grid["slices"]} <= eval_names  # held-out slices only
    rows = {r["model"]: r for r in summary["downstream_rows"]}
    # generated masks give a model an agreement Dice wherever a segmented sample has a tumour (the real
    # split's masks are its labels); none is said where none has
    assert all((rows[m]["agreement_dice"] is None) == (rows[m]["n_with_tumour"] == 0) for m in summary["models"])
    assert rows["real (eval volumes)"]["agreement_dice"] is not None
    agreement = {a["metric"]: a for a in summary["agreement"]}
    assert -1 <= agreement["fd"]["tau"] <= 1 and agreement["fd"]["n_models"] == len(summary["models"])
    assert summary["finding"]["verdict"] in ("holds", "fails", "not testable")
    # every upstream row has an interval (the compare default bootstrap is the sweep's)
    assert all(r["ci_low"] is not None for r in summary["upstream_rows"] if r["metric"] in ("fd", "precision"))
    # the memoriser: FD rates it above the VAE and the GAN, AuthPct catches it (its lowest), its images nearest
    # training; the diffusion model is the best-rated trained generator (on this 3 mm test cohort its FD is even
    # below the memoriser's near copies; on the demo's 2 mm cohort the memoriser's copies are exact and rate best)
    fd = {m: summary["upstream"][m]["fd"] for m in ("vae", "gan", "ddpm", "memoriser")}
    auth = {m: summary["upstream"][m]["authpct"] for m in ("vae", "gan", "ddpm", "memoriser")}
    assert fd["memoriser"] < min(fd["vae"], fd["gan"]) and fd["ddpm"] < min(fd["vae"], fd["gan"])
    assert min(auth, key=auth.get) == "memoriser"
    # (its copies come from the 2 mm cohort the generators learnt; this test's cohort is 3 mm, so they are near
    # copies of the training slices here, not exact ones: the nearest among the generators, not below real data)
    near = {m: summary["nearest_median"][m] for m in ("vae", "gan", "ddpm", "memoriser")}
    assert min(near, key=near.get) == "memoriser"


def test_report_command_rewrites_and_refuses_other_folders(demo_run, tmp_path, capsys):
    out, report = demo_run
    report.unlink()
    assert main(["report", str(out)]) == 0 and report.is_file()
    assert main(["report", str(tmp_path)]) == 2
    assert "not a sweep or compare run folder" in capsys.readouterr().err
