"""Contrast (mode) invention: grey- and white-matter-like ranges pushed in opposite directions."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def brain_mask(image: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Voxels above ``threshold`` (normalised intensity): the tissue of a skull-stripped scan.

    Dark CSF inside the brain falls below the threshold too; it belongs to neither tissue range,
    so filling those holes (a costly 3D operation) would change nothing but the time.
    """
    return image > threshold


def contrast_invention(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0),
                       seed: int = 0, strength: float = 0.07, gm_range=(20.0, 50.0), wm_range=(65.0, 95.0),
                       smooth: float = 1.0) -> np.ndarray:
    """Invent a contrast the data never had: GM-like intensities up, WM-like down (SPEC section 2).

    GM-like and WM-like voxels are the brain voxels whose intensity lies in the given percentile
    ranges. Their indicator maps are Gaussian-smoothed (``smooth`` mm) and each class moves
    towards the other by ``7.5 * strength`` times the GM-WM mean gap, so the gap becomes
    ``gap * (1 - 15 * strength)``: reduced to 25 % at 0.05, slightly inverted at 0.07 and
    inverted to -50 % at 0.1 (the paper's levels). The result is min-max re-normalised to the
    input's range. ``seed`` is unused (deterministic).
    """
    img = np.asarray(image, dtype=np.float32)
    brain = brain_mask(img)
    values = img[brain]
    if values.size < 10:
        return img.copy()
    # Percentiles from every 4th brain voxel: the same to well under 1 % of the range, 4x faster.
    sample = values[:: 4 if values.size > 40_000 else 1]
    gm_lo, gm_hi, wm_lo, wm_hi = np.percentile(sample, [gm_range[0], gm_range[1], wm_range[0], wm_range[1]])
    gm = brain & (img >= gm_lo) & (img <= gm_hi)
    wm = brain & (img >= wm_lo) & (img <= wm_hi)
    gap = float(img[wm].mean() - img[gm].mean()) if gm.any() and wm.any() else 0.0
    sigmas = [smooth / float(s) for s in spacing]
    # One filter of the signed class map: smoothing is linear, so this equals smoothing each map.
    signed = gm.astype(np.float32) - wm.astype(np.float32)
    weight = ndimage.gaussian_filter(signed, sigmas, output=np.float32)
    weight *= brain
    delta = 7.5 * float(strength) * gap
    out = img + np.float32(delta) * weight
    lo, hi = float(img.min()), float(img.max())
    span = float(out.max() - out.min())
    if span > 0:
        out = (out - out.min()) / span * (hi - lo) + lo
    return out.astype(np.float32)
