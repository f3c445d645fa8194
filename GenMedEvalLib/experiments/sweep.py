"""Phase 1 (``genmedeval sweep CONFIG``): every condition's upstream metrics and downstream predicted Dice.

For each condition of the config: perturb the base set (per-volume kinds write ``perturbed/KIND/
LEVEL/``; set-level kinds re-index the base and train sets: a provenance table, no new image),
encode slices through the shared content-hash cache, compute the selected metrics against the
reference set (train/test sets for AuthPct and CT) with percentile bootstrap 95 % intervals
(``bootstrap`` resamples of the reference and the condition's set), and, with downstream on, segment every
perturbed volume and predict the Dice of its segmentation (set-level conditions re-index the base
set's per-volume scores). Slices per volume: ``max_slices`` evenly spaced plus ``tumour_slices``
through the mask, so mask-local perturbations (boundary blur, radial gradient) recompute only the
tumour slices: the rest hash identically and come from the cache.

z-score (one definition, used everywhere): ``z = (value - baseline) / s`` with ``s`` the
baseline's bootstrap standard deviation, estimated as (97.5th - 2.5th percentile) / 3.92 over
``bootstrap`` resamples of the baseline's reference and base sets (``tables.zscore``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import (
    CohortItem,
    Volume,
    normalize_intensity,
    read_cohort,
    read_mask,
    read_volume,
    write_text,
    write_volume,
)
from ..progress import progress
from .config import Condition, DataSet, SweepConfig
from .resultcache import ResultCache

SKIPPED_METRICS = ("is",)  # needs 1008-way Inception logits; `genmedeval metrics` reports it when available


@dataclass
class Case:
    """One normalised volume of a set, with its mask (zeros when it has none)."""

    item: CohortItem
    image: np.ndarray
    mask: np.ndarray
    volume: Volume

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.volume.spacing_zyx


def load_set(data: DataSet, name: str) -> list[Case]:
    """Read and normalise the volumes (and masks) of one data set."""
    items = read_cohort(data.folder)
    if data.split is not None:
        items = [i for i in items if i.split == data.split]
        if not items:
            raise InputError(f"no volumes of split '{data.split}' (data.{name}); check cohort.csv", data.folder)
    cases = []
    for item in items:
        volume = read_volume(item.image)
        mask = read_mask(item.mask, like=volume).array if item.mask is not None else np.zeros(volume.array.shape, np.uint8)
        cases.append(Case(item, normalize_intensity(volume.array), mask.astype(np.uint8), volume))
    return cases


class SliceFeatures:
    """Per-volume slice features through the shared cache; counts network passes against naive counts."""

    def __init__(self, encoder, max_slices: int | None, tumour_slices: int, cache=None):
        from ..features import FeatureCache, SliceSettings

        self.encoder = encoder
        self.spread = SliceSettings(max_slices=max_slices)
        self.tumour = SliceSettings(max_slices=tumour_slices, mask_only=True) if tumour_slices else None
        self.cache = cache if cache is not None else FeatureCache()
        self.slices_seen = 0

    def of(self, images: list[np.ndarray], masks: list[np.ndarray]) -> list[np.ndarray]:
        """One (slices x D) float64 matrix per volume: evenly spaced slices, then tumour slices."""
        from ..features import extract_features

        parts = [extract_features(images, self.encoder, slices=self.spread, cache=self.cache, show_progress=False)]
        with_tumour = [i for i, m in enumerate(masks) if np.any(m)]
        if self.tumour is not None and with_tumour:
            parts.append(extract_features([images[i] for i in with_tumour], self.encoder, slices=self.tumour,
                                          masks=[masks[i] for i in with_tumour], cache=self.cache,
                                          show_progress=False))
        per_volume: list[list[np.ndarray]] = [[] for _ in images]
        for part_index, fs in enumerate(parts):
            index = fs.volume_index
            owners = list(range(len(images))) if part_index == 0 else with_tumour
            for local, owner in enumerate(owners):
                per_volume[owner].append(fs.pool[index == local])
            self.slices_seen += len(fs.info)
        dim = parts[0].pool.shape[1]
        return [np.concatenate(p, axis=0).astype(np.float64) if p else np.zeros((0, dim)) for p in per_volume]


def stack(per_volume: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(per_volume, axis=0)


@dataclass
class Downstream:
    """Predicted Dice per volume with one segmenter and predictor loaded once."""

    segmenter: Any
    predictor: Any
    volumes_segmented: int = 0
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    identity: str = ""
    results: ResultCache | None = None

    @classmethod
    def load(cls, segmenter_path: str | None, results: ResultCache | None = None) -> Downstream:
        from ..quality import default_predictor
        from ..segment import load_segmenter
        from ..segment.loader import shipped_segmenter
        from .resultcache import file_digest

        segmenter, predictor = load_segmenter(segmenter_path), default_predictor()
        files = [str(segmenter_path or shipped_segmenter()), str(predictor.source)]
        identity = "+".join(file_digest(f) if Path(f).is_file() else f for f in files)
        return cls(segmenter, predictor, identity=identity, results=results)

    def scores(self, images: list[np.ndarray], spacings: list, keys: list[str] | None = None) -> np.ndarray:
        """Predicted Dice of each volume's segmentation (nan where the segmenter finds nothing)."""
        from ..quality import evanyseg_score

        out = []
        for i, (image, spacing) in enumerate(zip(images, spacings, strict=True)):
            def compute(image=image, spacing=spacing):
                return evanyseg_score(image, spacing, segmenter=self.segmenter, predictor=self.predictor)

            score, mask = (self.results.score(image, spacing, self.identity, compute) if self.results is not None
                           else compute())
            self.volumes_segmented += 1
            if keys is not None:
                self.masks[keys[i]] = mask
            out.append(score)
        return np.asarray(out, dtype=float)


def summarise_dice(scores: np.ndarray, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Mean predicted Dice over volumes with a segmentation, bootstrap 95 % CI over those volumes."""
    found = scores[np.isfinite(scores)]
    if len(found) == 0:
        return {"dice": None, "ci_low": None, "ci_high": None, "n_volumes": len(scores), "n_found": 0}
    rng = np.random.default_rng(seed)
    means = [float(rng.choice(found, len(found)).mean()) for _ in range(max(bootstrap, 0))]
    low, high = (np.percentile(means, [2.5, 97.5]) if means else (None, None))
    return {"dice": float(found.mean()), "ci_low": None if low is None else float(low),
            "ci_high": None if high is None else float(high), "n_volumes": len(scores), "n_found": len(found)}


def changed_fraction(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """Fraction of voxels a per-volume condition changed (0: it was a no-op on these volumes)."""
    total = sum(b.size for b in before)
    return float(sum(int(np.count_nonzero(a != b)) for a, b in zip(after, before, strict=True)) / max(total, 1))


def reindex_scores(provenance: list, sources: dict[str, np.ndarray | None]) -> np.ndarray:
    """Per-volume downstream scores of a set-level condition, re-indexed exactly as its features are.

    Entries whose source has no scores (no train set scored, or beyond ``downstream.max_volumes``)
    are left out.
    """
    return np.asarray([sources[s][i] for s, i in provenance
                       if sources.get(s) is not None and i < len(sources[s])], dtype=float)


def metric_names(metrics: str | list[str]) -> list[str]:
    """The metrics a sweep computes: "all" = the default suite without those needing absent inputs."""
    from ..metrics.registry import DEFAULT_METRICS
    from ..metrics.suite import resolve_metrics

    if metrics == "all":
        return [m for m in DEFAULT_METRICS if m not in SKIPPED_METRICS]
    return resolve_metrics(metrics)


def _perturb_volumes(condition: Condition, spec, cases: list[Case], out: Path) -> list[np.ndarray]:
    """The base set under a per-volume condition (cases without a tumour stay as they are for mask kinds)."""
    from ..perturb import apply_perturbation

    images = []
    for case in cases:
        if spec.needs_mask and not case.mask.any():
            images.append(case.image)
            continue
        images.append(apply_perturbation(condition.perturbation, case.image, mask=case.mask if spec.needs_mask else None,
                                         spacing=case.spacing, seed=condition.seed, **condition.params))
    _write_changed(out / "perturbed" / condition.perturbation / condition.level, cases, images)
    return images


def _write_changed(folder: Path, cases: list[Case], images: list[np.ndarray]) -> None:
    """Write each perturbed volume unless the file there already holds exactly these voxels.

    ``digests.json`` beside the volumes records each written array's content hash, so a second
    run over the same data skips the (gzip-bound) writes.
    """
    from ..digest import array_digest

    record = folder / "digests.json"
    try:
        known = json.loads(record.read_text()) if record.is_file() else {}
    except ValueError:
        known = {}
    digests = {}
    for case, image in zip(cases, images, strict=True):
        name = case.item.image.name
        digests[name] = array_digest(image, extra=json.dumps(list(case.volume.spacing)))
        if known.get(name) != digests[name] or not (folder / name).is_file():
            write_volume(case.volume, folder / name, image)
    if digests != known:
        write_text(record, json.dumps(digests, indent=1))


def run_sweep(config: SweepConfig, out: str | Path, *, encoder=None, report: bool = True) -> Path:
    """Run every condition of ``config``; write tables (and the report); return the output folder."""
    from ..perturb import PERTURBATIONS, apply_set_perturbation
    from .demo import choose_encoder
    from .tables import write_sweep_tables

    start = time.perf_counter()
    out = Path(out)
    results = ResultCache()
    downstream = Downstream.load(config.segmenter, results) if config.downstream else None  # missing model: fail first
    sets = {name: load_set(data, name) for name, data in config.data.items()}
    base = sets["base"]
    enc = encoder if encoder is not None else choose_encoder(config.encoder)
    feats = SliceFeatures(enc, config.max_slices, config.tumour_slices)
    per_volume = {name: feats.of([c.image for c in cases], [c.mask for c in cases]) for name, cases in sets.items()}
    base_slices = sum(len(f) for f in per_volume["base"])
    fixed = {name: stack(per_volume[name]) for name in ("reference", "train", "test") if name in per_volume}
    names = metric_names(config.metrics)
    baseline = results.suite({**fixed, "generated": stack(per_volume["base"])}, names, bootstrap=config.bootstrap,
                             seed=config.seed)
    dn_cases = base[:config.downstream_max_volumes] if config.downstream_max_volumes else base
    base_scores = train_scores = None
    if downstream is not None:
        base_scores = downstream.scores([c.image for c in dn_cases], [c.spacing for c in dn_cases],
                                        keys=[f"baseline/{c.item.name}" for c in dn_cases])
        if "train" in sets and any(c.perturbation == "external_duplication" for c in config.conditions):
            train_scores = downstream.scores([c.image for c in sets["train"]], [c.spacing for c in sets["train"]])
    rows: list[dict[str, Any]] = []
    changed: dict[str, float] = {}
    dice_rows = [{"condition": "baseline", "perturbation": "none", "family": "baseline", "level": "",
                  **summarise_dice(base_scores, bootstrap=config.bootstrap, seed=config.seed)}] if downstream else []
    for cond in progress(config.conditions, desc="conditions"):
        spec = PERTURBATIONS[cond.perturbation]
        scores = None
        if spec.kind == "volume":
            images = _perturb_volumes(cond, spec, base, out)
            changed[cond.name] = changed_fraction([c.image for c in base], images)
            generated = stack(feats.of(images, [c.mask for c in base]))
            if downstream is not None:
                chosen = images[:len(dn_cases)]
                scores = downstream.scores(chosen, [c.spacing for c in dn_cases],
                                           keys=[f"{cond.name}/{c.item.name}" for c in dn_cases])
        else:
            sources = {"eval": per_volume["base"], "train": per_volume.get("train", [])}
            _, provenance = apply_set_perturbation(
                cond.perturbation, list(range(len(base))), labels=[c.item.label for c in base],
                groups=[c.item.group for c in base], train_set=list(range(len(sets.get("train", [])))),
                seed=cond.seed, **cond.params)
            generated = stack([sources[source][index] for source, index in provenance])
            write_text(out / "perturbed" / cond.perturbation / cond.level / "provenance.json", json.dumps(provenance))
            if downstream is not None:
                scores = reindex_scores(provenance, {"eval": base_scores, "train": train_scores})
        result = results.suite({**fixed, "generated": generated}, names, bootstrap=config.bootstrap, seed=cond.seed)
        for row in result.rows:
            rows.append({"condition": cond.name, "perturbation": cond.perturbation, "family": spec.family,
                         "level": cond.level, "params": json.dumps(cond.params), "seed": cond.seed,
                         "metric": row.metric, "value": row.value, "ci_low": row.ci_low, "ci_high": row.ci_high})
        if scores is not None:
            dice_rows.append({"condition": cond.name, "perturbation": cond.perturbation, "family": spec.family,
                              "level": cond.level, **summarise_dice(scores, bootstrap=config.bootstrap, seed=config.seed)})
    reuse = reuse_summary(feats, base_slices, len(config.conditions), {k: len(v) for k, v in sets.items()},
                          sum(len(f) for k, v in per_volume.items() if k != "base" for f in v))
    run = {"name": config.name, "encoder": enc.name, "encoder_identity": enc.identity(),
           "max_slices": config.max_slices, "tumour_slices": config.tumour_slices, "bootstrap": config.bootstrap,
           "seed": config.seed, "metrics": names, "sets": {k: v.describe() for k, v in config.data.items()},
           "set_sizes": {k: len(v) for k, v in sets.items()}, "downstream": bool(downstream),
           "volumes_segmented": downstream.volumes_segmented if downstream else 0,
           "seconds": round(time.perf_counter() - start, 1), "changed_fraction": changed, "results_cache_hits": results.hits,
           "results_cache_misses": results.misses, **reuse}
    write_sweep_tables(out, rows, baseline, dice_rows, run)
    _save_view_inputs(out, dn_cases if downstream is not None else base, downstream)
    if report:
        from .report import write_report

        write_report(out)
    return out


def reuse_summary(feats: SliceFeatures, base_slices: int, n_conditions: int, sizes: dict[str, int],
                  fixed_slices: int) -> dict[str, Any]:
    """Forward passes against two naive counts.

    ``naive_per_condition``: every condition (and the baseline) encodes its evaluated slices anew;
    ``naive_all_sets``: a per-condition script that also re-encodes the reference/train/test sets.
    """
    passes = int(feats.cache.stats.forward_passes)
    naive = base_slices * (n_conditions + 1) + fixed_slices
    naive_all = (base_slices + fixed_slices) * (n_conditions + 1)
    return {"network_forward_passes": passes, "naive_forward_passes": naive, "reduction": _ratio(naive, passes),
            "naive_forward_passes_all_sets": naive_all, "reduction_all_sets": _ratio(naive_all, passes),
            "set_sizes": sizes}


def _ratio(naive: int, passes: int) -> float | None:
    """How many times fewer passes than the naive count; None when the cache served every feature."""
    return round(naive / passes, 2) if passes else None


def _save_view_inputs(out: Path, base: list[Case], downstream: Downstream | None) -> None:
    """Remember the representative case (the volume of ``base`` with the largest tumour) for the report's views.

    With downstream on, ``base`` is the volumes that were segmented, so the views can show the
    segmenter's output beside the tumour mask.
    """
    with_tumour = [c for c in base if c.mask.any()]
    if not with_tumour:
        return
    case = max(with_tumour, key=lambda c: int(c.mask.sum()))
    info = {"case": case.item.name, "image": str(case.item.image), "mask": str(case.item.mask)}
    if downstream is not None:
        for key, mask in downstream.masks.items():
            condition, name = key.split("/", 1)
            if name == case.item.name:
                path = out / "segmentations" / condition.replace("@", "_") / case.item.image.name
                write_volume(case.volume, path, mask)
                info.setdefault("segmentations", {})[condition] = str(path)
    write_text(out / "views.json", json.dumps(info, indent=1))
