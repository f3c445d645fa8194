"""The downstream table of a sweep: per volume and per condition, the true Dice beside the predicted Dice.

In Phase 1 the tumour masks of the perturbed real images are known (the perturbations keep the
mask), so each segmentation gets its true Dice (``quality.dice_score``, smoothed) beside the quality
predictor's estimate and the predictor's error (predicted - true). A volume where the segmenter finds
nothing stays in: its true Dice is that of an empty mask (about 0 for a tumour, 1 for a tumour-free
volume), its predicted Dice ``EMPTY_PREDICTION`` (the predictor does not judge an empty mask).
Set-level conditions re-index the volumes' own records, so their true Dice comes from each volume's
own mask. Bootstrap 95 % intervals resample volumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .stats import bootstrap_ci

#: the predicted Dice of an empty segmentation: there is nothing to judge, and nothing was found
EMPTY_PREDICTION = 0.0


@dataclass(frozen=True)
class VolumeDice:
    """One segmented volume under one condition."""

    condition: str
    volume: str
    source: str
    predicted_dice: float
    true_dice: float | None
    empty_segmentation: bool

    @property
    def error(self) -> float | None:
        return None if self.true_dice is None else self.predicted_dice - self.true_dice

    def row(self) -> dict[str, Any]:
        """The record as a table row (with the error)."""
        return {**asdict(self), "error": None if self.error is None else round(self.error, 6)}


def has_truth(member) -> bool:
    """Whether a set member's tumour mask is known (a label file), so its true Dice exists."""
    case = getattr(member, "case", None)
    if case is not None:
        return getattr(case, "label", None) is not None
    return getattr(member.item, "mask", None) is not None


def volume_dice(condition: str, members: Sequence, scores: Sequence[float], masks: Mapping[str, np.ndarray],
                source: str = "eval") -> list[VolumeDice]:
    """Records of one condition's segmented members; ``masks[f"{condition}/{name}"]`` is each segmentation."""
    from ..quality import dice_score

    out = []
    for member, score in zip(members, scores, strict=True):
        mask = masks[f"{condition}/{member.item.name}"]
        empty = not np.any(mask)
        predicted = float(score) if np.isfinite(score) else EMPTY_PREDICTION
        truth = float(dice_score(mask, member.mask)) if has_truth(member) else None
        out.append(VolumeDice(condition, member.item.name, source, predicted, truth, empty))
    return out


def reindex(condition: str, provenance: Sequence, sources: Mapping[str, Sequence[VolumeDice] | None]
            ) -> list[VolumeDice]:
    """A set-level condition's records: each (source, index) of its provenance, with that volume's own Dice.

    Entries whose source was not segmented (no train set, or beyond ``downstream.max_volumes``) are left out.
    """
    out = []
    for source, index in provenance:
        records = sources.get(source)
        if records is not None and index < len(records):
            out.append(replace(records[index], condition=condition))
    return out


def _interval(values: np.ndarray, bootstrap: int, seed: int) -> tuple[float | None, float | None]:
    ci = bootstrap_ci(values, bootstrap=bootstrap, seed=seed) if len(values) else None
    return (None, None) if ci is None else ci


def summarise(records: Sequence[VolumeDice], *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Per condition: mean predicted and true Dice, mean error and MAE, each with its bootstrap 95 % interval."""
    predicted = np.array([r.predicted_dice for r in records], float)
    with_truth = [r for r in records if r.true_dice is not None]
    true = np.array([r.true_dice for r in with_truth], float)
    error = np.array([r.error for r in with_truth], float)
    out: dict[str, Any] = {"n_volumes": len(records), "n_empty": sum(r.empty_segmentation for r in records),
                           "n_true": len(with_truth)}
    for name, values in (("predicted_dice", predicted), ("true_dice", true), ("error", error),
                         ("mae", np.abs(error))):
        low, high = _interval(values, bootstrap, seed)
        out[name] = float(values.mean()) if len(values) else None
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    return out


def add_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each condition row with its change of mean predicted and true Dice from the baseline (the first row)."""
    base = rows[0] if rows else {}
    for row in rows:
        for name in ("predicted_dice", "true_dice"):
            value, ref = row.get(name), base.get(name)
            row[name.replace("_dice", "_change")] = None if value is None or ref is None else round(value - ref, 6)
    return rows


def touched_fraction(originals: Sequence[np.ndarray], perturbed: Sequence, info: Sequence,
                     directions: Sequence | None = None) -> dict[str, float | int]:
    """How many evaluated slices a per-volume condition changed: slices whose pixels differ from the original's.

    ``info``: the ``SliceInfo`` (volume, plane, index) of every slice the sweep encoded for the
    perturbed set; ``directions``: each volume's direction matrix, which maps planes to array axes.
    """
    from ..features.slicing import plane_axes

    touched = 0
    for item in info:
        after = np.asarray(getattr(perturbed[item.volume], "array", perturbed[item.volume]))
        axis = plane_axes(None if directions is None else directions[item.volume])[item.plane]
        before = np.take(np.asarray(originals[item.volume]), item.index, axis=axis)
        touched += not np.array_equal(np.take(after, item.index, axis=axis), before)
    return {"fraction": touched / len(info) if info else 0.0, "touched": int(touched), "evaluated": len(info)}
