"""What the Slicer module does, on any MRML scene: perturb nodes, evaluate sets into tables, run the downstream.

The scripted module's ``GenMedEvalLogic`` delegates here with ``slicer.mrmlScene``; tests and
``GenMedEval/Scripts/batch.py`` use the same class on the ``slicer-core`` wheel's scene. Node <-> array
conversion goes through ``GenMedEvalLib.mrml`` (the only module that touches MRML types), so this
module stays importable without Slicer.
"""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
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
    # MRI artefacts beyond the paper (TorchIO): one control per parameter (their ranges and defaults differ
    # from every paper control's, so none is shared); integer parameters get whole-number sliders.
    "motion": {"degrees": "motionDegrees", "translation": "motionTranslation", "num_transforms": "motionCount"},
    "ghosting": {"num_ghosts": "ghostCount", "intensity": "ghostIntensity", "axis": "ghostAxis",
                 "restore": "ghostRestore"},
    "spike": {"num_spikes": "spikeCount", "intensity": "spikeIntensity"},
    "bias_field": {"coefficients": "biasCoefficients", "order": "biasOrder"},
    "anisotropy": {"factor": "anisotropyFactor", "axis": "anisotropyAxis"},
}

# The segmentation node that shows where the local metrics look, its segments (in order) and their colours.
REGIONS_NODE = "GenMedEval local regions"
REGION_SEGMENTS = {"ROI crop": (0.95, 0.8, 0.2), "boundary band": (0.2, 0.85, 0.95)}


def module_params(kind: str, controls: Mapping[str, Any]) -> dict[str, Any]:
    """The perturbation parameters of ``kind`` taken from the module's control values (by control name)."""
    if kind not in MODULE_CONTROLS:
        raise ParameterError(f"the preview offers {', '.join(MODULE_CONTROLS)}; '{kind}' is not one of them")
    return {param: controls[control] for param, control in MODULE_CONTROLS[kind].items() if control in controls}


def controls_used(kind: str) -> set[str]:
    """Names of the module controls that matter for ``kind`` (the widget shows only these)."""
    return set(MODULE_CONTROLS.get(kind, {}).values())


def beyond_paper(kind: str) -> bool:
    """Whether the registry marks ``kind`` as an addition to the paper (the TorchIO artefacts)."""
    from .perturb import PERTURBATIONS

    spec = PERTURBATIONS.get(kind)
    return bool(spec is not None and spec.beyond_paper)


def kind_note(kind: str) -> str:
    """One line about a preview kind for the panel: its description, and "beyond the paper" as
    ``genmedeval perturb --list`` says it (not in the paper's sweep)."""
    from .perturb import PERTURBATIONS

    spec = PERTURBATIONS.get(kind)
    if spec is None:
        return ""
    if spec.beyond_paper:
        return f"Beyond the paper (not in its sweep): {spec.description}."
    return f"{spec.description[:1].upper()}{spec.description[1:]}."


def kinds_tooltip() -> str:
    """The kind selector's tooltip: which preview kinds go beyond the paper."""
    extra = [kind for kind in MODULE_CONTROLS if beyond_paper(kind)]
    text = "Perturbation to preview on the input volume."
    return text + (f" Beyond the paper (MRI artefacts through TorchIO, not in its sweep): {', '.join(extra)}."
                   if extra else "")


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

    # -- where the local metrics look -----------------------------------------------------

    def show_regions(self, volume_node, mask_node, *, segmentation_node=None):
        """The ROI crops and boundary bands of the ``_roi`` / ``_band`` local metrics as a segmentation node.

        ``features.regions.region_label`` of the normalised volume and its tumour mask (the shared
        ``DEFAULT_REGIONS``), on the volume's grid: segment "ROI crop" = the whole crop of every
        slice that gives one (label >= 1, what the ``_roi`` metrics see), "boundary band" = its band
        (label 2, what the ``_band`` metrics see), drawn as outlines in the slice views. The node
        ``REGIONS_NODE`` is created, or ``segmentation_node`` refilled (its ID kept).
        """
        from .features.regions import DEFAULT_REGIONS, region_label

        if mask_node is None:
            raise InputError("the local metrics look around the tumour: choose a tumour mask in Input",
                             volume_node.GetName())
        volume, mask = self._inputs(volume_node, mask_node)
        if mask is None or not mask.any():
            raise InputError("the tumour mask is empty: the local metrics have nothing to look at", mask_node.GetName())
        label = region_label(volume, mask, DEFAULT_REGIONS)
        if not label.any():
            raise InputError(f"no slice of the tumour mask covers {DEFAULT_REGIONS.min_area_mm2:g} mm2: the local "
                             "metrics take no crop from this volume", mask_node.GetName())
        crop, band = REGION_SEGMENTS
        masks = {crop: label >= 1, band: label == 2}
        return mrml.masks_to_segmentation(self.scene, volume, masks, REGIONS_NODE, colours=REGION_SEGMENTS,
                                          outline=True, node=segmentation_node)

    # -- metrics --------------------------------------------------------------------------

    def evaluate_folders(self, reference: str | Path, evaluated: str | Path, *, encoder: str = "domain",
                         metrics: str = "all", bootstrap: int = 0, seed: int = 0, table_node=None,
                         max_slices: int | None = None):
        """Upstream metrics of ``evaluated`` against ``reference`` into a table node (created when None).

        The folders hold volume files or case folders; the slice rules are the shared defaults
        (``features.slicing.DEFAULT_SLICES``, as ``genmedeval metrics`` and the sweep), ``max_slices``
        overriding their count when given.
        """
        from .features.evaluate import evaluate_folders

        result = evaluate_folders({"reference": reference, "generated": evaluated}, encoder, metrics=metrics,
                                  bootstrap=bootstrap, seed=seed, slices=_slice_settings(max_slices))
        return self.result_table(result, table_node=table_node)

    def evaluate_volumes(self, reference: list[Volume], evaluated: list[Volume], *, encoder: str = "domain",
                         metrics: str = "fd,kd,mmd,prdc", seed: int = 0, table_node=None,
                         max_slices: int | None = None):
        """Upstream metrics of two lists of volumes (in memory, intensity-normalised) into a table node.

        The Volumes carry their geometry into the slicer (planes from the direction, square pixels
        from the spacing), with the shared slice defaults.
        """
        from .features import FeatureCache, extract_features, get_encoder
        from .metrics import compute_suite

        enc, cache = get_encoder(encoder), FeatureCache()
        settings = _slice_settings(max_slices)
        ref = extract_features(list(reference), enc, slices=settings, cache=cache, show_progress=False)
        gen = extract_features(list(evaluated), enc, slices=settings, cache=cache, show_progress=False)
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
        from .quality import load_predictor
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
        row = downstream_row(volume_node.GetName(), volume, mask, predictor=predictor, truth=truth)
        table = mrml.rows_to_table(self.scene, [row], "GenMedEval downstream", node=table_node)
        score = row["predicted_dice"]
        return node, float("nan") if score is None else score, table

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


def downstream_row(name: str, volume: Volume, mask: np.ndarray, *, predictor=None,
                   truth: np.ndarray | None = None) -> dict[str, Any]:
    """One downstream table row: predicted Dice and its spread (None when nothing is segmented), true Dice."""
    from .quality import dice_score, predict_slices

    row: dict[str, Any] = {"volume": name, "predicted_dice": None, "spread": None,
                           "mask_voxels": int(np.asarray(mask).astype(bool).sum()), "true_dice": None}
    if np.asarray(mask).any():
        slices = predict_slices(volume.array, mask, spacing_zyx=volume.spacing_zyx, predictor=predictor)
        row.update(predicted_dice=slices.volume_score(), spread=slices.volume_spread())
    if truth is not None:
        row["true_dice"] = dice_score(mask, truth)
    return row


TEXT_COLUMNS = {"metric", "better", "needs", "available", "note"}


def _number_or_text(column: str, value: str | None) -> Any:
    """A CSV cell as a float (empty = nan) for numeric columns, as text for the named text columns."""
    if column in TEXT_COLUMNS or value is None:
        return value or ""
    try:
        return float(value) if value != "" else float("nan")
    except ValueError:
        return value


def _slice_settings(max_slices: int | None):
    """The shared slice defaults, with ``max_slices`` evenly spaced slices when given."""
    from dataclasses import replace

    from .features.slicing import DEFAULT_SLICES

    return DEFAULT_SLICES if max_slices is None else replace(DEFAULT_SLICES, max_slices=max_slices)


def evaluate_command(reference: str | Path, evaluated: str | Path, out_csv: str | Path, *, encoder: str = "domain",
                     metrics: str = "all", bootstrap: int = 0, seed: int = 0, max_slices: int | None = None,
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


# -- the module's controls, taken from the registries ----------------------------------------

@dataclass(frozen=True)
class ControlRange:
    """A module slider: the range every perturbation it feeds accepts, and its default.

    ``integer``: the parameters are whole numbers (a slider without decimals, an ``int`` parameter).
    """

    low: float
    high: float
    default: float | int
    unit: str
    integer: bool = False


def control_ranges() -> dict[str, ControlRange]:
    """Each numeric control's range from the perturbation registry (one source for the panel, `.ui` and wrapper).

    A control that feeds several perturbations (``noiseLevel``) gets the intersection of their
    ranges, so any value the slider allows is valid for every kind that uses it.
    """
    from .perturb import PERTURBATIONS

    specs: dict[str, list] = {}
    for kind, controls in MODULE_CONTROLS.items():
        for param, control in controls.items():
            spec = PERTURBATIONS[kind].params[param]
            if spec.low is not None and spec.high is not None:
                specs.setdefault(control, []).append(spec)
    out = {}
    for control, found in specs.items():
        low, high = max(s.low for s in found), min(s.high for s in found)
        defaults = {s.default for s in found}
        types = {s.type for s in found}
        if low > high or len(defaults) != 1 or len(types) != 1:
            raise ParameterError(f"control {control}: its perturbations disagree on range, default or type")
        integer = types.pop() is int
        default = defaults.pop()
        out[control] = ControlRange(float(low), float(high), int(default) if integer else float(default),
                                    found[0].unit, integer)
    return out


def mode_choices() -> list[str]:
    """The boundary-blur / radial-gradient modes the registry accepts."""
    from .perturb.tumour import MODES

    return list(MODES)


def choice_controls() -> dict[str, list[str]]:
    """Each choice control (a combo box) with the registry's choices, in its order: ``mode`` and the artefacts' axes.

    A control that feeds several perturbations must offer the same choices.
    """
    from .perturb import PERTURBATIONS

    out: dict[str, list[str]] = {}
    for kind, controls in MODULE_CONTROLS.items():
        for param, control in controls.items():
            spec = PERTURBATIONS[kind].params[param]
            if spec.choices is None:
                continue
            choices = list(spec.choices)
            if out.setdefault(control, choices) != choices:
                raise ParameterError(f"control {control}: its perturbations disagree on the choices")
    return out


def encoder_choices() -> list[str]:
    """Encoder names for the Evaluate section (listing them loads no network)."""
    from .features.registry import encoder_names

    names = encoder_names()
    return ["domain", *[n for n in names if n != "domain"]]


def given_path(value: Any) -> str | None:
    """A path control's value as a string, None when unset (an unset ``pathlib.Path`` reads as ``.``)."""
    text = "" if value is None else str(value).strip()
    return None if text in ("", ".") else text


def preview_key(values: Mapping[str, Any]) -> tuple:
    """What a live preview depends on: the input nodes, the kind, the seed and that kind's control values.

    The widget previews only when this changes, so typing in Metrics, choosing folders or a table
    being set never recomputes the perturbation.
    """
    kind = values.get("perturbation")
    used = sorted(controls_used(kind)) if kind in MODULE_CONTROLS else []
    return (_node_id(values.get("inputVolume")), _node_id(values.get("inputMask")), kind, values.get("seed"),
            tuple((name, values.get(name)) for name in used))


def _node_id(node) -> str | None:
    return node.GetID() if node is not None else None


def preview_blocker(kind: str, has_volume: bool, has_mask: bool) -> str | None:
    """Why a preview cannot run now (shown in the panel), or None when it can."""
    from .perturb import PERTURBATIONS

    if not has_volume:
        return "Select an input volume."
    spec = PERTURBATIONS.get(kind)
    if spec is None or spec.kind != "volume":
        return f"'{kind}' cannot be previewed on one volume."
    if spec.needs_mask and not has_mask:
        return f"{kind.replace('_', ' ')} needs a tumour mask: choose one in Input."
    return None


# -- dependencies ----------------------------------------------------------------------------

def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in re.split(r"[.+-]", text):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def missing_requirements(requirements: Sequence[str], version_of: Callable[[str], str | None] | None = None) -> list[str]:
    """The ``name>=floor`` requirements that are absent or older than their floor."""
    import importlib.metadata

    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    version_of = version_of or installed
    missing = []
    for requirement in requirements:
        name, _, floor = requirement.partition(">=")
        found = version_of(name.strip())
        if found is None or (floor and _version_tuple(found) < _version_tuple(floor)):
            missing.append(requirement)
    return missing


# -- background work: a process tree the GUI polls -------------------------------------------

@dataclass(frozen=True)
class JobStep:
    """One command of a background job and what the panel calls it."""

    argv: tuple[str, ...]
    label: str


@dataclass
class JobStatus:
    """What a poll saw: state (running, done, failed, cancelled), new output lines, overall percent, message."""

    state: str
    lines: list[str]
    percent: int
    message: str = ""
    exit_code: int | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"


def kill_process_tree(pid: int) -> None:
    """End ``pid`` and every process below it (a launcher such as PythonSlicer starts the real Python as a child).

    Like SlicerMONAIAuto3DSeg: psutil's recursive children when it is installed; otherwise the
    process group (POSIX jobs start in their own session) or ``taskkill /T`` (Windows).
    """
    import os
    import signal
    import subprocess

    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(pid)
            for child in parent.children(recursive=True):
                child.kill()
            parent.kill()
        except psutil.NoSuchProcess:
            pass
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class BackgroundJob:
    """Commands run one after another as child processes; the caller polls (a Qt timer in Slicer, a loop in scripts).

    Output (stdout and stderr merged, tqdm's carriage returns as line breaks) is read by a thread
    into a queue; ``poll`` turns it into lines and an overall percentage, and reports the exit
    status, a start failure, or a cancel. Nothing here touches Qt, so the same class runs in
    Slicer, in ``Scripts/batch.py`` and in the tests.
    """

    def __init__(self, steps: Sequence[JobStep], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None):
        if not steps:
            raise ParameterError("a background job needs at least one command")
        self.steps = list(steps)
        self.env = dict(env) if env is not None else None
        self.cwd = str(cwd) if cwd is not None else None
        self.index = -1
        self.process = None
        self.state = "idle"
        self.message = ""
        self.exit_code: int | None = None
        self._lines: Any = None
        self._reader = None
        self._step_percent = 0
        self._last_line = ""

    def start(self) -> JobStatus:
        """Start the first command; a command that cannot start fails the job (no exception)."""
        self.state = "running"
        self._next_step()
        return self._status([])

    def _next_step(self) -> None:
        import os
        import queue
        import subprocess
        import threading

        self.index += 1
        self._step_percent = 0
        step = self.steps[self.index]
        options: dict[str, Any] = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            options["start_new_session"] = True  # its own process group: cancel ends the whole tree
        try:
            self.process = subprocess.Popen(list(step.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace",
                                            bufsize=1, env=self.env, cwd=self.cwd, **options)
        except OSError as exc:
            self.process = None
            self.state, self.message = "failed", f"{step.label}: could not start {step.argv[0]}: {exc.strerror or exc}"
            return
        self._lines = queue.Queue()
        self._last_line = ""  # the step's last non-empty output line, whichever poll read it
        self._reader = threading.Thread(target=self._read, args=(self.process, self._lines), daemon=True)
        self._reader.start()

    @staticmethod
    def _read(process, lines) -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)  # end of output

    def poll(self) -> JobStatus:
        """New output lines and the job's state; moves on to the next command when one succeeds."""
        import queue

        if self.state != "running" or self.process is None:
            return self._status([])
        lines, ended = [], False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                ended = True
                break
            lines.append(line)
            percent = progress_percent(line)
            if percent is not None:
                self._step_percent = percent
        if ended or self.process.poll() is not None:
            code = self.process.wait()
            self._reader.join(timeout=5)
            lines += self._drain()
            self._remember(lines)
            self._finish_step(code)
            return self._status(lines)
        self._remember(lines)
        return self._status(lines)

    def _remember(self, lines: list[str]) -> None:
        """Keep the last non-empty line: an earlier poll may have read the line a failure is explained by."""
        self._last_line = next((ln.strip() for ln in reversed(lines) if ln.strip()), self._last_line)

    def _drain(self) -> list[str]:
        import queue

        out = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return out
            if line is not None:
                out.append(line)

    def _finish_step(self, code: int) -> None:
        step = self.steps[self.index]
        if code != 0:
            last = self._last_line
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            self.state, self.exit_code = "failed", code
            self.message = f"{step.label} failed ({how})" + (f": {last[-300:]}" if last else "")
        elif self.index + 1 < len(self.steps):
            self._next_step()
        else:
            self.state, self.exit_code, self.message = "done", 0, "Done."

    def cancel(self) -> JobStatus:
        """End the running command's whole process tree; later commands never start."""
        if self.state == "running" and self.process is not None:
            kill_process_tree(self.process.pid)
            self.process.wait()
            self.state, self.message = "cancelled", "Cancelled."
        return self._status([])

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> JobStatus:
        """Poll until the job ends (scripts and tests); cancel and raise ``TimeoutError`` after ``timeout`` s."""
        start, lines = time.monotonic(), []
        if self.state == "idle":
            self.start()
        while True:
            status = self.poll()
            lines += status.lines
            if status.finished:
                status.lines = lines
                return status
            if timeout is not None and time.monotonic() - start > timeout:
                self.cancel()
                raise TimeoutError(f"background job still running after {timeout:.0f} s; cancelled")
            time.sleep(interval)

    def _status(self, lines: list[str]) -> JobStatus:
        done = max(self.index, 0) + (self._step_percent / 100.0 if self.state == "running" else 0.0)
        if self.state == "done":
            done = len(self.steps)
        percent = int(round(100.0 * done / len(self.steps)))
        label = self.steps[max(self.index, 0)].label
        message = self.message if self.state != "running" else f"{label}..."
        return JobStatus(self.state, lines, percent, message, self.exit_code)


def genmedeval_step(python: str, args: Sequence[str], label: str) -> JobStep:
    """A ``python -m GenMedEvalLib.cli ARGS`` step."""
    return JobStep((python, "-m", "GenMedEvalLib.cli", *map(str, args)), label)


def pip_step(python: str, requirements: Sequence[str]) -> JobStep:
    """A ``python -m pip install`` step for missing requirements (version floors kept)."""
    return JobStep((python, "-m", "pip", "install", *requirements), "Installing " + ", ".join(requirements))


# -- downstream in the background ------------------------------------------------------------

@dataclass
class DownstreamRun:
    """Files of one background segmentation + quality prediction: inputs written here, outputs read back."""

    folder: Path
    name: str = "case"

    @property
    def image(self) -> Path:
        return self.folder / "images" / f"{self.name}.nii.gz"

    @property
    def truth(self) -> Path:
        return self.folder / "truth" / f"{self.name}.nii.gz"

    @property
    def segmentation(self) -> Path:
        return self.folder / "segmentation" / f"{self.name}.nii.gz"

    @property
    def table(self) -> Path:
        return self.folder / "downstream.csv"

    def steps(self, python: str, *, segmenter=None, predictor=None, with_truth: bool = False,
              trust_bundle: bool = False) -> list[JobStep]:
        """One background command: segment the written case, then predict the Dice (unset models: the shipped ones).

        One process, so torch and MONAI are imported once; it reports each stage as a progress line.
        """
        args = [python, "-m", "GenMedEvalLib.scene_logic", "--image", self.image, "--segmentation", self.segmentation,
                "--table", self.table]
        if given_path(segmenter):
            args += ["--segmenter", given_path(segmenter)]
        if given_path(predictor):
            args += ["--quality-model", given_path(predictor)]
        if with_truth:
            args += ["--truth", self.truth]
        if trust_bundle:
            args.append("--trust-bundle")
        return [JobStep(tuple(map(str, args)), "Segmentation and quality prediction")]


class DownstreamScene:
    """The scene side of a background downstream run: write the inputs, read the outputs into nodes."""

    def __init__(self, logic: SceneLogic):
        self.logic = logic

    def prepare(self, run: DownstreamRun, volume_node, truth_node=None) -> bool:
        """Write the normalised volume (and the truth mask) where the commands read them; True when truth was written."""
        from .io import write_volume

        volume, truth = self.logic._inputs(volume_node, truth_node)
        write_volume(volume, run.image)
        if truth is not None:
            write_volume(volume, run.truth, truth.astype(np.uint8))
        return truth is not None

    def load(self, run: DownstreamRun, volume_node, *, segmentation_node=None, table_node=None):
        """(segmentation node, predicted Dice or nan, downstream table node) from the finished run's files."""
        from .io import read_mask

        volume, _ = self.logic._inputs(volume_node)
        if not run.segmentation.is_file():
            raise InputError("the segmentation was not written (did the run finish?)", run.segmentation)
        mask = read_mask(run.segmentation, like=volume).array
        if segmentation_node is not None:
            self.logic.scene.RemoveNode(segmentation_node)
        node = mrml.mask_to_segmentation(self.logic.scene, volume, mask, f"{volume_node.GetName()}_segmentation")
        with run.table.open(newline="") as handle:
            rows = [{key: _number_or_text(key, value) for key, value in row.items()} for row in csv.DictReader(handle)]
        if len(rows) != 1:
            raise InputError(f"expected one row, found {len(rows)}", run.table)
        rows[0]["volume"] = volume_node.GetName()
        table = mrml.rows_to_table(self.logic.scene, rows, "GenMedEval downstream", node=table_node)
        score = rows[0].get("predicted_dice")
        return node, float(score) if isinstance(score, float) else float("nan"), table


# -- a rough tumour mask for self-tests ------------------------------------------------------

def rough_tumour_mask(array: np.ndarray, *, percentile: float = 99.0, margin: float = 0.2) -> np.ndarray:
    """A rough mask of the brightest compact region away from the image border (a stand-in where no label exists).

    Contrast-enhanced tumours are among the brightest voxels of a T1c scan; scalp fat is too, but
    it lies at the border, which the central box (``margin`` of each side cut off) excludes. The
    largest connected component above ``percentile`` inside the box, closed and hole-filled.
    """
    from scipy import ndimage

    data = np.asarray(array, np.float32)
    box = tuple(slice(int(n * margin), max(int(n * (1 - margin)), int(n * margin) + 1)) for n in data.shape)
    inside = np.zeros(data.shape, bool)
    inside[box] = True
    bright = inside & (data > np.percentile(data[box], percentile))
    labels, count = ndimage.label(bright)
    if count == 0:
        return np.zeros(data.shape, np.uint8)
    sizes = ndimage.sum(bright, labels, index=range(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    largest = ndimage.binary_closing(largest, iterations=2)
    return ndimage.binary_fill_holes(largest).astype(np.uint8)


# -- the background downstream command ---------------------------------------------------------

def downstream_main(argv: Sequence[str] | None = None) -> int:
    """``python -m GenMedEvalLib.scene_logic``: segment one volume, write the mask, predict its Dice into a CSV.

    The module's Downstream section runs this in its background process. Exit 0 done, 2 bad input
    (one line on stderr).
    """
    import argparse
    import sys

    from .errors import GenMedEvalError
    from .io import read_mask, read_volume, write_volume

    parser = argparse.ArgumentParser(prog="python -m GenMedEvalLib.scene_logic", description=downstream_main.__doc__)
    parser.add_argument("--image", required=True, help="the (normalised) volume to segment")
    parser.add_argument("--segmentation", required=True, help="mask to write (same geometry)")
    parser.add_argument("--table", required=True, help="CSV to write: one downstream row")
    parser.add_argument("--truth", help="ground-truth mask: adds the true Dice")
    parser.add_argument("--segmenter", help="segmenter file or MONAI bundle (default: the shipped one)")
    parser.add_argument("--quality-model", help="quality predictor weights (default: the shipped ones)")
    parser.add_argument("--trust-bundle", action="store_true",
                        help="allow a MONAI bundle segmenter (its config can run any Python code)")
    args = parser.parse_args(argv)
    try:
        from .quality import load_predictor
        from .segment import load_segmenter

        volume = read_volume(args.image)
        truth = read_mask(args.truth, like=volume).array if args.truth else None
        segmenter = load_segmenter(args.segmenter, trust_bundle=args.trust_bundle)
        predictor = load_predictor(args.quality_model)
        print("downstream:   0%| segmenting", flush=True)
        mask = segmenter.segment(volume.array, volume.spacing_zyx)
        write_volume(volume, args.segmentation, mask.astype(np.uint8))
        print("downstream:  50%| predicting the Dice", flush=True)
        row = downstream_row(volume.name, volume, mask, predictor=predictor, truth=truth)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
        write_text(Path(args.table), buf.getvalue())
        print("downstream: 100%| done", flush=True)
    except GenMedEvalError as exc:
        print(f"GenMedEval downstream: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(downstream_main())
