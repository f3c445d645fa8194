"""Phase 2 (``genmedeval compare``): per-model metrics match a direct computation; rank agreement is Kendall tau."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from scipy.stats import kendalltau

from GenMedEvalLib.cli import main
from GenMedEvalLib.experiments.compare import rank_agreement


def test_tau_matches_scipy_with_ties_and_better_direction():
    dice = {"a": 0.91, "b": 0.85, "c": 0.60, "d": 0.72, "e": 0.85}
    kd = {"a": 0.1, "b": 0.3, "c": 0.9, "d": 0.5, "e": 0.2}  # lower is better
    recall = {"a": 0.2, "b": 0.6, "c": 0.9, "d": 0.4, "e": 0.6}  # higher is better, anti-ordered, with a tie
    upstream = {m: {"kd": kd[m], "recall": recall[m]} for m in dice}
    got = {a.metric: a for a in rank_agreement(upstream, {"kd": "lower", "recall": "higher"}, dice)}
    y = [dice[m] for m in dice]
    ref_kd = kendalltau([-kd[m] for m in dice], y)
    ref_recall = kendalltau([recall[m] for m in dice], y)
    assert got["kd"].tau == pytest.approx(ref_kd.statistic) and got["kd"].p_value == pytest.approx(ref_kd.pvalue)
    assert got["recall"].tau == pytest.approx(ref_recall.statistic)
    assert got["kd"].tau > 0.6 and got["recall"].tau < -0.5  # the sign follows the better direction
    # declaring kd "higher is better" flips the sign of its agreement
    flipped = rank_agreement(upstream, {"kd": "higher", "recall": "higher"}, dice)[0]
    assert flipped.tau == pytest.approx(-got["kd"].tau)
    # a model without a downstream score is left out of the ranking
    partial = rank_agreement(upstream, {"kd": "lower", "recall": "higher"}, {**dice, "e": float("nan")})[0]
    assert partial.n_models == 4
    assert partial.tau == pytest.approx(kendalltau([-kd[m] for m in "abcd"], [dice[m] for m in "abcd"]).statistic)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from GenMedEvalLib.cohort import make_cohort
    from GenMedEvalLib.io import read_cohort, read_volume, write_volume

    root = tmp_path_factory.mktemp("compare")
    os.environ["GENMEDEVAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    make_cohort(root / "cohort", n=12, seed=3, spacing=4.0)
    rng = np.random.default_rng(0)
    sets = {"reference": [], "good": [], "noisy": []}
    for i, item in enumerate(read_cohort(root / "cohort" / "images")):
        sets[("reference", "good", "noisy")[i % 3]].append(item)
    for name, items in sets.items():
        for item in items:
            vol = read_volume(item.image)
            array = vol.array
            if name == "noisy":
                array = array + rng.normal(0, 0.3 * float(array.max()), array.shape).astype(np.float32)
            write_volume(vol, root / name / item.image.name, array)
    return root


def test_compare_cli_metrics_equal_a_direct_computation(folders, capsys):
    from GenMedEvalLib.features import SliceSettings, extract_features, get_encoder
    from GenMedEvalLib.io import normalize_intensity, read_cohort, read_volume
    from GenMedEvalLib.metrics import compute_suite

    out = folders / "run"
    argv = ["compare", "--reference", str(folders / "reference"), "--model", f"good={folders / 'good'}",
            "--model", f"noisy={folders / 'noisy'}", "--out", str(out), "--max-slices", "4", "--metrics", "fd,kd,prdc",
            "--no-downstream"]
    assert main(argv) == 0
    assert "report:" in capsys.readouterr().out
    with (out / "compare_upstream.csv").open() as handle:
        rows = {(r["model"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}

    encoder = get_encoder("domain")

    def features(folder):
        images = [normalize_intensity(read_volume(i.image).array) for i in read_cohort(folder)]
        return extract_features(images, encoder, slices=SliceSettings(max_slices=4), show_progress=False).pool

    reference = features(folders / "reference")
    for model in ("good", "noisy"):
        direct = compute_suite({"reference": reference, "generated": features(folders / model)}, ["fd", "kd", "prdc"])
        for row in direct.rows:
            assert rows[(model, row.metric)] == pytest.approx(row.value, rel=1e-6, abs=1e-9)
    assert rows[("noisy", "fd")] > rows[("good", "fd")]  # heavy noise is farther from the reference
    summary = json.loads((out / "compare.json").read_text())
    assert list(summary["models"]) == ["good", "noisy"] and summary["agreement"] == []  # no downstream: no ranking
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2 and "model comparison" in page.lower()  # heat map, samples
    assert summary["bootstrap"] == 20  # the sweep's default: every model's metrics carry an interval
    with (out / "compare_upstream.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert all(float(r["ci_low"]) <= float(r["ci_high"]) for r in table if r["metric"] == "fd")
    assert all(r["z"] == "" or float(r["z"]) == 0.0 for r in table if r["model"] == "good")  # the baseline


def test_compare_with_generated_masks_and_without(folders, tmp_path, capsys):
    """A generated folder (masks beside the images) gets an agreement Dice; a folder without masks is said to have
    none, and the downstream ranking falls back to the predicted Dice."""
    generated = tmp_path / "gan"
    assert main(["generate", str(generated), "--kind", "gan", "--n", "8", "--seed", "1"]) == 0
    out = tmp_path / "run"
    argv = ["compare", "--reference", str(folders / "reference"), "--model", f"good={folders / 'good'}",
            "--model", f"noisy={folders / 'noisy'}", "--model", f"gan={generated}", "--out", str(out),
            "--max-slices", "2", "--metrics", "fd,prdc", "--bootstrap", "4", "--baseline", "noisy"]
    assert main(argv) == 0
    summary = json.loads((out / "compare.json").read_text())
    rows = {r["model"]: r for r in summary["downstream_rows"]}
    assert rows["good"]["agreement_dice"] is None and rows["noisy"]["agreement_dice"] is None
    assert rows["gan"]["n_with_tumour"] + rows["gan"]["n_without_tumour"] == 8
    assert (rows["gan"]["agreement_dice"] is None) == (rows["gan"]["n_with_tumour"] == 0)
    assert summary["downstream_basis"] == "predicted Dice" and summary["baseline"] == "noisy"
    assert {a["downstream"] for a in summary["agreement"]} == {"predicted Dice"}
    page = (out / "report.html").read_text()
    assert page.count("cannot be computed: the folder holds no tumour masks generated with its images") == 2
    assert main([*argv[:-2], "--baseline", "nobody"]) == 2
    assert "is not one of the models" in capsys.readouterr().err
    assert main(["compare", "--reference", str(folders / "reference"), "--model", f"a={folders / 'good'}",
                 "--model", f"b={generated}", "--test", str(folders / "good"), "--out", str(tmp_path / "r2")]) == 2
    assert "--test needs --train" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--model", "solo=DIR"], "at least two models"),
    (["--model", "nodir", "--model", "b=DIR"], "expected NAME=DIR"),
    (["--model", "a=DIR", "--model", "a=DIR"], "given twice"),
])
def test_compare_cli_errors_are_one_line(folders, tmp_path, capsys, extra, message):
    argv = ["compare", "--reference", str(folders / "reference"), "--out", str(tmp_path / "run"), "--no-downstream",
            *[a.replace("DIR", str(folders / "good")) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_region_masks_keep_each_cases_own_mask():
    """A model whose cases only partly carry generated masks: those keep theirs, the rest get the segmenter's."""
    from pathlib import Path
    from types import SimpleNamespace

    from GenMedEvalLib.experiments.compare import region_masks
    from GenMedEvalLib.experiments.sweep import SetCase
    from GenMedEvalLib.io import CohortItem

    own = np.zeros((4, 4, 4), np.uint8)
    own[1:3, 1:3, 1:3] = 1
    segmented = np.zeros((4, 4, 4), np.uint8)
    segmented[0, 0, 0] = 1
    members = [SetCase(CohortItem("a", Path("a.nii.gz")), None, None, own),
               SetCase(CohortItem("b", Path("b.nii.gz")), None, None, np.zeros_like(own))]
    dn = SimpleNamespace(segmented={"m/a": segmented, "m/b": segmented})
    chosen, source = region_masks(members, dn, "m")
    assert np.array_equal(chosen[0].mask, own) and np.array_equal(chosen[1].mask, segmented)
    assert "generated masks" in source and "segmenter" in source
    chosen, source = region_masks(members[:1], dn, "m")
    assert chosen[0] is members[0] and source == "generated masks"
    chosen, source = region_masks(members[1:], None, "m")
    assert not chosen[0].mask.any() and source.startswith("none")
