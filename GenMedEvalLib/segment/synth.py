"""Domain-randomised synthetic training slices in the spirit of SynthSeg (Billot et al. 2023).

Why: four real BraTS cases cannot teach a segmenter what a clinical scan with skull, thick
slices and another contrast looks like. Each synthetic slice starts from a *label map* (an axial
slice of the MNI152 tissue maps, randomly deformed, with a lobulated tumour made of oedema, an
enhancing rim and a necrotic core) and draws every label's intensity at random per contrast, then
adds a random skull and scalp, bias field, partial-volume blur (slice thickness 1-7 mm), noise,
gamma and a random rotation, scaling and flip. The network thus learns the tumour's shape and
its contrast against neighbouring tissue, not one scanner's intensities.

Half of the slices draw their intensities from broad *contrast priors* instead (``CONTRAST_PRIORS``:
FLAIR-like and T1c-like ranges per label, e.g. oedema bright in FLAIR, the rim bright in T1c), and
40 % of their tumours have a *cystic* core as dark as CSF in every contrast: fluid-filled necrotic cores
are common in glioblastoma, and a network that saw only random cores reads them as ventricles.
Tumours reach 80 mm in diameter and 40 % of them sit at the brain's surface (peripheral tumours
that touch the skull are otherwise taken for scalp). These three were measured on the held-out
BraTS cases (``Resources/Models/README.md``).

Labels of a synthetic label map (``LABELS``): 0 air, 1 CSF, 2 grey matter, 3 white matter,
4 oedema, 5 enhancing rim, 6 necrotic core, 7 bone, 8 scalp/fat. Whole tumour = labels 4-6.
All functions are pure given their ``numpy`` generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

LABELS = ("air", "csf", "grey", "white", "oedema", "enhancing", "necrosis", "bone", "scalp")
TUMOUR_LABELS = (4, 5, 6)
#: broad intensity ranges per label for FLAIR-like and T1c-like channels (in ``LABELS`` order's names)
CONTRAST_PRIORS: dict[str, dict[str, tuple[float, float]]] = {
    "flair": {"air": (0.0, 0.03), "csf": (0.05, 0.2), "grey": (0.45, 0.6), "white": (0.35, 0.5),
              "oedema": (0.7, 1.0), "enhancing": (0.55, 0.9), "necrosis": (0.3, 0.9), "bone": (0.0, 0.15),
              "scalp": (0.3, 0.9)},
    "t1c": {"air": (0.0, 0.03), "csf": (0.05, 0.25), "grey": (0.4, 0.55), "white": (0.55, 0.7),
            "oedema": (0.3, 0.5), "enhancing": (0.75, 1.0), "necrosis": (0.05, 0.35), "bone": (0.0, 0.15),
            "scalp": (0.5, 1.0)},
}
PRIOR_PROBABILITY = 0.5  # share of slices whose channels follow CONTRAST_PRIORS
CYSTIC_FRACTION = 0.4  # share of tumours (of primed slices) with a CSF-dark core
SURFACE_FRACTION = 0.4  # share of tumours centred near the brain's surface


@dataclass(frozen=True)
class TissueSlices:
    """Axial tissue slices of the MNI template at the working pixel size: label maps ``(S, H, W)``."""

    labels: np.ndarray
    pixel_mm: float


@lru_cache(maxsize=2)
def tissue_slices(pixel_mm: float = 2.0) -> TissueSlices:
    """Hard tissue labels (CSF, GM, WM) of the template's axial slices that hold enough brain."""
    from ..cohort.anatomy import load_template

    template = load_template(pixel_mm)
    gm, wm, brain = template.gm, template.wm, template.brain
    labels = np.zeros(brain.shape, np.uint8)
    labels[brain] = 1
    labels[brain & (gm >= 0.4) & (gm >= wm)] = 2
    labels[brain & (wm >= 0.4) & (wm > gm)] = 3
    keep = brain.mean(axis=(1, 2)) > 0.12
    return TissueSlices(labels=labels[keep], pixel_mm=pixel_mm)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, control: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1] from a coarse Gaussian grid, cubic-upsampled."""
    coarse = rng.uniform(-1, 1, size=(control, control))
    field = ndimage.zoom(coarse, (shape[0] / control, shape[1] / control), order=3)[: shape[0], : shape[1]]
    return (field / (np.abs(field).max() + 1e-8)).astype(np.float32)


def add_tumour_labels(labels: np.ndarray, rng: np.random.Generator, pixel_mm: float) -> np.ndarray:
    """Paint a lobulated tumour (oedema, enhancing rim, necrotic core; sizes random) into brain tissue."""
    brain = (labels >= 1) & (labels <= 3)
    inner = ndimage.binary_erosion(brain, iterations=3)
    if rng.random() < SURFACE_FRACTION:  # a centre within 6-20 mm of the brain's surface
        inner = inner & ~ndimage.binary_erosion(brain, iterations=10)
    candidates = np.argwhere(inner)
    if len(candidates) == 0:
        return labels
    cy, cx = candidates[rng.integers(len(candidates))]
    radius = rng.uniform(4.0, 40.0) / pixel_mm  # core + rim radius: 8-80 mm diameter
    grid = np.indices(labels.shape, dtype=np.float32)
    aspect = rng.uniform(0.7, 1.3)
    dist = np.sqrt(((grid[0] - cy) * aspect) ** 2 + ((grid[1] - cx) / aspect) ** 2) / radius
    lobes = ndimage.gaussian_filter(rng.standard_normal(labels.shape).astype(np.float32), max(radius / 2.5, 1.0))
    dist = dist * (1.0 + rng.uniform(0.1, 0.35) * lobes / (lobes.std() + 1e-8))
    out = labels.copy()
    oedema_extent = rng.uniform(1.0, 2.2) if rng.random() < 0.8 else 1.0
    out[(dist < oedema_extent) & brain] = 4
    if rng.random() < 0.85:
        out[(dist < 1.0) & brain] = 5
        out[(dist < rng.uniform(0.0, 0.8)) & brain] = 6
    return out


def add_head(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Surround the brain with bone and scalp rings of random thickness (clinical scans keep them)."""
    head = labels > 0
    filled = ndimage.binary_fill_holes(head)
    csf = ndimage.binary_dilation(filled, iterations=int(rng.integers(1, 3)))  # iterations=0 would fill the slice
    bone = ndimage.binary_dilation(csf, iterations=int(rng.integers(1, 5)))
    scalp = ndimage.binary_dilation(bone, iterations=int(rng.integers(2, 7)))
    out = labels.copy()
    out[scalp & ~bone] = 8
    out[bone & ~csf] = 7
    out[csf & ~filled] = 1
    return out


def random_affine(labels: np.ndarray, rng: np.random.Generator, out_shape: tuple[int, int]) -> np.ndarray:
    """Labels resampled (nearest) under a random rotation, scaling, shear, flip and smooth warp."""
    angle = np.deg2rad(rng.uniform(-30, 30)) + (np.pi if rng.random() < 0.25 else 0.0)
    scale = rng.uniform(0.8, 1.25, size=2)
    shear = rng.uniform(-0.1, 0.1)
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) @ np.diag(1 / scale)
    if rng.random() < 0.5:
        matrix = matrix @ np.diag([1, -1])
    out_centre = (np.array(out_shape) - 1) / 2
    in_centre = (np.array(labels.shape) - 1) / 2 + rng.uniform(-6, 6, size=2)
    grid = np.indices(out_shape, dtype=np.float32).reshape(2, -1) - out_centre[:, None]
    coords = matrix @ grid + in_centre[:, None]
    warp = np.stack([_smooth_field(out_shape, rng) for _ in range(2)]) * rng.uniform(0, 3)
    coords = coords.reshape(2, *out_shape) + warp
    return ndimage.map_coordinates(labels, coords, order=0, mode="constant", cval=0).astype(np.uint8)


def label_means(rng: np.random.Generator, prior: str | None = None, cystic: bool = False) -> np.ndarray:
    """Mean intensity per label: uniform at random (the tumour differs from white matter by at least
    0.15), or within ``CONTRAST_PRIORS[prior]``; a ``cystic`` core takes the CSF's intensity."""
    if prior is not None:
        means = np.array([rng.uniform(*CONTRAST_PRIORS[prior][name]) for name in LABELS])
        if cystic:
            means[6] = means[1] + rng.uniform(0.0, 0.1)
        return means
    means = rng.uniform(0.0, 1.0, size=len(LABELS))
    means[0] = rng.uniform(0.0, 0.08)
    while abs(means[4] - means[3]) < 0.15 and abs(means[5] - means[3]) < 0.15:
        means[4], means[5] = rng.uniform(0.0, 1.0, size=2)
    return means


def render(labels: np.ndarray, rng: np.random.Generator, pixel_mm: float, prior: str | None = None,
           cystic: bool = False) -> np.ndarray:
    """One contrast of a label map: intensities (``label_means``), texture, blur, bias, noise, gamma, in [0, 1]."""
    means = label_means(rng, prior, cystic)
    stds = rng.uniform(0.0, 0.06, size=len(LABELS))
    texture = ndimage.gaussian_filter(rng.standard_normal(labels.shape).astype(np.float32), rng.uniform(0.5, 1.5))
    texture /= texture.std() + 1e-8
    image = means[labels] + stds[labels] * texture
    thickness_mm = rng.uniform(1.0, 7.0)
    image = ndimage.gaussian_filter(image, sigma=rng.uniform(0.2, 0.5 + thickness_mm / (4 * pixel_mm)))
    image = image * (1.0 + rng.uniform(0.0, 0.35) * _smooth_field(labels.shape, rng))
    sigma = rng.uniform(0.0, 0.05)
    image = np.sqrt((image + rng.normal(0, sigma, image.shape)) ** 2 + rng.normal(0, sigma, image.shape) ** 2)
    lo, hi = np.percentile(image, [1, 99])
    image = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    return (image ** rng.uniform(0.6, 1.6)).astype(np.float32)


def synth_slice(rng: np.random.Generator, channels: int, size: int, pixel_mm: float = 2.0,
                tumour_probability: float = 0.85, contrasts: tuple[str, ...] = ("flair", "t1c"),
                prior_probability: float = PRIOR_PROBABILITY) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic ``(channels, size, size)`` image in [0, 1] and its whole-tumour mask ``(size, size)``.

    With probability ``prior_probability`` channel ``i`` follows the prior of ``contrasts[i]`` (random
    intensities for a channel without one), else every channel draws random intensities.
    """
    tissue = tissue_slices(pixel_mm)
    labels = tissue.labels[rng.integers(len(tissue.labels))]
    if rng.random() < tumour_probability:
        labels = add_tumour_labels(labels, rng, pixel_mm)
    if rng.random() < 0.9:  # clinical scans keep skull and scalp: the commonest false positive
        labels = add_head(labels, rng)
    labels = random_affine(labels, rng, (size, size))
    primed = rng.random() < prior_probability
    cystic = rng.random() < CYSTIC_FRACTION
    priors = [contrasts[i] if primed and i < len(contrasts) and contrasts[i] in CONTRAST_PRIORS else None
              for i in range(channels)]
    image = np.stack([render(labels, rng, pixel_mm, prior, cystic) for prior in priors])
    mask = np.isin(labels, TUMOUR_LABELS).astype(np.float32)
    return image, mask
