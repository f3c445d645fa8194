"""Training and test pairs for the quality predictor: (image, mask) with the mask's true Dice.

Masks come from two sources, as SPEC section 5 asks: the segmenter's own predictions (on the clean
image and on a noisy or blurred copy, so bad predictions occur) and perturbed ground-truth masks
(``masks.random_masks``: Dice spread evenly over 0..1). Each pair becomes per-slice crops with the
slice's Dice as target; the pair's volume Dice is kept for volume-level evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..progress import progress
from ..segment.slices import slice_axis
from .crops import slice_crops
from .dice import dice_from_counts, dice_score, slice_counts, split_from_counts
from .masks import random_masks


@dataclass
class QualityData:
    """Slice crops ``(N, 2, S, S)`` with slice Dice and split targets; per pair: true volume Dice.

    ``targets`` holds each slice's Dice, ``splits`` its (precision, share) (``dice.split_targets``).
    """

    inputs: list[np.ndarray] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    splits: list[np.ndarray] = field(default_factory=list)
    areas: list[np.ndarray] = field(default_factory=list)
    volume_dice: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, image: np.ndarray, mask: np.ndarray, truth: np.ndarray, spacing, source: str, **crop) -> None:
        """Add one (image, mask) pair judged against ``truth``."""
        crops = slice_crops(image, mask, spacing, **crop)
        counts = [c[crops.index] for c in slice_counts(mask, truth, axis=crops.axis)]  # once for both targets
        self.inputs.append(crops.inputs.astype(np.float16))
        self.targets.append(dice_from_counts(*counts).astype(np.float32))
        self.splits.append(split_from_counts(*counts).astype(np.float32))
        self.areas.append(crops.areas)
        self.volume_dice.append(dice_score(mask, truth))
        self.sources.append(source)

    def slices(self) -> tuple[np.ndarray, np.ndarray]:
        """All slice inputs (float16) and slice Dice targets, stacked."""
        return np.concatenate(self.inputs), np.concatenate(self.targets)

    def split_slices(self) -> np.ndarray:
        """All slices' (precision, share) targets ``(N, 2)``, stacked in the order of ``slices``."""
        return np.concatenate(self.splits)

    def __len__(self) -> int:
        return len(self.volume_dice)


def degrade(image01: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A randomly noised or blurred copy (Gaussian or Rician noise up to 0.15, or blur): harder to segment."""
    from scipy import ndimage

    kind = rng.choice(["gaussian", "rician", "blur"])
    if kind == "blur":
        return ndimage.gaussian_filter(image01, float(rng.uniform(0.8, 2.0))).astype(np.float32), "blur"
    sigma = float(rng.uniform(0.03, 0.15))
    noisy = image01 + rng.normal(0, sigma, image01.shape)
    if kind == "rician":
        noisy = np.sqrt(noisy**2 + rng.normal(0, sigma, image01.shape) ** 2)
    return noisy.astype(np.float32), f"{kind}{sigma:.2f}"


def case_pairs(data: QualityData, image01: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
               rng: np.random.Generator, *, n_masks: int, segmenter=None, noise_prob: float = 0.3,
               skull_prob: float = 0.5, **crop) -> None:
    """Add ``n_masks`` perturbed-truth pairs and, with a segmenter, its clean and degraded predictions.

    Half the images get a bright skull-like shell (clinical MRI is not skull-stripped and tumours
    often touch the skull, which changes a crop's intensity range), some are noised or blurred.
    """
    from ..segment.train import add_skull

    axis = slice_axis(spacing)
    foreground = image01 > 0.05
    with_skull = add_skull(image01, rng)
    for mask, _ in random_masks(truth, axis, n_masks, rng, foreground=foreground):
        image = with_skull if rng.random() < skull_prob else image01
        image = image if rng.random() > noise_prob else degrade(image, rng)[0]
        data.add(image, mask, truth, spacing, "perturbed", **crop)
    if segmenter is None:
        return
    for image, source in ((with_skull if rng.random() < skull_prob else image01, "segmenter"), degrade(image01, rng)):
        predicted = segmenter.segment(image, spacing)
        if predicted.any():
            data.add(image, predicted, truth, spacing, f"segmenter:{source}", **crop)


def build_quality_data(cases: Sequence[tuple[np.ndarray, np.ndarray, Sequence[float]]], *, n_masks: int, seed: int,
                       segmenter=None, show_progress: bool = True, **crop) -> QualityData:
    """Pairs for every case that has a tumour; deterministic in ``seed``."""
    data = QualityData()
    rng = np.random.default_rng(seed)
    for image01, truth, spacing in progress(list(cases), desc="quality pairs", enable=None if show_progress else False):
        if np.any(truth):
            case_pairs(data, image01, truth, spacing, rng, n_masks=n_masks, segmenter=segmenter, **crop)
    return data
