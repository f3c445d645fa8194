"""Brain anatomy for the demo cohort: the MNI152 template, resampled and deformed per case."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..data import mni_template_path
from ..io import Volume, read_volume


@dataclass(frozen=True)
class Template:
    """The MNI152 2009a T1 (skull-stripped with its tissue maps) and GM/WM maps at one spacing."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    geometry: Volume


@lru_cache(maxsize=4)
def load_template(spacing: float = 2.0) -> Template:
    """The template resampled to an isotropic ``spacing`` (mm), intensities in [0, 1].

    The T1 is multiplied by a brain mask from the GM and WM maps (grown by 2 mm) so the demo
    volumes look skull-stripped, as most generative-model training data are.
    """
    t1 = read_volume(mni_template_path("t1"))
    factor = float(t1.spacing[0]) / spacing
    maps = {}
    for kind in ("t1", "gm", "wm"):
        array = t1.array if kind == "t1" else read_volume(mni_template_path(kind)).array
        maps[kind] = np.clip(ndimage.zoom(array / 255.0, factor, order=1), 0, 1).astype(np.float32)
    tissue = (maps["gm"] + maps["wm"]) > 0.3
    grow = max(1, int(round(2.0 / spacing)))
    brain = ndimage.binary_fill_holes(ndimage.binary_dilation(tissue, iterations=grow))
    geometry = Volume(np.zeros(brain.shape, np.float32), spacing=(spacing,) * 3, origin=t1.origin, direction=t1.direction)
    return Template(t1=maps["t1"] * brain, gm=maps["gm"], wm=maps["wm"], brain=brain, geometry=geometry)


def smooth_displacement(shape: tuple[int, int, int], rng: np.random.Generator, amplitude_vox: float,
                        control: int = 5) -> np.ndarray:
    """A smooth random displacement field ``(3, Z, Y, X)``: Gaussian control points, cubic upsampling."""
    coarse = rng.standard_normal((3, control, control, control)) * amplitude_vox
    return np.stack([smooth_upsample(c, shape) for c in coarse])


def smooth_upsample(coarse: np.ndarray, shape) -> np.ndarray:
    """Upsample a tiny grid smoothly and cheaply: cubic to 16^3, then linear to ``shape``."""
    mid = ndimage.zoom(coarse, [16 / s for s in coarse.shape], order=3)
    out = ndimage.zoom(mid, [s / 16 for s in shape], order=1, grid_mode=False)
    return out[: shape[0], : shape[1], : shape[2]].astype(np.float32)


def random_warp(template: Template, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Warp T1, GM, WM and brain with a random smooth deformation plus small scaling and rotation.

    Displacements of about 3 mm and scalings of +-6 % make the brains distinct yet plausible.
    """
    shape = template.t1.shape
    spacing = template.geometry.spacing[0]
    grid = np.indices(shape, dtype=np.float32)
    centre = np.array(shape, dtype=np.float32)[:, None, None, None] / 2
    scale = rng.uniform(0.94, 1.06, size=3).astype(np.float32)[:, None, None, None]
    angle = np.deg2rad(rng.uniform(-6, 6))
    coords = (grid - centre) / scale
    y, x = coords[1].copy(), coords[2].copy()
    coords[1] = np.cos(angle) * y - np.sin(angle) * x
    coords[2] = np.sin(angle) * y + np.cos(angle) * x
    coords += centre + smooth_displacement(shape, rng, amplitude_vox=3.0 / spacing).astype(np.float32)
    warp = [ndimage.map_coordinates(a, coords, order=1, mode="constant") for a in (template.t1, template.gm, template.wm)]
    brain = ndimage.map_coordinates(template.brain.astype(np.float32), coords, order=1) > 0.5
    return warp[0] * brain, warp[1], warp[2], brain
