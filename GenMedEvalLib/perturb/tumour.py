"""Mask-local perturbations of the tumour (SPEC section 2): boundary blur and radial gradient.

Both are spacing-aware (``spacing`` in array-axis order (z, y, x), mm) and work on the crop
around the tumour only, so they stay fast on large volumes and leave every voxel outside their
support bit-identical. ``mode="slice"`` works in-plane per axial slice, as the paper does;
``mode="3d"`` works in 3D.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError, ParameterError

MODES = ("slice", "3d")


def require_mask(mask: np.ndarray | None, image: np.ndarray, what: str) -> np.ndarray:
    """The boolean tumour mask, checked: present, same shape as the image, not empty."""
    if mask is None:
        raise InputError(f"{what} needs a tumour mask (--mask)")
    mask = np.asarray(mask)
    if mask.shape != image.shape:
        raise InputError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    binary = mask > 0
    if not binary.any():
        raise InputError(f"mask is empty; {what} needs a non-empty tumour mask")
    return binary


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def tumour_crop(mask: np.ndarray, spacing, margin_mm: float) -> tuple[slice, ...]:
    """Bounding box of the mask grown by ``margin_mm`` per axis (at least one voxel), clipped."""
    idx = np.nonzero(mask)
    crop = []
    for axis, size in enumerate(mask.shape):
        pad = int(np.ceil(margin_mm / float(spacing[axis]))) + 1
        crop.append(slice(max(int(idx[axis].min()) - pad, 0), min(int(idx[axis].max()) + pad + 1, size)))
    return tuple(crop)


def boundary_distance(mask: np.ndarray, spacing, mode: str) -> np.ndarray:
    """Distance in mm from each voxel to the tumour boundary (inside and outside), per slice or 3D.

    Inside the mask it is the distance to the nearest background voxel, outside the distance to
    the nearest tumour voxel. In slice mode, slices without tumour get ``inf``.
    """
    if mode == "3d":
        inside = ndimage.distance_transform_edt(mask, sampling=spacing)
        outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
        return np.where(mask, inside, outside)
    dist = np.full(mask.shape, np.inf)
    for z in np.nonzero(mask.any(axis=(1, 2)))[0]:
        plane = mask[z]
        inside = ndimage.distance_transform_edt(plane, sampling=spacing[1:])
        outside = ndimage.distance_transform_edt(~plane, sampling=spacing[1:])
        dist[z] = np.where(plane, inside, outside)
    return dist


def boundary_blur(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
                  sigma: float = 1.0, band: float = 3.0, mode: str = "slice") -> np.ndarray:
    """Blur the tumour boundary: voxels within ``band`` mm of it take a Gaussian blur of ``sigma`` mm.

    The band is selected with Euclidean distance transforms inside and outside the mask; the
    blur is in-plane per slice (``mode="slice"``, the paper's sigma 1, 2, 3) or 3D with a
    per-axis sigma ``sigma / spacing``. Voxels farther than ``band`` from the boundary keep
    their exact values; on voxels coarser than ``band`` the band widens to one voxel either side
    of the boundary (else nothing would change). ``seed`` is unused (the operation is deterministic).
    """
    _check_mode(mode)
    binary = require_mask(mask, image, "boundary_blur")
    spacing = tuple(float(s) for s in spacing)
    out = np.array(image, dtype=np.float32, copy=True)
    crop = tumour_crop(binary, spacing, max(band, max(spacing)) + 4.0 * sigma)
    sub_mask = binary[crop]
    # at least the voxel layers either side of the boundary, so coarse voxels (4 mm > 3 mm band) still blur
    reach = max(band, max(spacing[1:]) if mode == "slice" else min(spacing))
    in_band = boundary_distance(sub_mask, spacing, mode) <= reach
    sub_image = out[crop]
    per_axis = [sigma / s for s in spacing]
    if mode == "slice":
        per_axis[0] = 0.0
    blurred = ndimage.gaussian_filter(sub_image, sigma=per_axis, mode="nearest")
    sub_image[in_band] = blurred[in_band]
    return out


def _radial_distance(mask: np.ndarray, spacing, mode: str) -> np.ndarray:
    """Distance in mm of each tumour voxel to the tumour's centre of mass (per slice or 3D)."""
    grids = np.indices(mask.shape, dtype=np.float64)
    r = np.zeros(mask.shape)
    if mode == "3d":
        centre = ndimage.center_of_mass(mask)
        r = np.sqrt(sum(((grids[a] - centre[a]) * spacing[a]) ** 2 for a in range(3)))
        return r
    for z in np.nonzero(mask.any(axis=(1, 2)))[0]:
        cy, cx = ndimage.center_of_mass(mask[z])
        r[z] = np.sqrt(((grids[1][z] - cy) * spacing[1]) ** 2 + ((grids[2][z] - cx) * spacing[2]) ** 2)
    return r


def radial_gradient(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
                    amplitude: float = 0.2, frequency: float = 1.0, mode: str = "slice") -> np.ndarray:
    """Multiply tumour intensities by ``1 + amplitude * sin(2 pi frequency r / r_max)``.

    ``r`` is the distance (mm) to the tumour's centre of mass, per slice (the paper) or in 3D,
    and ``r_max`` its maximum inside the tumour (per slice in slice mode). Only voxels inside
    the mask change. ``seed`` is unused (deterministic).
    """
    _check_mode(mode)
    binary = require_mask(mask, image, "radial_gradient")
    spacing = tuple(float(s) for s in spacing)
    out = np.array(image, dtype=np.float32, copy=True)
    crop = tumour_crop(binary, spacing, 0.0)
    sub_mask = binary[crop]
    r = _radial_distance(sub_mask, spacing, mode)
    if mode == "3d":
        r_max = np.full(r.shape, r[sub_mask].max())
    else:
        r_max = np.where(sub_mask, r, 0).max(axis=(1, 2), keepdims=True) * np.ones_like(r)
    ratio = np.divide(r, r_max, out=np.zeros_like(r), where=r_max > 0)
    gain = 1.0 + amplitude * np.sin(2.0 * np.pi * frequency * ratio)
    sub_image = out[crop]
    sub_image[sub_mask] = (sub_image[sub_mask] * gain[sub_mask]).astype(np.float32)
    return out
