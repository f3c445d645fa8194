"""Perturbed masks of known Dice: the quality predictor's training and test pairs.

Each operation takes a binary mask ``(Z, Y, X)``, the slice axis, a strength in [0, 1] and a
seeded generator, and returns a new mask (the input is never modified). In-plane operations use
structuring elements flat along the slice axis, so thick-sliced volumes are perturbed the way a
segmenter errs on them. ``random_masks`` composes them so the Dice values cover 0..1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from .dice import dice_score

MaskOp = Callable[[np.ndarray, int, float, np.random.Generator], np.ndarray]


def _disk(radius: int, axis: int) -> np.ndarray:
    """A 3D structuring element: an in-plane disk of ``radius`` pixels, one slice thick along ``axis``."""
    r = max(int(radius), 1)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (yy**2 + xx**2) <= r * r + 0.5
    return np.expand_dims(disk, axis)


def _plane_coords(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Index coordinates of every voxel ``(3, ...)`` and the mask's centre of mass."""
    grid = np.indices(mask.shape, dtype=np.float32)
    centre = np.array(ndimage.center_of_mass(mask)) if mask.any() else np.array(mask.shape) / 2.0
    return grid, centre


def _in_plane_direction(axis: int, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector orthogonal to the slice axis."""
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.zeros(3)
    plane = [a for a in range(3) if a != axis]
    direction[plane[0]], direction[plane[1]] = np.cos(angle), np.sin(angle)
    return direction


def erode(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane erosion by 1-5 pixels."""
    return ndimage.binary_erosion(mask, _disk(1 + round(4 * strength), axis)).astype(np.uint8)


def dilate(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane dilation by 1-6 pixels."""
    return ndimage.binary_dilation(mask, _disk(1 + round(5 * strength), axis)).astype(np.uint8)


def boundary_noise(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Move the boundary by a smooth random field of up to 1-5 pixels."""
    sampling = [1.0, 1.0, 1.0]
    sampling[axis] = 1e3  # distances measured in-plane only
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    outside = ndimage.distance_transform_edt(1 - mask, sampling=sampling)
    signed = outside - inside
    field = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma=2.0)
    field /= field.std() + 1e-8
    return (signed + field * (1.0 + 4.0 * strength) < 0.5).astype(np.uint8)


def shift(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane translation by 1 to 1 + 1.2 x the mask's in-plane diameter pixels."""
    area = np.count_nonzero(mask) / max(np.count_nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))), 1)
    diameter = 2.0 * np.sqrt(area / np.pi)
    offset = _in_plane_direction(axis, rng) * (1.0 + 1.2 * strength * diameter)
    return ndimage.shift(mask, offset, order=0, mode="constant").astype(np.uint8)


def drop_part(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Remove the part beyond a random in-plane cut (up to 90 % of the mask): a missed component."""
    if not mask.any():
        return mask.copy()
    grid, centre = _plane_coords(mask, axis)
    direction = _in_plane_direction(axis, rng)
    proj = sum(direction[a] * (grid[a] - centre[a]) for a in range(3))
    cut = np.quantile(proj[mask > 0], 1.0 - 0.9 * strength)
    return (mask.astype(bool) & (proj <= cut)).astype(np.uint8)


def split(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Cut a band through the mask's centre (1-6 pixels wide), splitting it in two."""
    grid, centre = _plane_coords(mask, axis)
    direction = _in_plane_direction(axis, rng)
    proj = sum(direction[a] * (grid[a] - centre[a]) for a in range(3))
    return (mask.astype(bool) & (np.abs(proj) > 0.5 + 2.5 * strength)).astype(np.uint8)


def _blob(shape, centre, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A lobulated ellipsoid of about ``radius`` pixels at ``centre``."""
    lo = [max(int(c - 2 * radius - 2), 0) for c in centre]
    hi = [min(int(c + 2 * radius + 3), n) for c, n in zip(centre, shape, strict=True)]
    out = np.zeros(shape, np.uint8)
    if any(h <= low for low, h in zip(lo, hi, strict=True)):
        return out
    grid = np.indices([h - low for low, h in zip(lo, hi, strict=True)], dtype=np.float32)
    radii = radius * rng.uniform(0.6, 1.4, 3)
    dist = sum(((grid[a] + lo[a] - centre[a]) / radii[a]) ** 2 for a in range(3))
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = dist <= 1.0
    return out


def _mask_radius(mask: np.ndarray) -> float:
    return max(float(np.cbrt(3.0 * max(np.count_nonzero(mask), 1) / (4.0 * np.pi))), 1.5)


def spurious(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator,
             foreground: np.ndarray | None = None) -> np.ndarray:
    """Add 1-3 false components away from the mask (inside ``foreground`` when given)."""
    out = mask.copy()
    allowed = foreground if foreground is not None else np.ones(mask.shape, bool)
    far = allowed & ~ndimage.binary_dilation(mask, iterations=3)
    candidates = np.argwhere(far)
    if len(candidates) == 0:
        return out
    radius = _mask_radius(mask) * (0.3 + 0.9 * strength)
    for _ in range(int(rng.integers(1, 4))):
        centre = candidates[rng.integers(len(candidates))]
        out |= _blob(mask.shape, centre, radius, rng)
    return out.astype(np.uint8)


def merge(mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Join a false blob to the mask's edge in a random in-plane direction (an over-merged component)."""
    if not mask.any():
        return mask.copy()
    points = np.argwhere(mask).astype(float)
    direction = _in_plane_direction(axis, rng)
    edge = points[np.argmax(points @ direction)]
    radius = _mask_radius(mask) * (0.3 + 0.7 * strength)
    return (mask | _blob(mask.shape, edge + direction * 0.8 * radius, radius, rng)).astype(np.uint8)


MASK_OPS: dict[str, MaskOp] = {"erode": erode, "dilate": dilate, "boundary_noise": boundary_noise, "shift": shift,
                               "drop_part": drop_part, "split": split, "spurious": spurious, "merge": merge}


def _local_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The mask's bounding box grown by 1.5 diameters + 8 voxels: room for every local operation."""
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    margin = int(3.0 * _mask_radius(mask)) + 8
    points = np.argwhere(mask)
    lo, hi = points.min(axis=0) - margin, points.max(axis=0) + margin + 1
    return tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(lo, hi, mask.shape, strict=True))


def apply_op(name: str, mask: np.ndarray, axis: int, strength: float, rng: np.random.Generator,
             foreground: np.ndarray | None = None) -> np.ndarray:
    """One named operation; local ones run on a crop around the mask (same result, far faster)."""
    if name == "spurious":
        return spurious(mask, axis, strength, rng, foreground)
    box = _local_box(mask)
    out = np.zeros_like(mask, dtype=np.uint8)
    out[box] = MASK_OPS[name](np.ascontiguousarray(mask[box]), axis, strength, rng)
    return out


def perturb_mask(mask: np.ndarray, axis: int, rng: np.random.Generator, *, max_ops: int = 2,
                 foreground: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """1..``max_ops`` random operations at random strengths; returns the mask and the operation names."""
    out = (np.asarray(mask) > 0).astype(np.uint8)
    names = list(rng.choice(list(MASK_OPS), size=int(rng.integers(1, max_ops + 1)), replace=False))
    for name in names:
        out = apply_op(str(name), out, axis, float(rng.uniform(0, 1)), rng, foreground)
    return out, [str(n) for n in names]


def random_masks(truth: np.ndarray, axis: int, n: int, rng: np.random.Generator, *,
                 foreground: np.ndarray | None = None, bins: int = 10) -> list[tuple[np.ndarray, float]]:
    """``n`` non-empty perturbed masks whose Dice against ``truth`` spreads evenly over ``bins`` bins of 0..1."""
    per_bin = int(np.ceil(n / bins))
    filled: dict[int, list[tuple[np.ndarray, float]]] = {b: [] for b in range(bins)}
    for _ in range(n * 12):
        candidate, _ = perturb_mask(truth, axis, rng, foreground=foreground)
        if not candidate.any():
            continue
        d = dice_score(candidate, truth)
        b = min(int(d * bins), bins - 1)
        if len(filled[b]) < per_bin:
            filled[b].append((candidate, d))
        if sum(len(v) for v in filled.values()) >= n:
            break
    pairs = [p for b in range(bins) for p in filled[b]]
    return pairs[:n]
