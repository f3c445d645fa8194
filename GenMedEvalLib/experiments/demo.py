"""The demo job behind ``make demo``: cohort -> Phase 1 perturbations at the paper's levels -> metrics.

Steps: build (or reuse) the demo cohort; perturb the cohort's *eval* split at every paper level
(per-volume kinds written to ``perturbed/KIND/LEVEL/``; set-level kinds as provenance tables,
their features re-indexed from the cache with no network pass); encode slices with a cached
encoder; compute the upstream metrics of every condition against the *reference* split (with
the *train* and *test* splits for AuthPct and CT); z-score each metric's change from the
unperturbed baseline; write tables, a heat map and an HTML page.

z-score (used everywhere in GenMedEval): ``z = (value - baseline) / s`` where ``s`` is the
baseline's bootstrap standard deviation, estimated as (97.5th - 2.5th percentile) / 3.92 over
``bootstrap`` resamples of the baseline's reference and generated sets.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import (
    CohortItem,
    normalize_intensity,
    read_cohort,
    read_mask,
    read_volume,
    write_text,
    write_volume,
)
from ..perturb import PERTURBATIONS, apply_perturbation, apply_set_perturbation
from ..progress import progress

SKIPPED_METRICS = ("is",)  # needs classifier logits; reported by `genmedeval metrics` when available


@dataclass(frozen=True)
class Condition:
    """One perturbation at one level, with the exact parameters and seed that regenerate it."""

    perturbation: str
    level: str
    params: dict[str, Any]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.perturbation}@{self.level}"


def paper_conditions(seed: int = 0) -> list[Condition]:
    """Every perturbation of the study at each of the paper's levels (50:50 density is the baseline)."""
    conditions = []
    for spec in PERTURBATIONS.values():
        for level, params in spec.presets.items():
            if spec.name == "density_shift" and level == "50:50":
                continue
            conditions.append(Condition(spec.name, level, spec.validate(params), seed))
    return conditions


@dataclass
class LoadedCase:
    item: CohortItem
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    volume: Any


def load_split(items: list[CohortItem], split: str) -> list[LoadedCase]:
    """Read and normalise the volumes (and masks) of one split, once."""
    cases = []
    for item in items:
        if item.split != split:
            continue
        volume = read_volume(item.image)
        mask = read_mask(item.mask, like=volume).array if item.mask is not None else np.zeros(volume.array.shape, np.uint8)
        cases.append(LoadedCase(item, normalize_intensity(volume.array), mask, volume.spacing_zyx, volume))
    return cases


def choose_encoder(name: str | None):
    """The requested encoder, else the offline domain encoder, else the FID Inception network."""
    from ..features import get_encoder

    if name:
        return get_encoder(name)
    try:
        return get_encoder("domain")
    except Exception:  # noqa: BLE001 - fall back to the always-available network
        return get_encoder("inception")


class SliceFeatures:
    """Per-volume slice features through the shared cache; counts network passes against the naive count."""

    def __init__(self, encoder, max_slices: int, cache=None):
        from ..features import FeatureCache, SliceSettings

        self.encoder = encoder
        self.settings = SliceSettings(max_slices=max_slices)
        self.cache = cache if cache is not None else FeatureCache()
        self.naive_slices = 0

    def of(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """One (slices x D) matrix per volume."""
        from ..features import extract_features

        fs = extract_features(images, self.encoder, slices=self.settings, cache=self.cache, show_progress=False)
        self.naive_slices += len(fs.info)
        index = fs.volume_index
        return [fs.pool[index == v] for v in range(len(images))]


def stack(per_volume: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(per_volume, axis=0).astype(np.float64)


def run_demo(out: str | Path, *, n: int = 40, seed: int = 0, spacing: float = 2.0, encoder: str | None = None,
             max_slices: int = 6, bootstrap: int = 20, metrics: str = "all") -> Path:
    """Run the demo end to end and return the path of ``report.html``."""
    from ..cohort import make_cohort
    from ..metrics import compute_suite
    from ..metrics.registry import DEFAULT_METRICS

    start = time.perf_counter()
    out = Path(out)
    cohort_dir = out / "cohort"
    if not (cohort_dir / "cohort.csv").exists():
        make_cohort(cohort_dir, n=n, seed=seed, spacing=spacing)
    items = read_cohort(cohort_dir / "images")
    splits = {s: load_split(items, s) for s in ("reference", "eval", "train", "test")}
    enc = choose_encoder(encoder)
    feats = SliceFeatures(enc, max_slices)
    base = {s: feats.of([c.image for c in cases]) for s, cases in splits.items()}
    fixed = {"reference": stack(base["reference"]), "train": stack(base["train"]), "test": stack(base["test"])}
    names = [m for m in DEFAULT_METRICS if m not in SKIPPED_METRICS] if metrics == "all" else metrics.split(",")
    baseline = compute_suite({**fixed, "generated": stack(base["eval"])}, names, bootstrap=bootstrap, seed=seed)
    eval_cases = splits["eval"]
    rows: list[dict[str, Any]] = []
    for cond in progress(paper_conditions(seed), desc="conditions"):
        spec = PERTURBATIONS[cond.perturbation]
        if spec.kind == "volume":
            images = []
            for case in eval_cases:
                mask = case.mask if spec.needs_mask else None
                if spec.needs_mask and not case.mask.any():
                    images.append(case.image)  # no tumour: nothing to perturb
                    continue
                images.append(apply_perturbation(cond.perturbation, case.image, mask=mask, spacing=case.spacing,
                                                 seed=cond.seed, **cond.params))
            for case, image in zip(eval_cases, images, strict=True):
                write_volume(case.volume, out / "perturbed" / cond.perturbation / cond.level / case.item.image.name, image)
            generated = stack(feats.of(images))
        else:
            sources = {"eval": base["eval"], "train": base["train"]}
            _, provenance = apply_set_perturbation(
                cond.perturbation, list(range(len(eval_cases))), labels=[c.item.label for c in eval_cases],
                groups=[c.item.group for c in eval_cases], train_set=list(range(len(splits["train"]))),
                seed=cond.seed, **cond.params)
            generated = stack([sources[name][index] for name, index in provenance])
            feats.naive_slices += len(generated)
            write_text(out / "perturbed" / cond.perturbation / cond.level / "provenance.json", json.dumps(provenance))
        result = compute_suite({**fixed, "generated": generated}, names, seed=seed)
        for row in result.rows:
            rows.append({"condition": cond.name, "perturbation": cond.perturbation, "family": spec.family,
                         "level": cond.level, "params": json.dumps(cond.params), "seed": cond.seed,
                         "metric": row.metric, "value": row.value})
    from .tables import write_outputs

    return write_outputs(out, rows, baseline, feats, enc, splits, time.perf_counter() - start, max_slices)
