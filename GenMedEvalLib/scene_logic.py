"""What the Slicer module does, on any MRML scene: perturb nodes, evaluate sets into tables, run the downstream.

The scripted module's ``GenMedEvalLogic`` delegates here with ``slicer.mrmlScene``; tests and
``GenMedEval/batch.py`` use the same class on the ``slicer-core`` wheel's scene. Node <-> array
conversion goes through ``GenMedEvalLib.mrml`` (the only module that touches MRML types), so this
module stays importable without Slicer.
"""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import mrml
from .errors import InputError, ParameterError
from .io import Volume, normalize_intensity, write_text
from .mrml import TABLE_COLUMNS

# Which module control feeds which perturbation parameter (the widget has one control per kind of knob).
MODULE_CONTROLS: dict[str, dict[str, str]] = {
    "gaussian_noise": {"sigma": "noiseLevel"},
    "rician_noise": {"sigma": "noiseLevel"},
    "poisson_noise": {"level": "noiseLevel"},
    "boundary_blur": {"sigma": "blurSigma", "band": "bandMm", "mode": "mode"},
    "radial_gradient": {"amplitude": "amplitude", "frequency": "frequency", "mode": "mode"},
    "contrast_invention": {"strength": "contrastStrength"},
}


def module_params(kind: str, controls: Mapping[str, Any]) -> dict[str, Any]:
    """The perturbation parameters of ``kind`` taken from the module's control values (by control name)."""
    if kind not in MODULE_CONTROLS:
        raise ParameterError(f"the preview offers {', '.join(MODULE_CONTROLS)}; '{kind}' is not one of them")
    return {param: controls[control] for param, control in MODULE_CONTROLS[kind].items() if control in controls}


def controls_used(kind: str) -> set[str]:
    """Names of the module controls that matter for ``kind`` (the widget shows only these)."""
    return set(MODULE_CONTROLS.get(kind, {}).values())


@dataclass
class Preview:
    """A perturbation preview: the output node, the overlay node (mask = 1, changed voxels = 2), timing."""

    volume_node: Any
    overlay_node: Any | None
    changed_voxels: int
    seconds: float


class SceneLogic:
    """GenMedEval's operations on MRML nodes of ``scene``."""

    def __init__(self, scene):
        self.scene = scene
        self._cache: dict[str, tuple[float, Volume, np.ndarray | None]] = {}

    # -- inputs ---------------------------------------------------------------------------

    def _inputs(self, volume_node, mask_node=None) -> tuple[Volume, np.ndarray | None]:
        """The node's normalised volume and binary mask, cached until either node is modified."""
        key = f"{volume_node.GetID()}|{mask_node.GetID() if mask_node is not None else ''}"
        stamp = volume_node.GetMTime() + (mask_node.GetMTime() if mask_node is not None else 0)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        volume = mrml.volume_from_node(volume_node)
        volume = volume.with_array(normalize_intensity(volume.array))
        mask = mrml.mask_from_node(self.scene, mask_node, volume_node) if mask_node is not None else None
        self._cache[key] = (stamp, volume, mask)
        return volume, mask

    # -- perturbation preview -------------------------------------------------------------

    def perturb(self, volume_node, kind: str, params: Mapping[str, Any] | None = None, *, mask_node=None,
                seed: int = 0, output_node=None, overlay_node=None, highlight: bool = True) -> Preview:
        """Perturb ``volume_node`` into ``output_node`` (created when None) with the same IJK-to-RAS geometry."""
        from .perturb import PERTURBATIONS, apply_perturbation

        start = time.perf_counter()
        if kind not in PERTURBATIONS:
            raise ParameterError(f"unknown perturbation '{kind}'; choose one of: {', '.join(PERTURBATIONS)}")
        spec = PERTURBATIONS[kind]
        if spec.kind != "volume":
            raise ParameterError(f"{kind} acts on a set of volumes; use Evaluate with a folder, not the preview")
        volume, mask = self._inputs(volume_node, mask_node)
        if spec.needs_mask and (mask is None or not mask.any()):
            raise InputError(f"{kind} needs a tumour mask: choose a non-empty mask", volume_node.GetName())
        values = spec.validate(dict(params or {}))
        out = apply_perturbation(kind, volume.array, mask=mask if spec.needs_mask else None,
                                 spacing=volume.spacing_zyx, seed=seed, **values)
        name = f"{volume_node.GetName()}_{kind}"
        output_node = mrml.add_volume_node(self.scene, volume, name, array=out, node=output_node)
        changed = np.abs(out - volume.array) > 1e-6
        if highlight:
            labels = np.zeros(out.shape, np.uint8)
            if mask is not None:
                labels[mask > 0] = 1
            labels[changed] = 2
            overlay_node = mrml.add_volume_node(self.scene, volume, f"{name}_changes", array=labels, label=True,
                                                node=overlay_node)
        return Preview(output_node, overlay_node if highlight else None, int(changed.sum()),
                       time.perf_counter() - start)

    # -- metrics --------------------------------------------------------------------------

    def evaluate_folders(self, reference: str | Path, evaluated: str | Path, *, encoder: str = "domain",
                         metrics: str = "all", bootstrap: int = 0, seed: int = 0, table_node=None,
                         max_slices: int | None = 8):
        """Upstream metrics of ``evaluated`` against ``reference`` into a table node (created when None)."""
        from .features.evaluate import evaluate_folders
        from .features.slicing import SliceSettings

        result = evaluate_folders({"reference": reference, "generated": evaluated}, encoder, metrics=metrics,
                                  bootstrap=bootstrap, seed=seed, slices=SliceSettings(max_slices=max_slices))
        return self.result_table(result, table_node=table_node)

    def evaluate_volumes(self, reference: list[Volume], evaluated: list[Volume], *, encoder: str = "domain",
                         metrics: str = "fd,kd,mmd,prdc", seed: int = 0, table_node=None, max_slices: int | None = 8):
        """Upstream metrics of two lists of volumes (already in memory) into a table node."""
        from .features import FeatureCache, SliceSettings, extract_features, get_encoder
        from .metrics import compute_suite

        enc, cache = get_encoder(encoder), FeatureCache()
        settings = SliceSettings(max_slices=max_slices)
        ref = extract_features([v.array for v in reference], enc, slices=settings, cache=cache, show_progress=False)
        gen = extract_features([v.array for v in evaluated], enc, slices=settings, cache=cache, show_progress=False)
        result = compute_suite({"reference": ref.pool.astype(np.float64), "generated": gen.pool.astype(np.float64)},
                               metrics, seed=seed)
        return self.result_table(result, table_node=table_node)

    def result_table(self, result, *, table_node=None, name: str = "GenMedEval metrics"):
        """A ``SuiteResult`` as a table node: metric, value, 95 % CI, better direction, set sizes."""
        return mrml.rows_to_table(self.scene, mrml.suite_rows(result), name, columns=mrml.TABLE_COLUMNS,
                                  node=table_node)

    def load_result_csv(self, path: str | Path, *, table_node=None, name: str = "GenMedEval metrics"):
        """The metrics CSV written by ``genmedeval metrics`` (the Evaluate process) as a table node."""
        target = Path(path)
        if not target.is_file():
            raise InputError("metrics CSV not found (did the evaluation finish?)", target)
        with target.open(newline="") as handle:
            rows = [{key: _number_or_text(key, value) for key, value in row.items()} for row in csv.DictReader(handle)]
        if not rows or "metric" not in rows[0]:
            raise InputError("not a GenMedEval metrics CSV (no 'metric' column)", target)
        columns = [c for c in TABLE_COLUMNS if c in rows[0]] + [c for c in rows[0] if c not in TABLE_COLUMNS]
        return mrml.rows_to_table(self.scene, rows, name, columns=columns, node=table_node)

    # -- downstream -----------------------------------------------------------------------

    def segment_and_score(self, volume_node, *, segmenter=None, predictor=None, truth_node=None,
                          segmentation_node=None, table_node=None) -> tuple[Any, float, Any]:
        """Segment ``volume_node`` into a segmentation node and predict the segmentation's Dice.

        ``segmenter`` / ``predictor``: a loaded model, a file path, or None for the shipped one.
        Returns (segmentation node, predicted Dice, table node with predicted and, given
        ``truth_node``, true Dice); the predicted Dice is nan when nothing is segmented.
        """
        from .quality import dice_score, load_predictor, predict_slices
        from .segment import load_segmenter

        if segmenter is None or isinstance(segmenter, str | Path):
            segmenter = load_segmenter(segmenter)
        if isinstance(predictor, str | Path):
            predictor = load_predictor(predictor)
        volume, truth = self._inputs(volume_node, truth_node)
        mask = segmenter.segment(volume.array, volume.spacing_zyx)
        if segmentation_node is not None:
            self.scene.RemoveNode(segmentation_node)
        node = mrml.mask_to_segmentation(self.scene, volume, mask, f"{volume_node.GetName()}_segmentation")
        row: dict[str, Any] = {"volume": volume_node.GetName(), "predicted_dice": None, "spread": None,
                               "mask_voxels": int(mask.sum()), "true_dice": None}
        score = float("nan")
        if mask.any():
            slices = predict_slices(volume.array, mask, spacing_zyx=volume.spacing_zyx, predictor=predictor)
            score = slices.volume_score()
            row.update(predicted_dice=score, spread=slices.volume_spread())
        if truth is not None:
            row["true_dice"] = dice_score(mask, truth)
        table = mrml.rows_to_table(self.scene, [row], "GenMedEval downstream", node=table_node)
        return node, score, table

    # -- export ---------------------------------------------------------------------------

    def export_table(self, table_node, path: str | Path) -> Path:
        """Write a table node as CSV (``.csv``) or a small HTML page (``.html``), atomically."""
        rows = mrml.table_to_rows(table_node)
        target = Path(path)
        if target.suffix.lower() == ".csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
            return write_text(target, buf.getvalue())
        if target.suffix.lower() in (".html", ".htm"):
            return write_text(target, table_html(rows, table_node.GetName()))
        raise InputError("export as .csv or .html", target)


TEXT_COLUMNS = {"metric", "better", "needs", "available", "note"}


def _number_or_text(column: str, value: str | None) -> Any:
    """A CSV cell as a float (empty = nan) for numeric columns, as text for the named text columns."""
    if column in TEXT_COLUMNS or value is None:
        return value or ""
    try:
        return float(value) if value != "" else float("nan")
    except ValueError:
        return value


def evaluate_command(reference: str | Path, evaluated: str | Path, out_csv: str | Path, *, encoder: str = "domain",
                     metrics: str = "all", bootstrap: int = 0, seed: int = 0, max_slices: int | None = 8,
                     batch_size: int | None = None) -> list[str]:
    """Arguments after ``python -m GenMedEvalLib.cli`` for the Evaluate section's background process."""
    args = ["metrics", "--reference", str(reference), "--generated", str(evaluated), "--encoder", encoder,
            "--metrics", metrics, "--bootstrap", str(int(bootstrap)), "--seed", str(int(seed)), "--out", str(out_csv)]
    if max_slices is not None:
        args += ["--max-slices", str(int(max_slices))]
    if batch_size is not None:
        args += ["--batch-size", str(int(batch_size))]
    return args


def progress_percent(line: str) -> int | None:
    """The percentage of a tqdm progress line (``'features:  42%|####   | 21/50'``), else None."""
    match = re.search(r"(\d{1,3})%\|", line)
    return int(match.group(1)) if match else None


def table_html(rows: list[dict[str, Any]], title: str) -> str:
    """A self-contained HTML page with one table."""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in (rows[0] if rows else {}))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style>"
            f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)


ProgressCallback = Callable[[float, str], None]
