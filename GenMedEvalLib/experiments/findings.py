"""Check the study's recommendations on a run's own numbers and say, for each, whether it holds here.

Each finding names the paper's claim, the numbers from this run, and ``holds``: True, False, or
None when the run lacks the conditions or metrics needed to check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GLOBAL_METRICS = ("fd", "fd_inf", "kd", "mmd", "asw", "precision", "recall", "density", "coverage", "vendi")
DISTANCE_METRICS = ("fd", "kd", "mmd")


@dataclass(frozen=True)
class Finding:
    """One claim of the study, checked."""

    claim: str
    detail: str
    holds: bool | None

    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not checked"}[self.holds]


class Numbers:
    """Lookup of a run's upstream and downstream numbers."""

    def __init__(self, upstream: Sequence[dict[str, Any]], downstream: Sequence[dict[str, Any]] = (),
                 changed: dict[str, float] | None = None):
        self.rows = {(r["condition"], r["metric"]): r for r in upstream}
        self.dice = {r["condition"]: r for r in downstream}
        self.changed = dict(changed or {})

    def value(self, condition: str, metric: str) -> float | None:
        row = self.rows.get((condition, metric))
        return None if row is None or row.get("value") in (None, "") else float(row["value"])

    def baseline(self, metric: str) -> float | None:
        row = next((r for (c, m), r in self.rows.items() if m == metric), None)
        return None if row is None or row.get("baseline") in (None, "") else float(row["baseline"])

    def z(self, condition: str, metric: str) -> float | None:
        row = self.rows.get((condition, metric))
        return None if row is None or row.get("z") in (None, "") else float(row["z"])

    def conditions(self, perturbation: str) -> list[str]:
        return list(dict.fromkeys(c for c, _ in self.rows if c.startswith(f"{perturbation}@")))

    def predicted(self, condition: str) -> float | None:
        row = self.dice.get(condition)
        return None if row is None or row.get("dice") in (None, "") else float(row["dice"])


def memorisation(n: Numbers) -> Finding:
    claim = "Distance metrics improve when training images are copied in, while AuthPct falls (memorisation)"
    conds = n.conditions("external_duplication")
    if not conds:
        return Finding(claim, "no external duplication condition in this run", None)
    worst = conds[-1]
    fd, fd0, auth, auth0 = n.value(worst, "fd"), n.baseline("fd"), n.value(worst, "authpct"), n.baseline("authpct")
    if None in (fd, fd0, auth, auth0):
        return Finding(claim, "FD or AuthPct was not computed", None)
    detail = (f"FD {'improved' if fd < fd0 else 'worsened'} by {abs(fd - fd0):.3g} ({fd0:.3g} -> {fd:.3g}, "
              f"z {n.z(worst, 'fd') or 0:.1f}) under {worst} while AuthPct went {auth0:.3g} -> {auth:.3g}")
    return Finding(claim, detail + (": a memorisation signature." if fd < fd0 and auth < auth0 else "."),
                   fd < fd0 and auth < auth0)


def blind_to_tumour(n: Numbers, perturbation: str, label: str) -> Finding:
    claim = f"Global metrics are blind to {label}: no |z| beyond 2"
    conds = n.conditions(perturbation)
    if not conds:
        return Finding(claim, f"no {perturbation} condition in this run", None)
    if n.changed.get(conds[0]) == 0:
        return Finding(claim, f"{conds[0]} changed no voxel of these volumes (voxels coarser than its band): "
                              "nothing to check", None)
    parts, holds = [], True
    for cond in conds:
        zs = {m: n.z(cond, m) for m in GLOBAL_METRICS if n.z(cond, m) is not None}
        if not zs:
            continue
        metric = max(zs, key=lambda m: abs(zs[m]))
        parts.append(f"{cond}: largest |z| {abs(zs[metric]):.1f} ({metric})")
        holds &= abs(zs[metric]) <= 2 if cond == conds[0] else True
    return Finding(claim + f" at the mildest level ({conds[0]})", "; ".join(parts) or "no z-scores", holds if parts else None)


def noise_monotone(n: Numbers) -> Finding:
    claim = "FD grows with the Gaussian noise level"
    conds = n.conditions("gaussian_noise")
    values = [n.value(c, "fd") for c in conds]
    if len(conds) < 2 or None in values:
        return Finding(claim, "needs FD at two or more Gaussian noise levels", None)
    detail = ", ".join(f"{c.split('@')[1]}: {v:.3g}" for c, v in zip(conds, values, strict=True))
    return Finding(claim, f"FD by sigma: {detail}", all(a < b for a, b in zip(values, values[1:], strict=False)))


def mode_collapse(n: Numbers) -> Finding:
    claim = "Distance metrics improve (or stay) under mode collapse"
    conds = n.conditions("mode_collapse")
    pairs = [(c, m, n.value(c, m), n.baseline(m)) for c in conds for m in DISTANCE_METRICS]
    pairs = [p for p in pairs if p[2] is not None and p[3] is not None]
    if not pairs:
        return Finding(claim, "no mode collapse condition or distance metric in this run", None)
    improved = [p for p in pairs if p[2] <= p[3]]
    detail = "; ".join(f"{c} {m}: {b:.3g} -> {v:.3g}" for c, m, v, b in pairs)
    return Finding(claim, f"{len(improved)} of {len(pairs)} lower than baseline ({detail})", len(improved) * 2 >= len(pairs))


def downstream_findings(n: Numbers) -> list[Finding]:
    """The paper's downstream trends: Rician hurts most, tumour perturbations lower Dice, set-level ones do not."""
    if not n.dice:
        return [Finding("Downstream trends", "downstream was not computed in this run", None)]
    out = []
    r, g, p = n.predicted("rician_noise@0.1"), n.predicted("gaussian_noise@0.1"), n.predicted("poisson_noise@0.1")
    claim = "Rician noise 0.1 lowers the predicted Dice more than Gaussian or Poisson noise 0.1"
    if None in (r, g, p):
        out.append(Finding(claim, "needs the three noises at 0.1 with a segmentation", None))
    else:
        out.append(Finding(claim, f"predicted Dice: Rician {r:.3f}, Gaussian {g:.3f}, Poisson {p:.3f}", r < g and r < p))
    base = n.predicted("baseline")
    for kind, label in (("boundary_blur", "boundary blur"), ("radial_gradient", "radial gradient")):
        values = [n.predicted(c) for c in n.conditions(kind)]
        claim = f"{label.capitalize()} lowers the predicted Dice as it gets stronger"
        if base is None or not values or None in values:
            out.append(Finding(claim, f"no downstream numbers for {label}", None))
            continue
        seq = [base, *values]
        out.append(Finding(claim, "baseline " + " -> ".join(f"{v:.3f}" for v in seq),
                           all(b <= a + 0.005 for a, b in zip(seq, seq[1:], strict=False)) and seq[-1] < seq[0]))
    set_kinds = ("external_duplication", "internal_duplication", "mode_collapse", "density_shift")
    changes = {c: n.predicted(c) - base for k in set_kinds for c in n.conditions(k)
               if base is not None and n.predicted(c) is not None}
    claim = "Duplication, mode collapse and density shift leave the predicted Dice flat (within 0.02)"
    if not changes:
        out.append(Finding(claim, "no set-level conditions with downstream numbers", None))
    else:
        worst = max(changes, key=lambda c: abs(changes[c]))
        detail = f"largest change {changes[worst]:+.3f} ({worst}){_baseline_spread(n.dice.get('baseline', {}))}"
        out.append(Finding(claim, detail, abs(changes[worst]) <= 0.02))
    return out


def _baseline_spread(row: dict[str, Any]) -> str:
    """The baseline's bootstrap interval and volume count, to judge a change against (empty if unknown)."""
    if row.get("ci_low") in (None, "") or row.get("ci_high") in (None, ""):
        return ""
    return (f"; the baseline's 95 % interval is [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}] "
            f"over {row.get('n_volumes', '?')} volumes")


def check_findings(upstream: Sequence[dict[str, Any]], downstream: Sequence[dict[str, Any]] = (),
                   changed: dict[str, float] | None = None) -> list[Finding]:
    """Every checkable claim of the study on this run (``changed``: fraction of voxels each condition changed)."""
    n = Numbers(upstream, downstream, changed)
    return [memorisation(n), noise_monotone(n), mode_collapse(n),
            blind_to_tumour(n, "boundary_blur", "tumour boundary blur"),
            blind_to_tumour(n, "radial_gradient", "radial gradients inside the tumour"),
            *downstream_findings(n)]
