"""Phase 2 (``genmedeval compare``): models against a reference set, upstream and downstream, and rank agreement.

For each model folder: every selected upstream metric against the reference set, and the mean
predicted Dice of the segmenter's output on its volumes (downstream). Then, per metric, Kendall's
tau between the models' ranking by that metric (oriented so that "better" ranks higher) and their
ranking by predicted Dice, with its p-value (scipy.stats.kendalltau): the paper's Table 6 and
Figure 8. With few models, p-values are necessarily large; the report says how many models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..features.localfeatures import stack_local, suite_local
from ..io import write_text
from .config import DataSet, SweepConfig
from .phase2 import agreement_dice, median_nearest, nearest_training, ranking_finding
from .resultcache import ResultCache
from .stats import bootstrap_ci
from .sweep import (
    Downstream,
    LocalFeatures,
    SliceFeatures,
    WorkCounter,
    list_set,
    load_set,
    metric_names,
    stack,
    summarise_dice,
)
from .tables import csv_text, is_spread

DEFAULT_BOOTSTRAP = SweepConfig.bootstrap  # the sweep's: every model's metrics get intervals


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of one upstream metric with the downstream ranking."""

    metric: str
    tau: float | None
    p_value: float | None
    n_models: int


def oriented(value: float, better: str) -> float:
    """The value with sign such that larger is better (lower-is-better metrics are negated)."""
    return -value if better == "lower" else value


def rank_agreement(upstream: dict[str, dict[str, float]], better: dict[str, str],
                   downstream: dict[str, float]) -> list[Agreement]:
    """Kendall tau (and p) between each metric's oriented model ranking and the predicted-Dice ranking."""
    from scipy.stats import kendalltau

    models = [m for m in downstream if downstream[m] is not None and np.isfinite(downstream[m])]
    metrics = [k for k in dict.fromkeys(k for values in upstream.values() for k in values) if not is_spread(k)]
    out = []
    for metric in metrics:
        usable = [m for m in models if upstream.get(m, {}).get(metric) is not None]
        if len(usable) < 3:
            out.append(Agreement(metric, None, None, len(usable)))
            continue
        x = [oriented(upstream[m][metric], better.get(metric, "higher")) for m in usable]
        y = [downstream[m] for m in usable]
        result = kendalltau(x, y)
        tau = None if np.isnan(result.statistic) else float(result.statistic)
        p = None if np.isnan(result.pvalue) else float(result.pvalue)
        out.append(Agreement(metric, tau, p, len(usable)))
    return out


def compare_heatmap(rows: list[dict[str, Any]], better: dict[str, str], path: Path, *, baseline: str) -> Path:
    """Metrics x models heat map of each model's z against ``baseline`` (``tables.z_heatmap``: the colours
    mean what they mean in the Phase 1 heat maps)."""
    from .tables import goodness, z_heatmap

    rows = [r for r in rows if not is_spread(str(r["metric"]))]
    models = list(dict.fromkeys(r["model"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    z = np.full((len(metrics), len(models)), np.nan)
    good = np.zeros_like(z)
    for r in rows:
        if r.get("z") is not None:
            i, j = metrics.index(r["metric"]), models.index(r["model"])
            z[i, j] = r["z"]
            good[i, j] = goodness(r["z"], better.get(r["metric"], ""), r.get("value"), r.get("baseline")) or 0.0
    return z_heatmap(z, good, metrics, models, better, path, title="Phase 2: models against the reference set",
                     baseline=baseline)


def run_compare(reference: DataSet, models: dict[str, DataSet], out: str | Path, *, encoder: str = "domain",
                metrics: str | list[str] = "all", max_slices: int | None = None, tumour_slices: int | None = None,
                train: DataSet | None = None, downstream: bool = True, segmenter: str | None = None,
                bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, note: str = "", report: bool = True,
                downstream_max_volumes: int | None = None, slices=None, cases=None,
                baseline: str | None = None, test: DataSet | None = None,
                on_unit: Callable[[str, dict[str, int]], None] | None = None) -> Path:
    """Compare ``models`` against ``reference``; write the tables, heat map, pictures and (optionally) the report.

    Slice rules: ``slices`` (default ``features.slicing.DEFAULT_SLICES``, the sweep's and
    ``metrics``'s too), with ``max_slices`` / ``tumour_slices`` overriding its counts when given.
    ``cases`` (``cases.CaseOptions``): the contrast the encoders see (one for every set) and the tumour target.
    ``baseline``: the model the z-scores are measured from (default the first; put real held-out data first).
    ``train`` (AuthPct, FLS, nearest training images) and ``test`` (with ``train``: CT, FLS) are encoded
    whole, every slice with brain: a model that memorises may return any training slice.
    ``on_unit(name, work)``: called when each model is done, with the work it took (the batch journal).
    """
    from ..cases import DEFAULT_CASE_OPTIONS, resolve_contrast
    from ..metrics import METRICS
    from .demo import choose_encoder

    if len(models) < 2:
        raise ParameterError("compare needs at least two models (--model NAME=DIR, repeated)")
    baseline = baseline or next(iter(models))
    if baseline not in models:
        raise ParameterError(f"--baseline {baseline!r} is not one of the models: {', '.join(models)}")
    start = time.perf_counter()
    out = Path(out)
    enc = choose_encoder(encoder)
    feats = SliceFeatures(enc, max_slices, tumour_slices, settings=slices)
    options = cases or DEFAULT_CASE_OPTIONS
    listed = {"reference": list_set(reference, "reference"), **({"train": list_set(train, "train")} if train else {}),
              **({"test": list_set(test, "test")} if train and test else {}),
              **{f"model {name}": list_set(data, name) for name, data in models.items()}}
    contrast = resolve_contrast([i for items in listed.values() for i in items], options.contrast)
    ref_cases = load_set(listed["reference"], "reference", options, contrast)
    fixed = {"reference": stack(feats.of(ref_cases))}
    train_cases, train_rows = [], []
    whole = SliceFeatures(enc, settings=replace(feats.settings, max_slices=None, tumour_slices=0), cache=feats.cache)
    if train is not None:
        train_cases = load_set(listed["train"], "train", options, contrast)
        fixed["train"] = stack(whole.of(train_cases))
        train_rows = _slice_rows(train_cases, whole.last_info)
        if "test" in listed:
            fixed["test"] = stack(whole.of(load_set(listed["test"], "test", options, contrast)))
    names = [m for m in metric_names(metrics) if all(need in fixed or need == "generated" for need in METRICS[m].needs)]
    local = LocalFeatures(enc, feats.cache, names, feats.settings)
    fixed_local = {"reference": stack_local(local.of(ref_cases))}
    results = ResultCache()
    dn = Downstream.load(segmenter, results) if downstream else None
    region_source: dict[str, str] = {}
    counter = WorkCounter(feats.cache, local.cache, results)
    upstream_rows, dice_rows, upstream, predicted, agreed, better = [], [], {}, {}, {}, {}
    pictures, neighbours, yardsticks, loaded = {"real reference": _previews(ref_cases)}, {}, {}, {}
    for model in models:
        members = load_set(listed[f"model {model}"], model, options, contrast)
        generated = stack(feats.of(members))
        rows = _slice_rows(members, feats.last_info)
        pictures[model] = _previews(members)
        if dn is not None:
            chosen = members[:downstream_max_volumes] if downstream_max_volumes else members
            row = _model_downstream(dn, model, chosen, bootstrap=max(bootstrap, 20), seed=seed)
            predicted[model], agreed[model] = row["dice"], row["agreement_dice"]
            dice_rows.append(row)
        region_members, region_source[model] = region_masks(members, dn, model)
        generated_local = stack_local(local.of(region_members))
        if dn is not None:
            dn.segmented.clear()
        result = results.suite({**fixed, "generated": generated}, names, bootstrap=bootstrap, seed=seed,
                               **suite_local(fixed_local, generated_local))
        upstream[model] = {r.metric: r.value for r in result.rows if r.value is not None}
        for r in result.rows:
            better[r.metric] = r.better
            upstream_rows.append({"model": model, "metric": r.metric, "value": r.value, "ci_low": r.ci_low,
                                  "ci_high": r.ci_high, "better": r.better, "n_volumes": len(members),
                                  "n_slices": len(generated)})
        if "train" in fixed and len(generated):
            neighbours[model] = nearest_training(model, generated, rows, fixed["train"], train_rows)
            yardsticks[model] = median_nearest(generated, fixed["train"])
            best = neighbours[model][0].sample
            loaded[model] = next(m for m in members if m.item.name == best)  # kept for its picture
        if on_unit is not None:
            on_unit(f"compare/{model}", counter.step())  # the first model's unit carries the fixed sets' work
    upstream_rows += _downstream_rows(dice_rows)
    real_yardstick = median_nearest(fixed["reference"], fixed["train"]) if "train" in fixed else None
    better["predicted Dice"] = "higher"
    better["agreement Dice"] = "higher"
    with_masks = {m: v for m, v in agreed.items() if v is not None}
    basis = "agreement Dice" if with_masks and len(with_masks) == len(models) else "predicted Dice"
    ranking = with_masks if basis == "agreement Dice" else predicted
    agreement_rows = rank_agreement(upstream, better, ranking) if ranking else []
    z_rows = _z_rows(upstream_rows, baseline)
    write_text(out / "compare_upstream.csv", csv_text(z_rows))
    if dice_rows:
        write_text(out / "compare_downstream.csv", csv_text(dice_rows))
    write_text(out / "rank_agreement.csv", csv_text([{**a.__dict__, "downstream": basis} for a in agreement_rows]))
    compare_heatmap(z_rows, better, out / "compare_heatmap.png", baseline=baseline)
    finding = ranking_finding([a.__dict__ for a in agreement_rows], basis) if agreement_rows else None
    figures = _pictures(out, pictures, neighbours, loaded, real_yardstick, train_cases)
    summary: dict[str, Any] = {"reference": reference.describe(), "models": {k: v.describe() for k, v in models.items()},
                               "encoder": enc.name, "max_slices": feats.settings.max_slices,
                               "tumour_slices": feats.settings.tumour_slices, "plane": feats.settings.plane,
                               "contrast": contrast, "metrics": names, "note": note, "baseline": baseline,
                               "bootstrap": bootstrap, "upstream": upstream, "predicted_dice": predicted,
                               "agreement_dice": agreed, "downstream_basis": basis, "better": better,
                               "upstream_rows": z_rows, "downstream_rows": dice_rows,
                               "agreement": [{**a.__dict__, "downstream": basis} for a in agreement_rows],
                               "finding": finding, "figures": figures, "region_masks": region_source,
                               "nearest": {m: [n.__dict__ for n in v] for m, v in neighbours.items()},
                               "nearest_median": yardsticks, "real_nearest_median": real_yardstick,
                               "seconds": round(time.perf_counter() - start, 1)}
    write_text(out / "compare.json", json.dumps(summary, indent=1))
    if report:
        from .report import write_report

        write_report(out)
    return out


def region_masks(members, dn: Downstream | None, model: str) -> tuple[list, str]:
    """A model's cases with the masks the local metrics look at, and where they come from.

    Each case keeps its own (generated) mask when it has one; a case without one gets the
    segmenter's output where the downstream step ran, else none (the local metrics then say they
    need masks).
    """
    from .sweep import SetCase

    own = [bool(m.mask.any()) for m in members]
    if all(own):
        return members, "generated masks"
    if dn is None:
        return members, "generated masks where a case has one; none elsewhere (downstream off)" if any(own) \
            else "none (no masks, downstream off)"
    segmented = [m if has else SetCase(m.item, m.case, m.contrast,
                                       np.asarray(dn.segmented.get(f"{model}/{m.item.name}", m.mask), np.uint8))
                 for m, has in zip(members, own, strict=True)]
    return segmented, ("generated masks; the segmenter's output for the cases without one" if any(own)
                       else "the segmenter's output")


def _model_downstream(dn: Downstream, model: str, members, *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Predicted Dice of the segmenter's output on a model's images, and its agreement with the generated masks."""
    keys = [f"{model}/{m.item.name}" for m in members]
    summary = summarise_dice(dn.scores(members, keys), bootstrap=bootstrap, seed=seed)
    dn.segmented.update({k: dn.masks[k] for k in keys})  # the local metrics' masks for images without one
    agreement = agreement_dice([dn.masks.pop(k) for k in keys], [m.mask for m in members])
    low, high = bootstrap_ci(agreement.pop("agreement_values"), bootstrap=bootstrap, seed=seed) or (None, None)
    return {"model": model, **summary, **agreement, "agreement_ci_low": low, "agreement_ci_high": high}


def _downstream_rows(dice_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The downstream scores as metric rows (predicted and agreement Dice, higher is better) for the z-scores."""
    pairs = (("predicted Dice", "dice", ""), ("agreement Dice", "agreement_dice", "agreement_"))
    return [{"model": r["model"], "metric": metric, "value": r[key], "ci_low": r[f"{prefix}ci_low"],
             "ci_high": r[f"{prefix}ci_high"], "better": "higher", "n_volumes": r["n_volumes"], "n_slices": None}
            for r in dice_rows for metric, key, prefix in pairs if r[key] is not None]


def _slice_rows(members, info) -> list[tuple[str, int]]:
    """(case name, slice index) of every encoded slice, in feature-row order."""
    return [(members[i.volume].item.name, i.index) for i in info]


def _previews(members, count: int = 8) -> list:
    """Pictures of ``count`` cases spread evenly over the set (not its first few, which may share a volume)."""
    from .phase2 import preview_slice

    picks = sorted(set(np.round(np.linspace(0, len(members) - 1, min(count, len(members)))).astype(int)))
    return [preview_slice(members[i]) for i in picks]


def _z_rows(rows: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Each model's rows with the baseline model's value and the z of the change (``tables.zscore``)."""
    from .tables import zscore

    base = {r["metric"]: r for r in rows if r["model"] == baseline}
    out = []
    for row in rows:
        b = base.get(row["metric"])
        z = zscore(row["value"], b["value"], b["ci_low"], b["ci_high"]) if b else None
        out.append({**row, "baseline": b["value"] if b else None, "z": None if z is None else round(z, 4)})
    return out


def _pictures(out: Path, pictures, neighbours, closest, real_yardstick, train_cases) -> dict[str, str]:
    """The sample grid and the nearest-to-training figure; their file names.

    ``closest``: per model, its (already read) case holding the slice nearest to a training slice.
    """
    from ..generate.slices import volume_training_slices
    from .phase2 import nearest_figure, sample_grid

    figures = {"samples": sample_grid(pictures, out / "samples_grid.png").name}
    if not neighbours or real_yardstick is None:
        return figures
    by_name = {m.item.name: m for m in train_cases}
    pairs = []
    for model, found in neighbours.items():
        best = found[0]
        generated = _cut(closest[model], best.sample_slice, volume_training_slices)
        train = _cut(by_name[best.train], best.train_slice, volume_training_slices)
        pairs.append((model, generated, train, best.distance, real_yardstick))
    figures["nearest"] = nearest_figure(pairs, out / "nearest_training.png").name
    return figures


def _cut(member, index: int, cutter) -> np.ndarray:
    """Axial slice ``index`` of a case on the generators' grid (for the pictures)."""
    from ..features.slicing import plane_axes

    volume = member.volume
    axis = plane_axes(volume.direction)["axial"]
    one = np.take(volume.array, index, axis=axis)
    array = np.expand_dims(one, axis)
    images, _, _ = cutter(replace(volume, array=array, path=None), None, min_brain=0.0)
    return images[0]
