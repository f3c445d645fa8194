"""Set-level perturbations (SPEC section 2): duplication, mode collapse, density shift.

Items are any objects (volumes, paths, names). Each function returns ``(new_items, provenance)``
where ``provenance[i] = (set_name, index)`` says where output item ``i`` came from ("eval": the
evaluated set, "train": the training set), so cached features can be re-indexed instead of
recomputed. A rate ``r`` of ``N`` items affects exactly ``round_half_up(r * N)`` items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ParameterError

Provenance = list[tuple[str, int]]


def count_for_rate(rate: float, n: int) -> int:
    """``round_half_up(rate * n)``: the exact number of items a rate affects."""
    if not 0.0 <= rate <= 1.0:
        raise ParameterError(f"rate must be in [0, 1], got {rate}")
    return int(np.floor(rate * n + 0.5))


def _identity(items: Sequence[Any]) -> Provenance:
    return [("eval", i) for i in range(len(items))]


def _materialise(items: Sequence[Any], provenance: Provenance, train_set: Sequence[Any] = ()) -> list[Any]:
    sources = {"eval": items, "train": train_set}
    return [sources[name][index] for name, index in provenance]


def external_duplication(items: Sequence[Any], *, rate: float, train_set: Sequence[Any], seed: int = 0):
    """Replace ``rate`` of the set by exact copies of training items (memorisation of training data)."""
    n_copy = count_for_rate(rate, len(items))
    if n_copy and not train_set:
        raise ParameterError("external_duplication needs a non-empty training set")
    rng = np.random.default_rng(seed)
    provenance = _identity(items)
    targets = rng.choice(len(items), size=n_copy, replace=False)
    sources = rng.choice(len(train_set), size=n_copy, replace=n_copy > len(train_set))
    for target, source in zip(targets, sources, strict=True):
        provenance[int(target)] = ("train", int(source))
    return _materialise(items, provenance, train_set), provenance


def internal_duplication(items: Sequence[Any], *, rate: float, seed: int = 0):
    """Overwrite ``rate`` of the set with copies of other members that are kept unchanged."""
    n = len(items)
    n_copy = count_for_rate(rate, n)
    if n_copy >= n and n_copy:
        raise ParameterError(f"internal_duplication rate {rate} leaves no member to copy from ({n} items)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    targets, keep = order[:n_copy], order[n_copy:]
    sources = rng.choice(keep, size=n_copy, replace=True)
    provenance = _identity(items)
    for target, source in zip(targets, sources, strict=True):
        provenance[int(target)] = ("eval", int(source))
    return _materialise(items, provenance), provenance


def _sample(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """``k`` indices from ``pool``: without replacement when possible, else with."""
    return np.sort(rng.choice(pool, size=k, replace=k > len(pool)))


def mode_collapse(items: Sequence[Any], *, labels: Sequence[Any], drop: Sequence[Any] | Any | None = None,
                  ratio: Sequence[float] | None = None, seed: int = 0):
    """Remove whole classes (default: the rarest), optionally re-balance the rest to ``ratio``.

    ``ratio`` lists the remaining classes' proportions from the rarest to the most frequent
    (the paper: drop the rarest class, then 1:5); classes are subsampled without replacement to
    the largest counts that keep the ratio.
    """
    if len(labels) != len(items):
        raise ParameterError(f"{len(labels)} labels for {len(items)} items")
    counts = Counter(labels)
    if drop is None:
        drop = [min(sorted(counts), key=lambda c: counts[c])]
    elif isinstance(drop, str) or not isinstance(drop, Sequence):
        drop = [drop]
    unknown = [d for d in drop if d not in counts]
    if unknown:
        raise ParameterError(f"class(es) {unknown} not among the labels {sorted(counts)}")
    labels_arr = np.asarray(labels, dtype=object)
    kept = [c for c in sorted(counts, key=lambda c: (counts[c], str(c))) if c not in drop]
    rng = np.random.default_rng(seed)
    if ratio is None:
        chosen = np.nonzero(~np.isin(labels_arr, list(drop)))[0]
    else:
        if len(ratio) != len(kept):
            raise ParameterError(f"ratio has {len(ratio)} parts for {len(kept)} remaining classes {kept}")
        pools = [np.nonzero(labels_arr == c)[0] for c in kept]
        unit = min(len(pool) / float(part) for pool, part in zip(pools, ratio, strict=True))
        chosen = np.sort(np.concatenate([_sample(rng, pool, int(np.floor(unit * part + 1e-9)))
                                         for pool, part in zip(pools, ratio, strict=True)]))
    provenance = [("eval", int(i)) for i in chosen]
    return _materialise(items, provenance), provenance


def density_shift(items: Sequence[Any], *, groups: Sequence[Any], proportions: Sequence[float], n: int | None = None,
                  seed: int = 0):
    """Resample the set so its acquisition groups (sorted by name) appear in ``proportions``.

    ``proportions`` may be fractions or percentages (10, 90). A group is drawn without
    replacement while it has enough members, with replacement beyond that.
    """
    if len(groups) != len(items):
        raise ParameterError(f"{len(groups)} group labels for {len(items)} items")
    names = sorted(set(groups))
    if len(proportions) != len(names):
        raise ParameterError(f"{len(proportions)} proportions for {len(names)} groups {names}")
    weights = np.asarray(proportions, dtype=float)
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ParameterError(f"proportions must be non-negative with a positive sum, got {list(proportions)}")
    weights = weights / weights.sum()
    total = len(items) if n is None else int(n)
    counts = np.floor(weights * total + 0.5).astype(int)
    counts[-1] = total - counts[:-1].sum()
    rng = np.random.default_rng(seed)
    groups_arr = np.asarray(groups, dtype=object)
    chosen = np.concatenate([_sample(rng, np.nonzero(groups_arr == g)[0], int(k)) for g, k in zip(names, counts, strict=True)])
    provenance = [("eval", int(i)) for i in chosen]
    return _materialise(items, provenance), provenance
