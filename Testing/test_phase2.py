"""Phase 2 pieces on fixed inputs: agreement Dice, nearest training slices, Kendall's reach, the Phase 2
finding's verdicts, and the heat maps' shared orientation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from GenMedEvalLib.experiments.phase2 import (
    agreement_dice,
    min_kendall_p,
    nearest_pairs,
    nearest_training,
    ranking_finding,
)
from GenMedEvalLib.experiments.tables import goodness


def test_agreement_dice_over_samples_with_a_generated_tumour():
    a = np.zeros((1, 8, 8), np.uint8)
    a[0, 2:6, 2:6] = 1  # 16 pixels
    b = np.zeros_like(a)
    b[0, 4:8, 2:6] = 1  # 16 pixels, 8 shared
    empty = np.zeros_like(a)
    got = agreement_dice([a, b, empty, a], [b, b, empty, empty])
    # independent: the study's smoothed Dice (2|A&B| + 1) / (|A| + |B| + 1) = 17 / 33 for the first, 1 for the
    # second; the tumour-free samples are counted apart
    assert got["agreement_dice"] == pytest.approx((17 / 33 + 1.0) / 2)
    assert got["n_with_tumour"] == 2 and got["n_without_tumour"] == 2
    assert got["empty_agreement"] == pytest.approx(0.5)  # one of two tumour-free samples left empty by the segmenter
    assert agreement_dice([a], [empty])["agreement_dice"] is None


def test_nearest_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    g, t = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    index, distance = nearest_pairs(g, t)
    brute = np.linalg.norm(g[:, None] - t[None], axis=-1)
    assert np.array_equal(index, brute.argmin(1))
    assert distance == pytest.approx(brute.min(1))
    found = nearest_training("m", g, [(f"s{i}", 0) for i in range(7)], t, [(f"t{j}", j) for j in range(11)], k=2)
    assert [f.distance for f in found] == pytest.approx(sorted(brute.min(1))[:2])
    closest = int(brute.min(1).argmin())
    assert found[0].sample == f"s{closest}" and found[0].train == f"t{int(brute[closest].argmin())}"


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_kendall_reach_is_scipys_exact_p_of_a_perfect_ranking(n):
    assert min_kendall_p(n) == pytest.approx(kendalltau(range(n), range(n)).pvalue)
    assert min_kendall_p(n) == pytest.approx(2 / math.factorial(n))


def _rows(tau: float, p: float, n: int):
    return [{"metric": "fd", "tau": tau, "p_value": p, "n_models": n},
            {"metric": "kd", "tau": 0.2, "p_value": 0.7, "n_models": n}]


def test_phase2_finding_holds_fails_and_is_not_testable():
    assert ranking_finding(_rows(-1.0, 0.0167, 5), "agreement Dice")["verdict"] == "holds"
    assert ranking_finding(_rows(1.0, 0.0167, 5), "agreement Dice")["verdict"] == "fails"
    undecided = ranking_finding(_rows(-0.4, 0.48, 5), "agreement Dice")
    assert undecided["verdict"] == "not testable" and "smallest reachable p is 0.0167" in undecided["detail"]
    small = ranking_finding(_rows(-1.0, 0.33, 3), "predicted Dice")
    assert small["verdict"] == "not testable" and "no ranking can be significant at this size" in small["detail"]
    missing = ranking_finding([{"metric": "fd", "tau": None, "p_value": None, "n_models": 2}], "predicted Dice")
    assert missing["verdict"] == "not testable"


def test_goodness_orients_every_direction_the_same_way():
    assert goodness(3.0, "lower") == -3.0  # a lower-is-better metric rose: worse
    assert goodness(3.0, "higher") == 3.0
    assert goodness(-2.0, "zero", value=0.1, baseline=0.5) == pytest.approx(2.0)  # moved towards 0: better
    assert goodness(2.0, "zero", value=0.9, baseline=0.5) == pytest.approx(-2.0)
    assert goodness(None, "lower") is None
