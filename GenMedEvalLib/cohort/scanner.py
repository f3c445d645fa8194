"""Two acquisition groups that differ like two scanners: contrast curve, noise level, bias field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import smooth_upsample


@dataclass(frozen=True)
class Scanner:
    """An acquisition model: gamma contrast curve, Rician noise sigma, bias-field strength."""

    name: str
    gamma: float
    noise: float
    bias: float


SCANNERS = {"A": Scanner("A", gamma=1.0, noise=0.012, bias=0.08), "B": Scanner("B", gamma=0.75, noise=0.035, bias=0.25)}


def bias_field(shape, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative field around 1 (+- ``strength``), from a very coarse random grid."""
    coarse = rng.uniform(-1, 1, size=(3, 3, 3))
    field = smooth_upsample(coarse, shape)
    field /= np.abs(field).max() + 1e-8
    return (1.0 + strength * field).astype(np.float32)


def acquire(image: np.ndarray, scanner: Scanner, rng: np.random.Generator) -> np.ndarray:
    """Apply a scanner's contrast curve, bias field and Rician noise to an image in [0, ~1]."""
    out = np.power(np.clip(image, 0, None), scanner.gamma) * bias_field(image.shape, rng, scanner.bias)
    n1 = rng.standard_normal(image.shape, dtype=np.float32) * scanner.noise
    n2 = rng.standard_normal(image.shape, dtype=np.float32) * scanner.noise
    return np.sqrt((out + n1) ** 2 + n2**2).astype(np.float32)
