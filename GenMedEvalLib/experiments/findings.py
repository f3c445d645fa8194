"""Check the study's claims on a run's own numbers, with significance, and say for each whether it holds here.

Each finding names the paper's claim, the numbers, the test and its sample size, what it was measured
on (``basis``: the true Dice where the masks are known, else the predicted Dice; upstream metrics for
the upstream claims) and a verdict: ``holds``, ``fails`` or ``not testable`` (``holds`` is True,
False or None). Every level of every condition is tested. The rules:

- a change is significant when a Wilcoxon signed-rank test over the same volumes gives p < 0.05
  (downstream, per-volume conditions), when the bootstrap 95 % interval of the difference excludes 0
  (downstream, set-level conditions, which hold other volumes), or when |z| >= 2 (upstream: the change
  lies outside the baseline's bootstrap 95 % interval); a sample that cannot reach significance
  (fewer than 6 non-zero paired differences, fewer than 6 volumes, a tie) is not testable;
- a trend with strength holds when the strongest level changes significantly in the claimed direction
  and no step between consecutive levels (baseline first) goes significantly the other way;
- "blind" holds only when |z| < 2 for every global metric at every level *and* every level changed some of
  the evaluated slices (the fraction is printed); a level that changed none leaves it not testable;
- "flat" (set-level conditions) holds when every interval of the change lies within +-0.02, fails when
  one excludes 0, and is not testable when an interval is too wide to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import (
    MIN_UNPAIRED,
    Z_LIMIT,
    Test,
    bootstrap_ci,
    paired_test,
    spread,
    unpaired_bootstrap,
    z_difference,
    z_test,
)
from .tables import is_spread

GLOBAL_METRICS = ("fd", "fd_inf", "kd", "mmd", "asw", "precision", "recall", "density", "coverage", "vendi")
DISTANCE_METRICS = ("fd", "kd", "mmd")
SET_LEVEL = ("external_duplication", "internal_duplication", "mode_collapse", "density_shift")
FLAT_MARGIN = 0.02
MAE_TARGET = 0.08  # issue #13's target for the quality predictor
TREND_RULE = ("holds when the strongest level changes significantly in the claimed direction and no step between "
              "consecutive levels goes significantly the other way")
VERDICTS = {True: "holds", False: "fails", None: "not testable"}
SLICES = "evaluated slices"  # the sample behind an upstream metric


@dataclass(frozen=True)
class Finding:
    """One claim of the study, checked: verdict, the deciding test, its sample size, and what it was measured on."""

    claim: str
    detail: str
    holds: bool | None
    test: str = ""
    n: int | None = None
    basis: str = ""
    levels: tuple[str, ...] = field(default_factory=tuple)
    unit: str = "volumes"

    def verdict(self) -> str:
        return VERDICTS[self.holds]


class Numbers:
    """Lookup of a run's upstream rows, downstream rows, per-volume Dice and what each condition changed."""

    def __init__(self, upstream: Sequence[dict[str, Any]], downstream: Sequence[dict[str, Any]] = (),
                 changed: dict[str, float] | None = None, volumes: Sequence[dict[str, Any]] = (),
                 touched: dict[str, Any] | None = None):
        self.rows = {(r["condition"], r["metric"]): r for r in upstream}
        self.dice = {r["condition"]: r for r in downstream}
        self.changed = dict(changed or {})
        self.touched = dict(touched or {})
        self.volumes: dict[str, list[dict[str, Any]]] = {}
        for row in volumes:
            self.volumes.setdefault(row["condition"], []).append(row)

    def _get(self, condition: str, metric: str, key: str) -> float | None:
        row = self.rows.get((condition, metric))
        return None if row is None or row.get(key) in (None, "") else float(row[key])

    def value(self, condition: str, metric: str) -> float | None:
        return self._get(condition, metric, "value")

    def z(self, condition: str, metric: str) -> float | None:
        return self._get(condition, metric, "z")

    def spread(self, condition: str, metric: str) -> float | None:
        return spread(self._get(condition, metric, "ci_low"), self._get(condition, metric, "ci_high"))

    def baseline(self, metric: str) -> float | None:
        row = next((r for (c, m), r in self.rows.items() if m == metric), None)
        return None if row is None or row.get("baseline") in (None, "") else float(row["baseline"])

    def size(self, condition: str, metric: str) -> int | None:
        """The evaluated set's sample size behind an upstream value (slices)."""
        value = self._get(condition, metric, "n_generated")
        return None if value is None else int(value)

    def conditions(self, perturbation: str, *, downstream: bool = False) -> list[str]:
        names = self.dice if downstream else [c for c, _ in self.rows]
        return list(dict.fromkeys(c for c in names if c.startswith(f"{perturbation}@")))

    def touched_fraction(self, condition: str) -> float | None:
        entry = self.touched.get(condition)
        if entry is None:
            return None
        return float(entry["fraction"] if isinstance(entry, dict) else entry)

    def basis(self, conditions: Sequence[str]) -> str:
        """``true_dice`` when every volume of these conditions has a known mask, else ``predicted_dice``."""
        rows = [r for c in conditions for r in self.volumes.get(c, [])]
        return "true_dice" if rows and all(r.get("true_dice") not in (None, "") for r in rows) else "predicted_dice"

    def values(self, condition: str, basis: str) -> dict[str, float]:
        """Per volume name, the Dice of ``basis`` under ``condition`` (per-volume conditions: one row each)."""
        return {r["volume"]: float(r[basis]) for r in self.volumes.get(condition, []) if r.get(basis) not in (None, "")}

    def sample(self, condition: str, basis: str) -> list[float]:
        """Every entry of a condition's set (set-level conditions may repeat a volume)."""
        return [float(r[basis]) for r in self.volumes.get(condition, []) if r.get(basis) not in (None, "")]


def _basis_words(basis: str) -> str:
    return "true Dice (the masks are known)" if basis == "true_dice" else "predicted Dice (no masks for these volumes)"


def paired(n: Numbers, before: str, after: str, basis: str) -> Test:
    """Wilcoxon signed-rank test of ``after - before`` over the volumes both conditions segmented."""
    a, b = n.values(before, basis), n.values(after, basis)
    common = [v for v in a if v in b]
    return paired_test([a[v] for v in common], [b[v] for v in common])


def _verdict_of_trend(strongest: Test, steps: Sequence[Test], direction: int) -> bool | None:
    if not strongest.testable:
        return None
    reversed_step = any(t.sign == -direction for t in steps)
    return strongest.sign == direction and not reversed_step


def _step_lines(labels: Sequence[str], steps: Sequence[Test]) -> tuple[str, ...]:
    return tuple(f"{label}: {t.describe(False)}" for label, t in zip(labels, steps, strict=True))


# -- upstream ---------------------------------------------------------------------------------

def memorisation(n: Numbers) -> Finding:
    claim = "FD improves when training images are copied in, while AuthPct falls (memorisation)"
    conds = n.conditions("external_duplication")
    if not conds:
        return Finding(claim, "no external duplication condition in this run", None, basis="upstream metrics")
    tests = {(c, m): z_test(n.z(c, m), _change(n, c, m), n.size(c, m) or 0) for c in conds for m in ("fd", "authpct")}
    lines = tuple(f"{c}: FD {tests[c, 'fd'].describe(False)}; AuthPct {tests[c, 'authpct'].describe(False)}"
                  for c in conds)
    worst = conds[-1]
    fd, auth = tests[worst, "fd"], tests[worst, "authpct"]
    if not (fd.testable and auth.testable):
        holds = None
    else:
        reversed_level = any(t.sign == 1 for t in tests.values())
        holds = fd.sign == -1 and auth.sign == -1 and not reversed_level
    detail = (f"at the strongest level ({worst}) FD z {_z(fd)} and AuthPct z {_z(auth)} (significant at |z| >= "
              f"{Z_LIMIT:g}); holds when both fall significantly there and neither rises significantly at any level. "
              + " | ".join(lines))
    return Finding(claim, detail, holds, fd.name, fd.n, "upstream metrics", lines, SLICES)


def noise_monotone(n: Numbers) -> Finding:
    claim = "FD grows with the Gaussian noise level"
    conds = n.conditions("gaussian_noise")
    if len(conds) < 2 or any(n.value(c, "fd") is None for c in conds):
        return Finding(claim, "needs FD at two or more Gaussian noise levels", None, basis="upstream metrics")
    size = n.size(conds[-1], "fd") or 0
    steps = [z_test(n.z(conds[0], "fd"), _change(n, conds[0], "fd"), size)]
    for a, b in zip(conds, conds[1:], strict=False):
        steps.append(z_difference(n.value(a, "fd"), n.spread(a, "fd"), n.value(b, "fd"), n.spread(b, "fd"), size))
    strongest = z_test(n.z(conds[-1], "fd"), _change(n, conds[-1], "fd"), size)
    labels = [f"baseline -> {conds[0]}", *(f"{a} -> {b}" for a, b in zip(conds, conds[1:], strict=False))]
    lines = _step_lines(labels, steps)
    values = ", ".join(f"{c.split('@')[1]}: {n.value(c, 'fd'):.3g}" for c in conds)
    detail = (f"FD by sigma (baseline {_num(n.baseline('fd'))}): {values}; strongest level {strongest.describe()}; "
              f"{TREND_RULE}. Steps: " + " | ".join(lines))
    return Finding(claim, detail, _verdict_of_trend(strongest, steps, +1), strongest.name, size, "upstream metrics",
                   lines, SLICES)


def mode_collapse(n: Numbers) -> Finding:
    claim = "Distance metrics (FD, KD, MMD) improve under mode collapse"
    conds = n.conditions("mode_collapse")
    tests = {(c, m): z_test(n.z(c, m), _change(n, c, m), n.size(c, m) or 0)
             for c in conds for m in DISTANCE_METRICS if n.value(c, m) is not None}
    if not tests:
        return Finding(claim, "no mode collapse condition or distance metric in this run", None,
                       basis="upstream metrics")
    lines = tuple(f"{c} {m}: {_num(n.baseline(m))} -> {_num(n.value(c, m))}, {t.describe(False)}"
                  for (c, m), t in tests.items())
    improved = sum(t.sign == -1 for t in tests.values())
    if any(t.sign == 1 for t in tests.values()):
        holds = False
    elif any(not t.testable for t in tests.values()):
        holds = None
    else:
        holds = improved == len(tests)
    detail = (f"{improved} of {len(tests)} (level, metric) pairs fall significantly (z <= -{Z_LIMIT:g}), "
              f"{sum(t.sign == 1 for t in tests.values())} rise significantly; holds when every one falls "
              "significantly. " + " | ".join(lines))
    first = next(iter(tests.values()))
    return Finding(claim, detail, holds, first.name, first.n, "upstream metrics", lines, SLICES)


def blind_to_tumour(n: Numbers, perturbation: str, label: str) -> Finding:
    claim = f"Global metrics are blind to {label}: |z| < {Z_LIMIT:g} for every global metric at every level"
    conds = n.conditions(perturbation)
    if not conds:
        return Finding(claim, f"no {perturbation} condition in this run", None, basis="upstream metrics")
    lines, responds, untouched, unknown = [], [], [], []
    for cond in conds:
        zs = {m: n.z(cond, m) for m in GLOBAL_METRICS if n.z(cond, m) is not None}
        fraction = n.touched_fraction(cond)
        touched = "unknown" if fraction is None else f"{fraction:.1%}"
        if not zs:
            lines.append(f"{cond}: no z-scores; touched {touched} of the evaluated slices")
            unknown.append(cond)
            continue
        metric = max(zs, key=lambda m: abs(zs[m]))
        lines.append(f"{cond}: largest |z| {abs(zs[metric]):.2f} ({metric}), {len(zs)} metrics; "
                     f"touched {touched} of the evaluated slices")
        if abs(zs[metric]) >= Z_LIMIT:
            responds.append(cond)
        if fraction is None:
            unknown.append(cond)
        elif fraction == 0 or n.changed.get(cond) == 0:
            untouched.append(cond)
    if responds:
        holds, why = False, f"a global metric responds (|z| >= {Z_LIMIT:g}) at {', '.join(responds)}"
    elif untouched:
        holds, why = None, (f"{', '.join(untouched)} changed no evaluated slice (voxels coarser than its band, or "
                            "slices away from the tumour): nothing there to be blind to")
    elif unknown:
        holds, why = None, f"the evaluated slices {', '.join(unknown)} touched are unknown (or no z-scores)"
    else:
        holds, why = True, "every level changed evaluated slices and no global metric moved beyond |z| 2"
    size = n.size(conds[-1], "fd") or 0
    return Finding(claim, f"{why}. " + " | ".join(lines), holds, "z of the change from baseline, every global metric",
                   size, "upstream metrics", tuple(lines), SLICES)


# -- beyond the paper: local metrics -----------------------------------------------------------

DETECT_LIMIT = 3.0
QUIET_SETS = ("external_duplication", "density_shift")


def local_metrics(n: Numbers) -> list[str]:
    """The local metric outputs (region crops, band, the region's own descriptors) this run computed."""
    from .sensitivity import output_scopes

    scopes = output_scopes()
    return list(dict.fromkeys(m for _, m in n.rows if scopes.get(m, "global") != "global" and not is_spread(m)))


def _lowest(n: Numbers, perturbation: str) -> str | None:
    conds = n.conditions(perturbation)
    return conds[0] if conds else None


def local_sees(n: Numbers, perturbation: str, label: str) -> Finding:
    """Beyond the paper: a local metric detects the mildest level (|z| >= 3) while FD stays below |z| 2."""
    claim = (f"Beyond the paper: a local metric sees {label} at its mildest level (|z| >= {DETECT_LIMIT:g}) while "
             f"FD stays below |z| {Z_LIMIT:g}")
    cond, metrics = _lowest(n, perturbation), local_metrics(n)
    if cond is None or not metrics:
        return Finding(claim, f"no {perturbation} condition or no local metric in this run", None,
                       basis="upstream metrics")
    zs = {m: n.z(cond, m) for m in metrics if n.z(cond, m) is not None}
    fd = n.z(cond, "fd")
    if not zs or fd is None:
        return Finding(claim, f"{cond}: no z-scores of the local metrics or of FD", None, basis="upstream metrics")
    best = max(zs, key=lambda m: abs(zs[m]))
    detail = f"{cond}: largest local |z| {abs(zs[best]):.2f} ({best}, {len(zs)} local metrics); FD z {fd:+.2f}"
    holds = abs(zs[best]) >= DETECT_LIMIT and abs(fd) < Z_LIMIT
    return Finding(claim, detail, holds, "z of the change from baseline", n.size(cond, best), "upstream metrics",
                   unit="region crops")


def local_specific(n: Numbers) -> Finding:
    """Beyond the paper: a local metric that sees both mild tumour changes stays quiet under duplication and density shift."""
    claim = (f"Beyond the paper: a local metric that sees both mild tumour changes stays quiet (|z| < {Z_LIMIT:g} at "
             "every level) under external duplication and density shift")
    mild = [c for c in (_lowest(n, "boundary_blur"), _lowest(n, "radial_gradient")) if c]
    sets = [c for p in QUIET_SETS for c in n.conditions(p)]
    metrics = local_metrics(n)
    if len(mild) < 2 or not sets or not metrics:
        return Finding(claim, "needs both mild tumour conditions, a duplication or density-shift condition and local "
                       "metrics in this run", None, basis="upstream metrics")
    seeing = [m for m in metrics if all((n.z(c, m) is not None and abs(n.z(c, m)) >= DETECT_LIMIT) for c in mild)]
    if not seeing:
        return Finding(claim, f"no local metric reaches |z| >= {DETECT_LIMIT:g} at both {', '.join(mild)}", False,
                       basis="upstream metrics")
    lines, quiet = [], []
    for m in seeing:
        worst = max(sets, key=lambda c: abs(n.z(c, m) or 0.0))
        z = n.z(worst, m) or 0.0
        lines.append(f"{m}: largest |z| {abs(z):.2f} at {worst} over {len(sets)} conditions")
        if abs(z) < Z_LIMIT:
            quiet.append(m)
    held = [p for p in QUIET_SETS if n.conditions(p)]
    detail = (f"quiet: {', '.join(quiet) or 'none'} (tested against {', '.join(held)}). " + " | ".join(lines))
    return Finding(claim, detail, bool(quiet), "z of the change from baseline", None, "upstream metrics", tuple(lines),
                   "region crops")


# -- downstream -------------------------------------------------------------------------------

def rician_most(n: Numbers) -> Finding:
    claim = "Rician noise lowers the Dice more than Gaussian or Poisson noise of the same sigma"
    levels = [c.split("@")[1] for c in n.conditions("rician_noise", downstream=True)
              if f"gaussian_noise@{c.split('@')[1]}" in n.dice and f"poisson_noise@{c.split('@')[1]}" in n.dice]
    if not levels or not n.volumes:
        return Finding(claim, "needs the three noises at a common level with per-volume Dice", None)
    conds = [f"{k}@{lv}" for lv in levels for k in ("rician_noise", "gaussian_noise", "poisson_noise")]
    basis = n.basis(conds)
    tests, lines = [], []
    for lv in levels:
        for other in ("gaussian_noise", "poisson_noise"):
            t = paired(n, f"{other}@{lv}", f"rician_noise@{lv}", basis)
            tests.append(t)
            lines.append(f"{lv}: Rician - {other.split('_')[0].capitalize()} {t.describe(False)}")
    strongest = tests[-2:]
    if not all(t.testable for t in strongest):
        holds = None
    else:
        holds = all(t.sign == -1 for t in strongest) and not any(t.sign == 1 for t in tests)
    means = ", ".join(f"{k.split('_')[0]} {_num(_mean(n.values(f'{k}@{levels[-1]}', basis)))}"
                      for k in ("rician_noise", "gaussian_noise", "poisson_noise"))
    detail = (f"mean {_basis_words(basis)} at sigma {levels[-1]}: {means}; holds when Rician is significantly lower "
              f"than both at the strongest level and significantly higher at none. " + " | ".join(lines))
    return Finding(claim, detail, holds, strongest[0].name, strongest[0].n, basis, tuple(lines))


def lowers_with_strength(n: Numbers, kind: str, label: str) -> Finding:
    claim = f"{label.capitalize()} lowers the Dice as it gets stronger"
    conds = n.conditions(kind, downstream=True)
    if not conds or "baseline" not in n.dice or not n.volumes:
        return Finding(claim, f"no per-volume downstream numbers for {label}", None)
    basis = n.basis(["baseline", *conds])
    chain = ["baseline", *conds]
    steps = [paired(n, a, b, basis) for a, b in zip(chain, chain[1:], strict=False)]
    strongest = paired(n, "baseline", conds[-1], basis)
    lines = _step_lines([f"{a} -> {b}" for a, b in zip(chain, chain[1:], strict=False)], steps)
    means = " -> ".join(_num(_mean(n.values(c, basis))) for c in chain)
    detail = (f"mean {_basis_words(basis)}: {means}; baseline -> {conds[-1]}: {strongest.describe()}; {TREND_RULE}. "
              "Steps: " + " | ".join(lines))
    return Finding(claim, detail, _verdict_of_trend(strongest, steps, -1), strongest.name, strongest.n, basis, lines)


def set_level_flat(n: Numbers) -> Finding:
    claim = f"Duplication, mode collapse and density shift leave the Dice flat (within {FLAT_MARGIN:g})"
    conds = [c for k in SET_LEVEL for c in n.conditions(k, downstream=True) if n.volumes.get(c)]
    if not conds or not n.volumes.get("baseline"):
        return Finding(claim, "no set-level conditions with per-volume downstream numbers", None)
    basis = n.basis(["baseline", *conds])
    base = n.sample("baseline", basis)
    tests = {c: unpaired_bootstrap(base, n.sample(c, basis)) for c in conds}
    lines = tuple(f"{c}: {t.describe(False)}" for c, t in tests.items())
    changed = [c for c, t in tests.items() if t.sign in (-1, 1)]
    within = [c for c, t in tests.items() if t.ci is not None and t.testable
              and -FLAT_MARGIN <= t.ci[0] and t.ci[1] <= FLAT_MARGIN]
    if changed:
        holds, why = False, f"the Dice changes significantly under {', '.join(changed)}"
    elif len(within) == len(tests):
        holds, why = True, f"every interval of the change lies within +-{FLAT_MARGIN:g}"
    else:
        wide = [c for c in tests if c not in within]
        holds, why = None, (f"no significant change, but the interval under {', '.join(wide)} is wider than "
                            f"+-{FLAT_MARGIN:g}: not testable at this size")
    worst = max(tests, key=lambda c: abs(tests[c].effect or 0))
    detail = (f"{why}; on the {_basis_words(basis)}; largest change {tests[worst].effect:+.3f} ({worst})"
              f"{_baseline_spread(n.dice.get('baseline', {}), basis)}. " + " | ".join(lines))
    return Finding(claim, detail, holds, tests[worst].name, len(base), basis, lines)


def predictor_error(n: Numbers) -> Finding:
    claim = f"The quality predictor's Dice is within {MAE_TARGET:g} of the true Dice (MAE, the issue's target)"
    errors: dict[str, list[float]] = {}
    for condition, rows in n.volumes.items():
        if condition.split("@")[0] in SET_LEVEL:  # their rows repeat the baseline's volumes
            continue
        for r in rows:
            if r.get("true_dice") not in (None, ""):
                errors.setdefault(r["volume"], []).append(abs(float(r["predicted_dice"]) - float(r["true_dice"])))
    name = "bootstrap over volumes of the MAE (each volume's mean |predicted - true| over the conditions)"
    if not errors:
        return Finding(claim, "no true Dice in this run (no masks)", None, name)
    per_volume = np.array([np.mean(v) for v in errors.values()])
    mae, ci = float(per_volume.mean()), bootstrap_ci(per_volume)
    if len(per_volume) < MIN_UNPAIRED:
        holds, why = None, f"{len(per_volume)} volumes; at least {MIN_UNPAIRED} needed: not testable at this size"
    elif ci[1] <= MAE_TARGET:
        holds, why = True, f"the interval lies below {MAE_TARGET:g}"
    elif ci[0] > MAE_TARGET:
        holds, why = False, f"the interval lies above {MAE_TARGET:g}"
    else:
        holds, why = None, f"the interval straddles {MAE_TARGET:g}: not testable at this size"
    detail = f"MAE {mae:.3f}, 95 % CI [{ci[0]:.3f}, {ci[1]:.3f}] over {len(per_volume)} volumes; {why}"
    return Finding(claim, detail, holds, name, len(per_volume), "true_dice")


def condition_tests(n: Numbers) -> list[dict[str, Any]]:
    """Every downstream condition against the baseline: paired Wilcoxon (per-volume) or bootstrap (set-level)."""
    out = []
    if not n.volumes.get("baseline"):
        return out
    for cond in n.dice:
        if cond == "baseline" or not n.volumes.get(cond):
            continue
        basis = n.basis(["baseline", cond])
        set_level = cond.split("@")[0] in SET_LEVEL
        test = (unpaired_bootstrap(n.sample("baseline", basis), n.sample(cond, basis)) if set_level
                else paired(n, "baseline", cond, basis))
        result = {None: "not testable", 0: "no significant change", 1: "higher", -1: "lower"}[test.sign]
        out.append({"condition": cond, "basis": basis, "result": result, "test": test.describe()})
    return out


def _change(n: Numbers, condition: str, metric: str) -> float | None:
    value, base = n.value(condition, metric), n.baseline(metric)
    return None if value is None or base is None else value - base


def _z(t: Test) -> str:
    return "n/a" if t.z is None else f"{t.z:+.2f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _mean(values: dict[str, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def _baseline_spread(row: dict[str, Any], basis: str) -> str:
    """The baseline's bootstrap interval and volume count, to judge a change against (empty if unknown)."""
    low, high = row.get(f"{basis}_ci_low"), row.get(f"{basis}_ci_high")
    if low in (None, "") or high in (None, ""):
        return ""
    return f"; the baseline's 95 % interval is [{float(low):.3f}, {float(high):.3f}] over {row.get('n_volumes', '?')} volumes"


def check_findings(upstream: Sequence[dict[str, Any]], downstream: Sequence[dict[str, Any]] = (),
                   changed: dict[str, float] | None = None, volumes: Sequence[dict[str, Any]] = (),
                   touched: dict[str, Any] | None = None) -> list[Finding]:
    """Every claim of the study on this run.

    ``changed``: fraction of voxels each condition changed; ``volumes``: per-volume rows (condition,
    volume, source, predicted_dice, true_dice); ``touched``: per condition the fraction of evaluated
    slices it changed (a number or ``{"fraction": ...}``).
    """
    n = Numbers(upstream, downstream, changed, volumes, touched)
    out = [memorisation(n), noise_monotone(n), mode_collapse(n),
           blind_to_tumour(n, "boundary_blur", "tumour boundary blur"),
           blind_to_tumour(n, "radial_gradient", "radial gradients inside the tumour")]
    if local_metrics(n):
        out += [local_sees(n, "boundary_blur", "tumour boundary blur"),
                local_sees(n, "radial_gradient", "radial gradients inside the tumour"), local_specific(n)]
    if not n.dice:
        return [*out, Finding("Downstream trends", "downstream was not computed in this run", None)]
    return [*out, rician_most(n), lowers_with_strength(n, "boundary_blur", "boundary blur"),
            lowers_with_strength(n, "radial_gradient", "radial gradient"), set_level_flat(n), predictor_error(n)]
