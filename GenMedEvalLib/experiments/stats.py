"""The significance tests behind the findings: paired Wilcoxon over volumes, bootstrap intervals, z of a change.

Every test returns a ``Test``: its name, the sample size, the effect, the p-value or interval, and
whether the sample could decide at all (``testable``). A Wilcoxon signed-rank test on n non-zero
paired differences cannot reach p < 0.05 two-sided below n = 6 (the smallest exact p is 2 / 2^n),
so smaller samples, and samples whose differences are all 0 (a tie), are "not testable at this size".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
#: |z| at or beyond this: the change lies outside the baseline's 95 % bootstrap interval (1.96, rounded up)
Z_LIMIT = 2.0
#: fewest non-zero paired differences for which a two-sided Wilcoxon test can reach p < 0.05 (2 / 2^6 = 0.031)
MIN_PAIRED = 6
#: fewest volumes per set for an unpaired bootstrap interval to mean anything
MIN_UNPAIRED = 6
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Test:
    """One significance test: ``effect`` is the mean change (after - before), ``sign`` its significant direction.

    ``sign`` is +1 or -1 when the change is significant, 0 when it is not, None when not testable.
    """

    name: str
    n: int
    effect: float | None
    ci: tuple[float, float] | None = None
    p: float | None = None
    z: float | None = None
    sign: int | None = None
    reason: str = ""
    unit: str = "volumes"

    @property
    def testable(self) -> bool:
        return self.sign is not None

    def describe(self, named: bool = True) -> str:
        """``name: effect [ci], p / z, n`` in one phrase, as printed beside a verdict."""
        parts = [self.name] if named else []
        if self.effect is not None:
            parts.append(f"change {self.effect:+.3f}")
        if self.ci is not None:
            parts.append(f"95 % CI [{self.ci[0]:+.3f}, {self.ci[1]:+.3f}]")
        if self.p is not None:
            parts.append(f"p {self.p:.3g}")
        if self.z is not None:
            parts.append(f"z {self.z:+.2f}")
        parts.append(f"n {self.n} {self.unit}")
        text = ", ".join(parts)
        return f"{text} ({self.reason})" if self.reason else text


def bootstrap_ci(values: Sequence[float], *, bootstrap: int = BOOTSTRAP, seed: int = 0,
                 statistic=np.mean) -> tuple[float, float] | None:
    """Percentile 95 % interval of ``statistic`` over volumes resampled with replacement (None: no data)."""
    data = np.asarray(values, float)
    if len(data) == 0 or bootstrap <= 0:
        return None
    rng = np.random.default_rng(seed)
    draws = statistic(data[rng.integers(0, len(data), (bootstrap, len(data)))], axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def paired_test(before: Sequence[float], after: Sequence[float], *, seed: int = 0) -> Test:
    """Wilcoxon signed-rank test (scipy, two-sided) of ``after - before`` over the same volumes.

    Zero differences are dropped (``zero_method="wilcox"``); fewer than ``MIN_PAIRED`` non-zero
    differences is not testable. The mean difference's paired bootstrap interval is printed beside it.
    """
    from scipy.stats import wilcoxon

    if len(before) != len(after):
        raise ValueError(f"paired samples differ in length: {len(before)} vs {len(after)}")
    diff = np.asarray(after, float) - np.asarray(before, float)
    diff[np.abs(diff) <= 1e-12] = 0.0  # float noise is no change
    nonzero = int(np.count_nonzero(diff))
    effect = float(diff.mean()) if len(diff) else None
    ci = bootstrap_ci(diff, seed=seed)
    name = "Wilcoxon signed-rank, paired over volumes"
    if nonzero == 0:
        return Test(name, len(diff), effect, ci, reason="a tie: every paired difference is 0" if len(diff) else "no volumes")
    if nonzero < MIN_PAIRED:
        return Test(name, len(diff), effect, ci,
                    reason=f"{nonzero} non-zero differences; p < 0.05 needs at least {MIN_PAIRED}")
    p = float(wilcoxon(diff, zero_method="wilcox").pvalue)
    return Test(name, len(diff), effect, ci, p=p, sign=_rank_sign(diff) if p < ALPHA else 0)


def _rank_sign(diff: np.ndarray) -> int:
    """The direction a signed-rank test found: the sign of (positive - negative rank sums) of the non-zero differences."""
    from scipy.stats import rankdata

    d = diff[diff != 0]
    ranks = rankdata(np.abs(d))
    return int(np.sign(ranks[d > 0].sum() - ranks[d < 0].sum()))


def unpaired_bootstrap(before: Sequence[float], after: Sequence[float], *, seed: int = 0,
                       bootstrap: int = BOOTSTRAP) -> Test:
    """Bootstrap 95 % interval of mean(after) - mean(before), each set resampled on its own.

    For sets that hold different volumes (set-level conditions); significant when the interval excludes 0.
    """
    a, b = np.asarray(before, float), np.asarray(after, float)
    name = "bootstrap of the difference of means over volumes"
    n = min(len(a), len(b))
    effect = float(b.mean() - a.mean()) if n else None
    if n < MIN_UNPAIRED:
        return Test(name, n, effect, reason=f"{n} volumes in the smaller set; at least {MIN_UNPAIRED} needed")
    rng = np.random.default_rng(seed)
    draws = (b[rng.integers(0, len(b), (bootstrap, len(b)))].mean(axis=1)
             - a[rng.integers(0, len(a), (bootstrap, len(a)))].mean(axis=1))
    low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    if low == high == 0.0:
        return Test(name, n, effect, (low, high), reason="a tie: both sets hold the same values")
    sign = 1 if low > 0 else -1 if high < 0 else 0
    return Test(name, n, effect, (low, high), sign=sign)


def z_test(z: float | None, effect: float | None, n: int, what: str = "z of the change from baseline") -> Test:
    """The project's z-score (change / the baseline's bootstrap standard deviation) as a test: |z| >= 2.

    ``n``: the evaluated set's slices behind the metric.
    """
    unit = "evaluated slices"
    if z is None:
        return Test(what, n, effect, reason="no bootstrap spread: z undefined", unit=unit)
    return Test(what, n, effect, z=z, sign=int(np.sign(z)) if abs(z) >= Z_LIMIT else 0, unit=unit)


def spread(low: float | None, high: float | None) -> float | None:
    """A bootstrap standard deviation from a 95 % percentile interval: (high - low) / 3.92."""
    if low is None or high is None or high <= low:
        return None
    return (high - low) / 3.92


def z_difference(a: float, s_a: float | None, b: float, s_b: float | None, n: int) -> Test:
    """z of ``b - a`` for two conditions' estimates with bootstrap spreads (independent resamples)."""
    if s_a is None or s_b is None:
        return Test("z of the step between levels", n, b - a, reason="no bootstrap spread")
    z = (b - a) / float(np.hypot(s_a, s_b))
    return z_test(z, b - a, n, "z of the step between levels (both intervals' spreads)")
