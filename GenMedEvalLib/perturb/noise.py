"""Intensity noise of the study (SPEC section 2): Gaussian, Rician and Poisson.

All functions take a normalised 3D image (z, y, x) in [0, 1], return a new float32 array and
never modify the input. Sigmas are in normalised intensity units.
"""

from __future__ import annotations

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
    rng = np.random.default_rng(seed)
    base = np.clip(np.asarray(image, dtype=np.float64), 0.0, None)
    positive = base[base > 0]
    mean = float(positive.mean()) if positive.size else 1.0
    scale = mean / float(level) ** 2
    counts = rng.poisson(base * scale)
    return (counts / scale).astype(np.float32)
