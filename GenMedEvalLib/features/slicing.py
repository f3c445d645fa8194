"""Volumes to 2D slices for 2D encoders: which plane, which slices, and how they are shaped.

Planes are physical, not array axes: with the volume's direction matrix (SimpleITK, LPS),
"axial" slices are cut across the array axis whose direction is closest to physical z
(superior-inferior), "coronal" across the one closest to y and "sagittal" across x. A plain
array is taken as identity-oriented, ``(z, y, x)``.

Each slice is resampled (linear) to square pixels at its finer in-plane spacing, so a coronal cut
through a 6.5 mm-thick axial acquisition keeps its true proportions, then zero-padded to a square
around its centre: the encoder's resize to its square input then scales both axes equally
instead of stretching the anatomy.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ParameterError
from ..io import Volume

PLANES = ("axial", "coronal", "sagittal")
_PHYSICAL_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


@dataclass(frozen=True)
class SliceSettings:
    """Which slices a volume gives; the defaults are the one set every entry point shares.

    ``min_foreground``: fraction of the slice's voxels above ``foreground_threshold`` needed to
    keep it (skips empty slices). ``mask_only``: keep only slices that intersect the mask.
    ``step``: keep every ``step``-th selected slice. ``max_slices``: at most this many per volume
    and plane, evenly spaced (None: all). ``tumour_slices``: then this many more, evenly spaced
    among the slices through the tumour mask not already kept (none when the volume has no mask or
    an empty one; a one-slice volume, such as a generated sample, gives its slice once),
    so mask-local perturbations change whole slices the encoders see. ``isotropic``: resample to
    square pixels before padding.
    """

    plane: str = "axial"
    min_foreground: float = 0.05
    foreground_threshold: float = 0.05
    mask_only: bool = False
    step: int = 1
    max_slices: int | None = 6
    isotropic: bool = True
    tumour_slices: int = 2

    def __post_init__(self) -> None:
        if self.plane not in (*PLANES, "all"):
            raise ParameterError(f"unknown plane '{self.plane}'; choose one of: {', '.join(PLANES)}, all")
        if not 0.0 <= self.min_foreground <= 1.0:
            raise ParameterError(f"min_foreground must be in [0, 1], got {self.min_foreground}")
        if self.step < 1:
            raise ParameterError(f"step must be >= 1, got {self.step}")
        if self.max_slices is not None and self.max_slices < 1:
            raise ParameterError(f"max_slices must be >= 1, got {self.max_slices}")
        if self.tumour_slices < 0:
            raise ParameterError(f"tumour_slices must be >= 0, got {self.tumour_slices}")

    @property
    def planes(self) -> tuple[str, ...]:
        """The planes to cut: one, or all three."""
        return PLANES if self.plane == "all" else (self.plane,)


DEFAULT_SLICES = SliceSettings()
"""The slice rules of every entry point (metrics, features, sweep, compare, the Slicer module): axial,
6 evenly spaced slices plus 2 through the tumour per volume."""


def tumour_settings(settings: SliceSettings) -> SliceSettings | None:
    """The rules of the extra tumour slices of ``settings`` (None when it asks for none)."""
    if not settings.tumour_slices:
        return None
    return replace(settings, mask_only=True, max_slices=settings.tumour_slices, tumour_slices=0)


@dataclass(frozen=True)
class SliceInfo:
    """Where a slice comes from: volume position in the input list, plane, index along the cut axis."""

    volume: int
    plane: str
    index: int


@dataclass
class Slices:
    """Square float32 slices (possibly of different sizes) and where each comes from."""

    images: list[np.ndarray]
    info: list[SliceInfo]

    def __len__(self) -> int:
        return len(self.images)


def plane_axes(direction: Sequence[float] | None = None) -> dict[str, int]:
    """Array axis (of a ``(z, y, x)`` array) cut by each plane, from a SimpleITK direction matrix.

    The assignment of index axes to physical axes maximises the product of the absolute
    direction cosines, so oblique acquisitions still give three distinct planes.
    """
    matrix = np.eye(3) if direction is None else np.abs(np.asarray(direction, dtype=float).reshape(3, 3))
    best = max(itertools.permutations(range(3)), key=lambda perm: np.prod([matrix[perm[i], i] for i in range(3)]))
    # best[i] = physical axis of index axis i (x, y, z index order); array axis = 2 - i.
    return {plane: 2 - best.index(_PHYSICAL_AXIS[plane]) for plane in PLANES}


def _as_volume(volume: np.ndarray | Volume) -> Volume:
    if isinstance(volume, Volume):
        return volume
    array = np.asarray(volume)
    if array.ndim != 3:
        raise ParameterError(f"a volume must be a 3D (z, y, x) array, got shape {array.shape}")
    return Volume(array=array)


def select_indices(array: np.ndarray, axis: int, settings: SliceSettings, mask: np.ndarray | None = None,
                   exclude: Sequence[int] = ()) -> np.ndarray:
    """Indices along ``axis`` of the slices kept by the foreground, mask, step and count rules (minus ``exclude``)."""
    other = tuple(a for a in range(3) if a != axis)
    foreground = (array > settings.foreground_threshold).mean(axis=other)
    keep = foreground >= settings.min_foreground
    if settings.mask_only:
        if mask is None:
            raise ParameterError("mask_only needs a mask for every volume")
        keep &= np.asarray(mask > 0).any(axis=other)
    keep[list(exclude)] = False
    indices = np.flatnonzero(keep)[:: settings.step]
    if settings.max_slices is not None and len(indices) > settings.max_slices:
        pick = np.round(np.linspace(0, len(indices) - 1, settings.max_slices)).astype(int)
        indices = indices[pick]
    return indices


def square_slice(image: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0), isotropic: bool = True) -> np.ndarray:
    """Resample to square pixels (finer spacing) when asked, then zero-pad to a centred square."""
    image = np.asarray(image, dtype=np.float32)
    if isotropic and not np.isclose(spacing[0], spacing[1], rtol=1e-3):
        from scipy.ndimage import zoom

        finest = min(spacing)
        factors = (spacing[0] / finest, spacing[1] / finest)
        image = zoom(image, factors, order=1, mode="nearest", grid_mode=True).astype(np.float32)
    rows, cols = image.shape
    size = max(rows, cols)
    if rows == cols:
        return np.ascontiguousarray(image)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - rows) // 2, (size - cols) // 2
    out[top:top + rows, left:left + cols] = image
    return out


def volume_slices(volume: np.ndarray | Volume, settings: SliceSettings = DEFAULT_SLICES,
                  mask: np.ndarray | Volume | None = None, volume_index: int = 0) -> Slices:
    """The kept slices of one volume for every plane in ``settings``, squared, with their origin."""
    vol = _as_volume(volume)
    array = np.asarray(vol.array, dtype=np.float32)
    mask_array = None if mask is None else np.asarray(mask.array if isinstance(mask, Volume) else mask)
    if mask_array is not None and mask_array.shape != array.shape:
        raise ParameterError(f"mask shape {mask_array.shape} differs from volume shape {array.shape}")
    axes = plane_axes(vol.direction)
    spacing = vol.spacing_zyx
    tumour = tumour_settings(settings) if mask_array is not None and np.any(mask_array) else None
    images, info = [], []
    taken: dict[str, list[int]] = {plane: [] for plane in settings.planes}
    for rules in (settings, tumour):
        if rules is None:
            continue
        for plane in settings.planes:
            axis = axes[plane]
            in_plane = tuple(spacing[a] for a in range(3) if a != axis)
            chosen = select_indices(array, axis, rules, mask_array, exclude=taken[plane])
            taken[plane] += [int(i) for i in chosen]  # a tumour slice is never a second copy of an even one
            for index in chosen:
                cut = np.take(array, int(index), axis=axis)
                images.append(square_slice(cut, in_plane, settings.isotropic))
                info.append(SliceInfo(volume_index, plane, int(index)))
    return Slices(images, info)


def slice_volumes(volumes: Sequence[np.ndarray | Volume], settings: SliceSettings = DEFAULT_SLICES,
                  masks: Sequence[np.ndarray | Volume | None] | None = None) -> Slices:
    """The kept slices of every volume, in volume order, with their origin."""
    if masks is not None and len(masks) != len(volumes):
        raise ParameterError(f"{len(masks)} masks for {len(volumes)} volumes")
    images: list[np.ndarray] = []
    info: list[SliceInfo] = []
    for i, volume in enumerate(volumes):
        part = volume_slices(volume, settings, None if masks is None else masks[i], volume_index=i)
        images += part.images
        info += part.info
    return Slices(images, info)
