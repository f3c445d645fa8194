"""Training slices from real multi-contrast cases (BraTS-style folders), augmented toward clinical scans.

Each draw picks an axial position (60 % through the tumour), averages 1-7 adjacent 1 mm slices to
mimic a thick clinical slice (the label is the slab's majority), resamples to the working pixel
size, and applies a random rotation, scaling and flip, a skull-and-scalp shell (70 % of the time: the
BraTS cases are skull-stripped, clinical scans are not), a bias field, gamma and noise.
Volumes are normalised once per volume exactly as at inference (``io.normalize_intensity``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .synth import _smooth_field


@dataclass(frozen=True)
class RealCase:
    """One case for training: ``{contrast: (Z, Y, X) float32 in [0, 1]}``, whole-tumour mask, spacing."""

    name: str
    contrasts: dict[str, np.ndarray]
    mask: np.ndarray
    spacing_zyx: tuple[float, float, float]


def load_real_case(path, *, target: str = "whole", convention: str | None = None) -> RealCase:
    """A case folder with a label (``cases.read_case``), every contrast normalised once, its tumour ``target``."""
    from ..cases import read_case
    from ..errors import InputError

    case = read_case(path)
    if case.label is None:
        raise InputError("a training case needs a label file (seg, label or OTMultiClass)", case.path)
    normalised = case.normalized()
    mask = case.tumour(target, convention)
    return RealCase(case.name, normalised.arrays(), mask.astype(np.uint8), case.spacing_zyx)  # type: ignore[union-attr]


def _slab(volume: np.ndarray, z: int, thickness: int) -> np.ndarray:
    """Mean of ``thickness`` axial slices centred on ``z`` (partial volume of a thick slice)."""
    lo = max(0, z - thickness // 2)
    return volume[lo:lo + thickness].mean(axis=0)


def add_shell(image: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark bone ring and a bright, textured scalp ring of random thickness around ``brain``."""
    filled = ndimage.binary_fill_holes(brain)
    gap = ndimage.binary_dilation(filled, iterations=int(rng.integers(1, 3)))
    bone = ndimage.binary_dilation(gap, iterations=int(rng.integers(1, 4)))
    scalp = ndimage.binary_dilation(bone, iterations=int(rng.integers(2, 6)))
    out = image.copy()
    out[bone & ~gap] = rng.uniform(0.0, 0.2)
    ring = scalp & ~bone
    out[ring] = rng.uniform(0.5, 1.0) * (1 + 0.15 * rng.standard_normal(int(ring.sum())))
    return out


def _affine(arrays: Sequence[np.ndarray], rng: np.random.Generator, out_size: int, orders: Sequence[int],
            zoom: float) -> list[np.ndarray]:
    """Resample 2D arrays by one random rotation/scale/flip around a jittered centre to ``out_size``."""
    angle = np.deg2rad(rng.uniform(-25, 25)) + (np.pi if rng.random() < 0.25 else 0.0)
    scale = rng.uniform(0.85, 1.2, size=2) * zoom
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.diag(1 / scale)
    if rng.random() < 0.5:
        matrix = matrix @ np.diag([1, -1])
    shape = np.array(arrays[0].shape, float)
    centre = (shape - 1) / 2 + rng.uniform(-0.25, 0.25, size=2) * shape / 2
    offset = centre - matrix @ (np.array([out_size, out_size], float) - 1) / 2
    return [ndimage.affine_transform(a, matrix, offset=offset, output_shape=(out_size, out_size), order=o,
                                     mode="constant", cval=0.0) for a, o in zip(arrays, orders, strict=True)]


def _intensity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bias field, gamma, contrast jitter and Rician noise on an image in [0, 1]."""
    out = np.clip(image, 0, 1) * (1.0 + rng.uniform(0, 0.3) * _smooth_field(image.shape, rng))
    out = np.clip(out, 0, None) ** rng.uniform(0.7, 1.5)
    sigma = rng.uniform(0.0, 0.04)
    out = np.sqrt((out + rng.normal(0, sigma, out.shape)) ** 2 + rng.normal(0, sigma, out.shape) ** 2)
    return np.clip(out, 0, 1.2).astype(np.float32)


def real_slice(case: RealCase, rng: np.random.Generator, contrasts: Sequence[str], size: int,
               pixel_mm: float = 2.0, tumour_fraction: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """An augmented ``(len(contrasts), size, size)`` slice of ``case`` and its mask ``(size, size)``."""
    mask = case.mask
    tumour_z = np.nonzero(mask.any(axis=(1, 2)))[0]
    first = case.contrasts[contrasts[0]]
    brain_z = np.nonzero((first > 0.05).mean(axis=(1, 2)) > 0.05)[0]
    pool = tumour_z if (len(tumour_z) and rng.random() < tumour_fraction) else brain_z
    z = int(pool[rng.integers(len(pool))])
    thickness = int(rng.integers(1, 8)) if case.spacing_zyx[0] < 2 else 1
    slabs = [_slab(case.contrasts[c], z, thickness) for c in contrasts]
    label = (_slab(mask.astype(np.float32), z, thickness) >= 0.5).astype(np.float32)
    zoom = pixel_mm / float(case.spacing_zyx[1])
    warped = _affine([*slabs, label], rng, size, [1] * len(slabs) + [0], 1 / zoom)
    images, label = warped[:-1], warped[-1]
    brain = images[0] > 0.05
    if rng.random() < 0.7 and brain.any():  # the BraTS cases are skull-stripped, clinical scans are not
        images = [add_shell(im, brain, rng) for im in images]
    return np.stack([_intensity(im, rng) for im in images]), label.astype(np.float32)
