"""Boundary sharpness and interior structure of the tumour region, per image and between sets.

Two descriptors of a region crop (``features.regions``: the image around the region, its mask, the
pixel size), each summarised per image and compared between sets with the 1-D Wasserstein
distance (``scipy.stats.wasserstein_distance``):

- **boundary sharpness**: the high-frequency detail at the boundary relative to the image's own
  context: the standard deviation of the high-pass residual (the crop minus its Gaussian blur of
  one pixel) over the pixels within ``near_mm`` of the boundary, divided by that over the context
  (``CONTEXT_MM`` from the boundary outwards and deeper than ``CONTEXT_MM[0]`` inside). A blurred
  boundary loses its detail while its context keeps it; what the whole image shares cancels in
  part: exactly a scanner's contrast scale, largely its noise where noise dominates the detail
  (on the demo cohort the raw gradient magnitude near the boundary moved with the scanner mix);
- **edge width**: the intensity profile across the boundary along its normals (the mean
  intensity of the pixels at each signed distance to the boundary, 1 mm bins within
  ``PROFILE_MM``), fitted with a blurred step ``a + b erfc((d - d0) / (w sqrt 2)) / 2``: ``w`` (mm)
  is the boundary's width, which a blur widens and which neither the contrast nor the noise
  level of a scanner biases (noise averages out over the bins);
- **interior profile**: the median intensity inside the region in ``bins`` rings of equal area
  (equal steps of ``(r / r_max)^2``, ``r`` the distance to the region's centre of mass, ``r_max`` its
  largest value in the region), divided by the region's median intensity and minus 1: a radial
  gradient inside the region moves its rings apart; a uniform change of brightness does not.
  Equal areas give every ring as many pixels (rings of equal width leave the central one with a
  sixteenth of the region, the noisiest statistic); medians ignore the necrotic, haemorrhagic or
  vessel pixels that swing a ring's mean from tumour to tumour. On the four real BraTS cases (two
  evaluated against two) this raised the 10 % gradient's z from 0.97 to 5.0 (2.96 to 6.9 with the
  sets swapped).

The per-image scores (``boundary_sharpness``, ``interior_contrast`` = the spread of the interior
profile) are what ``region_scores`` returns for one image; the set metrics compare their
distributions. Shapes: a set's descriptors are ``(N, 1)`` (boundary) and ``(N, bins)`` (interior)
float64 matrices, one row per region crop, so the suite's bootstrap resamples them like features.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import wasserstein_distance

from ._checks import pair

NEAR_MM = 2.0
CONTEXT_MM = (4.0, 10.0)
PROFILE_MM = 8.0
INTERIOR_BINS = 4


def signed_distance(mask: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Distance (mm) of each pixel to the region's boundary: negative inside, positive outside."""
    binary = np.asarray(mask, dtype=bool)
    inside = ndimage.distance_transform_edt(binary, sampling=pixel_mm)
    outside = ndimage.distance_transform_edt(~binary, sampling=pixel_mm)
    return np.where(binary, -inside, outside)


def boundary_sharpness(image: np.ndarray, mask: np.ndarray, pixel_mm: float, near_mm: float = NEAR_MM) -> float:
    """High-pass detail within ``near_mm`` of the boundary over that of the context (NaN without either)."""
    image = np.asarray(image, dtype=np.float64)
    binary = np.asarray(mask, dtype=bool)
    if not binary.any() or binary.all():
        return float("nan")
    distance = signed_distance(binary, pixel_mm)
    near = np.abs(distance) <= max(near_mm, pixel_mm)
    low, high = CONTEXT_MM
    context = ((distance > low) & (distance <= high)) | (distance < -low)
    if near.sum() < 4 or context.sum() < 4:
        return float("nan")
    residual = image - ndimage.gaussian_filter(image, 1.0, mode="nearest")
    spread = residual[context].std()
    return float(residual[near].std() / spread) if spread > 0 else float("nan")


def boundary_profile(image: np.ndarray, mask: np.ndarray, pixel_mm: float,
                     reach_mm: float = PROFILE_MM) -> tuple[np.ndarray, np.ndarray]:
    """Mean intensity at each signed distance to the boundary (1 mm bins within ``reach_mm``): centres, means.

    Distances are measured from the boundary between pixels (half a pixel off each pixel centre
    either side); empty bins are left out.
    """
    image = np.asarray(image, dtype=np.float64)
    distance = signed_distance(mask, pixel_mm)
    distance = distance - np.sign(distance) * pixel_mm / 2.0
    edges = np.arange(-reach_mm, reach_mm + 1e-9, 1.0)
    index = np.digitize(distance, edges) - 1
    valid = (index >= 0) & (index < len(edges) - 1)
    counts = np.bincount(index[valid], minlength=len(edges) - 1)
    sums = np.bincount(index[valid], weights=image[valid], minlength=len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2.0
    keep = counts > 0
    return centres[keep], sums[keep] / counts[keep]


def _step(d: np.ndarray, a: float, b: float, w: float, d0: float) -> np.ndarray:
    """A step from ``a + b`` (inside) to ``a`` (outside) at ``d0``, blurred by a Gaussian of width ``|w|``."""
    from scipy.special import erfc

    return a + b * 0.5 * erfc((d - d0) / (np.sqrt(2.0) * (abs(w) + 1e-6)))


def edge_width(image: np.ndarray, mask: np.ndarray, pixel_mm: float) -> float:
    """The width ``w`` (mm) of a blurred step fitted to the boundary profile (NaN when the fit fails)."""
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    binary = np.asarray(mask, dtype=bool)
    if not binary.any() or binary.all():
        return float("nan")
    centres, means = boundary_profile(image, binary, pixel_mm)
    if len(centres) < 5 or not (centres.min() < 0 < centres.max()):
        return float("nan")
    start = [means[-1], means[0] - means[-1], 1.5, 0.0]
    try:  # unbounded Levenberg-Marquardt (MINPACK) on |w|: 10 times faster than a bounded fit
        with warnings.catch_warnings():  # a flat profile leaves the covariance undefined; the checks below judge it
            warnings.simplefilter("ignore", OptimizeWarning)
            fitted, _ = curve_fit(_step, centres, means, p0=start, maxfev=400)
    except (RuntimeError, ValueError):
        return float("nan")
    width, centre = abs(float(fitted[2])), float(fitted[3])
    if not (np.isfinite(width) and 0.05 <= width <= 10.0 and abs(centre) <= 4.0):
        return float("nan")  # no step near the boundary: no width to speak of
    return width


def interior_profile(image: np.ndarray, mask: np.ndarray, bins: int = INTERIOR_BINS) -> np.ndarray:
    """Median intensity of ``bins`` equal-area rings from the region's centre (0) to its edge, relative to the region's median, minus 1 (float64)."""
    image = np.asarray(image, dtype=np.float64)
    binary = np.asarray(mask, dtype=bool)
    out = np.zeros(bins)
    if binary.sum() < bins:
        return out
    centre = ndimage.center_of_mass(binary)
    grid = np.indices(binary.shape, dtype=np.float64)
    r = np.hypot(grid[0] - centre[0], grid[1] - centre[1])
    r_max = r[binary].max()
    ring = np.minimum(((r / r_max) ** 2 * bins).astype(int), bins - 1) if r_max > 0 else np.zeros(binary.shape, int)
    median = np.median(image[binary])
    if median <= 0:
        return out
    for b in range(bins):
        members = binary & (ring == b)
        out[b] = np.median(image[members]) / median - 1.0 if members.any() else 0.0
    return out


def region_scores(image: np.ndarray, mask: np.ndarray, pixel_mm: float) -> dict[str, float]:
    """The per-image scores of one region crop: boundary sharpness (relative), edge width (mm), interior contrast."""
    profile = interior_profile(image, mask)
    return {"boundary_sharpness": boundary_sharpness(image, mask, pixel_mm),
            "edge_width_mm": edge_width(image, mask, pixel_mm),
            "interior_contrast": float(profile.max() - profile.min())}


DESCRIPTORS = ("boundary", "edge_width", "interior")


def descriptors(crops, kinds: tuple[str, ...] = DESCRIPTORS) -> dict[str, np.ndarray]:
    """Per kind, the descriptors of region crops (``features.regions.RegionCrop``), one row per crop.

    ``boundary`` and ``edge_width`` are ``(N, 1)``, ``interior`` ``(N, bins)``; a crop whose
    boundary descriptor is undefined (no context, a failed fit) is left out of that kind only.
    """
    rows: dict[str, list] = {kind: [] for kind in kinds}
    for crop in crops:
        values = {}
        if "boundary" in kinds:
            values["boundary"] = [boundary_sharpness(crop.roi, crop.mask, crop.pixel_mm)]
        if "edge_width" in kinds:
            values["edge_width"] = [edge_width(crop.roi, crop.mask, crop.pixel_mm)]
        if "interior" in kinds:
            values["interior"] = list(interior_profile(crop.roi, crop.mask))
        for kind, value in values.items():
            if np.all(np.isfinite(value)):
                rows[kind].append(value)
    width = {"boundary": 1, "edge_width": 1, "interior": INTERIOR_BINS}
    return {kind: np.asarray(rows[kind], dtype=np.float64).reshape(-1, width[kind]) for kind in kinds}


def column_wasserstein(reference: np.ndarray, generated: np.ndarray) -> float:
    """Mean over columns of the 1-D Wasserstein distance between the two sets' values of that column."""
    x, y = pair(reference, generated)
    return float(np.mean([wasserstein_distance(x[:, j], y[:, j]) for j in range(x.shape[1])]))


def boundary_wasserstein(reference: np.ndarray, generated: np.ndarray) -> float:
    """1-D Wasserstein distance between the sets' boundary sharpness (a ratio): 0 when the boundaries match."""
    return column_wasserstein(reference, generated)


def edge_width_wasserstein(reference: np.ndarray, generated: np.ndarray) -> float:
    """1-D Wasserstein distance (mm) between the sets' fitted boundary widths."""
    return column_wasserstein(reference, generated)


def interior_wasserstein(reference: np.ndarray, generated: np.ndarray) -> float:
    """Mean 1-D Wasserstein distance between the sets' interior ring profiles (relative intensity)."""
    return column_wasserstein(reference, generated)
