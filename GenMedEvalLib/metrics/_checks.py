"""Input checks shared by the metrics: shapes, finiteness, sizes; features cast to float64."""

from __future__ import annotations

import numpy as np

from ..errors import GenMedEvalError


class MetricInputError(GenMedEvalError, ValueError):
    """Features a metric cannot be computed on (too few samples, NaN, mismatched dimensions)."""


def as_features(x, name: str, min_samples: int = 2, keep_float32: bool = False) -> np.ndarray:
    """``x`` as a finite float64 ``(N, D)`` matrix with at least ``min_samples`` rows.

    ``keep_float32`` leaves float32 input as it is (exactly representable in float64) for metrics
    that convert block by block themselves, sparing a float64 copy of the whole matrix.
    """
    x = np.asarray(x)
    if not (keep_float32 and x.dtype == np.float32):
        x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MetricInputError(f"{name} features must be a 2D array (N, D), got shape {x.shape}")
    if x.shape[0] < min_samples:
        raise MetricInputError(f"{name} features need at least {min_samples} samples, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise MetricInputError(f"{name} features contain NaN or infinite values")
    return x


def pair(x, y, names=("reference", "generated"), min_samples: int = 2,
         keep_float32: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two feature matrices checked and of the same dimension."""
    x = as_features(x, names[0], min_samples, keep_float32)
    y = as_features(y, names[1], min_samples, keep_float32)
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(f"{names[0]} features have {x.shape[1]} dimensions, {names[1]} {y.shape[1]}")
    return x, y
