"""The metric registry: what each metric needs, which direction is better, its defaults."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import distance, diversity, likelihood, local, manifold, pixel


@dataclass(frozen=True)
class MetricSpec:
    """A metric: its function, better direction, needed sets and input kind, outputs and defaults."""

    name: str
    function: Callable[..., Any]
    better: str  # "higher", "lower" or "zero" (closest to 0 is best)
    needs: tuple[str, ...]  # set names passed positionally, in order
    outputs: tuple[str, ...]
    description: str
    reference: str
    input: str = "features"  # one of INPUTS
    local: str = ""  # "roi" or "band" for a local twin, "region" for a metric of the region itself
    defaults: Mapping[str, Any] = field(default_factory=dict)


INPUTS = {
    "features": "features of the set",
    "spatial": "Inception spatial (sFID) features of the set",
    "logits": "classifier logits of the set",
    "images": "images of the set",
    "roi": "tumour-region crops (a mask per image) of the set",
    "band": "tumour-boundary band crops (a mask per image) of the set",
    "boundary": "tumour-region crops (a mask per image) of the set",
    "edge_width": "tumour-region crops (a mask per image) of the set",
    "interior": "tumour-region crops (a mask per image) of the set",
    "radiomics": "radiomic features (frd-score) of the set",
    "radiomics_roi": "tumour-region radiomic features (frd-score, a mask per image) of the set",
    "radiomics_v1": "radiomic features (frd-score FRDv1) of the set",
    "radiomics_v1_roi": "tumour-region radiomic features (frd-score FRDv1, a mask per image) of the set",
}
"""What each input kind is, for the note of a metric whose input is absent."""


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """A function of an optional module, imported on first call (LPIPS needs torch, FRD frd-score)."""
    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f".{module}", __package__), name)(*args, **kwargs)

    call.__name__ = name
    return call


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("fd", distance.frechet_distance, "lower", ("reference", "generated"), ("fd",),
                   "Fréchet distance (FID on Inception features)", "Heusel et al. 2017"),
        MetricSpec("sfid", distance.frechet_distance, "lower", ("reference", "generated"), ("sfid",),
                   "spatial FID: FD on the first 7 Mixed_6e channels (2023-d)", "Nash et al. 2021", input="spatial"),
        MetricSpec("fd_inf", distance.fd_infinity, "lower", ("reference", "generated"), ("fd_inf",),
                   "FD extrapolated to infinite samples", "Chong and Forsyth 2020", defaults={"num_points": 15}),
        MetricSpec("kd", distance.kernel_distance, "lower", ("reference", "generated"), ("kd", "kd_std"),
                   "kernel distance (KID), unbiased MMD^2 with cubic kernel", "Binkowski et al. 2018",
                   defaults={"num_subsets": 100, "subset_size": 1000}),
        MetricSpec("mmd", distance.mmd_rbf, "lower", ("reference", "generated"), ("mmd",),
                   "RBF-kernel MMD^2 x1000 (CMMD style)", "Jayasumana et al. 2024", defaults={"sigma": 10.0}),
        MetricSpec("asw", distance.sw_approx, "lower", ("reference", "generated"), ("asw",),
                   "approximate sliced Wasserstein distance", "Nadjahi et al. 2021"),
        MetricSpec("prdc", manifold.prdc, "higher", ("reference", "generated"),
                   ("precision", "recall", "density", "coverage"),
                   "precision, recall, density, coverage (k-NN manifolds)", "Naeem et al. 2020", defaults={"k": 5}),
        MetricSpec("realism", manifold.realism_score, "higher", ("reference", "generated"), ("realism",),
                   "mean realism score", "Kynkäänniemi et al. 2019", defaults={"k": 5}),
        MetricSpec("authpct", manifold.authpct, "higher", ("train", "generated"), ("authpct",),
                   "percentage of authentic (non-copied) samples", "Alaa et al. 2022"),
        MetricSpec("ct", manifold.ct_score, "zero", ("train", "test", "generated"), ("ct",),
                   "data-copying test statistic (<0 copying, >0 underfitting)", "Meehan et al. 2020",
                   defaults={"cells": 3}),
        MetricSpec("fls", likelihood.fls, "higher", ("train", "test", "generated"), ("fls",),
                   "feature likelihood score (KDE on generated points, scored on test points)",
                   "Jiralerspong et al. 2023", defaults={"steps": 100}),
        MetricSpec("vendi", diversity.vendi_score, "higher", ("generated",), ("vendi",),
                   "Vendi score (effective number of distinct samples)", "Friedman and Dieng 2023"),
        MetricSpec("is", diversity.inception_score, "higher", ("generated",), ("is", "is_std"),
                   "Inception Score (needs classifier logits)", "Salimans et al. 2016", input="logits",
                   defaults={"splits": 10}),
        MetricSpec("pixel_swd", pixel.pixel_swd, "lower", ("reference", "generated"), ("pixel_swd",),
                   "sliced Wasserstein distance of Laplacian-pyramid patches", "Karras et al. 2018; Konz et al. 2024",
                   input="images", defaults={"descriptors": 128, "directions": 128, "repeats": 4}),
        MetricSpec("lpips_diversity", _lazy("lpips", "lpips_diversity"), "higher", ("generated",), ("lpips_diversity",),
                   "mean pairwise LPIPS inside the generated set", "Zhang et al. 2018", input="images"),
        MetricSpec("lpips_fidelity", _lazy("lpips", "lpips_fidelity"), "lower", ("generated", "reference"),
                   ("lpips_fidelity",), "mean LPIPS to the nearest reference image", "Zhang et al. 2018", input="images"),
    )
}

LOCAL_REGIONS = {"roi": "a crop centred on the tumour region", "band": "a band of 4 mm around the tumour boundary"}
TWIN_BASES = ("fd", "fd_inf", "kd", "mmd", "asw", "prdc", "realism", "authpct", "ct", "fls", "vendi")


def _renamed(function: Callable[..., Any], suffix: str) -> Callable[..., Any]:
    """``function`` with the keys of a dict result suffixed (``precision`` -> ``precision_roi``)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        return {f"{k}_{suffix}": v for k, v in result.items()} if isinstance(result, dict) else result

    return call


def local_twin(spec: MetricSpec, region: str) -> MetricSpec:
    """The local twin of a feature metric: the same function on the features of ``region`` crops."""
    return replace(spec, name=f"{spec.name}_{region}", function=_renamed(spec.function, region),
                   outputs=tuple(f"{o}_{region}" for o in spec.outputs), input=region, local=region,
                   description=f"{spec.description}, on {LOCAL_REGIONS[region]}")


METRICS.update({twin.name: twin for base in TWIN_BASES for region in LOCAL_REGIONS
                for twin in [local_twin(METRICS[base], region)]})
METRICS.update({spec.name: spec for spec in (
    MetricSpec("boundary", local.boundary_wasserstein, "lower", ("reference", "generated"), ("boundary",),
               "1-D Wasserstein distance of the tumour boundary's sharpness (high-pass detail within 2 mm over its context)",
               "GenMedEval", input="boundary", local="region"),
    MetricSpec("edge_width", local.edge_width_wasserstein, "lower", ("reference", "generated"), ("edge_width",),
               "1-D Wasserstein distance (mm) of the tumour boundary's width (a blurred step fitted along its normals)",
               "GenMedEval", input="edge_width", local="region"),
    MetricSpec("interior", local.interior_wasserstein, "lower", ("reference", "generated"), ("interior",),
               "1-D Wasserstein distance of the tumour's radial intensity profile (4 rings, relative)",
               "GenMedEval", input="interior", local="region"),
    MetricSpec("frd", _lazy("frd", "frechet_radiomic_distance"), "lower", ("reference", "generated"), ("frd",),
               "Fréchet Radiomic Distance (frd-score's FRDv0: Original-image radiomics) on the whole slices",
               "Konz, Osuala et al. 2026", input="radiomics", defaults={"version": "v0"}),
    MetricSpec("frd_roi", _lazy("frd", "frechet_radiomic_distance"), "lower", ("reference", "generated"),
               ("frd_roi",), "FRD (frd-score's FRDv0) on the tumour region (crop and mask)",
               "Konz, Osuala et al. 2026", input="radiomics_roi", local="roi", defaults={"version": "v0"}),
    MetricSpec("frd_v1", _lazy("frd", "frechet_radiomic_distance"), "lower", ("reference", "generated"),
               ("frd_v1",), "FRD (frd-score's default FRDv1: Original, LoG and wavelet radiomics) on the whole slices",
               "Konz, Osuala et al. 2026", input="radiomics_v1", defaults={"version": "v1"}),
    MetricSpec("frd_v1_roi", _lazy("frd", "frechet_radiomic_distance"), "lower", ("reference", "generated"),
               ("frd_v1_roi",), "FRD (frd-score's FRDv1) on the tumour region (crop and mask)",
               "Konz, Osuala et al. 2026", input="radiomics_v1_roi", local="roi", defaults={"version": "v1"}),
)})

# "all": every metric on the main features; sfid, fls (slow), pixel_swd and lpips_* are asked for by name.
DEFAULT_METRICS = ("fd", "fd_inf", "kd", "mmd", "asw", "prdc", "realism", "authpct", "ct", "vendi", "is",
                   "fd_roi", "prdc_roi", "fd_band", "prdc_band", "boundary", "edge_width", "interior",
                   "frd", "frd_roi")
# The local metrics of "all" (the other twins are asked for by name); FRD only where frd-score is installed,
# as FRDv0: FRDv1 (frd_v1, frd_v1_roi, by name) costs 10 times more (0.57 s a 110 x 110 slice here).
LOCAL_INPUTS = ("roi", "band", "boundary", "edge_width", "interior", "radiomics", "radiomics_roi", "radiomics_v1",
                "radiomics_v1_roi")


def needs_input(names, kind: str) -> bool:
    """True when any of the named metrics takes the input ``kind``."""
    return any(METRICS[name].input == kind for name in names)
