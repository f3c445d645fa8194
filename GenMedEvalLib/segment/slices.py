"""Slice-wise processing of anisotropic volumes: pick the slice axis, resample slices to a fixed pixel size.

Clinical brain MRI is often acquired as thick slices (the real MRI here: 0.78 x 0.78 x 6.5 mm), so
2D models run along the axis with the largest spacing and see every slice at a fixed in-plane
resolution, whatever the scanner's matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def slice_axis(spacing_zyx: Sequence[float]) -> int:
    """The axis with the largest voxel size (thick slices); axis 0 (z) on ties."""
    spacing = np.asarray(spacing_zyx, dtype=float)
    return int(np.argmax(spacing >= spacing.max() - 1e-6))


def to_slices(volume: np.ndarray, axis: int) -> np.ndarray:
    """``volume`` with ``axis`` moved first: ``(S, H, W)``."""
    return np.moveaxis(volume, axis, 0)


def from_slices(stack: np.ndarray, axis: int) -> np.ndarray:
    """Undo ``to_slices``."""
    return np.moveaxis(stack, 0, axis)


def in_plane_spacing(spacing_zyx: Sequence[float], axis: int) -> tuple[float, float]:
    """The two in-plane voxel sizes (mm) once ``axis`` is the slice axis."""
    rest = [float(s) for i, s in enumerate(spacing_zyx) if i != axis]
    return rest[0], rest[1]


def resampled_shape(shape_hw: Sequence[int], spacing_hw: Sequence[float], target_mm: float) -> tuple[int, int]:
    """In-plane shape after resampling to ``target_mm`` pixels (at least 8 x 8)."""
    return tuple(max(8, int(round(n * s / target_mm))) for n, s in zip(shape_hw, spacing_hw, strict=True))  # type: ignore[return-value]


def resize_slices(stack, size_hw: Sequence[int], *, mode: str = "bilinear"):
    """Resize a torch tensor ``(S, C, H, W)`` to ``size_hw`` (bilinear, or nearest for labels)."""
    import torch.nn.functional as F

    if tuple(stack.shape[-2:]) == tuple(size_hw):
        return stack
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(stack, size=tuple(size_hw), mode=mode, **kwargs)
