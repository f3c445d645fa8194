"""Tables, z-scores, the heat map and the HTML page of a demo/sweep run."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, write_text


def zscore(value: float | None, baseline: float | None, low: float | None, high: float | None) -> float | None:
    """(value - baseline) / s with s = (high - low) / 3.92, the baseline's bootstrap 95 % width in sigmas."""
    if value is None or baseline is None or low is None or high is None:
        return None
    spread = (high - low) / 3.92
    if spread <= 0:
        return None
    return (value - baseline) / spread


def add_zscores(rows: list[dict[str, Any]], baseline) -> list[dict[str, Any]]:
    """Each row with the baseline value and the z-score of its change from the baseline."""
    base = {r.metric: r for r in baseline.rows}
    out = []
    for row in rows:
        b = base.get(row["metric"])
        z = zscore(row["value"], b.value, b.ci_low, b.ci_high) if b is not None else None
        out.append({**row, "baseline": b.value if b is not None else None, "better": b.better if b else "",
                    "z": None if z is None else round(z, 4)})
    return out


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def is_spread(metric: str) -> bool:
    """Whether an output is the spread of an estimator (``kd_std``, ``kd_std_roi``), not a metric."""
    return metric.endswith("_std") or "_std_" in metric


Z_SCALE = 5.0
"""Colour scale of every z-score heat map (Phase 1 and Phase 2): +-5, clipped, so colours compare across figures."""
ARROWS = {"lower": "\u2193", "higher": "\u2191", "zero": "\u21940"}  # arrow: which way is better


def goodness(z: float | None, better: str, value: float | None = None, baseline: float | None = None) -> float | None:
    """``z`` signed so that positive means better: negated for lower-is-better metrics; for closest-to-0
    metrics (CT), positive when |value| moved towards 0."""
    if z is None or not np.isfinite(z):
        return None
    if better == "lower":
        return -z
    if better == "zero":
        if value is None or baseline is None or value == baseline:
            return 0.0
        return abs(z) * float(np.sign(abs(baseline) - abs(value)))
    return z


def metric_label(metric: str, better: str) -> str:
    """``fd (lower better)``-style axis label."""
    words = {"lower": "lower better", "higher": "higher better", "zero": "0 best"}
    return f"{metric} ({words[better]})" if better in words else metric


def z_heatmap(z: np.ndarray, good: np.ndarray, metrics: list[str], columns: list[str], better: dict[str, str],
              path: Path, *, title: str, baseline: str, separators: list[int] = ()) -> Path:
    """Metrics (rows) x columns heat map shared by Phase 1 and Phase 2.

    Colour: the z of the change from ``baseline`` oriented by each metric's direction (blue = better,
    red = worse, one scale of +-``Z_SCALE`` for every figure); numbers: the z itself, as the metric moved.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    fig, ax = plt.subplots(figsize=(min(18.0, max(7.0, 0.62 * len(columns) + 3.5)), max(3.0, 0.42 * len(metrics) + 1.8)))
    image = ax.imshow(np.clip(good, -Z_SCALE, Z_SCALE), cmap="RdBu", norm=TwoSlopeNorm(0, -Z_SCALE, Z_SCALE),
                      aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(metrics)), [metric_label(m, better.get(m, "")) for m in metrics], fontsize=8)
    font = 7.5 if len(columns) <= 24 else 6.5
    for i in range(len(metrics)):
        for j in range(len(columns)):
            text = f"{np.clip(z[i, j], -99, 99):.1f}" if np.isfinite(z[i, j]) else "n/a"  # undefined metric
            colour = "white" if abs(good[i, j]) > 0.6 * Z_SCALE else "black"  # readable on the darkest cells
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color=colour)
    for j in separators:
        ax.axvline(j - 0.5, color="black", linewidth=1)
    bar = fig.colorbar(image, ax=ax, ticks=[-Z_SCALE, 0, Z_SCALE])
    bar.ax.set_yticklabels([f"worse\n(-{Z_SCALE:g})", "0", f"better\n(+{Z_SCALE:g})"], fontsize=7)
    bar.set_label(f"z of the change from {baseline}, oriented by each metric's direction", fontsize=7)
    ax.set_title(title + "\nnumbers: z as the metric moved; colour: blue = better, red = worse than " + baseline,
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")  # keeps the colour bar's label whole
    plt.close(fig)
    return path


def heatmap_png(rows: list[dict[str, Any]], path: Path,
                title: str = "Upstream metrics under controlled perturbations (z-scores)") -> Path:
    """Metrics x conditions heat map of z-scores of the change from the baseline (``z_heatmap``)."""
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    z = np.full((len(metrics), len(conditions)), np.nan)
    good = np.zeros_like(z)
    better: dict[str, str] = {}
    for r in rows:
        better.setdefault(r["metric"], r.get("better", ""))
        if r["z"] is not None:
            i, j = metrics.index(r["metric"]), conditions.index(r["condition"])
            z[i, j] = r["z"]
            good[i, j] = goodness(r["z"], r.get("better", ""), r.get("value"), r.get("baseline")) or 0.0
    families = [next(r["family"] for r in rows if r["condition"] == c) for c in conditions]
    separators = [j for j in range(1, len(conditions)) if families[j] != families[j - 1]]
    return z_heatmap(z, good, metrics, conditions, better, path, title=title, baseline="the unperturbed baseline",
                     separators=separators)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text (header from the first row); empty string for no rows."""
    return _csv_text(rows) if rows else ""


def wide_rows(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """One row per condition, one column per metric, holding ``field`` (value or z)."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    by = {(r["condition"], r["metric"]): r.get(field) for r in rows}
    return [{"condition": c, **{m: by.get((c, m)) for m in metrics}} for c in dict.fromkeys(r["condition"] for r in rows)]


def family_heatmaps(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One z-score heat map per perturbation family (the paper's Figures 4-7), plus the overall one.

    Spread outputs (``kd_std``: the spread of KID's subset estimates) are tabled but not mapped: their
    z-scores measure the estimator's noise, not the data, and would dominate the colour scale.
    """
    rows = [r for r in rows if not is_spread(str(r["metric"]))]
    paths = [heatmap_png(rows, out / "heatmap.png")]
    for family in dict.fromkeys(r["family"] for r in rows):
        subset = [r for r in rows if r["family"] == family]
        paths.append(heatmap_png(subset, out / f"heatmap_{family}.png", title=f"{family} perturbations (z-scores)"))
    return paths


def write_sweep_tables(out: Path, rows: list[dict[str, Any]], baseline, dice_rows: list[dict[str, Any]],
                       run: dict[str, Any], volume_rows: list[dict[str, Any]] = ()) -> None:
    """upstream.csv/json (with z-scores), baseline.csv, downstream.csv/json (per condition),
    downstream_volumes.csv/json (per volume), run.json and the heat maps."""
    from .dicetable import add_changes

    rows = add_zscores(rows, baseline)
    write_text(out / "upstream.csv", _csv_text(rows))
    write_text(out / "upstream.json", json.dumps(rows, indent=1))
    write_text(out / "metrics_by_condition.csv", csv_text(wide_rows(rows, "value")))
    write_text(out / "zscores_by_condition.csv", csv_text(wide_rows(rows, "z")))
    from .sensitivity import sensitivity_rows

    sensitivity = sensitivity_rows(rows)
    write_text(out / "sensitivity.csv", csv_text(sensitivity))
    write_text(out / "sensitivity.json", json.dumps(sensitivity, indent=1))
    baseline.to_csv(out / "baseline.csv")
    baseline.to_json(out / "baseline.json")
    if dice_rows:
        dice_rows = add_changes(dice_rows)
        write_text(out / "downstream.csv", _csv_text(dice_rows))
        write_text(out / "downstream.json", json.dumps(dice_rows, indent=1))
    if volume_rows:
        write_text(out / "downstream_volumes.csv", _csv_text(list(volume_rows)))
        write_text(out / "downstream_volumes.json", json.dumps(list(volume_rows), indent=1))
    write_text(out / "run.json", json.dumps(run, indent=1))
    write_text(out / "reuse.json", json.dumps({k: run[k] for k in run if "forward" in k or "reduction" in k
                                              or k in ("set_sizes", "encoder", "seconds")}, indent=1))
    family_heatmaps(rows, out)
