"""Upstream metrics (SPEC section 4): pure functions of feature matrices, one registry, one suite.

Features are ``(N, D)`` arrays, cast to float64. Set names: "reference", "generated", "train",
"test". sFID is ``frechet_distance`` on the Inception spatial (Mixed_6e) features.
"""

from ._checks import MetricInputError
from .distance import fd_infinity, frechet_distance, kernel_distance, mmd_rbf, sw_approx
from .diversity import inception_score, vendi_score
from .likelihood import fls
from .manifold import authpct, ct_score, prdc, realism_score
from .pixel import pixel_swd
from .registry import DEFAULT_METRICS, METRICS, MetricSpec
from .suite import MetricRow, SuiteResult, compute_suite


def lpips_diversity(*args, **kwargs):
    """Mean pairwise LPIPS inside the generated set (see ``metrics.lpips``)."""
    from .lpips import lpips_diversity as fn

    return fn(*args, **kwargs)


def lpips_fidelity(*args, **kwargs):
    """Mean LPIPS from each generated image to its nearest reference image (see ``metrics.lpips``)."""
    from .lpips import lpips_fidelity as fn

    return fn(*args, **kwargs)


__all__ = [
    "DEFAULT_METRICS", "METRICS", "MetricInputError", "MetricRow", "MetricSpec", "SuiteResult", "authpct",
    "compute_suite", "ct_score", "fd_infinity", "fls", "frechet_distance", "inception_score", "kernel_distance",
    "lpips_diversity", "lpips_fidelity", "mmd_rbf", "pixel_swd", "prdc", "realism_score", "sw_approx", "vendi_score",
]
