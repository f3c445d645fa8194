"""``genmedeval report RUN_DIR``: one self-contained HTML page (images embedded) from a sweep or compare run.

Reads what the run wrote (run.json, upstream.json, baseline.json, downstream.json, compare.json,
views.json), renders the Slicer slice views of a representative volume (original and perturbed,
tumour mask and segmenter output as label overlays, difference map) off-screen with Slicer's own
displayable managers, checks the study's findings on the run's numbers, and writes report.html.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import write_text

VIEW_CONDITIONS = ("gaussian_noise@0.1", "rician_noise@0.1", "boundary_blur@3", "radial_gradient@3",
                   "contrast_invention@0.1")
Z_DEFINITION = ("z = (value - baseline) / s, where s is the baseline's bootstrap standard deviation, "
                "(97.5th - 2.5th percentile) / 3.92 over resamples of its reference and evaluated sets. "
                "Red: the metric rose; blue: it fell (see each metric's better direction).")


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">' \
           f"<figcaption>{html.escape(alt)}</figcaption></figure>"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value == "":
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# -- Slicer views ------------------------------------------------------------------------------

def _view_row(volume, overlays, title: str, path: Path) -> Path:
    """Axial, coronal and sagittal Slicer views side by side with a title, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import mrml
    from ..io import atomic_path

    views = mrml.render_slice_views(volume, overlays=overlays, size=256)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, (plane, rgb) in zip(axes, views.items(), strict=True):
        ax.imshow(rgb)
        ax.set_title(plane, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def _overlay_note(segmentation: list[np.ndarray]) -> str:
    """What the label colours in a view mean (the segmenter's output is drawn only when it was run)."""
    if segmentation:
        return "blue: tumour mask only, red: segmenter output only, green: both"
    return "blue: tumour mask (not segmented in this run)"


def render_views(run_dir: Path) -> tuple[list[Path], str]:
    """Slicer views of the representative case; (image paths, note). The note explains any absence."""
    from ..io import normalize_intensity, read_mask, read_volume

    info = _load(run_dir / "views.json")
    if not info:
        return [], "No representative volume with a tumour was recorded for this run."
    try:
        original = read_volume(info["image"])
        original = original.with_array(normalize_intensity(original.array))
        mask = read_mask(info["mask"], like=original).array
        segs = info.get("segmentations", {})

        def seg(condition: str) -> list[np.ndarray]:
            return [read_mask(segs[condition], like=original).array] if condition in segs else []

        out_dir = run_dir / "views"
        paths = [_view_row(original, [mask, *seg("baseline")], f"{info['case']}: original; {_overlay_note(seg('baseline'))}",
                           out_dir / "original.png")]
        for condition in VIEW_CONDITIONS:
            kind, level = condition.split("@")
            file = run_dir / "perturbed" / kind / level / Path(info["image"]).name
            if not file.is_file():
                continue
            perturbed = read_volume(file)
            paths.append(_view_row(perturbed, [mask, *seg(condition)], f"{condition}: perturbed; {_overlay_note(seg(condition))}",
                                   out_dir / f"{kind}_{level}.png"))
            if kind in ("boundary_blur", "radial_gradient", "gaussian_noise"):
                diff = original.with_array(np.abs(perturbed.array - original.array).astype(np.float32))
                paths.append(_view_row(diff, [mask], f"{condition}: |perturbed - original| (difference map)",
                                       out_dir / f"{kind}_{level}_difference.png"))
        return paths, ""
    except (ImportError, OSError, RuntimeError, InputError) as exc:
        return [], f"Slicer views could not be rendered here ({type(exc).__name__}: {exc})."


# -- the page ----------------------------------------------------------------------------------

def _findings_html(run_dir: Path) -> str:
    from .findings import check_findings

    upstream = _load(run_dir / "upstream.json")
    if not upstream:
        return ""
    changed = (_load(run_dir / "run.json") or {}).get("changed_fraction")
    findings = check_findings(upstream, _load(run_dir / "downstream.json") or [], changed)
    items = "".join(f"<li class='{f.verdict().replace(' ', '-')}'><b>{html.escape(f.claim)}</b>: "
                    f"<em>{f.verdict()}</em>. {html.escape(f.detail)}</li>" for f in findings)
    return f"<h2>Findings: the study's claims checked on this run</h2><ul>{items}</ul>"


CI_NOTE = ("Intervals are percentile bootstrap intervals (reference and evaluated set resampled with "
           "replacement). For set distances (FD, KD, MMD, ...) they can lie above the point estimate: resampling "
           "duplicates samples, which inflates a distance. Their width is what the z-scores use.")


def _cell(row: dict[str, Any] | None) -> str:
    """``value [low, high] z`` for one metric of one condition (what exists of it)."""
    if not row or row.get("value") is None:
        return _fmt(None)
    text = f"{row['value']:.4g}"
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        text += f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"
    if row.get("z") is not None:
        text += f" z {row['z']:.1f}"
    return text


def _reuse_sentence(run: dict[str, Any]) -> str:
    """How many network passes the run made against the naive counts (or that the cache served them all)."""
    naive = (f"a naive run that encodes every condition's slices makes {run['naive_forward_passes']}, "
             f"{run['naive_forward_passes_all_sets']} when it also re-encodes the fixed sets per condition")
    if not run["network_forward_passes"]:
        return f"Network forward passes: none, every feature came from the cache ({naive})."
    return (f"Network forward passes {run['network_forward_passes']}: {naive} ({run['reduction']}x and "
            f"{run['reduction_all_sets']}x fewer).")


def _sweep_html(run_dir: Path, run: dict[str, Any]) -> str:
    parts = [f"<h2>Phase 1 sweep: {html.escape(run['name'])}</h2>",
             f"<p>Sets: {html.escape(json.dumps(run['sets']))}; sizes {html.escape(json.dumps(run['set_sizes']))}. "
             f"Encoder <b>{html.escape(run['encoder'])}</b> ({html.escape(run['encoder_identity'])}), axial slices: "
             f"{run['max_slices']} evenly spaced + {run['tumour_slices']} through the tumour per volume; "
             f"bootstrap {run['bootstrap']}; seed {run['seed']}. {_reuse_sentence(run)} "
             f"Downstream: {'on' if run['downstream'] else 'off'} ({run['volumes_segmented']} volumes segmented). "
             f"Run time {run['seconds']} s.</p>", f"<p>{Z_DEFINITION}</p>"]
    for png in sorted(run_dir.glob("heatmap*.png")):
        parts.append(_img(png, f"z-score heat map ({png.stem.replace('heatmap_', '') or 'all'})"))
    downstream = _load(run_dir / "downstream.json")
    if downstream:
        parts.append("<h3>Downstream: predicted Dice per condition (Evanyseg score)</h3>")
        parts.append(_table(downstream, ["condition", "dice", "ci_low", "ci_high", "change", "n_found", "n_volumes"]))
    baseline = _load(run_dir / "baseline.json")
    if baseline:
        parts.append("<h3>Baseline (unperturbed base set vs reference)</h3>")
        parts.append(_table(baseline, ["metric", "value", "ci_low", "ci_high", "better", "note"]))
    upstream = _load(run_dir / "upstream.json") or []
    if upstream:
        metrics = list(dict.fromkeys(r["metric"] for r in upstream))
        by = {(r["condition"], r["metric"]): r for r in upstream}
        rows = [{"condition": c, **{m: _cell(by.get((c, m))) for m in metrics}}
                for c in dict.fromkeys(r["condition"] for r in upstream)]
        parts.append("<h3>Every condition (value, bootstrap 95 % interval, z-score)</h3>"
                     f"<p>{CI_NOTE}</p>" + _table(rows, ["condition", *metrics]))
    return "".join(parts)


def _compare_html(run_dir: Path, summary: dict[str, Any]) -> str:
    parts = ["<h2>Phase 2: model comparison</h2>"]
    if summary.get("note"):
        parts.append(f"<p class='note'>{html.escape(summary['note'])}</p>")
    parts.append(f"<p>Reference: {html.escape(summary['reference'])}. Models: "
                 f"{html.escape(', '.join(f'{k} = {v}' for k, v in summary['models'].items()))}. "
                 f"Encoder {html.escape(summary['encoder'])}.</p>")
    if (run_dir / "compare_heatmap.png").is_file():
        parts.append(_img(run_dir / "compare_heatmap.png", "model comparison heat map (paper Figure 8)"))
    dice = summary.get("predicted_dice") or {}
    rows = [{"model": m, **{k: v for k, v in summary["upstream"][m].items()}, "predicted Dice": dice.get(m)}
            for m in summary["upstream"]]
    cols = ["model", *dict.fromkeys(k for v in summary["upstream"].values() for k in v), "predicted Dice"]
    parts.append(_table(rows, cols))
    if summary.get("agreement"):
        parts.append(f"<h3>Rank agreement with the downstream ranking (Kendall tau, {len(summary['upstream'])} models; "
                     "paper Table 6)</h3>")
        parts.append(_table(summary["agreement"], ["metric", "tau", "p_value", "n_models"]))
    return "".join(parts)


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` (and the view images under ``views/``); return its path."""
    run_dir = Path(run_dir)
    run, compare = _load(run_dir / "run.json"), _load(run_dir / "compare.json")
    if run is None and compare is None:
        raise InputError("not a sweep or compare run folder (no run.json or compare.json)", run_dir)
    sections = []
    if run is not None:
        sections.append(_findings_html(run_dir))
        sections.append(_sweep_html(run_dir, run))
        views, note = render_views(run_dir)
        sections.append("<h2>Slicer views of a representative volume</h2>"
                        "<p>Rendered off-screen with Slicer's slice views (MRML displayable managers): blue where only "
                        "the tumour mask is, red where only the segmenter's output is, green where they agree.</p>")
        sections.append(note and f"<p>{html.escape(note)}</p>")
        sections.extend(_img(p, p.stem.replace("_", " ")) for p in views)
    for sub in ([run_dir] if compare is not None else []) + sorted(p.parent for p in run_dir.glob("*/compare.json")):
        sections.append(_compare_html(sub, _load(sub / "compare.json")))
    title = f"GenMedEval report: {run['name'] if run else 'model comparison'}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:12px;margin:0.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f3f3f3}}figure{{margin:1em 0}}
li.holds em{{color:#1a7f37}}li.does-not-hold em{{color:#b42318}}li.not-checked em{{color:#777}}
.note{{background:#fff7d6;padding:0.6em;border:1px solid #e6c200}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>GenMedEval implements the evaluation framework of Deo et al., "Metrics that matter" (2025, arXiv:2505.07175).</p>
{''.join(s for s in sections if s)}
</body></html>"""
    return write_text(run_dir / "report.html", page)
