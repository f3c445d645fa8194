"""Intensity noise of the study (SPEC section 2): Gaussian, Rician and Poisson.

All functions take a normalised 3D image (z, y, x) in [0, 1], return a new float32 array and
never modify the input. Sigmas are in normalised intensity units.
"""

from __future__ import annotations

import os

import numpy as np


def _as_float32(image: np.ndarray) -> np.ndarray:
    """A float32 copy of ``image`` (always a copy, so callers may write into it)."""
    return np.array(image, dtype=np.float32, copy=True)


def gaussian_noise(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0),
                   seed: int = 0, sigma: float = 0.05) -> np.ndarray:
    """Additive Gaussian noise: ``I + n``, ``n ~ N(0, sigma^2)`` (paper levels 0.01, 0.05, 0.1)."""
    rng = np.random.default_rng(seed)
    out = _as_float32(image)
    noise = rng.standard_normal(out.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    out += noise
    return out


def rician_noise(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0),
                 seed: int = 0, sigma: float = 0.05) -> np.ndarray:
    """Rician noise, the magnitude of complex Gaussian noise: ``sqrt((I + n1)^2 + n2^2)``.

    Dark regions are biased upwards (mean ``sigma * sqrt(pi / 2)`` at zero signal), which is why
    the paper finds Rician noise far more harmful downstream than Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    real = _as_float32(image)
    real += rng.standard_normal(real.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(real.shape, dtype=np.float32)
    imag *= np.float32(sigma)
    np.square(real, out=real)
    np.square(imag, out=imag)
    real += imag
    np.sqrt(real, out=real)
    return real


def poisson_noise(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0),
                  seed: int = 0, level: float = 0.05) -> np.ndarray:
    """Intensity-dependent (shot) noise: scale to photon counts, draw Poisson, scale back.

    The scale ``k = mean / level^2`` makes the noise standard deviation at the mean intensity of
    the non-zero voxels equal to ``level`` (std of ``Poisson(k I) / k`` is ``sqrt(I / k)``).
    """
    base = np.clip(np.asarray(image, dtype=np.float32), 0.0, None)
    positive = base > 0
    values = base[positive].astype(np.float64)
    out = np.zeros(base.shape, dtype=np.float32)
    if values.size == 0:
        return out
    scale = float(values.mean()) / float(level) ** 2
    out[positive] = _parallel_poisson(values * scale, seed) / scale
    return out


_CHUNKS = 8


def _parallel_poisson(lam: np.ndarray, seed: int) -> np.ndarray:
    """Poisson draws for a 1D array of rates, in a fixed number of chunks drawn on threads.

    Each chunk has its own child generator of ``seed``, so the result does not depend on how many
    threads run; numpy releases the GIL while drawing, so two cores halve the time.
    """
    from concurrent.futures import ThreadPoolExecutor

    children = np.random.SeedSequence(seed).spawn(_CHUNKS)
    bounds = np.linspace(0, lam.size, _CHUNKS + 1).astype(int)
    out = np.empty(lam.size, dtype=np.float32)

    def draw(i: int) -> None:
        lo, hi = bounds[i], bounds[i + 1]
        out[lo:hi] = np.random.default_rng(children[i]).poisson(lam[lo:hi])

    with ThreadPoolExecutor(max_workers=min(_CHUNKS, os.cpu_count() or 1)) as pool:
        list(pool.map(draw, range(_CHUNKS)))
    return out
