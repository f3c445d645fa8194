"""The tumour's neighbourhood in a slice, for the local metrics: a crop around the region and a band on its boundary.

The global metrics see whole slices, where a blurred tumour boundary is a few hundred pixels out
of tens of thousands. The local twins see only the region of interest (ROI):

- ``roi``: a square crop centred on the mask's bounding box in a slice through the region,
  ``1 + 2 * margin`` times its larger side (at least ``min_side_mm``), resampled to square pixels;
- ``band``: the same crop with every pixel farther than ``band_mm`` from the region's boundary set
  to 0, so the encoder sees the boundary and nothing else.

The crops go through the same encoders and the same content-addressed cache as whole slices (a
crop's content hash is its key), so a second sweep encodes none. The crop's mask travels with it
for the boundary and interior profiles (``metrics.local``). Slices are cut across the volume's
physical axial axis (``slicing.plane_axes``), with its own spacing, like every other slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import ParameterError
from ..io import Volume
from .slicing import plane_axes, square_slice

REGIONS = ("roi", "band")


@dataclass(frozen=True)
class RegionSettings:
    """Which slices give region crops and how the crops are cut.

    ``slices``: at most this many slices per volume, evenly spaced among those whose region has at
    least ``min_area_mm2``; context on each side of the region: ``margin`` times its larger side,
    at least ``context_mm`` (room for the boundary descriptor's context ring); ``min_side_mm``: the
    smallest crop side; ``band_mm``: half-width of the boundary band.
    """

    slices: int = 16
    min_area_mm2: float = 40.0
    margin: float = 0.25
    context_mm: float = 10.0
    min_side_mm: float = 32.0
    band_mm: float = 4.0

    def __post_init__(self) -> None:
        if self.slices < 1:
            raise ParameterError(f"region slices must be >= 1, got {self.slices}")
        for name in ("min_area_mm2", "margin", "context_mm", "min_side_mm", "band_mm"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0 or (name == "band_mm" and value == 0):
                raise ParameterError(f"region {name} must be a finite number > 0, got {value!r}")


DEFAULT_REGIONS = RegionSettings()


@dataclass
class RegionCrop:
    """One slice's region: the ``roi`` and ``band`` crops (float32, square pixels of ``pixel_mm``) and the mask crop."""

    roi: np.ndarray
    band: np.ndarray
    mask: np.ndarray
    pixel_mm: float
    volume: int
    index: int
    window: tuple[int, int, int, int]  # rows and columns of the crop in the native slice: r0, r1, c0, c1


@dataclass
class RegionSet:
    """The region crops of a set of volumes, in volume order; ``volumes_without`` counts volumes with no region."""

    crops: list[RegionCrop] = field(default_factory=list)
    n_volumes: int = 0
    volumes_without: int = 0

    def images(self, region: str) -> list[np.ndarray]:
        """The crops the encoder sees for ``region`` ("roi" or "band")."""
        if region not in REGIONS:
            raise ParameterError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
        return [getattr(c, region) for c in self.crops]

    @property
    def volume_index(self) -> np.ndarray:
        return np.array([c.volume for c in self.crops], dtype=np.int64)


def region_slices(mask: np.ndarray, axis: int, spacing_zyx: Sequence[float], settings: RegionSettings) -> np.ndarray:
    """Indices along ``axis`` of the slices whose region is large enough, ``settings.slices`` evenly spaced."""
    other = tuple(a for a in range(3) if a != axis)
    pixel_area = float(np.prod([spacing_zyx[a] for a in other]))
    area = np.asarray(mask > 0).sum(axis=other) * pixel_area
    indices = np.flatnonzero(area >= settings.min_area_mm2)
    if len(indices) > settings.slices:
        indices = indices[np.round(np.linspace(0, len(indices) - 1, settings.slices)).astype(int)]
    return indices


def crop_window(mask2d: np.ndarray, spacing2d: Sequence[float], settings: RegionSettings) -> tuple[int, int, int, int]:
    """The crop around the region in native pixels (may reach outside the slice): r0, r1, c0, c1."""
    rows, cols = np.nonzero(mask2d)
    extent = max((rows.max() - rows.min() + 1) * spacing2d[0], (cols.max() - cols.min() + 1) * spacing2d[1])
    side = max(extent + 2.0 * max(settings.margin * extent, settings.context_mm), settings.min_side_mm)
    window = []
    for centre, step in (((rows.min() + rows.max()) / 2.0, spacing2d[0]), ((cols.min() + cols.max()) / 2.0, spacing2d[1])):
        half = int(np.ceil(side / (2.0 * step)))
        start = int(np.floor(centre)) - half + 1
        window += [start, start + 2 * half]
    return tuple(window)  # type: ignore[return-value]


def _take(image: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """The window of ``image``, zero outside the image."""
    r0, r1, c0, c1 = window
    out = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
    sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, image.shape[0]), max(c0, 0), min(c1, image.shape[1])
    if sr1 > sr0 and sc1 > sc0:
        out[sr0 - r0:sr1 - r0, sc0 - c0:sc1 - c0] = image[sr0:sr1, sc0:sc1]
    return out


def boundary_band(mask2d: np.ndarray, pixel_mm: Sequence[float], band_mm: float) -> np.ndarray:
    """Pixels within ``band_mm`` of the region's boundary, inside or outside it (bool)."""
    binary = np.asarray(mask2d, dtype=bool)
    inside = ndimage.distance_transform_edt(binary, sampling=pixel_mm)
    outside = ndimage.distance_transform_edt(~binary, sampling=pixel_mm)
    return np.where(binary, inside, outside) <= band_mm


def slice_crop(image2d: np.ndarray, mask2d: np.ndarray, spacing2d: Sequence[float],
               settings: RegionSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[int, int, int, int]]:
    """The ROI crop, band crop and mask crop of one slice, resampled to square pixels of its finer spacing."""
    window = crop_window(mask2d, spacing2d, settings)
    roi = square_slice(_take(image2d, window), tuple(spacing2d))
    mask = square_slice(_take(np.asarray(mask2d > 0, np.float32), window), tuple(spacing2d)) > 0.5
    pixel = float(min(spacing2d))
    band = np.where(boundary_band(mask, (pixel, pixel), settings.band_mm), roi, 0.0).astype(np.float32)
    return roi, band, mask, pixel, window


def volume_regions(volume: Volume | np.ndarray, mask: Volume | np.ndarray | None,
                   settings: RegionSettings = DEFAULT_REGIONS, volume_index: int = 0) -> list[RegionCrop]:
    """The region crops of one volume: none when it has no mask or an empty one."""
    vol = volume if isinstance(volume, Volume) else Volume(array=np.asarray(volume))
    if mask is None:
        return []
    mask_array = np.asarray(mask.array if isinstance(mask, Volume) else mask) > 0
    array = np.asarray(vol.array, dtype=np.float32)
    if mask_array.shape != array.shape:
        raise ParameterError(f"mask shape {mask_array.shape} differs from volume shape {array.shape}")
    if not mask_array.any():
        return []
    axis = plane_axes(vol.direction)["axial"]
    spacing = vol.spacing_zyx
    in_plane = tuple(spacing[a] for a in range(3) if a != axis)
    crops = []
    for index in region_slices(mask_array, axis, spacing, settings):
        cut, mcut = np.take(array, int(index), axis=axis), np.take(mask_array, int(index), axis=axis)
        roi, band, crop_mask, pixel, window = slice_crop(cut, mcut, in_plane, settings)
        crops.append(RegionCrop(roi, band, crop_mask, pixel, volume_index, int(index), window))
    return crops


def region_set(volumes: Sequence[Volume | np.ndarray], masks: Sequence[Volume | np.ndarray | None],
               settings: RegionSettings = DEFAULT_REGIONS) -> RegionSet:
    """The region crops of every volume, in order (volumes without a region give none and are counted)."""
    if len(masks) != len(volumes):
        raise ParameterError(f"{len(masks)} masks for {len(volumes)} volumes")
    out = RegionSet(n_volumes=len(volumes))
    for i, (volume, mask) in enumerate(zip(volumes, masks, strict=True)):
        crops = volume_regions(volume, mask, settings, i)
        out.crops += crops
        out.volumes_without += not crops
    return out


def region_label(volume: Volume | np.ndarray, mask: Volume | np.ndarray | None,
                 settings: RegionSettings = DEFAULT_REGIONS) -> np.ndarray:
    """Where the local metrics look, as a label map on the volume's grid (uint8): 1 the ROI crop, 2 its boundary band.

    For the Slicer module's overlay: only the slices that give crops are marked.
    """
    vol = volume if isinstance(volume, Volume) else Volume(array=np.asarray(volume))
    label = np.zeros(np.asarray(vol.array).shape, dtype=np.uint8)
    if mask is None:
        return label
    mask_array = np.asarray(mask.array if isinstance(mask, Volume) else mask) > 0
    if not mask_array.any():
        return label
    axis = plane_axes(vol.direction)["axial"]
    spacing = vol.spacing_zyx
    in_plane = tuple(spacing[a] for a in range(3) if a != axis)
    for index in region_slices(mask_array, axis, spacing, settings):
        mcut = np.take(mask_array, int(index), axis=axis)
        r0, r1, c0, c1 = crop_window(mcut, in_plane, settings)
        plane = np.zeros(mcut.shape, dtype=np.uint8)
        plane[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = 1
        plane[boundary_band(mcut, in_plane, settings.band_mm) & (plane == 1)] = 2
        view = [slice(None)] * 3
        view[axis] = int(index)
        label[tuple(view)] = plane
    return label
