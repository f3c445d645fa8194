"""Dice as the study defines it, with +1 smoothing: (2|P and G| + 1) / (|P| + |G| + 1).

The smoothing makes two empty masks agree (Dice 1) and keeps every value defined.
"""

from __future__ import annotations

import numpy as np


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Smoothed Dice of two binary masks of the same shape."""
    p, g = np.asarray(pred) > 0, np.asarray(truth) > 0
    if p.shape != g.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {g.shape}")
    inter = int(np.count_nonzero(p & g))
    return (2.0 * inter + 1.0) / (int(np.count_nonzero(p)) + int(np.count_nonzero(g)) + 1.0)


def slice_counts(pred: np.ndarray, truth: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice along ``axis``: voxels in the prediction, in the truth, and in both (int64 each)."""
    if np.shape(pred) != np.shape(truth):
        raise ValueError(f"masks differ in shape: {np.shape(pred)} vs {np.shape(truth)}")
    p = np.moveaxis(np.asarray(pred) > 0, axis, 0).reshape(np.shape(pred)[axis], -1)
    g = np.moveaxis(np.asarray(truth) > 0, axis, 0).reshape(np.shape(truth)[axis], -1)
    return (np.count_nonzero(p, axis=1).astype(np.int64), np.count_nonzero(g, axis=1).astype(np.int64),
            np.count_nonzero(p & g, axis=1).astype(np.int64))


def slice_dice(pred: np.ndarray, truth: np.ndarray, axis: int = 0) -> np.ndarray:
    """Smoothed Dice of each slice along ``axis`` (float64, one value per slice)."""
    return dice_from_counts(*slice_counts(pred, truth, axis))


def dice_from_counts(n_pred: np.ndarray, n_truth: np.ndarray, inter: np.ndarray) -> np.ndarray:
    """Smoothed Dice from per-slice counts (``slice_counts``)."""
    return (2.0 * inter + 1.0) / (n_pred + n_truth + 1.0)


def split_targets(pred: np.ndarray, truth: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per slice ``(precision, share)``: the fraction of the mask that is tumour, |P| / (|P| + |G|).

    The two numbers give a volume's Dice exactly from its slices: with mask areas P_s,
    2 sum(precision_s P_s) / sum(P_s / share_s) (see ``model.volume_dice_from``). Slices without mask get (0, 0).
    """
    return split_from_counts(*slice_counts(pred, truth, axis))


def split_from_counts(n_pred: np.ndarray, n_truth: np.ndarray, inter: np.ndarray) -> np.ndarray:
    """``(precision, share)`` per slice from per-slice counts (``slice_counts``)."""
    has = n_pred > 0
    out = np.zeros((len(n_pred), 2), np.float64)
    out[has, 0] = inter[has] / n_pred[has]
    out[has, 1] = n_pred[has] / (n_pred[has] + n_truth[has])
    return out
