"""Tables, z-scores, the heat map and the HTML page of a demo/sweep run."""

from __future__ import annotations

import base64
import csv
import html
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


def heatmap_png(rows: list[dict[str, Any]], path: Path) -> Path:
    """Metrics x conditions heat map of z-scores, diverging colour map centred on 0, annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    grid = np.full((len(metrics), len(conditions)), np.nan)
    for r in rows:
        if r["z"] is not None:
            grid[metrics.index(r["metric"]), conditions.index(r["condition"])] = r["z"]
    limit = float(np.nanmax(np.abs(np.clip(grid, -10, 10)))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(conditions)), max(4, 0.45 * len(metrics))))
    image = ax.imshow(np.clip(grid, -10, 10), cmap="RdBu_r", norm=TwoSlopeNorm(0, -max(limit, 1), max(limit, 1)),
                      aspect="auto")
    ax.set_xticks(range(len(conditions)), conditions, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=8)
    for i in range(len(metrics)):
        for j in range(len(conditions)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{np.clip(grid[i, j], -99, 99):.1f}", ha="center", va="center", fontsize=5.5)
    families = [next(r["family"] for r in rows if r["condition"] == c) for c in conditions]
    for j in range(1, len(conditions)):
        if families[j] != families[j - 1]:
            ax.axvline(j - 0.5, color="black", linewidth=1)
    fig.colorbar(image, ax=ax, label="z-score of change from baseline (clipped at +-10)")
    ax.set_title("Upstream metrics under controlled perturbations (z-scores)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_outputs(out: Path, rows, baseline, feats, encoder, splits, seconds: float, max_slices: int) -> Path:
    """Write upstream.csv/json, baseline.csv, reuse.json, heatmap.png and report.html; return the report path."""
    rows = add_zscores(rows, baseline)
    write_text(out / "upstream.csv", _csv_text(rows))
    write_text(out / "upstream.json", json.dumps(rows, indent=1))
    baseline.to_csv(out / "baseline.csv")
    stats = feats.cache.stats
    reuse = {"network_forward_passes": int(stats.forward_passes), "naive_forward_passes": int(feats.naive_slices),
             "reduction": round(feats.naive_slices / max(stats.forward_passes, 1), 2), "encoder": encoder.name,
             "encoder_identity": encoder.identity(), "max_slices_per_volume": max_slices,
             "set_sizes": {k: len(v) for k, v in splits.items()}, "seconds": round(seconds, 1)}
    write_text(out / "reuse.json", json.dumps(reuse, indent=1))
    heat = heatmap_png(rows, out / "heatmap.png")
    return write_text(out / "report.html", report_html(rows, baseline, reuse, heat))


def report_html(rows, baseline, reuse, heat: Path) -> str:
    """A self-contained page: what ran, the heat map (embedded), the baseline and condition tables."""
    image = base64.b64encode(heat.read_bytes()).decode()
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    value = {(r["condition"], r["metric"]): r for r in rows}
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = []
    for c in conditions:
        cells = []
        for m in metrics:
            r = value.get((c, m))
            v = "n/a" if r is None or r["value"] is None else f"{r['value']:.4g}"
            z = "" if r is None or r["z"] is None else f" <small>(z {r['z']:.1f})</small>"
            cells.append(f"<td>{v}{z}</td>")
        body.append(f"<tr><th>{html.escape(c)}</th>{''.join(cells)}</tr>")
    base_rows = "".join(
        f"<tr><td>{html.escape(r.metric)}</td><td>{'n/a' if r.value is None else f'{r.value:.4g}'}</td>"
        f"<td>{'' if r.ci_low is None else f'[{r.ci_low:.4g}, {r.ci_high:.4g}]'}</td><td>{r.better}</td>"
        f"<td>{html.escape(r.note)}</td></tr>" for r in baseline.rows)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>GenMedEval demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f3f3f3}}</style></head><body>
<h1>GenMedEval demo: Phase 1 on the built-in cohort</h1>
<p>Reference set: the cohort's <em>reference</em> split ({reuse['set_sizes'].get('reference')} volumes);
evaluated set: the <em>eval</em> split ({reuse['set_sizes'].get('eval')} volumes), perturbed at every level of
Deo et al. 2025; <em>train</em> and <em>test</em> splits for AuthPct and CT. Encoder: <b>{html.escape(reuse['encoder'])}</b>
({html.escape(reuse['encoder_identity'])}), axial slices, at most {reuse['max_slices_per_volume']} per volume.
Network forward passes: {reuse['network_forward_passes']} against {reuse['naive_forward_passes']} for a naive
run ({reuse['reduction']}x fewer; set-level conditions re-index cached features). Run time {reuse['seconds']} s.</p>
<p>z-score = (value - baseline) / s, s = the baseline's bootstrap standard deviation ((97.5th - 2.5th percentile) / 3.92).
Red: the metric went up; blue: down (check each metric's better direction below).</p>
<img src="data:image/png;base64,{image}" style="max-width:100%">
<h2>Baseline (unperturbed eval split vs reference)</h2>
<table><tr><th>metric</th><th>value</th><th>95 % CI</th><th>better</th><th>note</th></tr>{base_rows}</table>
<h2>Every condition</h2><table><tr><th>condition</th>{head}</tr>{''.join(body)}</table>
</body></html>"""
