"""Quality-predictor pairs from real multi-contrast cases, built so the predictor learns masks, not texture.

For each case and each contrast (a predictor sees one contrast: the case's primary one at use), the
image is used as it is and as a thick-slice version (1 mm slices averaged to 3-7 mm, as clinical
scans are), with and without a skull-like shell. Pairs:

- perturbed ground-truth masks (``masks.random_masks``: Dice spread evenly over 0..1);
- *texture twins*: the image changed by the study's own perturbations (boundary blur sigma 1-3,
  radial gradient levels 1-3, Gaussian noise 0.01-0.05) with the ground truth or a perturbed mask.
  The target is the mask's Dice against the truth, which these changes do not alter, so the network
  is taught that tumour texture is not mask quality;
- *misplaced masks*: a tumour-sized blob elsewhere in the head (Dice 0), inside or outside the brain;
- the segmenter's predictions on the clean and on degraded copies (real errors).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..segment.slices import slice_axis
from .dataset import QualityData, degrade
from .masks import random_masks

TEXTURES = (("boundary_blur", "sigma", (1.0, 2.0, 3.0)), ("radial_gradient", "amplitude", (0.1, 0.2, 0.3)),
            ("gaussian_noise", "sigma", (0.01, 0.03, 0.05)))


def thick_slices(image: np.ndarray, truth: np.ndarray, spacing_zyx: Sequence[float], thickness: int
                 ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Average ``thickness`` consecutive axial slices (label: majority), as a clinical thick-slice scan."""
    n = image.shape[0] // thickness * thickness
    img = image[:n].reshape(-1, thickness, *image.shape[1:]).mean(axis=1)
    lab = truth[:n].reshape(-1, thickness, *truth.shape[1:]).mean(axis=1) >= 0.5
    return img.astype(np.float32), lab.astype(np.uint8), (spacing_zyx[0] * thickness, spacing_zyx[1], spacing_zyx[2])


def texture_twin(image: np.ndarray, truth: np.ndarray, spacing, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The image under one of the study's tumour or noise perturbations at a random paper level."""
    from ..perturb.registry import apply_perturbation

    name, param, levels = TEXTURES[rng.integers(len(TEXTURES))]
    value = float(levels[rng.integers(len(levels))])
    out = apply_perturbation(name, image, mask=truth, spacing=spacing, seed=int(rng.integers(1 << 31)), **{param: value})
    return out.astype(np.float32), f"{name}:{value}"


def misplaced_mask(truth: np.ndarray, foreground: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The truth's shape moved to a random place of the head that it does not overlap (Dice 0)."""
    coords = np.argwhere(truth > 0)
    lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
    blob = truth[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] > 0
    head = np.argwhere(foreground)
    for _ in range(20):
        centre = head[rng.integers(len(head))]
        start = centre - np.array(blob.shape) // 2
        if np.any(start < 0) or np.any(start + blob.shape > np.array(truth.shape)):
            continue
        out = np.zeros(truth.shape, np.uint8)
        out[tuple(slice(a, a + n) for a, n in zip(start, blob.shape, strict=True))] = blob
        if out.any() and not (out & (truth > 0)).any():
            return out
    return None


def real_case_pairs(data: QualityData, image01: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                    rng: np.random.Generator, *, n_masks: int = 12, n_twins: int = 6, segmenter=None,
                    contrast: str = "t1c", **crop) -> None:
    """Add one case-contrast's pairs (perturbed, texture twins, misplaced, segmenter) to ``data``."""
    from ..segment.train import add_skull

    spacing = tuple(float(s) for s in spacing)
    axis = slice_axis(spacing)
    foreground = image01 > 0.05
    for mask, _ in random_masks(truth, axis, n_masks, rng, foreground=foreground):
        image = add_skull(image01, rng) if rng.random() < 0.3 else image01
        data.add(image, mask, truth, spacing, "real-perturbed", **crop)
    masks = [truth] + [m for m, _ in random_masks(truth, axis, n_twins - 1, rng, foreground=foreground)]
    for mask in masks[:n_twins]:
        twin, name = texture_twin(image01, truth, spacing, rng)
        data.add(twin, mask, truth, spacing, f"real-twin:{name}", **crop)
    wrong = misplaced_mask(truth, ndimage.binary_dilation(foreground, iterations=3), rng)
    if wrong is not None:
        data.add(image01, wrong, truth, spacing, "real-misplaced", **crop)
    if segmenter is None:
        return
    for image, source in ((image01, "clean"), degrade(image01, rng), texture_twin(image01, truth, spacing, rng)):
        predicted = segmenter.segment_contrasts({contrast: image}, spacing)
        if predicted.any():
            data.add(image, predicted, truth, spacing, f"real-segmenter:{source}", **crop)


def real_quality_data(cases, *, seed: int, segmenter=None, n_masks: int = 12, n_twins: int = 6,
                      thick: Sequence[int] = (5,), show_progress: bool = True, **crop) -> QualityData:
    """Pairs for every case (``segment.realdata.RealCase``) and contrast, native and thick-sliced.

    Each case draws from its own generator (``seed`` and the case's name), so a case's pairs are the
    same whichever other cases are in the set (leave-one-out folds share them).
    """
    import zlib

    from ..progress import progress

    data = QualityData()
    jobs = [(case, name) for case in cases for name in case.contrasts]
    rngs = {case.name: np.random.default_rng([seed, zlib.crc32(case.name.encode())]) for case in cases}
    for case, name in progress(jobs, desc="real quality pairs", enable=None if show_progress else False):
        rng = rngs[case.name]
        image, truth, spacing = case.contrasts[name], case.mask, case.spacing_zyx
        real_case_pairs(data, image, truth, spacing, rng, n_masks=n_masks, n_twins=n_twins, segmenter=segmenter,
                        contrast=name, **crop)
        for t in thick:
            timg, ttruth, tspacing = thick_slices(image, truth, spacing, t)
            real_case_pairs(data, timg, ttruth, tspacing, rng, n_masks=n_masks // 2, n_twins=n_twins // 2,
                            segmenter=segmenter, contrast=name, **crop)
    return data


def merge(*parts: QualityData) -> QualityData:
    """One ``QualityData`` holding every pair of ``parts`` in order."""
    out = QualityData()
    for part in parts:
        for name in ("inputs", "targets", "splits", "areas", "volume_dice", "sources"):
            getattr(out, name).extend(getattr(part, name))
    return out

