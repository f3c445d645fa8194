"""Phase 1 (``genmedeval sweep CONFIG``): every condition's upstream metrics and downstream true and predicted Dice.

For each condition of the config: perturb the base set (per-volume kinds write ``perturbed/KIND/
LEVEL/``; set-level kinds re-index the base and train sets: a provenance table, no new image),
encode slices through the shared content-hash cache, compute the selected metrics against the
reference set (train/test sets for AuthPct and CT) with percentile bootstrap 95 % intervals
(``bootstrap`` resamples of the reference and the condition's set), and, with downstream on, segment every
perturbed volume, predict the Dice of its segmentation and measure its true Dice against the tumour
mask the perturbation kept (``dicetable``; set-level conditions re-index the base set's per-volume
records). Slices per volume: ``max_slices`` evenly spaced plus ``tumour_slices``
through the mask, so mask-local perturbations (boundary blur, radial gradient) recompute only the
tumour slices: the rest hash identically and come from the cache.

z-score (one definition, used everywhere): ``z = (value - baseline) / s`` with ``s`` the
baseline's bootstrap standard deviation, estimated as (97.5th - 2.5th percentile) / 3.92 over
``bootstrap`` resamples of the baseline's reference and base sets (``tables.zscore``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import (
    DEFAULT_CASE_OPTIONS,
    Case,
    CaseOptions,
    list_cases,
    list_files,
    perturb_case,
    read_item,
    resolve_contrast,
)
from ..errors import InputError
from ..features.localfeatures import LocalSet, stack_local, suite_local
from ..io import CohortItem, Volume, write_text, write_volume
from ..progress import progress
from .config import Condition, DataSet, SweepConfig
from .dicetable import (
    EMPTY_PREDICTION,
    VolumeDice,
    has_truth,
    reindex,
    summarise,
    touched_fraction,
    volume_dice,
)
from .resultcache import ResultCache
from .stats import BOOTSTRAP, bootstrap_ci

SKIPPED_METRICS = ("is",)  # needs 1008-way Inception logits; `genmedeval metrics` reports it when available


@dataclass
class SetCase:
    """One case of a set, every contrast normalised once, with its tumour mask (zeros when it has none).

    ``volume`` is the primary contrast (what the encoders and the quality predictor see), with
    its geometry; ``case`` holds every contrast (what the segmenter and the perturbations see).
    """

    item: CohortItem
    case: Case
    contrast: str | None
    mask: np.ndarray

    @property
    def volume(self) -> Volume:
        return self.case.primary(self.contrast)

    @property
    def image(self) -> np.ndarray:
        return self.volume.array

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.volume.spacing_zyx

    def with_case(self, case: Case) -> SetCase:
        """The same member around perturbed contrasts (same grid, label and mask)."""
        return SetCase(self.item, case, self.contrast, self.mask)


def list_set(data: DataSet, name: str) -> list[CohortItem]:
    """The cases (volume files or case folders) of one data set, restricted to its split."""
    if data.labels is not None and not data.labels.is_file():
        raise InputError(f"labels file not found (data.{name})", data.labels)
    if data.files is not None:
        items = list_files(data.files, mask_dir=data.masks, csv_path=data.labels)
    else:
        items = list_cases(data.folder, csv_path=data.labels, mask_dir=data.masks)
    if data.split is not None:
        items = [i for i in items if i.split == data.split]
        if not items:
            raise InputError(f"no volumes of split '{data.split}' (data.{name}); check cohort.csv",
                             data.folder or data.files[0])
    return items


def load_set(data: DataSet | list[CohortItem], name: str, options: CaseOptions = DEFAULT_CASE_OPTIONS,
             contrast: str | None = None) -> list[SetCase]:
    """Read the cases of one data set, normalise every contrast once and take the tumour target as mask.

    ``contrast``: the primary contrast, resolved across every set of the run (``resolve_contrast``).
    """
    items = data if isinstance(data, list) else list_set(data, name)
    members = []
    for item in items:
        case = read_item(item).normalized()
        tumour = case.tumour(options.target, options.convention)
        mask = tumour if tumour is not None else np.zeros(case.grid.array.shape, np.uint8)
        members.append(SetCase(item, case, contrast if contrast is not None else options.contrast, mask))
    return members


def load_sets(datasets: dict[str, DataSet], options: CaseOptions = DEFAULT_CASE_OPTIONS) -> dict[str, list[SetCase]]:
    """Every set of a run, with one primary contrast for all (listed by name first, then read)."""
    listed = {name: list_set(data, name) for name, data in datasets.items()}
    contrast = resolve_contrast([i for items in listed.values() for i in items], options.contrast)
    return {name: load_set(items, name, options, contrast) for name, items in listed.items()}


class SliceFeatures:
    """Per-volume slice features through the shared cache; counts network passes against naive counts.

    Slices come from ``features.slicing`` with the volumes' own geometry: ``max_slices`` evenly
    spaced, then ``tumour_slices`` through the mask (the same rules as ``genmedeval metrics``).
    """

    def __init__(self, encoder, max_slices: int | None = None, tumour_slices: int | None = None, cache=None, *,
                 settings=None):
        from dataclasses import replace

        from ..features import FeatureCache
        from ..features.slicing import DEFAULT_SLICES

        base = settings if settings is not None else DEFAULT_SLICES  # counts given here override its counts
        self.encoder = encoder
        self.settings = replace(base, max_slices=base.max_slices if max_slices is None else max_slices,
                                tumour_slices=base.tumour_slices if tumour_slices is None else tumour_slices)
        self.cache = cache if cache is not None else FeatureCache()
        self.slices_seen = 0

    def of(self, members: list[SetCase]) -> list[np.ndarray]:
        """One (slices x D) float64 matrix per case: evenly spaced slices, then tumour slices."""
        from ..features import extract_features

        fs = extract_features([m.volume for m in members], self.encoder, slices=self.settings,
                              masks=[m.mask for m in members], cache=self.cache, show_progress=False)
        self.slices_seen += len(fs.info)
        self.last_info = fs.info  # which slices were encoded (the sweep's touched fraction)
        index = fs.volume_index
        pool = np.asarray(fs.pool, dtype=np.float64)
        dim = pool.shape[1] if pool.ndim == 2 else 0
        return [pool[index == i] if len(pool) else np.zeros((0, dim)) for i in range(len(members))]


def stack(per_volume: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(per_volume, axis=0)


class LocalFeatures:
    """Per-volume inputs of the chosen local metrics (``features.localfeatures``), through the shared cache.

    Only the kinds the chosen metrics take are computed, and only for the sets they compare.
    """

    def __init__(self, encoder, cache, names: list[str], settings=None):
        from ..features import FeatureCache
        from ..features.slicing import DEFAULT_SLICES
        from ..metrics.registry import LOCAL_INPUTS, METRICS

        # the same cache folder with counters of its own: crop passes are reported apart from slice passes
        self.encoder, self.cache = encoder, FeatureCache(cache.root, enabled=cache.enabled)
        self.settings = settings if settings is not None else DEFAULT_SLICES
        specs = [METRICS[n] for n in names if METRICS[n].input in LOCAL_INPUTS]
        self.kinds = sorted({spec.input for spec in specs})
        self.sets = {role for spec in specs for role in spec.needs}

    def wanted(self, role: str) -> bool:
        """Whether a set in this role ("reference", "generated", "train", "test") needs local inputs."""
        return bool(self.kinds) and role in self.sets

    def of(self, members: list[SetCase]) -> dict[str, list[np.ndarray]]:
        """Per kind, one matrix per case (its region crops' or slices' rows)."""
        from ..features.localfeatures import local_inputs

        if not self.kinds:
            return {}
        return local_inputs([m.volume for m in members], [m.mask for m in members], self.kinds,
                            encoder=self.encoder, cache=self.cache, slices=self.settings)


@dataclass
class Downstream:
    """Predicted Dice per volume with one segmenter and predictor loaded once."""

    segmenter: Any
    predictor: Any
    volumes_segmented: int = 0
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    identity: str = ""
    results: ResultCache | None = None
    segmented: dict[str, np.ndarray] = field(default_factory=dict)  # Phase 2: masks for images without one

    @classmethod
    def load(cls, segmenter_path: str | None, results: ResultCache | None = None) -> Downstream:
        from ..quality import default_predictor
        from ..segment import load_segmenter
        from ..segment.loader import shipped_segmenter_files
        from .resultcache import file_digest

        segmenter, predictor = load_segmenter(segmenter_path), default_predictor()
        files = [str(segmenter_path)] if segmenter_path else [str(f) for f in shipped_segmenter_files()]
        files.append(str(predictor.source))
        identity = "+".join(file_digest(f) if Path(f).is_file() else f for f in files)
        return cls(segmenter, predictor, identity=identity, results=results)

    def scores(self, members: list[SetCase], keys: list[str] | None = None) -> np.ndarray:
        """Predicted Dice of each case's segmentation (nan where the segmenter finds nothing).

        The segmenter sees every contrast (``Segmenter.segment_contrasts``); the quality predictor
        sees the primary contrast and the segmentation.
        """
        from ..quality import predict_dice

        out = []
        for i, member in enumerate(members):
            def compute(member=member):
                mask = self.segmenter.segment_contrasts(member.case.arrays(), member.spacing)
                if not mask.any():
                    return float("nan"), mask
                return predict_dice(member.image, mask, spacing_zyx=member.spacing, predictor=self.predictor), mask

            key_image, identity = member.image, self.identity
            if len(member.case.contrasts) > 1:
                key_image = np.stack(list(member.case.arrays().values()))
                identity = f"{identity}|{','.join(member.case.contrasts)}|{member.case.primary_name(member.contrast)}"
            score, mask = (self.results.score(key_image, member.spacing, identity, compute)
                           if self.results is not None else compute())
            self.volumes_segmented += 1
            if keys is not None:
                self.masks[keys[i]] = mask
            out.append(score)
        return np.asarray(out, dtype=float)


def summarise_dice(scores: np.ndarray, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Mean predicted Dice over every volume, bootstrap 95 % CI over volumes (for sets without masks: Phase 2).

    A volume where the segmenter found nothing (nan) stays in with ``EMPTY_PREDICTION``.
    """
    found = np.isfinite(scores)
    values = np.where(found, scores, EMPTY_PREDICTION)
    if len(values) == 0:
        return {"dice": None, "ci_low": None, "ci_high": None, "n_volumes": 0, "n_found": 0}
    low, high = bootstrap_ci(values, bootstrap=bootstrap, seed=seed) or (None, None)
    return {"dice": float(values.mean()), "ci_low": low, "ci_high": high, "n_volumes": len(values),
            "n_found": int(found.sum())}


def changed_fraction(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """Fraction of voxels a per-volume condition changed (0: it was a no-op on these volumes)."""
    total = sum(b.size for b in before)
    return float(sum(int(np.count_nonzero(a != b)) for a, b in zip(after, before, strict=True)) / max(total, 1))


def metric_names(metrics: str | list[str]) -> list[str]:
    """The metrics a sweep computes: "all" = the default suite without those needing absent inputs."""
    from ..metrics.registry import DEFAULT_METRICS
    from ..metrics.suite import resolve_metrics

    if metrics == "all":
        return [m for m in DEFAULT_METRICS if m not in SKIPPED_METRICS]
    return resolve_metrics(metrics)


def _perturb_volumes(condition: Condition, spec, cases: list[SetCase], out: Path) -> list[SetCase]:
    """The base set under a per-volume condition, every contrast perturbed (cases without a tumour stay as
    they are for mask kinds)."""
    perturbed = []
    for member in cases:
        if spec.needs_mask and not member.mask.any():
            perturbed.append(member)
            continue
        case = perturb_case(member.case, condition.perturbation, condition.params, seed=condition.seed,
                            mask=member.mask if spec.needs_mask else None)
        perturbed.append(member.with_case(case))
    _write_changed(out / "perturbed" / condition.perturbation / condition.level, perturbed)
    return perturbed


def _files_of(member: SetCase) -> dict[str, Volume]:
    """The files a perturbed case is written as (relative path -> volume): one file, or a case folder."""
    case = member.case
    if not case.folder:
        return {member.item.image.name: case.grid}
    files = {f"{case.name}/{case.file_names[name]}": volume for name, volume in case.contrasts.items()}
    if case.label is not None:
        from ..cases import is_label_name

        own = case.label.path.name if case.label.path is not None else ""
        files[f"{case.name}/{own if is_label_name(own) else 'seg.nii.gz'}"] = case.label
    return files


def _write_changed(folder: Path, members: list[SetCase]) -> None:
    """Write each perturbed case (a file, or a case folder with its label) unless the files there already
    hold exactly these voxels.

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
    for member in members:
        for name, volume in _files_of(member).items():
            digests[name] = array_digest(volume.array, extra=json.dumps(list(volume.spacing)))
            if known.get(name) != digests[name] or not (folder / name).is_file():
                write_volume(volume, folder / name)
    if digests != known:
        write_text(record, json.dumps(digests, indent=1))


def run_sweep(config: SweepConfig, out: str | Path, *, encoder=None, report: bool = True,
              on_unit: Callable[[str, dict[str, int]], None] | None = None,
              sets: dict[str, list[SetCase]] | None = None) -> Path:
    """Run every condition of ``config``; write tables (and the report); return the output folder.

    ``on_unit(name, work)`` is called when the baseline and each condition are done, with the work
    they took (network passes, metric tables and segmentations computed, not served by a cache):
    the batch job's journal. ``sets``: the config's sets already read (``load_sets``), not read again.
    """
    from ..perturb import PERTURBATIONS, apply_set_perturbation
    from .demo import choose_encoder
    from .tables import write_sweep_tables

    start = time.perf_counter()
    out = Path(out)
    results = ResultCache()
    downstream = Downstream.load(config.segmenter, results) if config.downstream else None  # missing model: fail first
    sets = sets if sets is not None else load_sets(config.data, config.cases)
    base = sets["base"]
    enc = encoder if encoder is not None else choose_encoder(config.encoder)
    feats = SliceFeatures(enc, settings=config.slice_settings)
    per_volume = {name: feats.of(cases) for name, cases in sets.items()}
    base_slices = sum(len(f) for f in per_volume["base"])
    fixed = {name: stack(per_volume[name]) for name in ("reference", "train", "test") if name in per_volume}
    names = metric_names(config.metrics)
    local = LocalFeatures(enc, feats.cache, names, config.slice_settings)
    duplicates = any(c.perturbation == "external_duplication" for c in config.conditions)  # draws train volumes
    local_volumes = {name: local.of(cases) for name, cases in sets.items()
                     if local.wanted("generated" if name == "base" else name)
                     or (name == "train" and duplicates and local.wanted("generated"))}
    fixed_local = {name: stack_local(per_kind) for name, per_kind in local_volumes.items() if name != "base"}
    baseline = results.suite({**fixed, "generated": stack(per_volume["base"])}, names, bootstrap=config.bootstrap,
                             seed=config.seed,
                             **suite_local(fixed_local, stack_local(local_volumes["base"]) if "base" in local_volumes
                                           else None))
    dn_cases = base[:config.downstream_max_volumes] if config.downstream_max_volumes else base
    records: dict[str, list[VolumeDice]] = {}  # per condition: true and predicted Dice of each segmented volume
    train_records = None
    dn_bootstrap = BOOTSTRAP if config.bootstrap > 0 else 0  # resampling volumes is cheap: many resamples
    if downstream is not None:
        base_scores = downstream.scores(dn_cases, keys=[f"baseline/{c.item.name}" for c in dn_cases])
        records["baseline"] = volume_dice("baseline", dn_cases, base_scores, downstream.masks)
        if "train" in sets and any(c.perturbation == "external_duplication" for c in config.conditions):
            train = sets["train"]
            train_scores = downstream.scores(train, keys=[f"train/{c.item.name}" for c in train])
            train_records = volume_dice("train", train, train_scores, downstream.masks, source="train")
        _keep_view_masks(downstream)
    rows: list[dict[str, Any]] = []
    changed: dict[str, float] = {}
    touched: dict[str, dict[str, float | int]] = {}
    dice_rows = [{"condition": "baseline", "perturbation": "none", "family": "baseline", "level": "",
                  **summarise(records["baseline"], bootstrap=dn_bootstrap, seed=config.seed)}] if downstream else []
    region_rows = region_score_rows("baseline", [c.item.name for c in base], local_volumes.get("base", {}))
    counter = WorkCounter(feats.cache, local.cache, results)
    if on_unit is not None:
        on_unit("sweep/baseline", counter.step())
    for cond in progress(config.conditions, desc="conditions"):
        spec = PERTURBATIONS[cond.perturbation]
        if spec.kind == "volume":
            members = _perturb_volumes(cond, spec, base, out)
            changed[cond.name] = changed_fraction([c.image for c in base], [m.image for m in members])
            generated = stack(feats.of(members))
            per_local = local.of(members) if "base" in local_volumes else None
            generated_local = stack_local(per_local) if per_local is not None else None
            region_rows += region_score_rows(cond.name, [m.item.name for m in members], per_local or {})
            touched[cond.name] = touched_fraction([c.image for c in base], [m.image for m in members],
                                                  feats.last_info, [m.volume.direction for m in members])
            if downstream is not None:
                chosen = members[:len(dn_cases)]
                scores = downstream.scores(chosen, keys=[f"{cond.name}/{c.item.name}" for c in dn_cases])
                records[cond.name] = volume_dice(cond.name, chosen, scores, downstream.masks)
                _keep_view_masks(downstream)
        else:
            sources = {"eval": per_volume["base"], "train": per_volume.get("train", [])}
            _, provenance = apply_set_perturbation(
                cond.perturbation, list(range(len(base))), labels=[c.item.label for c in base],
                groups=[c.item.group for c in base], train_set=list(range(len(sets.get("train", [])))),
                seed=cond.seed, **cond.params)
            generated = stack([sources[source][index] for source, index in provenance])
            generated_local = set_level_local(local_volumes, provenance)
            write_text(out / "perturbed" / cond.perturbation / cond.level / "provenance.json", json.dumps(provenance))
            if downstream is not None:
                records[cond.name] = reindex(cond.name, provenance, {"eval": records["baseline"], "train": train_records})
        result = results.suite({**fixed, "generated": generated}, names, bootstrap=config.bootstrap, seed=cond.seed,
                               **suite_local(fixed_local, generated_local))
        for row in result.rows:
            rows.append({"condition": cond.name, "perturbation": cond.perturbation, "family": spec.family,
                         "level": cond.level, "params": json.dumps(cond.params), "seed": cond.seed,
                         "metric": row.metric, "value": row.value, "ci_low": row.ci_low, "ci_high": row.ci_high,
                         "n_reference": row.n_reference, "n_generated": row.n_generated})
        if cond.name in records:
            dice_rows.append({"condition": cond.name, "perturbation": cond.perturbation, "family": spec.family,
                              "level": cond.level, **summarise(records[cond.name], bootstrap=dn_bootstrap,
                                                               seed=config.seed)})
        if on_unit is not None:
            on_unit(f"sweep/{cond.name}", counter.step())
    reuse = reuse_summary(feats, base_slices, len(config.conditions), {k: len(v) for k, v in sets.items()},
                          sum(len(f) for k, v in per_volume.items() if k != "base" for f in v))
    reuse["region_forward_passes"] = int(local.cache.stats.forward_passes)  # the local metrics' crops
    run = {"name": config.name, "encoder": enc.name, "encoder_identity": enc.identity(),
           "max_slices": config.max_slices, "tumour_slices": config.tumour_slices, "bootstrap": config.bootstrap,
           "seed": config.seed, "metrics": names, "sets": {k: v.describe() for k, v in config.data.items()},
           "set_sizes": {k: len(v) for k, v in sets.items()}, "downstream": bool(downstream),
           "volumes_segmented": downstream.volumes_segmented if downstream else 0,
           "seconds": round(time.perf_counter() - start, 1), "changed_fraction": changed, "touched_fraction": touched,
           "downstream_bootstrap": dn_bootstrap, "results_cache_hits": results.hits,
           "results_cache_misses": results.misses, **reuse}
    write_sweep_tables(out, rows, baseline, dice_rows, run,
                       volume_rows=[r.row() for rs in records.values() for r in rs])
    if region_rows:
        from .tables import csv_text

        write_text(out / "region_scores.csv", csv_text(region_rows))
    _save_view_inputs(out, dn_cases if downstream is not None else base, downstream)
    if report:
        from .report import write_report

        write_report(out)
    return out


class WorkCounter:
    """Work done since the last step: network passes (slices, crops) and cache misses (metric tables, segmentations)."""

    def __init__(self, slice_cache, crop_cache, results: ResultCache):
        self.sources = {"forward_passes": lambda: slice_cache.stats.forward_passes,
                        "region_forward_passes": lambda: crop_cache.stats.forward_passes,
                        "computed_results": lambda: results.misses}
        self.last = {k: 0 for k in self.sources}  # the first step counts what came before it too

    def step(self) -> dict[str, int]:
        now = {k: int(read()) for k, read in self.sources.items()}
        delta = {k: now[k] - self.last[k] for k in now}
        self.last = now
        return delta


def region_score_rows(condition: str, names: list[str], per_volume: dict[str, list[np.ndarray]]) -> list[dict[str, Any]]:
    """Per volume, the mean per-image region scores of its crops (``metrics.local``): boundary sharpness, edge width
    (mm) and interior contrast, for ``region_scores.csv`` (empty when no region descriptor was computed)."""
    kinds = [k for k in ("boundary", "edge_width", "interior") if k in per_volume]
    if not kinds:
        return []
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"condition": condition, "volume": name}
        if "boundary" in per_volume:
            block = per_volume["boundary"][i]
            row.update(crops=len(block), boundary_sharpness=float(block.mean()) if len(block) else None)
        if "edge_width" in per_volume:
            block = per_volume["edge_width"][i]
            row["edge_width_mm"] = float(block.mean()) if len(block) else None
        if "interior" in per_volume:
            block = per_volume["interior"][i]
            row["interior_contrast"] = float((block.max(axis=1) - block.min(axis=1)).mean()) if len(block) else None
        rows.append(row)
    return rows


def set_level_local(local_volumes: dict[str, dict[str, list[np.ndarray]]],
                    provenance: list[tuple[str, int]]) -> LocalSet | None:
    """A set-level condition's local inputs: the base (``eval``) or train volumes' blocks it drew, in its order.

    None when the base set has no local inputs, or a drawn train volume has none (its metrics then
    say which set they need). Each drawn volume is a cluster of its own, a repeated one too.
    """
    sources = {"eval": local_volumes.get("base"), "train": local_volumes.get("train")}
    if sources["eval"] is None or any(sources[source] is None for source, _ in provenance):
        return None
    return stack_local({kind: [sources[source][kind][index] for source, index in provenance]
                        for kind in sources["eval"]})


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


def _keep_view_masks(downstream: Downstream) -> None:
    """Drop the segmentations the report's views do not show (baseline and ``VIEW_CONDITIONS`` stay)."""
    from .report import VIEW_CONDITIONS

    for key in [k for k in downstream.masks if k.split("/", 1)[0] not in ("baseline", *VIEW_CONDITIONS)]:
        del downstream.masks[key]


def _save_view_inputs(out: Path, base: list[SetCase], downstream: Downstream | None) -> None:
    """Remember the representative case (the volume of ``base`` with the largest tumour) for the report's views.

    With downstream on, ``base`` is the volumes that were segmented, so the views can show the
    segmenter's output beside the tumour mask. ``image`` is the primary contrast's file;
    ``perturbed_name`` its path under ``perturbed/KIND/LEVEL/`` (``X/FILE`` for a case folder ``X/``).
    Files the run writes are named relative to ``out``, so a run folder can be moved (or compared byte for byte).
    """
    with_tumour = [c for c in base if c.mask.any()]
    if not with_tumour:
        return
    case = max(with_tumour, key=lambda c: int(c.mask.sum()))
    primary = case.case.primary_name(case.contrast)
    image = case.item.image / case.case.file_names[primary] if case.case.folder else case.item.image
    relative = f"{case.case.name}/{image.name}" if case.case.folder else image.name
    info = {"case": case.item.name, "image": str(image), "mask": str(case.item.mask), "perturbed_name": relative,
            "contrast": primary}
    if downstream is not None:
        for key, mask in downstream.masks.items():
            condition, name = key.split("/", 1)
            if name == case.item.name:
                path = out / "segmentations" / condition.replace("@", "_") / case.case.mask_name
                write_volume(case.volume, path, mask)
                info.setdefault("segmentations", {})[condition] = str(path.relative_to(out))
        info["cases"] = _case_views(out, base, downstream)
    write_text(out / "views.json", json.dumps(info, indent=1))


def _case_views(out: Path, members: list[SetCase], downstream: Downstream) -> list[dict[str, Any]]:
    """Per segmented case, for the report's per-case views: its primary image file, and its tumour mask
    and baseline segmentation written under ``segmentations/truth/`` and ``segmentations/baseline/``."""
    cases = []
    for member in members:
        mask = downstream.masks.get(f"baseline/{member.item.name}")
        if mask is None:
            continue
        primary = member.case.primary_name(member.contrast)
        image = member.item.image / member.case.file_names[primary] if member.case.folder else member.item.image
        truth = out / "segmentations" / "truth" / member.case.mask_name
        segmentation = out / "segmentations" / "baseline" / member.case.mask_name
        write_volume(member.volume, truth, member.mask)
        write_volume(member.volume, segmentation, mask)
        cases.append({"case": member.item.name, "image": str(image), "truth": str(truth.relative_to(out)),
                      "has_truth": has_truth(member), "segmentation": str(segmentation.relative_to(out))})
    return cases
