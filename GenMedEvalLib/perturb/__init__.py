"""Controlled perturbations of real volumes (SPEC section 2), one module per family, one registry.

Per-volume: ``f(image, *, mask=None, spacing=(1, 1, 1), seed=0, **params) -> np.ndarray`` with
``image`` (z, y, x) normalised to [0, 1] and ``spacing`` in the same axis order (mm); the input
is never modified; the TorchIO artefacts (``artefacts``) go beyond the paper. Set-level:
``f(items, ..., seed=0) -> (new_items, provenance)``.
"""

from .artefacts import anisotropy, bias_field, ghosting, motion, spike
from .contrast import contrast_invention
from .noise import gaussian_noise, poisson_noise, rician_noise
from .registry import (
    PERTURBATIONS,
    ParamSpec,
    PerturbationSpec,
    apply_perturbation,
    apply_set_perturbation,
    get_perturbation,
)
from .sets import density_shift, external_duplication, internal_duplication, mode_collapse
from .tumour import boundary_blur, radial_gradient

__all__ = [
    "PERTURBATIONS", "ParamSpec", "PerturbationSpec", "anisotropy", "apply_perturbation", "apply_set_perturbation",
    "bias_field", "boundary_blur", "contrast_invention", "density_shift", "external_duplication", "gaussian_noise",
    "get_perturbation", "ghosting", "internal_duplication", "mode_collapse", "motion", "poisson_noise",
    "radial_gradient", "rician_noise", "spike",
]
