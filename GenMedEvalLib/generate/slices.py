"""Training slices for the 2D generators and generated slices as volumes every command reads.

A generator works on one square grid: ``SIZE`` x ``SIZE`` pixels showing an axial slice exactly as
the encoders see it (``features.slicing.square_slice``: square pixels, zero-padded to a centred
square), downsampled with antialiasing. The field of view is the squared slice's (232 mm for the
demo cohort, 240 mm for BraTS); a checkpoint records its training data's, and generated slices are
written with that pixel size, so a memorised slice is, to the encoders, its training slice.
Channel 0 is the intensity-normalised image in [0, 1], channel 1 the binary tumour mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError
from ..io import Volume

SIZE = 64
"""Pixels per side of a generated slice."""
FOV_MM = 232.0
"""Default field of view of a generated slice in mm (the demo cohort's: 116 pixels of 2 mm)."""
MIN_BRAIN = 0.10
"""A slice is a training slice when at least this fraction of its field of view is brain."""
BRAIN_THRESHOLD = 0.05
"""Intensity (of the [0, 1] image) above which a pixel counts as brain."""


@dataclass(frozen=True)
class SliceSet:
    """Training slices: ``images`` and ``masks`` (N, SIZE, SIZE) float32 / uint8, where each comes from
    (``case#k``) and the median field of view of their cases in mm."""

    images: np.ndarray
    masks: np.ndarray
    sources: tuple[str, ...]
    fov_mm: float = FOV_MM

    def __len__(self) -> int:
        return len(self.images)

    @property
    def tumour_fraction(self) -> float:
        """Fraction of slices whose mask is not empty."""
        return float(self.masks.reshape(len(self), -1).any(axis=1).mean()) if len(self) else 0.0


def pixel_mm(size: int = SIZE, fov_mm: float = FOV_MM) -> float:
    """Pixel size of the generator grid in mm."""
    return fov_mm / size


def to_grid(picture: np.ndarray, size: int = SIZE, *, mask: bool = False) -> np.ndarray:
    """A square picture resized to ``size`` x ``size``: antialiased bilinear for images, area > 0.5 for masks."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the usual torch alias

    x = torch.from_numpy(np.ascontiguousarray(picture, dtype=np.float32))[None, None]
    if x.shape[-1] == size:
        out = x
    elif mask:
        out = F.interpolate(x, size=(size, size), mode="area") if x.shape[-1] > size else \
            F.interpolate(x, size=(size, size), mode="nearest")
    else:
        out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    out = out[0, 0].numpy()
    return (out > 0.5).astype(np.uint8) if mask else np.clip(out, 0.0, 1.0).astype(np.float32)


def volume_training_slices(image01: Volume, mask: np.ndarray | None, *, size: int = SIZE,
                           min_brain: float = MIN_BRAIN) -> tuple[np.ndarray, np.ndarray, float]:
    """Every axial slice of a [0, 1] volume with at least ``min_brain`` brain, on the generator grid.

    Returns ``(images, masks, fov_mm)``: (K, size, size) arrays and the squared slice's field of view.
    The axial axis comes from the volume's direction (``features.slicing.plane_axes``); each slice
    is squared as the encoders square it (``square_slice``), then resized.
    """
    from ..features.slicing import plane_axes, square_slice

    array = np.asarray(image01.array, dtype=np.float32)
    axis = plane_axes(image01.direction)["axial"]
    spacing = image01.spacing_zyx
    in_plane = tuple(spacing[a] for a in range(3) if a != axis)
    labels = np.zeros(array.shape, np.float32) if mask is None else (np.asarray(mask) > 0).astype(np.float32)
    images, masks, fov = [], [], 0.0
    for index in range(array.shape[axis]):
        square = square_slice(np.take(array, index, axis=axis), in_plane)
        fov = square.shape[0] * min(in_plane)
        picture = to_grid(square, size)
        if (picture > BRAIN_THRESHOLD).mean() < min_brain:
            continue
        label = square_slice(np.take(labels, index, axis=axis), in_plane)
        images.append(picture)
        masks.append(to_grid(label, size, mask=True))
    if not images:
        return np.zeros((0, size, size), np.float32), np.zeros((0, size, size), np.uint8), fov
    return np.stack(images), np.stack(masks), fov


def training_slices(folder: str | Path, *, split: str | None = None, contrast: str | None = None,
                    target: str = "whole", convention: str | None = None, size: int = SIZE,
                    show_progress: bool = False) -> SliceSet:
    """The training slices of every case of ``folder`` (volume files or case folders), optionally one split.

    Each case is read once, its primary contrast (``contrast``, else the first of flair, t1c, t1, t2)
    normalised to [0, 1] and its tumour ``target`` taken as the mask (empty without a label).
    """
    from ..cases import list_cases, read_item, resolve_contrast
    from ..progress import progress

    items = list_cases(folder)
    if split is not None:
        items = [i for i in items if i.split == split]
        if not items:
            raise InputError(f"has no cases of split '{split}' (see its cohort.csv)", folder)
    chosen = resolve_contrast(items, contrast)
    images, masks, sources, fovs = [], [], [], []
    for item in progress(items, desc="reading training cases", enable=None if show_progress else False):
        case = read_item(item).normalized()
        tumour = case.tumour(target, convention)
        part_images, part_masks, fov = volume_training_slices(case.primary(chosen), tumour, size=size)
        images.append(part_images)
        masks.append(part_masks)
        fovs.append(fov)
        sources += [f"{item.name}#{k}" for k in range(len(part_images))]
    if not sources:
        raise InputError(f"gives no axial slices with at least {MIN_BRAIN:.0%} brain", folder)
    return SliceSet(np.concatenate(images), np.concatenate(masks), tuple(sources), float(np.median(fovs)))


def sample_volume(image: np.ndarray, *, fov_mm: float = FOV_MM) -> Volume:
    """A generated (SIZE, SIZE) slice as a one-slice axial volume with the generator grid's pixel size."""
    picture = np.asarray(image, dtype=np.float32)
    if picture.ndim != 2 or picture.shape[0] != picture.shape[1]:
        raise ParameterError(f"a generated slice must be a square 2D array, got shape {picture.shape}")
    step = fov_mm / picture.shape[0]
    return Volume(array=picture[None], spacing=(step, step, step))


def sample_names(n: int) -> list[str]:
    """File stems of ``n`` samples: ``sample_0000`` ... (zero-padded, sorted by name = by index)."""
    width = max(4, len(str(max(n - 1, 0))))
    return [f"sample_{i:0{width}d}" for i in range(n)]


def brain_fraction_inside(images: np.ndarray, masks: np.ndarray) -> float:
    """Fraction of mask pixels (over all samples) that lie on brain (image > ``BRAIN_THRESHOLD``)."""
    total = int(np.asarray(masks).sum())
    if total == 0:
        return 1.0
    return float(((np.asarray(images) > BRAIN_THRESHOLD) & (np.asarray(masks) > 0)).sum() / total)


def otsu_threshold(image: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a [0, 1] image: the histogram split that maximises the between-class variance."""
    counts, edges = np.histogram(np.asarray(image, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1].astype(np.float64)
    mass = np.cumsum(counts * centres)[:-1]
    total, grand = float(counts.sum()), float((counts * centres).sum())
    above = total - below
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where((below > 0) & (above > 0), (grand * below - total * mass) ** 2 / (below * above), -1.0)
    if between.max() <= 0:
        return BRAIN_THRESHOLD
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a plateau where no pixel lies: take its middle
    return float(edges[1:][best[len(best) // 2]])


def brain_mask(image: np.ndarray) -> np.ndarray:
    """A generated slice's brain: pixels above its Otsu threshold (at least ``BRAIN_THRESHOLD``), closed and
    hole-filled so that a dark tumour inside counts."""
    from scipy.ndimage import binary_closing, binary_fill_holes

    picture = np.asarray(image, dtype=np.float32)
    level = max(otsu_threshold(picture), BRAIN_THRESHOLD)
    return binary_fill_holes(binary_closing(picture > level, iterations=2))


def check_batch(images: np.ndarray, masks: np.ndarray, source: str) -> None:
    """Refuse generated batches that are not finite, not in [0, 1] or whose masks are not binary."""
    if not np.isfinite(images).all():
        raise ParameterError(f"{source}: generated images are not finite")
    if images.min() < 0 or images.max() > 1:
        raise ParameterError(f"{source}: generated images leave [0, 1]")
    if not np.isin(np.unique(masks), (0, 1)).all():
        raise ParameterError(f"{source}: generated masks are not binary")


def as_pairs(images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 2, S, S) float32 in [-1, 1]: the networks' view of image and mask."""
    x = np.stack([np.asarray(images, np.float32), np.asarray(masks, np.float32)], axis=1)
    return x * 2.0 - 1.0


def balanced_pick(data: SliceSet, n: int, seed: int, share: float = 0.5) -> np.ndarray:
    """``n`` slice indices, ``share`` of them with tumour where the set has enough (the generators' training mix)."""
    rng = np.random.default_rng(seed)
    has_tumour = data.masks.reshape(len(data), -1).any(axis=1)
    tumour, plain = np.flatnonzero(has_tumour), np.flatnonzero(~has_tumour)
    k = min(len(tumour), int(round(n * share)), n)
    rest = min(len(plain), n - k)
    index = np.concatenate([rng.choice(tumour, k, replace=False), rng.choice(plain, rest, replace=False)])
    return np.sort(index)
