"""``genmedeval features`` and ``genmedeval metrics`` end to end on tiny cohorts with the domain encoder."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from test_features_domain import write_tiny_cohort

from GenMedEvalLib.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ref = write_tiny_cohort(root / "ref", n=6, seed=1) / "images"
    gen = write_tiny_cohort(root / "gen", n=6, seed=2) / "images"
    empty = root / "empty"
    empty.mkdir()
    return ref, gen, empty, root


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """FD by the textbook route (scipy sqrtm), independent of GenMedEvalLib.metrics."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # N < d here: S1 S2 is singular, sqrtm still exact enough
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_features_command_fills_then_hits_the_cache(folders, capsys):
    ref, _, _, root = folders
    args = ["features", str(ref), "--encoder", "domain", "--cache", str(root / "cache1")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "0 cache hits" in first and " 0 network forward passes" in second
    assert "6 volumes" in second


def test_metrics_command_writes_csv_json_with_expected_rows(folders, capsys):
    from GenMedEvalLib.features import FeatureCache, extract_folder

    ref, gen, _, root = folders
    out = root / "results.csv"
    rc = main(["metrics", "--reference", str(ref), "--generated", str(gen), "--encoder", "domain",
               "--metrics", "fd,prdc", "--cache", str(root / "cache2"), "--out", str(out)])
    assert rc == 0
    assert out.exists() and out.with_suffix(".json").exists()
    rows = {row["metric"]: row for row in csv.DictReader(out.open())}
    assert {"fd", "precision", "recall", "density", "coverage"} <= set(rows)
    printed = capsys.readouterr().out
    assert "fd" in printed and "coverage" in printed
    cache = FeatureCache(root / "cache2")
    a = extract_folder(ref, "domain", cache=cache, show_progress=False).pool.astype(np.float64)
    b = extract_folder(gen, "domain", cache=cache, show_progress=False).pool.astype(np.float64)
    assert cache.stats.forward_passes == 0  # the metrics run cached every slice
    assert float(rows["fd"]["value"]) == pytest.approx(_frechet(a, b), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("change", ["missing", "empty", "encoder", "metric"])
def test_bad_input_is_one_line_exit_2_and_no_output(folders, change, capsys):
    ref, gen, empty, root = folders
    out = root / f"bad_{change}.csv"
    args = {"reference": str(ref), "generated": str(gen), "encoder": "domain", "metrics": "all"}
    if change == "missing":
        args["generated"] = str(root / "nope")
    elif change == "empty":
        args["reference"] = str(empty)
    elif change == "encoder":
        args["encoder"] = "vgg16"
    else:
        args["metrics"] = "fd,bogus"
    argv = ["metrics", "--out", str(out), "--cache", str(root / "cache3")]
    for key, value in args.items():
        argv += [f"--{key}", value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not out.exists() and not out.with_suffix(".json").exists()
