"""Pixel-space sliced Wasserstein distance (Karras et al. 2018, used for medical images by Konz et al. 2024).

Images ``(N, H, W)`` in [0, 1] are decomposed into Laplacian pyramids down to 16 px; from each
level, ``descriptors`` random 7 x 7 patches per image are taken, normalised per level and set
(zero mean, unit standard deviation, as ProGAN does), and the sliced Wasserstein distance between
the two sets of descriptors is averaged over ``repeats`` x ``directions`` random unit projections.
The result is the mean over levels. Lower is better.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._checks import MetricInputError

PATCH = 7


def laplacian_pyramid(image: np.ndarray, min_size: int = 16) -> list[np.ndarray]:
    """Band-pass levels (fine to coarse) plus the coarsest low-pass image."""
    levels = []
    current = np.asarray(image, dtype=np.float64)
    while min(current.shape) // 2 >= min_size:
        low = ndimage.gaussian_filter(current, 1.0)[::2, ::2]
        up = ndimage.zoom(low, (current.shape[0] / low.shape[0], current.shape[1] / low.shape[1]), order=1)
        levels.append(current - up)
        current = low
    levels.append(current)
    return levels


def patch_descriptors(level: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random 7 x 7 patches of one level, flattened to rows."""
    h, w = level.shape
    ys = rng.integers(0, h - PATCH + 1, count)
    xs = rng.integers(0, w - PATCH + 1, count)
    return np.stack([level[y:y + PATCH, x:x + PATCH].ravel() for y, x in zip(ys, xs, strict=True)])


def normalise(descriptors: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation over the whole descriptor set (ProGAN's ``finalize``)."""
    centred = descriptors - descriptors.mean()
    std = centred.std()
    return centred / std if std > 0 else centred


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Mean over unit ``directions`` (D x K) of the 1D Wasserstein-1 distance of the projections.

    Sets of different sizes are compared through their quantile functions on a common grid.
    """
    pa, pb = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)
    if len(pa) != len(pb):
        q = np.linspace(0, 1, max(len(pa), len(pb)))
        pa = np.quantile(pa, q, axis=0)
        pb = np.quantile(pb, q, axis=0)
    return float(np.abs(pa - pb).mean())


def pixel_swd(reference, generated, *, descriptors: int = 128, directions: int = 128, repeats: int = 4,
              min_size: int = 16, seed: int = 0) -> float:
    """Sliced Wasserstein distance between Laplacian-pyramid patch descriptors of two image sets."""
    ref, gen = np.asarray(reference, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if ref.ndim != 3 or gen.ndim != 3:
        raise MetricInputError(f"pixel_swd needs image stacks (N, H, W), got {ref.shape} and {gen.shape}")
    if ref.shape[1:] != gen.shape[1:]:
        raise MetricInputError(f"image sizes differ: {ref.shape[1:]} and {gen.shape[1:]}")
    if min(ref.shape[1:]) < max(min_size, PATCH):
        raise MetricInputError(f"images of {ref.shape[1:]} are smaller than {max(min_size, PATCH)} px")
    rng = np.random.default_rng(seed)
    pyramids = [[laplacian_pyramid(img, min_size) for img in stack] for stack in (ref, gen)]
    distances = []
    for level in range(len(pyramids[0][0])):
        # patch positions depend only on (seed, level, image index): identical sets give exactly 0
        sets = [normalise(np.concatenate([patch_descriptors(p[level], descriptors, np.random.default_rng([seed, level, i]))
                                          for i, p in enumerate(pyr)])) for pyr in pyramids]
        values = []
        for _ in range(repeats):
            dirs = rng.standard_normal((PATCH * PATCH, directions))
            dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
            values.append(sliced_wasserstein(sets[0], sets[1], dirs))
        distances.append(np.mean(values))
    return float(np.mean(distances))
