"""Per-slice crops around a mask, the quality network's input (as EvaNySeg crops to the mask's box).

For each slice (along the thick-slice axis) that the mask touches: a square window centred on the
mask's bounding box, ``1 + 2 * margin`` times its larger side (at least ``min_mm``), resampled to
``size`` x ``size`` pixels. Channel 0 is the image scaled to the crop's own 1st-99th percentiles
(so scanners and normalisations differ less), channel 1 the mask (bilinear, in [0, 1]). Resizing
every box to one size makes the network judge the mask's fit, not the tumour's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..segment.slices import in_plane_spacing, slice_axis


@dataclass(frozen=True)
class SliceCrops:
    """Network inputs ``(S, 2, size, size)`` float32, mask area per slice (pixels), slice indices, axis."""

    inputs: np.ndarray
    areas: np.ndarray
    index: np.ndarray
    axis: int


def _window(mask2d: np.ndarray, spacing_hw: tuple[float, float], margin: float, min_mm: float):
    """Centre (pixels) and half-sides (pixels) of the square crop window of one slice."""
    ys, xs = np.nonzero(mask2d)
    cy, cx = (ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0
    side_mm = max((ys.max() - ys.min() + 1) * spacing_hw[0], (xs.max() - xs.min() + 1) * spacing_hw[1])
    half_mm = max(side_mm * (0.5 + margin), min_mm / 2.0)
    return (cy, cx), (half_mm / spacing_hw[0], half_mm / spacing_hw[1])


def _sample(plane: np.ndarray, centre, half, size: int) -> np.ndarray:
    """Bilinear samples of ``plane`` on a ``size`` x ``size`` grid over the window (zeros outside)."""
    ty = centre[0] + np.linspace(-half[0], half[0], size)
    tx = centre[1] + np.linspace(-half[1], half[1], size)
    yy, xx = np.meshgrid(ty, tx, indexing="ij")
    return ndimage.map_coordinates(plane, [yy, xx], order=1, mode="constant", cval=0.0)


def scale_crop(crop: np.ndarray) -> np.ndarray:
    """The crop mapped from its 1st-99th percentiles to [0, 1]; flat crops become zeros."""
    lo, hi = np.percentile(crop, (1.0, 99.0))
    if hi - lo < 1e-6:
        return np.zeros_like(crop, dtype=np.float32)
    return np.clip((crop - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def slice_crops(image: np.ndarray, mask: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0), *,
                size: int = 64, margin: float = 0.5, min_mm: float = 16.0) -> SliceCrops:
    """Crops of every slice that ``mask`` touches; empty arrays when the mask is empty."""
    axis = slice_axis(spacing_zyx)
    img = np.moveaxis(np.asarray(image, dtype=np.float32), axis, 0)
    msk = np.moveaxis(np.asarray(mask) > 0, axis, 0)
    spacing_hw = in_plane_spacing(spacing_zyx, axis)
    index = np.nonzero(msk.any(axis=(1, 2)))[0]
    inputs = np.zeros((len(index), 2, size, size), np.float32)
    for row, s in enumerate(index):
        centre, half = _window(msk[s], spacing_hw, margin, min_mm)
        inputs[row, 0] = scale_crop(_sample(img[s], centre, half, size))
        inputs[row, 1] = np.clip(_sample(msk[s].astype(np.float32), centre, half, size), 0.0, 1.0)
    areas = msk[index].sum(axis=(1, 2)).astype(np.float64)
    return SliceCrops(inputs, areas, index.astype(np.int64), axis)
