"""Linear recalibration of the predicted volume Dice, fitted on cases the network never saw.

A regressor trained with MSE on a balanced Dice range still compresses its predictions towards
the middle (low Dice over-predicted, high Dice under-predicted). A least-squares line
``true = intercept + slope * predicted`` fitted on a separate calibration cohort (seed 3: neither
the training seed 2 nor the held-out seed 0) stretches them back. Stored in the checkpoint, applied
by ``SliceScores.volume_score``; slice-level outputs are left as the network gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from .dataset import QualityData
from .evaluate import raw_volume_scores
from .model import IDENTITY, QualityPredictor, apply_calibration

CALIBRATION_SEED = 3
MIN_PAIRS = 10


@dataclass(frozen=True)
class CalibrationFit:
    """The fitted line and the calibration set's mean absolute error before and after it."""

    intercept: float
    slope: float
    pairs: int
    mae_before: float
    mae_after: float

    def record(self, seed: int) -> dict[str, Any]:
        """What the checkpoint stores."""
        return {"intercept": self.intercept, "slope": self.slope, "pairs": self.pairs, "seed": seed,
                "mae_before": round(self.mae_before, 4), "mae_after": round(self.mae_after, 4)}


def fit_calibration(true: np.ndarray, raw: np.ndarray) -> CalibrationFit:
    """Least-squares line from raw predicted to true Dice; refuses too few pairs or a non-increasing fit."""
    true, raw = np.asarray(true, np.float64), np.asarray(raw, np.float64)
    keep = np.isfinite(true) & np.isfinite(raw)
    true, raw = true[keep], raw[keep]
    if len(true) < MIN_PAIRS or np.ptp(raw) == 0:
        raise ParameterError(f"calibration needs at least {MIN_PAIRS} pairs with varied predictions, got {len(true)}")
    slope, intercept = np.polyfit(raw, true, 1)
    if slope <= 0:
        raise ParameterError(f"calibration fit has slope {slope:.3f} <= 0: the predictions do not follow the Dice")
    after = np.array([apply_calibration(r, (intercept, slope)) for r in raw])
    return CalibrationFit(float(intercept), float(slope), len(true), float(np.mean(np.abs(true - raw))),
                          float(np.mean(np.abs(true - after))))


def calibrate_model(predictor: QualityPredictor, data: QualityData, *, out: str | Path | None = None,
                    seed: int = CALIBRATION_SEED) -> CalibrationFit:
    """Fit the recalibration of ``predictor`` on ``data`` and write the model with it to ``out``
    (default: the file it was loaded from), atomically."""
    fit = fit_calibration(np.asarray(data.volume_dice), raw_volume_scores(predictor, data))
    predictor.save(out or predictor.source, calibration=fit.record(seed))
    return fit


def check_cases(n_cases: int) -> None:
    """A calibration cohort needs at least 2 cases (a line through fewer is meaningless)."""
    if n_cases < 2:
        raise ParameterError(f"calibration needs at least 2 cases, got {n_cases}")


def calibration_cohort(n_cases: int, *, seed: int = CALIBRATION_SEED, segmenter=None) -> QualityData:
    """Calibration pairs: ``n_cases`` tumour cases of a cohort drawn with ``seed``, 6 perturbed masks each."""
    from .heldout import cohort_heldout

    check_cases(n_cases)
    return cohort_heldout(n_cases, 6, seed=seed, segmenter=segmenter)


__all__ = ["CALIBRATION_SEED", "IDENTITY", "CalibrationFit", "calibrate_model", "calibration_cohort", "check_cases",
           "fit_calibration"]
