"""The Fréchet Radiomic Distance (FRD; Konz, Osuala et al., Medical Image Analysis 2026) through ``frd-score``.

The inputs are the raw radiomic features of each set (``features.radiomics``: the package's own
extraction, cached). The distance is the package's own pipeline, unchanged: its
``calculate_feature_statistics`` for the FRD version (v0: min-max normalisation on both sets'
range; v1: drop images with NaN features, float32, z-score on the reference, drop NaN/Inf columns;
then mean and covariance) fed with these features instead of re-extracting them, its
``calculate_frechet_distance``, and for v1 its ``log(d_F^2)``, as in ``frd_score.compute_frd``. So the value equals ``python -m frd_score`` on the same image (and mask)
files, which a test checks, and the suite's bootstrap resamples feature rows without extracting again.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from unittest import mock

import numpy as np

from ._checks import MetricInputError


def _served(matrices: dict[str, np.ndarray]):
    """A stand-in for the package's ``compute_features`` that returns the given features of each named set."""
    def compute_features(files, feature_extractor, masks=None, **_):
        matrix = matrices[files[0]]
        names = [f"feature_{j}" for j in range(matrix.shape[1])]
        return matrix, [dict(zip(names, row, strict=True)) for row in matrix], [None] * len(matrix)

    return compute_features


def frechet_radiomic_distance(reference: np.ndarray, generated: np.ndarray, *, version: str = "v0",
                              package_distance: bool = True) -> float:
    """FRD of two sets' radiomic features (``_frd``) on one BLAS thread: the same bits at any ``--threads``."""
    from ..threads import metric_blas

    with metric_blas():
        return _frd(reference, generated, version=version, package_distance=package_distance)


def _frd(reference: np.ndarray, generated: np.ndarray, *, version: str = "v0", package_distance: bool = True) -> float:
    """FRD (v0: ``d_F^2``; v1: ``log(d_F^2)``; lower is closer) between two sets' raw radiomic features ``(N, F)``.

    Rows the package's extraction skipped (all NaN) are dropped, as the package drops them.
    ``package_distance=False`` (the suite's bootstrap replicates only) keeps the package's
    normalisation and statistics but takes the Fréchet distance of its normalised features from
    ``metrics.distance.frechet_distance`` (exact, no ``sqrtm``): scipy's ``sqrtm`` of a 400 x 400
    product costs 0.26 s a replicate here, and only the replicates' spread is used (for z-scores).
    """
    from frd_score import frd

    sets = {}
    for name, matrix in (("reference", reference), ("generated", generated)):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise MetricInputError(f"{name} radiomic features must be a 2D array (N, F), got shape {matrix.shape}")
        matrix = matrix[~np.all(np.isnan(matrix), axis=1)]
        if len(matrix) < 2:
            raise MetricInputError(f"FRD needs at least 2 {name} slices with radiomic features, got {len(matrix)}")
        sets[name] = matrix
    if sets["reference"].shape[1] != sets["generated"].shape[1]:
        raise MetricInputError("reference and generated radiomic features differ in length")
    norm_type, norm_range, _, _, norm_ref = frd._resolve_defaults(version, None, None, None, None,
                                                                   norm_ref=frd.NORM_REF_DEFAULT)
    files = [["reference"] * len(sets["reference"]), ["generated"] * len(sets["generated"])]
    # FRDv1 z-scores constant columns to inf on purpose and drops them afterwards: numpy's warnings are expected
    with mock.patch.object(frd, "compute_features", _served(sets)), contextlib.redirect_stdout(io.StringIO()), \
            np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu, sigma, normalised, _ = frd.calculate_feature_statistics(file_lists=files, norm_type=norm_type,
                                                                    norm_range=norm_range, feature_extractor=None,
                                                                    norm_ref=norm_ref, frd_version=version)
        if package_distance:
            value = frd.calculate_frechet_distance(mu[0], sigma[0], mu[1], sigma[1])
        else:
            from .distance import frechet_distance

            value = frechet_distance(normalised[0], normalised[1])
    if version == frd.FRD_VERSION_V0:
        return float(value)
    return float(np.log(value)) if value > 0 else float("-inf")
