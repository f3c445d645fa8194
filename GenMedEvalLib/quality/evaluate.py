"""How well predicted Dice matches true Dice: Pearson r, mean absolute error, a calibration plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import QualityData
from .model import QualityPredictor, SliceScores


@dataclass(frozen=True)
class Accuracy:
    """Volume-level agreement of predicted with true Dice over ``n`` pairs."""

    pearson_r: float
    mae: float
    n: int
    true: np.ndarray
    predicted: np.ndarray

    def summary(self) -> str:
        return f"Pearson r {self.pearson_r:.3f}, MAE {self.mae:.3f} over {self.n} masks"


def slice_scores(predictor: QualityPredictor, data: QualityData) -> list[SliceScores]:
    """The predictor's slice scores for every pair in ``data``."""
    return [predictor.score_inputs(inputs.astype(np.float32), areas)
            for inputs, areas in zip(data.inputs, data.areas, strict=True)]


def predict_volumes(predictor: QualityPredictor, data: QualityData) -> np.ndarray:
    """The predicted volume Dice of every pair in ``data``."""
    return np.asarray([scores.volume_score() for scores in slice_scores(predictor, data)])


def raw_volume_scores(predictor: QualityPredictor, data: QualityData) -> np.ndarray:
    """Each pair's volume score before the model's recalibration."""
    return np.asarray([scores.raw_volume_score() for scores in slice_scores(predictor, data)])


def accuracy(predictor: QualityPredictor, data: QualityData) -> Accuracy:
    """Pearson r and MAE between true and predicted volume Dice."""
    from scipy.stats import pearsonr

    true = np.asarray(data.volume_dice)
    predicted = predict_volumes(predictor, data)
    r = float(pearsonr(true, predicted)[0]) if len(true) > 2 else float("nan")
    return Accuracy(r, float(np.mean(np.abs(true - predicted))), len(true), true, predicted)


def calibration_plot(results: dict[str, Accuracy], path: str | Path) -> Path:
    """Predicted vs true Dice, one panel per data set, with the identity line; PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.2), squeeze=False)
    for ax, (name, acc) in zip(axes[0], results.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1)
        ax.scatter(acc.true, acc.predicted, s=12, alpha=0.7)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="true Dice", ylabel="predicted Dice",
               title=f"{name}\nr = {acc.pearson_r:.2f}, MAE = {acc.mae:.3f}, n = {acc.n}")
        ax.set_aspect("equal")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
