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
from .tables import is_spread

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
    """Axial, coronal and sagittal Slicer views side by side with a title, as one PNG.

    The label regions are drawn as outlines (Slicer's label-outline mode), not filled, so the image
    under a changed boundary stays visible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import mrml
    from ..io import atomic_path

    views = mrml.render_slice_views(volume, overlays=overlays, size=256, outline=True, label_opacity=1.0)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, (plane, rgb) in zip(axes, views.items(), strict=True):
        ax.imshow(rgb)
        ax.set_title(plane, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9, wrap=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def _overlay_note(segmentation: list[np.ndarray]) -> str:
    """What the label colours in a view mean (the segmenter's output is drawn only when it was run)."""
    if segmentation:
        return "outlines: blue mask only, red segmenter only, green both"
    return "blue outline: tumour mask (not segmented in this run)"


def _dice_note(row: dict[str, Any] | None) -> str:
    """``true Dice X | predicted Y`` of one segmented volume (empty when it was not segmented)."""
    if not row:
        return ""
    true = row.get("true_dice")
    text = (f"true Dice {true:.3f} | predicted {row['predicted_dice']:.3f}" if true is not None
            else f"predicted Dice {row['predicted_dice']:.3f} (no mask)")
    return text + (" (segmenter found nothing)" if row.get("empty_segmentation") else "")


def _volume_dice(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (condition, volume): the per-volume downstream row (eval volumes only)."""
    rows = _load(run_dir / "downstream_volumes.json") or []
    return {(r["condition"], r["volume"]): r for r in rows if r.get("source", "eval") == "eval"}


def _case_rows(run_dir: Path, info: dict[str, Any], dice: dict) -> list[Path]:
    """One view row per segmented case: its image with the mask and the baseline segmentation outlined."""
    from ..io import normalize_intensity, read_mask, read_volume

    paths = []
    for case in info.get("cases", []):
        image = read_volume(case["image"])
        image = image.with_array(normalize_intensity(image.array))
        overlays = [read_mask(run_dir / case["truth"], like=image).array,  # relative: inside the run folder
                    read_mask(run_dir / case["segmentation"], like=image).array]
        note = _dice_note(dice.get(("baseline", case["case"])))
        title = f"{case['case']}: unperturbed, {note}; {_overlay_note(overlays[1:])}"
        paths.append(_view_row(image, overlays, title, run_dir / "views" / f"case_{case['case']}.png"))
    return paths


def render_views(run_dir: Path) -> tuple[list[Path], str]:
    """Slicer views of each segmented case and of the representative case under the view conditions;
    (image paths, note). The note explains any absence."""
    from ..io import normalize_intensity, read_mask, read_volume

    info = _load(run_dir / "views.json")
    if not info:
        return [], "No representative volume with a tumour was recorded for this run."
    try:
        original = read_volume(info["image"])
        original = original.with_array(normalize_intensity(original.array))
        truth = next((c["truth"] for c in info.get("cases", []) if c["case"] == info["case"]), info["mask"])
        mask = read_mask(run_dir / truth, like=original).array  # the tumour target the sweep scored against
        segs = info.get("segmentations", {})
        dice = _volume_dice(run_dir)

        def title(condition: str, what: str) -> str:
            note = _dice_note(dice.get((condition, info["case"])))
            return f"{info['case'] if condition == 'baseline' else condition}: {what}{', ' + note if note else ''}; " \
                   f"{_overlay_note(seg(condition))}"

        def seg(condition: str) -> list[np.ndarray]:
            return [read_mask(run_dir / segs[condition], like=original).array] if condition in segs else []

        out_dir = run_dir / "views"
        paths = [*_case_rows(run_dir, info, dice),
                 _view_row(original, [mask, *seg("baseline")], title("baseline", "original"), out_dir / "original.png")]
        for condition in VIEW_CONDITIONS:
            kind, level = condition.split("@")
            file = run_dir / "perturbed" / kind / level / info.get("perturbed_name", Path(info["image"]).name)
            if not file.is_file():
                continue
            perturbed = read_volume(file)
            paths.append(_view_row(perturbed, [mask, *seg(condition)], title(condition, "perturbed"),
                                   out_dir / f"{kind}_{level}.png"))
            if kind in ("boundary_blur", "radial_gradient", "gaussian_noise"):
                diff = original.with_array(np.abs(perturbed.array - original.array).astype(np.float32))
                paths.append(_view_row(diff, [mask], f"{condition}: |perturbed - original| (difference map)",
                                       out_dir / f"{kind}_{level}_difference.png"))
        return paths, ""
    except (ImportError, OSError, RuntimeError, InputError, KeyError) as exc:
        return [], f"Slicer views could not be rendered here ({type(exc).__name__}: {exc})."


# -- the page ----------------------------------------------------------------------------------

BASIS = {"true_dice": "true Dice", "predicted_dice": "predicted Dice", "upstream metrics": "upstream metrics"}


def _findings_html(run_dir: Path) -> str:
    """Every finding with its verdict, the deciding test, the sample size, what it used, and the numbers."""
    from .findings import Numbers, check_findings, condition_tests

    upstream = _load(run_dir / "upstream.json")
    if not upstream:
        return ""
    run = _load(run_dir / "run.json") or {}
    downstream = _load(run_dir / "downstream.json") or []
    volumes = _load(run_dir / "downstream_volumes.json") or []
    findings = check_findings(upstream, downstream, run.get("changed_fraction"), volumes, run.get("touched_fraction"))
    items = "".join(
        f"<li class='{f.verdict().replace(' ', '-')}'><b>{html.escape(f.claim)}</b>: <em>{f.verdict()}</em>"
        f"{' (on the ' + BASIS.get(f.basis, f.basis) + ')' if f.basis else ''}. "
        f"Test: {html.escape(f.test or 'none')}; n {f.n if f.n is not None else 'n/a'} {f.unit}. "
        f"{html.escape(f.detail)}</li>"
        for f in findings)
    parts = ["<h2>Findings: the study's claims checked on this run</h2>",
             "<p>Verdicts: holds (significant in the claimed direction), fails, or not testable (the sample cannot "
             "reach significance, or the run lacks the conditions). Downstream claims use the true Dice wherever the "
             "tumour masks are known (Phase 1: the perturbations keep the mask), else the predicted Dice. "
             "Volumes where the segmenter found nothing stay in.</p>", f"<ul>{items}</ul>"]
    tests = condition_tests(Numbers(upstream, downstream, volumes=volumes))
    if tests:
        parts.append("<h3>Every downstream condition against the baseline</h3>"
                     "<p>Per-volume conditions: Wilcoxon signed-rank test over the same volumes; set-level conditions: "
                     "bootstrap interval of the difference of means (their sets hold other volumes).</p>")
        parts.append(_table(tests, ["condition", "basis", "result", "test"]))
    return "".join(parts)


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
    crops = (f" The local metrics' region crops took {run['region_forward_passes']} passes more."
             if run.get("region_forward_passes") else "")
    if not run["network_forward_passes"]:
        return f"Network forward passes: none, every feature came from the cache ({naive}).{crops}"
    return (f"Network forward passes {run['network_forward_passes']}: {naive} ({run['reduction']}x and "
            f"{run['reduction_all_sets']}x fewer).{crops}")


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
        parts.append(_downstream_html(run_dir, downstream, run))
    baseline = _load(run_dir / "baseline.json")
    if baseline:
        parts.append("<h3>Baseline (unperturbed base set vs reference)</h3>")
        parts.append(_table(baseline, ["metric", "value", "ci_low", "ci_high", "better", "note"]))
    sensitivity = _load(run_dir / "sensitivity.json")
    if sensitivity:
        parts.append(_sensitivity_html(sensitivity))
    upstream = _load(run_dir / "upstream.json") or []
    if upstream:
        metrics = list(dict.fromkeys(r["metric"] for r in upstream))
        by = {(r["condition"], r["metric"]): r for r in upstream}
        rows = [{"condition": c, **{m: _cell(by.get((c, m))) for m in metrics}}
                for c in dict.fromkeys(r["condition"] for r in upstream)]
        parts.append("<h3>Every condition (value, bootstrap 95 % interval, z-score)</h3>"
                     f"<p>{CI_NOTE}</p>" + _table(rows, ["condition", *metrics]))
    return "".join(parts)


def _z_cell(value: Any) -> str:
    """A z-score cell: bold when it detects (|z| >= 3), grey when quiet (|z| < 2)."""
    from .sensitivity import DETECTS, QUIET

    if value is None:
        return "n/a"
    text = f"{value:.1f}"
    return f"<b>{text}</b>" if abs(value) >= DETECTS else f'<span style="color:#888">{text}</span>' \
        if abs(value) < QUIET else text


def _sensitivity_html(rows: list[dict[str, Any]]) -> str:
    """The sensitivity table: each metric output, global and local, against each condition, as z-scores."""
    from .sensitivity import verdict

    fixed = ("metric", "scope", "better")
    conditions = [k for k in rows[0] if k not in fixed and not k.startswith("max|z|")]
    families = [k for k in rows[0] if k.startswith("max|z|")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (*fixed, *conditions, *families))
    body = []
    for r in rows:
        cells = [html.escape(str(r[k])) for k in fixed] + [_z_cell(r.get(c)) for c in conditions]
        cells += [f"{_fmt(r.get(f), 2)} ({verdict(r.get(f))})" for f in families]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<h3>Sensitivity: every metric, global and local, against every perturbation (z-scores)</h3>"
            "<p>Scope: <i>global</i> metrics see whole slices; <i>roi</i> a crop centred on the tumour, <i>band</i> "
            "the same crop with only 4 mm either side of the tumour boundary kept, <i>region</i> the tumour's own "
            "boundary sharpness and interior profile. <b>Bold</b>: |z| &ge; 3 (detects); grey: |z| &lt; 2. Per "
            "family, the largest |z| over its levels, with <i>detects</i> (&ge; 3), <i>quiet</i> (&lt; 2 at every "
            "level) or <i>weak</i>.</p>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>")


def _interval(row: dict[str, Any], name: str) -> str:
    """``mean [low, high]`` of one downstream column (n/a when absent)."""
    if row.get(name) is None:
        return "n/a"
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    return f"{row[name]:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _downstream_html(run_dir: Path, downstream: list[dict[str, Any]], run: dict[str, Any]) -> str:
    """Per condition the true Dice beside the predicted Dice and the predictor's error, then per volume."""
    rows = [{"condition": r["condition"], "true Dice": _interval(r, "true_dice"),
             "predicted Dice": _interval(r, "predicted_dice"), "error (predicted - true)": _interval(r, "error"),
             "MAE": _interval(r, "mae"), "true change": _signed(r.get("true_change")),
             "predicted change": _signed(r.get("predicted_change")), "empty segmentations": r.get("n_empty"),
             "volumes": r.get("n_volumes")} for r in downstream]
    parts = ["<h3>Downstream: true and predicted Dice per condition</h3>",
             "<p>True Dice: the segmenter's output against the tumour mask (smoothed Dice, so an empty output on a "
             "tumour-free volume scores 1); predicted Dice: the quality predictor (Evanyseg score) on the image and "
             f"that output. Means with bootstrap 95 % intervals over volumes ({run.get('downstream_bootstrap', 'n/a')} "
             "resamples). A volume where the segmenter found nothing stays in (predicted 0: the predictor does not "
             "judge an empty mask).</p>", _table(rows, list(rows[0]))]
    volumes = _load(run_dir / "downstream_volumes.json") or []
    if volumes:
        columns = ["condition", "volume", "source", "true_dice", "predicted_dice", "error", "empty_segmentation"]
        parts.append(f"<details><summary>Per volume ({len(volumes)} rows)</summary>{_table(volumes, columns)}</details>")
    return "".join(parts)


def _with_interval(row: dict[str, Any] | None, value: str = "value", low: str = "ci_low", high: str = "ci_high") -> str:
    """``0.123 [0.100, 0.150]``; the value alone without an interval; n/a without a value."""
    if row is None or row.get(value) is None:
        return "n/a"
    text = _fmt(row[value], 3)
    if row.get(low) is not None and row.get(high) is not None:
        text += f" [{_fmt(row[low], 3)}, {_fmt(row[high], 3)}]"
    return text


def _model_table(summary: dict[str, Any]) -> str:
    """Models x metrics: value [95 % interval] (z against the baseline), each metric's direction in its header."""
    rows = summary.get("upstream_rows") or []
    better = summary.get("better", {})
    metrics = [m for m in dict.fromkeys(r["metric"] for r in rows) if not is_spread(m)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["metric"]): r for r in rows}
    words = {"lower": "lower better", "higher": "higher better", "zero": "0 best"}
    head = "<th>model</th>" + "".join(f"<th>{html.escape(m)}<br><small>{words.get(better.get(m), '')}</small></th>"
                                      for m in metrics)
    body = []
    for model in models:
        cells = []
        for metric in metrics:
            row = by.get((model, metric))
            z = "" if row is None or row.get("z") is None or model == summary.get("baseline") else \
                f"<br><small>z {row['z']:+.1f}</small>"
            cells.append(f"<td>{html.escape(_with_interval(row))}{z}</td>")
        body.append(f"<tr><th>{html.escape(model)}</th>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _downstream_compare_html(summary: dict[str, Any]) -> str:
    rows = summary.get("downstream_rows") or []
    if not rows:
        return "<p>Downstream: not run (--no-downstream).</p>"
    lines = []
    for r in rows:
        if r.get("agreement_dice") is None:
            agreement = "cannot be computed: the folder holds no tumour masks generated with its images"
        else:
            agreement = (f"{_with_interval(r, 'agreement_dice', 'agreement_ci_low', 'agreement_ci_high')} over "
                         f"{r['n_with_tumour']} samples with a generated tumour")
        empty = ("" if r.get("empty_agreement") is None else
                 f"; on {r['n_without_tumour']} tumour-free samples the segmenter found nothing on "
                 f"{100 * r['empty_agreement']:.0f} %")
        lines.append(f"<tr><th>{html.escape(r['model'])}</th><td>{html.escape(_with_interval(r, 'dice'))}</td>"
                     f"<td>{r['n_found']} / {r['n_volumes']}</td><td style='text-align:left'>"
                     f"{html.escape(agreement + empty)}</td></tr>")
    return ("<h3>Downstream: the segmenter on each model's images</h3><p>Predicted Dice (the quality predictor, no "
            "ground truth; a sample where the segmenter finds nothing counts 0) beside the <b>agreement Dice</b>: "
            "the Dice between the segmenter's output and the mask generated with the image, the only ground truth "
            "a generated image has. 95 % bootstrap intervals over samples.</p><table><tr><th>model</th>"
            "<th>predicted Dice</th><th>segmenter found a tumour</th><th>agreement with the generated mask</th></tr>"
            + "".join(lines) + "</table>")


def _nearest_html(run_dir: Path, summary: dict[str, Any]) -> str:
    nearest = summary.get("nearest") or {}
    if not nearest:
        return "<p>Nearest training images: not computed (no --train set).</p>"
    real = summary.get("real_nearest_median")
    parts = ["<h3>What memorisation looks like: generated images closest to a training image</h3>",
             f"<p>Distances in the encoder's feature space (where AuthPct and the CT score work). Yardstick: a real "
             f"held-out reference slice lies a median {_fmt(real, 3)} from its nearest training slice.</p>"]
    figure = (summary.get("figures") or {}).get("nearest")
    if figure and (run_dir / figure).is_file():
        parts.append(_img(run_dir / figure, "generated slices closest to a training slice, beside it"))
    rows = []
    for model, found in nearest.items():
        median = (summary.get("nearest_median") or {}).get(model)
        closest = ", ".join(f"{n['sample']} -> {n['train']} slice {n['train_slice']} ({n['distance']:.3g})"
                            for n in found)
        ratio = None if not real or median is None else median / real
        rows.append({"model": model, "median distance to training": median, "x real held-out": ratio,
                     "closest pairs (distance)": closest})
    parts.append(_table(rows, ["model", "median distance to training", "x real held-out", "closest pairs (distance)"]))
    return "".join(parts)


def _compare_html(run_dir: Path, summary: dict[str, Any]) -> str:
    parts = ["<h2>Phase 2: model comparison</h2>"]
    if summary.get("note"):
        parts.append(f"<p class='note'>{html.escape(summary['note'])}</p>")
    parts.append(f"<p>Reference: {html.escape(summary['reference'])}. Models: "
                 f"{html.escape(', '.join(f'{k} = {v}' for k, v in summary['models'].items()))}. "
                 f"Encoder {html.escape(summary['encoder'])}; {summary.get('bootstrap', 0)} bootstrap resamples; "
                 f"z-scores against {html.escape(str(summary.get('baseline')))}.</p>")
    figure = (summary.get("figures") or {}).get("samples")
    if figure and (run_dir / figure).is_file():
        parts.append(_img(run_dir / figure, "samples per model beside real reference slices"))
    parts.append(_nearest_html(run_dir, summary))
    parts.append("<h3>Upstream metrics of each model against the reference set</h3>"
                 "<p>Value [95 % bootstrap interval], and the z of the change from the baseline row.</p>")
    parts.append(_model_table(summary))
    if (run_dir / "compare_heatmap.png").is_file():
        parts.append(_img(run_dir / "compare_heatmap.png", "model comparison heat map (paper Figure 8)"))
    parts.append(_downstream_compare_html(summary))
    if summary.get("agreement"):
        basis = summary.get("downstream_basis", "predicted Dice")
        parts.append(f"<h3>Rank agreement with the downstream ranking ({html.escape(basis)}; Kendall tau, "
                     f"{len(summary['upstream'])} models; paper Table 6)</h3>")
        parts.append(_table(summary["agreement"], ["metric", "tau", "p_value", "n_models"]))
    finding = summary.get("finding")
    if finding:
        css = finding["verdict"].replace(" ", "-")
        parts.append(f"<ul><li class='{css}'><b>{html.escape(finding['claim'])}</b>: <em>{finding['verdict']}</em>. "
                     f"{html.escape(finding['detail'])}</li></ul>")
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
        sections.append("<h2>Slicer views of each segmented case and of a representative one under perturbation</h2>"
                        "<p>Rendered off-screen with Slicer's slice views (MRML displayable managers), the labels as "
                        "outlines (the slice view's label-outline mode), so the boundary a perturbation changes stays "
                        "visible: blue outlines where only the tumour mask is, red where only the segmenter's output "
                        "is, green where they agree. Each title gives the true and the predicted Dice.</p>")
        sections.append(note and f"<p>{html.escape(note)}</p>")
        sections.extend(_img(p, p.stem.replace("_", " ")) for p in views)
        if run.get("phase2_note"):
            sections.append(f"<h2>Phase 2</h2><p class='note'>{html.escape(run['phase2_note'])}</p>")
    for sub in ([run_dir] if compare is not None else []) + sorted(p.parent for p in run_dir.glob("*/compare.json")):
        sections.append(_compare_html(sub, _load(sub / "compare.json")))
    title = f"GenMedEval report: {run['name'] if run else 'model comparison'}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:12px;margin:0.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f3f3f3}}figure{{margin:1em 0}}
li.holds em{{color:#1a7f37}}li.fails em{{color:#b42318}}li.not-testable em{{color:#777}}
.note{{background:#fff7d6;padding:0.6em;border:1px solid #e6c200}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>GenMedEval implements the evaluation framework of Deo et al., "Metrics that matter" (2025, arXiv:2505.07175).</p>
{''.join(s for s in sections if s)}
</body></html>"""
    return write_text(run_dir / "report.html", page)
