"""The metric registry: what each metric needs, which direction is better, its defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import distance, diversity, likelihood, manifold, pixel


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
    input: str = "features"  # "features", "spatial" (sFID), "logits" or "images"
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _lazy_lpips(name: str) -> Callable[..., Any]:
    def call(*args, **kwargs):
        from . import lpips

        return getattr(lpips, name)(*args, **kwargs)

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
        MetricSpec("lpips_diversity", _lazy_lpips("lpips_diversity"), "higher", ("generated",), ("lpips_diversity",),
                   "mean pairwise LPIPS inside the generated set", "Zhang et al. 2018", input="images"),
        MetricSpec("lpips_fidelity", _lazy_lpips("lpips_fidelity"), "lower", ("generated", "reference"),
                   ("lpips_fidelity",), "mean LPIPS to the nearest reference image", "Zhang et al. 2018", input="images"),
    )
}

# "all": every metric on the main features; sfid, fls (slow), pixel_swd and lpips_* are asked for by name.
DEFAULT_METRICS = ("fd", "fd_inf", "kd", "mmd", "asw", "prdc", "realism", "authpct", "ct", "vendi", "is")
