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


def slice_dice(pred: np.ndarray, truth: np.ndarray, axis: int = 0) -> np.ndarray:
    """Smoothed Dice of each slice along ``axis`` (float64, one value per slice)."""
    p = np.moveaxis(np.asarray(pred) > 0, axis, 0).reshape(np.shape(pred)[axis], -1)
    g = np.moveaxis(np.asarray(truth) > 0, axis, 0).reshape(np.shape(truth)[axis], -1)
    inter = np.count_nonzero(p & g, axis=1)
    return (2.0 * inter + 1.0) / (np.count_nonzero(p, axis=1) + np.count_nonzero(g, axis=1) + 1.0)
