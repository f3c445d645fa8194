"""The perturbation registry: every perturbation with its validated parameters and levels (paper and beyond)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError, short
from . import artefacts, contrast, noise, sets, tumour


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: type, default, inclusive range or choices, unit and help text."""

    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to the parameter's type, or ``ParameterError`` naming the allowed range."""
        if isinstance(value, bool) and self.type is not bool or self.type is str and not isinstance(value, str | int | float):
            raise ParameterError(f"parameter {name}: {short(value)} is not a {self.type.__name__}")
        try:
            value = self.type(value)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"parameter {name}: {short(value)} is not a {self.type.__name__}") from None
        if isinstance(value, float) and not np.isfinite(value):
            raise ParameterError(f"parameter {name}: {value} is not a finite number")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {name}: {short(value)} is not one of {', '.join(map(str, self.choices))}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ParameterError(f"parameter {name}: {value} is outside [{self.low}, {self.high}] {self.unit}".rstrip())
        return value


@dataclass(frozen=True)
class PerturbationSpec:
    """A perturbation: function, kind ("volume" or "set"), mask need, parameters, presets (levels).

    ``beyond_paper`` marks an addition to the study (the TorchIO artefacts): listed and usable like
    any other, but not part of the paper's default sweep (``experiments.config.paper_conditions``).
    """

    name: str
    function: Callable[..., Any]
    kind: str
    family: str
    description: str
    params: Mapping[str, ParamSpec]
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    needs_mask: bool = False
    beyond_paper: bool = False

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in, values checked; unknown names rejected with the list of known ones."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ParameterError(f"{self.name} has no parameter {', '.join(unknown)} (parameters: {known})")
        return {name: spec.check(name, params.get(name, spec.default)) for name, spec in self.params.items()}

    def preset(self, level: str | float) -> dict[str, Any]:
        """The parameters of one of the paper's levels (``level`` as in ``presets``)."""
        key = str(level)
        if key not in self.presets:
            raise ParameterError(f"{self.name} has no level {level!r} (levels: {', '.join(self.presets)})")
        return dict(self.presets[key])

    def record(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """What a sweep stores so the condition can be regenerated exactly."""
        return {"perturbation": self.name, "params": self.validate(params), "seed": int(seed)}


_MODE = ParamSpec(str, "slice", choices=tumour.MODES, help="per axial slice (the paper) or 3D")

# MRI artefacts beyond the paper (TorchIO), three levels each from mild ("1") to strong ("3").
_ARTEFACT_LEVELS = ("1", "2", "3")


def _levels(*values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(zip(_ARTEFACT_LEVELS, values, strict=True))


_ARTEFACTS = (
    PerturbationSpec("motion", artefacts.motion, "volume", "artefact",
                     "rigid head motion during the scan (TorchIO Motion, k-space segments of moved copies)",
                     {"degrees": ParamSpec(float, 3.0, 0.0, 30.0, "degrees", help="largest rotation about each axis"),
                      "translation": ParamSpec(float, 3.0, 0.0, 30.0, "mm", help="largest shift along each axis"),
                      "num_transforms": ParamSpec(int, 3, 1, 10, help="number of movements during the scan")},
                     # mild 1 deg / 1 mm (a still patient), moderate 3 / 3, severe 8 / 8 (a restless one)
                     _levels({"degrees": 1.0, "translation": 1.0, "num_transforms": 2},
                             {"degrees": 3.0, "translation": 3.0, "num_transforms": 3},
                             {"degrees": 8.0, "translation": 8.0, "num_transforms": 4}), beyond_paper=True),
    PerturbationSpec("ghosting", artefacts.ghosting, "volume", "artefact",
                     "periodic-motion ghosts along the phase-encode axis (TorchIO Ghosting)",
                     {"num_ghosts": ParamSpec(int, 4, 2, 32, help="every n-th k-space plane is scaled: n ghosts"),
                      "intensity": ParamSpec(float, 0.6, 0.0, 1.0, "fraction", help="attenuation of those planes"),
                      "axis": ParamSpec(str, "y", choices=artefacts.GHOST_AXES, help="phase-encode axis"),
                      "restore": ParamSpec(float, 0.02, 0.0, 1.0, "fraction", help="k-space centre kept intact")},
                     _levels({"intensity": 0.3}, {"intensity": 0.6}, {"intensity": 0.9}), beyond_paper=True),
    PerturbationSpec("spike", artefacts.spike, "volume", "artefact",
                     "herringbone stripes from k-space spikes (TorchIO Spike)",
                     {"num_spikes": ParamSpec(int, 2, 1, 20, help="number of corrupted k-space points"),
                      "intensity": ParamSpec(float, 0.5, 0.0, 5.0, "fraction",
                                             help="spike height relative to the k-space maximum")},
                     _levels({"num_spikes": 1, "intensity": 0.2}, {"num_spikes": 2, "intensity": 0.5},
                             {"num_spikes": 3, "intensity": 1.0}), beyond_paper=True),
    PerturbationSpec("bias_field", artefacts.bias_field, "volume", "artefact",
                     "smooth multiplicative intensity inhomogeneity (TorchIO BiasField)",
                     {"coefficients": ParamSpec(float, 0.2, 0.0, 2.0, "log intensity",
                                                help="largest polynomial coefficient of the log field"),
                      "order": ParamSpec(int, 3, 0, 6, help="polynomial order of the log field")},
                     # brightest / darkest tissue about 1.35x, 1.8x and 2.5x on a head phantom (seed 0): a
                     # well-shimmed 1.5 T scan, a typical uncorrected 3 T one, a strong 3 T / 7 T one
                     _levels({"coefficients": 0.1}, {"coefficients": 0.2}, {"coefficients": 0.3}),
                     beyond_paper=True),
    PerturbationSpec("anisotropy", artefacts.anisotropy, "volume", "artefact",
                     "thick slices: resampled to factor x the spacing along one axis and back (TorchIO Resample)",
                     {"factor": ParamSpec(float, 3.0, 1.0, 10.0, "x spacing", help="slice thickening factor"),
                      "axis": ParamSpec(str, "coarsest", choices=artefacts.ANISOTROPY_AXES,
                                        help="axis to thicken; coarsest = largest spacing (ties: z, the slice axis)")},
                     # 1 mm isotropic -> 2, 3 and 5 mm slices, the range of clinical 2D acquisitions
                     _levels({"factor": 2.0}, {"factor": 3.0}, {"factor": 5.0}), beyond_paper=True),
)

PERTURBATIONS: dict[str, PerturbationSpec] = {
    spec.name: spec
    for spec in (
        PerturbationSpec("gaussian_noise", noise.gaussian_noise, "volume", "noise", "additive Gaussian noise",
                         {"sigma": ParamSpec(float, 0.05, 0.0, 1.0, "normalised intensity", help="noise standard deviation")},
                         {str(s): {"sigma": s} for s in (0.01, 0.05, 0.1)}),
        PerturbationSpec("rician_noise", noise.rician_noise, "volume", "noise", "Rician (magnitude) noise",
                         {"sigma": ParamSpec(float, 0.05, 0.0, 1.0, "normalised intensity", help="std of each Gaussian component")},
                         {str(s): {"sigma": s} for s in (0.01, 0.05, 0.1)}),
        PerturbationSpec("poisson_noise", noise.poisson_noise, "volume", "noise", "intensity-dependent Poisson noise",
                         {"level": ParamSpec(float, 0.05, 1e-4, 1.0, "normalised intensity", help="noise std at mean intensity")},
                         {str(s): {"level": s} for s in (0.01, 0.05, 0.1)}),
        PerturbationSpec("boundary_blur", tumour.boundary_blur, "volume", "tumour", "Gaussian blur of the tumour boundary band",
                         {"sigma": ParamSpec(float, 1.0, 0.0, 20.0, "mm", help="Gaussian sigma"),
                          "band": ParamSpec(float, 3.0, 0.0, 50.0, "mm", help="half-width of the band around the boundary"),
                          "mode": _MODE},
                         {str(s): {"sigma": float(s)} for s in (1, 2, 3)}, needs_mask=True),
        PerturbationSpec("radial_gradient", tumour.radial_gradient, "volume", "tumour",
                         "radial sinusoidal intensity modulation inside the tumour",
                         {"amplitude": ParamSpec(float, 0.2, 0.0, 1.0, "fraction", help="relative modulation depth"),
                          "frequency": ParamSpec(float, 1.0, 0.0, 10.0, "cycles per radius"),
                          "mode": _MODE},
                         # The paper's levels 1, 2, 3 are increasing strengths: 10, 20, 30 % modulation.
                         {str(level): {"amplitude": 0.1 * level} for level in (1, 2, 3)}, needs_mask=True),
        PerturbationSpec("contrast_invention", contrast.contrast_invention, "volume", "contrast",
                         "grey/white-matter contrast pushed towards inversion (mode invention)",
                         {"strength": ParamSpec(float, 0.07, 0.0, 0.2, "fraction", help="see contrast_invention"),
                          "smooth": ParamSpec(float, 1.0, 0.0, 10.0, "mm", help="smoothing of the class maps")},
                         {str(s): {"strength": s} for s in (0.05, 0.07, 0.1)}),
        PerturbationSpec("external_duplication", sets.external_duplication, "set", "duplication",
                         "replace a fraction of the set by copies of training volumes",
                         {"rate": ParamSpec(float, 0.15, 0.0, 1.0, "fraction")},
                         {f"{r}%": {"rate": r / 100} for r in (5, 15, 30, 45)}),
        PerturbationSpec("internal_duplication", sets.internal_duplication, "set", "duplication",
                         "overwrite a fraction of the set with copies of other members",
                         {"rate": ParamSpec(float, 0.15, 0.0, 0.95, "fraction")},
                         {f"{r}%": {"rate": r / 100} for r in (5, 15, 30, 45)}),
        PerturbationSpec("mode_collapse", sets.mode_collapse, "set", "distribution",
                         "drop a class (default: the rarest), optionally re-balance the rest",
                         {"drop": ParamSpec(str, "", help="class to drop; empty = the rarest"),
                          "ratio": ParamSpec(str, "", help="proportions of the remaining classes, rarest first, e.g. 1:5")},
                         {"drop-rarest": {}, "drop-rarest-1:5": {"ratio": "1:5"}}),
        PerturbationSpec("density_shift", sets.density_shift, "set", "distribution",
                         "resample two acquisition groups to given proportions",
                         {"proportions": ParamSpec(str, "50:50", help="group proportions in group-name order, e.g. 10:90")},
                         {p: {"proportions": p} for p in ("10:90", "25:75", "50:50", "75:25", "90:10")}),
        *_ARTEFACTS,
    )
}


def get_perturbation(name: str) -> PerturbationSpec:
    """The registry entry for ``name``, or ``ParameterError`` listing the known perturbations."""
    if name not in PERTURBATIONS:
        raise ParameterError(f"unknown perturbation {name!r} (known: {', '.join(PERTURBATIONS)})")
    return PERTURBATIONS[name]


def parse_ratio(text: str) -> list[float] | None:
    """``"1:5"`` -> ``[1.0, 5.0]``; empty -> None."""
    if not text:
        return None
    try:
        parts = [float(p) for p in str(text).replace(",", ":").split(":")]
    except ValueError:
        raise ParameterError(f"cannot read {text!r} as proportions like 1:5") from None
    if any(not np.isfinite(p) or p < 0 for p in parts) or sum(parts) <= 0:
        raise ParameterError(f"proportions {text!r} must be non-negative with a positive sum")
    return parts


def apply_perturbation(name: str, image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0),
                       seed: int = 0, **params: Any) -> np.ndarray:
    """Validate ``params`` for a per-volume perturbation and apply it; the input is not modified."""
    spec = get_perturbation(name)
    if spec.kind != "volume":
        raise ParameterError(f"{name} is a set-level perturbation; use perturb-set / the sets API")
    image = np.asarray(image)
    if image.ndim != 3:
        raise ParameterError(f"{name} needs a 3D image, got {image.ndim}D")
    if not np.all(np.isfinite(image)):
        raise ParameterError(f"{name}: the image contains NaN or infinite voxels")
    return spec.function(image, mask=mask, spacing=tuple(spacing), seed=int(seed), **spec.validate(params))


def apply_set_perturbation(name: str, items, *, labels=None, groups=None, train_set=(), seed: int = 0, **params: Any):
    """Validate ``params`` for a set-level perturbation and apply it: ``(new_items, provenance)``."""
    spec = get_perturbation(name)
    if spec.kind != "set":
        raise ParameterError(f"{name} is a per-volume perturbation")
    values = spec.validate(params)
    if name == "external_duplication":
        return sets.external_duplication(items, rate=values["rate"], train_set=train_set, seed=seed)
    if name == "internal_duplication":
        return sets.internal_duplication(items, rate=values["rate"], seed=seed)
    if name == "mode_collapse":
        if labels is None:
            raise ParameterError("mode_collapse needs class labels (a cohort CSV with a 'label' column)")
        return sets.mode_collapse(items, labels=labels, drop=values["drop"] or None,
                                  ratio=parse_ratio(values["ratio"]), seed=seed)
    if groups is None:
        raise ParameterError("density_shift needs acquisition groups (a cohort CSV with a 'group' column)")
    return sets.density_shift(items, groups=groups, proportions=parse_ratio(values["proportions"]), seed=seed)
