"""Ground-truth-free segmentation quality (EvaNySeg, SPEC section 5): predict a mask's Dice from image + mask.

``predict_dice(image, mask)`` gives the volume's predicted Dice; ``predict_slices`` the per-slice
breakdown; ``evanyseg_score(image)`` segments first (built-in or given segmenter) and then predicts
the Dice of that segmentation, the study's downstream score.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .dice import dice_score, slice_dice
from .model import QualityPredictor, SliceScores, check_pair, load_predictor

__all__ = ["QualityPredictor", "SliceScores", "check_pair", "default_predictor", "dice_score", "evanyseg_score",
           "load_predictor", "predict_dice", "predict_slices", "slice_dice"]


@lru_cache(maxsize=1)
def default_predictor() -> QualityPredictor:
    """The shipped predictor, loaded once per process."""
    return load_predictor()


def predict_slices(image: np.ndarray, mask: np.ndarray, *, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
                   predictor: QualityPredictor | None = None) -> SliceScores:
    """Predicted Dice of each slice the mask touches (with its test-time spread and area)."""
    check_pair(image, mask)  # bad input fails before any model is loaded
    return (predictor or default_predictor()).predict_slices(image, mask, spacing_zyx)


def predict_dice(image: np.ndarray, mask: np.ndarray, *, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
                 predictor: QualityPredictor | None = None) -> float:
    """Predicted Dice of ``mask`` on ``image`` (the volume score from its per-slice predictions)."""
    return predict_slices(image, mask, spacing_zyx=spacing_zyx, predictor=predictor).volume_score()


def evanyseg_score(image: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0), *, segmenter=None,
                   predictor: QualityPredictor | None = None) -> tuple[float, np.ndarray]:
    """Segment ``image`` and predict the Dice of that segmentation: (score, mask); nan when nothing is found."""
    model = segmenter if segmenter is not None else _default_segmenter()
    mask = model.segment(image, spacing_zyx)
    if not mask.any():
        return float("nan"), mask
    return predict_dice(image, mask, spacing_zyx=spacing_zyx, predictor=predictor), mask


@lru_cache(maxsize=1)
def _default_segmenter():
    from ..segment import load_segmenter

    return load_segmenter()
