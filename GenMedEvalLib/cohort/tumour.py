"""Synthetic tumours with a known mask: lobulated shape, necrotic core, enhancing rim, oedema."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class TumourInfo:
    """Where the tumour is and how big: centre (array index z, y, x), diameter in mm, voxels."""

    centre: tuple[int, int, int]
    diameter_mm: float
    voxels: int


def pick_centre(wm: np.ndarray, brain: np.ndarray, hemisphere: np.ndarray, rng: np.random.Generator,
                margin_vox: int) -> tuple[int, int, int]:
    """A random white-matter voxel in the given hemisphere, at least ``margin_vox`` inside the brain."""
    inner = ndimage.binary_erosion(brain, iterations=max(margin_vox, 1))
    candidates = np.argwhere((wm > 0.5) & inner & hemisphere)
    if len(candidates) == 0:
        candidates = np.argwhere(inner & hemisphere)
    return tuple(int(v) for v in candidates[rng.integers(len(candidates))])


def lobulated_distance(shape, centre, radius_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Normalised distance to the centre (1 at the tumour surface) with smooth random lobulation."""
    grid = np.indices(shape, dtype=np.float32)
    dist = np.sqrt(sum((grid[a] - centre[a]) ** 2 for a in range(3))) / radius_vox
    lobes = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=max(radius_vox / 2.5, 1.0))
    lobes /= lobes.std() + 1e-8
    return dist * (1.0 + 0.22 * lobes)


def add_tumour(t1: np.ndarray, brain: np.ndarray, centre, radius_vox: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint a tumour into ``t1``: returns the new image and the tumour mask (core + rim).

    Core (necrosis) is dark and smooth, the rim (enhancing tissue) bright and grainy, the
    surrounding oedema darker than white matter with a soft edge, all restricted to the brain.
    """
    shape = t1.shape
    d = lobulated_distance(shape, centre, radius_vox, rng)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.8)
    texture /= texture.std() + 1e-8
    out = t1.copy()
    oedema = (d < 1.7) & (d >= 1.0) & brain
    weight = np.clip((1.7 - d) / 0.7, 0, 1) * oedema
    out = out * (1 - 0.35 * weight) + 0.02 * texture * weight
    rim = (d < 1.0) & (d >= 0.55) & brain
    core = (d < 0.55) & brain
    out[rim] = 0.95 + 0.08 * texture[rim]
    out[core] = 0.22 + 0.03 * texture[core]
    mask = rim | core
    return np.clip(out, 0, None).astype(np.float32), mask.astype(np.uint8)
