"""The findings on fixed, hand-made tables: every claim comes out holding, failing and not testable, numbers checked."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import wilcoxon

from GenMedEvalLib.experiments.dicetable import (
    EMPTY_PREDICTION,
    add_changes,
    summarise,
    touched_fraction,
    volume_dice,
)
from GenMedEvalLib.experiments.findings import check_findings, condition_tests
from GenMedEvalLib.experiments.stats import paired_test, unpaired_bootstrap

VOLUMES = [f"v{i}" for i in range(6)]


def up(condition, metric, value, z, *, base=10.0, ci=None, n=40):
    """One upstream row; ``ci`` defaults to value +- 0.5."""
    low, high = ci if ci is not None else (value - 0.5, value + 0.5)
    return {"condition": condition, "metric": metric, "value": value, "baseline": base, "z": z,
            "ci_low": low, "ci_high": high, "n_generated": n}


def vols(condition, predicted, true=None, names=VOLUMES):
    true = [None] * len(predicted) if true is None else true
    return [{"condition": condition, "volume": v, "source": "eval", "predicted_dice": p, "true_dice": t}
            for v, p, t in zip(names, predicted, true, strict=False)]


def dn(*conditions):
    return [{"condition": c} for c in ("baseline", *conditions)]


def find(findings, words):
    return next(f for f in findings if words in f.claim)


# -- the tests underneath ------------------------------------------------------------------------

def test_paired_test_is_scipys_wilcoxon_and_refuses_small_or_tied_samples():
    before = [0.8, 0.7, 0.9, 0.6, 0.75, 0.85]
    after = [0.5, 0.6, 0.4, 0.55, 0.7, 0.3]
    t = paired_test(before, after)
    assert t.p == pytest.approx(wilcoxon(np.subtract(after, before)).pvalue) == pytest.approx(2 / 2 ** 6)
    assert t.sign == -1 and t.n == 6 and t.effect == pytest.approx(np.mean(np.subtract(after, before)))
    assert paired_test(before[:5], after[:5]).sign is None  # 2 / 2^5 = 0.0625: cannot reach 0.05
    tie = paired_test([0.0] * 8, [0.0] * 8)
    assert tie.sign is None and "tie" in tie.reason
    mixed = paired_test(before, [b + d for b, d in zip(before, (0.01, -0.02, 0.03, -0.01, 0.02, -0.03), strict=True)])
    assert mixed.sign == 0 and mixed.p > 0.05


def test_unpaired_bootstrap_interval_and_its_size_floor():
    a, b = np.full(6, 0.8), np.full(6, 0.5)
    t = unpaired_bootstrap(a, b)
    assert t.sign == -1 and t.ci == pytest.approx((-0.3, -0.3)) and t.effect == pytest.approx(-0.3)
    assert unpaired_bootstrap(a[:5], b).sign is None


# -- upstream claims -----------------------------------------------------------------------------

def memorisation_rows(fd_z, auth_z):
    return [up("external_duplication@5%", "fd", 9.8, -0.5), up("external_duplication@5%", "authpct", 39.0, -0.4, base=40),
            up("external_duplication@45%", "fd", 8.0, fd_z), up("external_duplication@45%", "authpct", 20.0, auth_z, base=40)]


def test_memorisation_needs_significant_changes_at_the_strongest_level():
    holds = find(check_findings(memorisation_rows(-3.1, -2.5)), "memorisation")
    assert holds.holds is True and holds.verdict() == "holds" and holds.n == 40
    assert "FD z -3.10 and AuthPct z -2.50" in holds.detail and "external_duplication@5%: FD" in holds.detail
    fails = find(check_findings(memorisation_rows(-1.2, -2.5)), "memorisation")  # the issue's z -1.2
    assert fails.holds is False and fails.verdict() == "fails" and "FD z -1.20" in fails.detail
    untestable = find(check_findings(memorisation_rows(None, -2.5)), "memorisation")
    assert untestable.holds is None and untestable.verdict() == "not testable" and "z undefined" in untestable.detail


def noise_rows(last_value, last_z, s=0.5):
    rows = [up("gaussian_noise@0.01", "fd", 11.0, 3.9, ci=(10.5, 11.5)), up("gaussian_noise@0.05", "fd", 20.0, 39.0,
                                                                            ci=(19.0, 21.0))]
    return [*rows, up("gaussian_noise@0.1", "fd", last_value, last_z, ci=(last_value - s, last_value + s))]


def test_noise_trend_tests_every_step_between_levels():
    s = [1 / 3.92, 2 / 3.92]  # bootstrap sigmas from the 95 % widths
    holds = find(check_findings(noise_rows(30.0, 78.0)), "Gaussian noise level")
    assert holds.holds is True and f"z {9 / np.hypot(*s):+.2f}" in holds.detail  # 0.01 -> 0.05: +15.78
    fails = find(check_findings(noise_rows(12.0, 7.8)), "Gaussian noise level")  # FD falls 20 -> 12 at the last step
    assert fails.holds is False and f"z {-8 / np.hypot(s[1], 1 / 3.92):+.2f}" in fails.detail
    untestable = find(check_findings(noise_rows(30.0, None)), "Gaussian noise level")
    assert untestable.holds is None


def collapse_rows(fd_value, fd_z):
    out = []
    for level in ("drop-rarest", "drop-rarest-1:5"):
        out += [up(f"mode_collapse@{level}", "fd", fd_value, fd_z, base=51.8),
                up(f"mode_collapse@{level}", "kd", 0.01, -3.0, base=0.02), up(f"mode_collapse@{level}", "mmd", 0.1, -2.2,
                                                                             base=0.2)]
    return out


def test_mode_collapse_fails_when_fd_doubles_even_if_others_improve():
    fails = find(check_findings(collapse_rows(102.0, 8.0)), "mode collapse")  # the issue's 51.8 -> 102
    assert fails.holds is False and "4 of 6 (level, metric) pairs fall significantly" in fails.detail
    assert "2 rise significantly" in fails.detail and "51.8 -> 102" in fails.detail
    holds = find(check_findings(collapse_rows(40.0, -4.0)), "mode collapse")
    assert holds.holds is True and "6 of 6" in holds.detail
    untestable = find(check_findings(collapse_rows(50.0, None)), "mode collapse")
    assert untestable.holds is None


def blur_rows(last_z):
    return [up(f"boundary_blur@{lv}", m, 10.0, z) for lv, z in (("1", 0.3), ("2", -1.1), ("3", last_z))
            for m in ("fd", "precision")]


def test_blindness_is_tested_at_every_level_and_needs_touched_slices():
    touched = {f"boundary_blur@{lv}": {"fraction": 0.25} for lv in "123"}
    claim = "tumour boundary blur"
    holds = find(check_findings(blur_rows(1.9), touched=touched), claim)
    assert holds.holds is True and "touched 25.0% of the evaluated slices" in holds.detail
    fails = find(check_findings(blur_rows(2.6), touched=touched), claim)  # the mildest level alone would say blind
    assert fails.holds is False and "boundary_blur@3: largest |z| 2.60" in fails.detail
    untouched = find(check_findings(blur_rows(0.0), touched={**touched, "boundary_blur@1": 0.0}), claim)
    assert untouched.holds is None and "boundary_blur@1 changed no evaluated slice" in untouched.detail
    unknown = find(check_findings(blur_rows(0.0)), claim)  # the run did not record which slices it changed
    assert unknown.holds is None


# -- downstream claims ---------------------------------------------------------------------------

def noise_volumes(rician, gaussian, poisson, names=VOLUMES):
    rows = vols("baseline", [0.8] * len(names), [0.8] * len(names), names)
    for kind, values in (("rician_noise", rician), ("gaussian_noise", gaussian), ("poisson_noise", poisson)):
        rows += vols(f"{kind}@0.1", values, values, names)
    return rows


def test_rician_lowest_needs_a_significant_paired_difference():
    down = dn("rician_noise@0.1", "gaussian_noise@0.1", "poisson_noise@0.1")
    gaussian, poisson = [0.8, 0.78, 0.82, 0.79, 0.81, 0.8], [0.85] * 6
    holds = find(check_findings([], down, volumes=noise_volumes([0.4, 0.45, 0.5, 0.3, 0.35, 0.42], gaussian, poisson)),
                 "Rician")
    assert holds.holds is True and holds.basis == "true_dice" and holds.n == 6 and "p 0.0312" in holds.detail
    # the issue's 0.424 vs 0.434 with overlapping spreads: mixed paired differences, p well above 0.05
    close = [g + d for g, d in zip(gaussian, (-0.03, 0.02, -0.04, 0.03, -0.02, 0.01), strict=True)]
    fails = find(check_findings([], down, volumes=noise_volumes(close, gaussian, poisson)), "Rician")
    p = wilcoxon(np.subtract(close, gaussian)).pvalue
    assert fails.holds is False and p > 0.05 and f"p {p:.3g}" in fails.detail
    small = find(check_findings([], down, volumes=noise_volumes([0.4] * 5, gaussian[:5], poisson[:5], VOLUMES[:5])),
                 "Rician")
    assert small.holds is None and "p < 0.05 needs at least 6" in small.detail


def blur_volumes(levels, true=None):
    rows = vols("baseline", [0.75] * 6, None if true is None else true[0])
    for i, values in enumerate(levels, start=1):
        rows += vols(f"boundary_blur@{i}", values, None if true is None else true[i])
    return rows


def test_blur_lowers_dice_on_the_true_dice_where_it_exists():
    down = dn("boundary_blur@1", "boundary_blur@2", "boundary_blur@3")
    falling = [[0.74, 0.73, 0.72, 0.7, 0.71, 0.72], [0.7, 0.69, 0.68, 0.66, 0.65, 0.67], [0.6, 0.62, 0.58, 0.55, 0.5, 0.57]]
    holds = find(check_findings([], down, volumes=blur_volumes(falling, true=[[0.8] * 6, *falling])), "Boundary blur")
    assert holds.holds is True and holds.basis == "true_dice" and "p 0.0312" in holds.detail
    # the issue's real-MRI case: the predicted Dice falls while the true Dice is 0 throughout: a tie, not a trend
    zeros = [[0.0] * 6] * 4
    tie = find(check_findings([], down, volumes=blur_volumes(falling, true=zeros)), "Boundary blur")
    assert tie.holds is None and tie.basis == "true_dice" and "a tie: every paired difference is 0" in tie.detail
    predicted = find(check_findings([], down, volumes=blur_volumes(falling)), "Boundary blur")  # no masks at all
    assert predicted.holds is True and predicted.basis == "predicted_dice" and "predicted Dice" in predicted.detail
    rising = [falling[0], [0.8, 0.81, 0.82, 0.79, 0.83, 0.84], falling[2]]  # a significant rise at level 2
    fails = find(check_findings([], down, volumes=blur_volumes(rising, true=[[0.8] * 6, *rising])), "Boundary blur")
    assert fails.holds is False


def set_volumes(values, base=(0.80, 0.81, 0.79, 0.80, 0.805, 0.795)):
    return [*vols("baseline", list(base), list(base)), *vols("internal_duplication@30%", values, values)]


def test_set_level_flat_is_an_interval_within_the_margin():
    down = dn("internal_duplication@30%")
    holds = find(check_findings([], down, volumes=set_volumes([0.80, 0.81, 0.79, 0.80, 0.805, 0.795])), "flat")
    assert holds.holds is True and "within +-0.02" in holds.detail
    fails = find(check_findings([], down, volumes=set_volumes([0.5, 0.52, 0.48, 0.5, 0.51, 0.49])), "flat")
    assert fails.holds is False and "largest change -0.300 (internal_duplication@30%)" in fails.detail
    wide = find(check_findings([], down, volumes=set_volumes([0.3, 1.0, 0.6, 0.95, 0.7, 0.9])), "flat")
    assert wide.holds is None and "not testable at this size" in wide.detail


def test_predictor_error_against_the_issues_target():
    def rows(error, n=6):
        names = VOLUMES[:n]
        return [*vols("baseline", [0.7 + error] * n, [0.7] * n, names), *vols("gaussian_noise@0.1", [0.6 + error] * n,
                                                                                  [0.6] * n, names)]
    down = dn("gaussian_noise@0.1")
    assert find(check_findings([], down, volumes=rows(0.01)), "quality predictor").holds is True
    fails = find(check_findings([], down, volumes=rows(0.4)), "quality predictor")
    assert fails.holds is False and "MAE 0.400" in fails.detail and fails.n == 6
    assert find(check_findings([], down, volumes=rows(0.01, n=5)), "quality predictor").holds is None


def test_every_condition_is_tested_against_the_baseline():
    down = dn("boundary_blur@1", "internal_duplication@30%")
    volumes = [*blur_volumes([[0.5] * 6])[:12], *set_volumes([0.5] * 6)[6:]]
    results = {r["condition"]: r for r in condition_tests(_numbers(down, volumes))}
    assert results["boundary_blur@1"]["result"] == "lower" and "Wilcoxon" in results["boundary_blur@1"]["test"]
    assert results["internal_duplication@30%"]["result"] == "lower" and "bootstrap" in results["internal_duplication@30%"]["test"]


def _numbers(down, volumes):
    from GenMedEvalLib.experiments.findings import Numbers

    return Numbers([], down, volumes=volumes)


# -- the downstream table ------------------------------------------------------------------------

def member(name, mask, truth=True):
    item = SimpleNamespace(name=name, mask="mask.nii.gz" if truth else None)
    return SimpleNamespace(item=item, mask=mask)


def test_empty_segmentations_stay_in_with_dice_zero():
    """The issue's demo: 4 -> 3 volumes hid a true drop; an empty output now counts as true Dice ~0."""
    truth = np.zeros((4, 8, 8), np.uint8)
    truth[1:3, 2:6, 2:6] = 1
    members = [member(f"v{i}", truth) for i in range(4)]
    masks = {f"c/v{i}": truth.copy() for i in range(3)} | {"c/v3": np.zeros_like(truth)}
    records = volume_dice("c", members, [0.9, 0.8, 0.7, float("nan")], masks)
    assert [r.empty_segmentation for r in records] == [False, False, False, True]
    assert records[3].predicted_dice == EMPTY_PREDICTION and records[3].true_dice == pytest.approx(1 / 33)
    row = summarise(records, bootstrap=200, seed=0)
    assert row["n_volumes"] == 4 and row["n_empty"] == 1 and row["n_true"] == 4
    assert row["true_dice"] == pytest.approx((3 + 1 / 33) / 4) and row["predicted_dice"] == pytest.approx(0.6)
    assert row["mae"] == pytest.approx(np.mean([0.1, 0.2, 0.3, 1 / 33]))
    assert row["true_dice_ci_low"] <= row["true_dice"] <= row["true_dice_ci_high"]
    changes = add_changes([{"predicted_dice": 0.8, "true_dice": 0.9}, dict(row)])
    assert changes[1]["true_change"] == pytest.approx(row["true_dice"] - 0.9, abs=1e-6)
    no_mask = volume_dice("c", [member("v0", truth, truth=False)], [0.9], masks)
    assert no_mask[0].true_dice is None and summarise(no_mask, bootstrap=10, seed=0)["true_dice"] is None


def test_touched_fraction_counts_evaluated_slices_that_changed():
    before = np.zeros((5, 4, 4), np.float32)
    after = before.copy()
    after[2, 1, 1] = 1.0
    info = [SimpleNamespace(volume=0, plane="axial", index=i) for i in (0, 2, 4)]
    assert touched_fraction([before], [after], info) == {"fraction": pytest.approx(1 / 3), "touched": 1, "evaluated": 3}
    coronal = [SimpleNamespace(volume=0, plane="coronal", index=i) for i in (0, 1, 2, 3)]
    assert touched_fraction([before], [after], coronal)["touched"] == 1  # only row 1 crosses the change


# -- beyond the paper: local metrics ----------------------------------------------------------------

def local_table(blur_local, radial_local, fd, quiet):
    """Upstream rows of FD and the local metric edge_width over the mild tumour and set-level conditions."""
    rows = []
    for cond, z_local in (("boundary_blur@1", blur_local), ("radial_gradient@1", radial_local)):
        rows += [up(cond, "fd", 10.0, fd), up(cond, "edge_width", 1.0, z_local, n=60)]
    for cond in ("external_duplication@45%", "density_shift@90:10"):
        rows += [up(cond, "fd", 10.0, 0.5), up(cond, "edge_width", 1.0, quiet, n=60)]
    return rows


def test_local_metric_findings_hold_fail_and_are_not_testable():
    holding = check_findings(local_table(4.0, -3.5, 0.3, 1.2))
    assert find(holding, "sees tumour boundary blur").holds is True
    assert find(holding, "sees radial gradients").holds is True
    assert find(holding, "stays quiet").holds is True and "quiet: edge_width" in find(holding, "stays quiet").detail
    weak = check_findings(local_table(2.5, 4.0, 0.3, 1.2))
    assert find(weak, "sees tumour boundary blur").holds is False  # |z| 2.5 < 3
    assert find(weak, "stays quiet").holds is False  # no local metric sees both
    loud_fd = check_findings(local_table(4.0, 4.0, 2.5, 1.2))
    assert find(loud_fd, "sees tumour boundary blur").holds is False  # FD moved too: not local
    noisy = check_findings(local_table(4.0, 4.0, 0.3, 2.4))
    assert find(noisy, "stays quiet").holds is False and "2.40" in find(noisy, "stays quiet").detail
    no_sets = check_findings([r for r in local_table(4.0, 4.0, 0.3, 1.2) if "@1" in r["condition"]])
    assert find(no_sets, "stays quiet").holds is None
    assert not any("Beyond the paper" in f.claim for f in check_findings([up("boundary_blur@1", "fd", 1.0, 0.1)]))


def test_sensitivity_rows_give_every_metric_its_scope_and_largest_z_per_family():
    from GenMedEvalLib.experiments.sensitivity import key_rows, sensitivity_rows, verdict

    rows = [{**r, "family": r["condition"].split("@")[0]} for r in local_table(4.0, -3.5, 0.3, 1.2)]
    rows.append({**up("boundary_blur@1", "kd_std_roi", 1.0, 9.0), "family": "boundary_blur"})
    table = {r["metric"]: r for r in sensitivity_rows(rows)}
    assert set(table) == {"fd", "edge_width"}  # estimator spreads are not metrics
    assert table["edge_width"]["scope"] == "region" and table["fd"]["scope"] == "global"
    assert table["edge_width"]["max|z| radial_gradient"] == 3.5 and table["fd"]["radial_gradient@1"] == 0.3
    assert [verdict(v) for v in (3.5, 1.9, 2.5, None)] == ["detects", "quiet", "weak", "n/a"]
    assert [r["metric"] for r in key_rows(rows, ["boundary_blur@1"])] == ["fd", "edge_width"]
