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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..io import atomic_path, write_text
from .config import DataSet
from .resultcache import ResultCache
from .sweep import Downstream, SliceFeatures, list_set, load_set, metric_names, stack, summarise_dice
from .tables import csv_text


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
    metrics = list(dict.fromkeys(k for values in upstream.values() for k in values))
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


def compare_heatmap(upstream: dict[str, dict[str, float]], better: dict[str, str], downstream: dict[str, float],
                    path: Path) -> Path:
    """Models x metrics, each metric standardised across models and oriented (blue = better), values annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    models = list(upstream)
    with_dice = any(v is not None for v in downstream.values())
    upstream_metrics = list(dict.fromkeys(k for v in upstream.values() for k in v))
    metrics = upstream_metrics + (["predicted Dice"] if with_dice else [])
    raw = np.full((len(models), len(metrics)), np.nan)
    for i, model in enumerate(models):
        for j, metric in enumerate(upstream_metrics):
            value = upstream[model].get(metric)
            raw[i, j] = np.nan if value is None else value
        if with_dice:
            raw[i, -1] = downstream.get(model, np.nan) if downstream.get(model) is not None else np.nan
    signs = np.array([-1.0 if better.get(m) == "lower" else 1.0 for m in metrics])
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = (raw - np.nanmean(raw, axis=0)) / np.nanstd(raw, axis=0)
    score = np.nan_to_num(centred * signs, nan=0.0)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(metrics)), max(2.5, 0.5 * len(models) + 1.5)))
    image = ax.imshow(-score, cmap="RdBu_r", norm=TwoSlopeNorm(0, -2, 2), aspect="auto")
    ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    for i in range(len(models)):
        for j in range(len(metrics)):
            if np.isfinite(raw[i, j]):
                ax.text(j, i, f"{raw[i, j]:.3g}", ha="center", va="center", fontsize=6.5)
    fig.colorbar(image, ax=ax, label="standardised across models (blue = better)")
    ax.set_title("Model comparison: upstream metrics and downstream predicted Dice")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def run_compare(reference: DataSet, models: dict[str, DataSet], out: str | Path, *, encoder: str = "domain",
                metrics: str | list[str] = "all", max_slices: int | None = None, tumour_slices: int | None = None,
                train: DataSet | None = None, downstream: bool = True, segmenter: str | None = None,
                bootstrap: int = 0, seed: int = 0, note: str = "", report: bool = True,
                downstream_max_volumes: int | None = None, slices=None, cases=None) -> Path:
    """Compare ``models`` against ``reference``; write the tables, heat map and (optionally) the report.

    Slice rules: ``slices`` (default ``features.slicing.DEFAULT_SLICES``, the sweep's and
    ``metrics``'s too), with ``max_slices`` / ``tumour_slices`` overriding its counts when given.
    ``cases`` (``cases.CaseOptions``): the contrast the encoders see (one for every set) and the tumour target.
    """
    from ..cases import DEFAULT_CASE_OPTIONS, resolve_contrast
    from ..metrics import METRICS
    from .demo import choose_encoder

    if len(models) < 2:
        raise ParameterError("compare needs at least two models (--model NAME=DIR, repeated)")
    start = time.perf_counter()
    out = Path(out)
    enc = choose_encoder(encoder)
    feats = SliceFeatures(enc, max_slices, tumour_slices, settings=slices)
    options = cases or DEFAULT_CASE_OPTIONS
    listed = {"reference": list_set(reference, "reference"), **({"train": list_set(train, "train")} if train else {}),
              **{f"model {name}": list_set(data, name) for name, data in models.items()}}
    contrast = resolve_contrast([i for items in listed.values() for i in items], options.contrast)
    ref_cases = load_set(listed["reference"], "reference", options, contrast)
    fixed = {"reference": stack(feats.of(ref_cases))}
    if train is not None:
        fixed["train"] = stack(feats.of(load_set(listed["train"], "train", options, contrast)))
    names = metric_names(metrics)
    if "train" not in fixed:
        names = [m for m in names if "train" not in METRICS[m].needs]
    names = [m for m in names if "test" not in METRICS[m].needs]
    results = ResultCache()
    dn = Downstream.load(segmenter, results) if downstream else None
    upstream_rows, dice_rows, upstream, predicted, better = [], [], {}, {}, {}
    for model in models:
        members = load_set(listed[f"model {model}"], model, options, contrast)
        generated = stack(feats.of(members))
        result = results.suite({**fixed, "generated": generated}, names, bootstrap=bootstrap, seed=seed)
        upstream[model] = {r.metric: r.value for r in result.rows if r.value is not None}
        for r in result.rows:
            better[r.metric] = r.better
            upstream_rows.append({"model": model, "metric": r.metric, "value": r.value, "ci_low": r.ci_low,
                                  "ci_high": r.ci_high, "better": r.better, "n_volumes": len(members)})
        if dn is not None:
            chosen = members[:downstream_max_volumes] if downstream_max_volumes else members
            summary = summarise_dice(dn.scores(chosen), bootstrap=max(bootstrap, 20), seed=seed)
            predicted[model] = summary["dice"]
            dice_rows.append({"model": model, **summary})
    better["predicted Dice"] = "higher"
    agreement = rank_agreement(upstream, better, predicted) if predicted else []
    write_text(out / "compare_upstream.csv", csv_text(upstream_rows))
    if dice_rows:
        write_text(out / "compare_downstream.csv", csv_text(dice_rows))
    write_text(out / "rank_agreement.csv", csv_text([a.__dict__ for a in agreement]))
    compare_heatmap(upstream, better, predicted, out / "compare_heatmap.png")
    summary: dict[str, Any] = {"reference": reference.describe(), "models": {k: v.describe() for k, v in models.items()},
                               "encoder": enc.name, "max_slices": feats.settings.max_slices,
                               "tumour_slices": feats.settings.tumour_slices, "plane": feats.settings.plane,
                               "contrast": contrast, "metrics": names, "note": note,
                               "upstream": upstream, "predicted_dice": predicted,
                               "agreement": [a.__dict__ for a in agreement],
                               "seconds": round(time.perf_counter() - start, 1)}
    write_text(out / "compare.json", json.dumps(summary, indent=1))
    if report:
        from .report import write_report

        write_report(out)
    return out
