"""The batch job file (``genmedeval batch JOB.yaml``): the sets, what to run, how, and where the outputs go.

The format is ``EXAMPLE`` below (``genmedeval batch --write-example PATH`` writes it); the README's
"Batch jobs" section explains each key.
Relative paths resolve against the job file's folder. Every problem is one line naming the file and
the key; nothing runs before the whole file is valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError, short
from ..experiments.config import (
    Condition,
    DataSet,
    _case_options,
    _check_size,
    _conditions,
    _dataset,
    _fail,
    _int,
    _resolve,
    read_yaml_file,
)
from ..features.slicing import DEFAULT_SLICES, SliceSettings

EXAMPLE = """# GenMedEval batch job: `genmedeval batch THIS_FILE` (paths relative to this file)
name: example
seed: 0
device: auto            # auto | cpu | cuda | cuda:N
threads: null           # threads per pool (null: every core)
encoder: domain
metrics: all            # or a list of metric names
bootstrap: 20
segmenter: null         # null: the shipped segmenter
slices: {max_slices: 6, tumour_slices: 2, plane: axial}
cases: {contrast: null, target: whole, label_convention: null}
sets:                   # FOLDER | {folder, split, masks, labels} | {files: [PATH, ...], masks, labels}
  reference: {folder: cohort/images, split: reference}
  evaluated: {folder: cohort/images, split: eval}
  train: {folder: cohort/images, split: train}
run: [metrics, quality, sweep]          # add compare with sets.models: {NAME: FOLDER, ...}
sweep: {perturbations: {gaussian_noise: ["0.05"], boundary_blur: ["1"]}}
distributed: {scheduler: null, workers: null}   # Dask: an address, or N local worker processes
outputs: {folder: batch_out, scene: true, scene_volumes: 4, report: true}
"""

STAGES = ("metrics", "quality", "sweep", "compare")
FIXED_SETS = ("reference", "evaluated", "train", "test")
#: the sets each stage needs
NEEDS = {"metrics": ("reference", "evaluated"), "quality": ("evaluated",), "sweep": ("reference", "evaluated"),
         "compare": ("reference", "models")}
TOP_KEYS = ("name", "seed", "device", "threads", "encoder", "metrics", "bootstrap", "segmenter", "slices", "cases",
            "sets", "run", "sweep", "compare", "distributed", "outputs")


@dataclass(frozen=True)
class Outputs:
    """Where the job writes: one folder with the tables, the report, the log, the journal and the scene."""

    folder: Path
    scene: bool = True
    scene_volumes: int = 4
    report: bool = True


@dataclass(frozen=True)
class Distributed:
    """A Dask cluster for features, segmentation and quality: a scheduler address or N local workers."""

    scheduler: str | None = None
    workers: int | None = None

    @property
    def enabled(self) -> bool:
        return self.scheduler is not None or self.workers is not None


@dataclass
class Job:
    """A validated batch job."""

    name: str
    sets: dict[str, DataSet]
    models: dict[str, DataSet]
    stages: tuple[str, ...]
    outputs: Outputs
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    encoder: str = "domain"
    metrics: str | list[str] = "all"
    bootstrap: int = 20
    segmenter: Path | None = None
    slices: SliceSettings = DEFAULT_SLICES
    cases: Any = None
    conditions: list[Condition] = field(default_factory=list)
    sweep_max_volumes: int | None = None
    baseline: str | None = None
    compare_downstream: bool = True
    distributed: Distributed = Distributed()
    source: Path | None = None

    def digest(self) -> str:
        """Hex SHA-256 of everything that decides the results: a journal of another job is never resumed."""
        decided = {"sets": {k: v.describe() for k, v in sorted(self.sets.items())},
                   "models": {k: v.describe() for k, v in self.models.items()}, "stages": list(self.stages),
                   "seed": self.seed, "encoder": self.encoder, "metrics": self.metrics, "bootstrap": self.bootstrap,
                   "segmenter": str(self.segmenter), "slices": repr(self.slices), "cases": repr(self.cases),
                   "conditions": [c.name + json.dumps(c.params, sort_keys=True) for c in self.conditions],
                   "sweep_max_volumes": self.sweep_max_volumes, "baseline": self.baseline,
                   "compare_downstream": self.compare_downstream, "scene": [self.outputs.scene,
                                                                            self.outputs.scene_volumes],
                   "report": self.outputs.report}
        return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()

    def inputs(self) -> list[Path]:
        """Every input path (the outputs folder must not be or hold one)."""
        paths = [p for data in [*self.sets.values(), *self.models.values()] for p in data.paths()]
        return paths + ([self.segmenter] if self.segmenter else []) + ([self.source] if self.source else [])


def _mapping(raw: Mapping, key: str, known: tuple[str, ...], path: Path | None) -> Mapping:
    """``raw[key]`` as a mapping with only ``known`` keys (absent: empty)."""
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise _fail(path, key, f"expected a mapping with keys {', '.join(known)}, got {short(value)}")
    unknown = set(value) - set(known)
    if unknown:
        raise _fail(path, f"{key}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(known)})")
    return value


def _bool(value: Any, key: str, path: Path | None) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, key, f"expected true or false, got {short(value)}")
    return value


def _stages(raw: Mapping, path: Path | None) -> tuple[str, ...]:
    value = raw.get("run")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(path, "run", f"expected a list of stages from {', '.join(STAGES)}")
    unknown = [v for v in value if v not in STAGES]
    if unknown:
        raise _fail(path, "run", f"unknown stage '{unknown[0]}' (choose from {', '.join(STAGES)})")
    return tuple(s for s in STAGES if s in value)  # always in the documented order


def _sets(raw: Mapping, stages: tuple[str, ...], base_dir: Path,
          path: Path | None) -> tuple[dict[str, DataSet], dict[str, DataSet]]:
    value = _mapping(raw, "sets", (*FIXED_SETS, "models"), path)
    sets = {name: _dataset(value[name], f"sets.{name}", base_dir, path) for name in FIXED_SETS if name in value}
    models_raw = value.get("models") or {}
    if not isinstance(models_raw, Mapping):
        raise _fail(path, "sets.models", "expected a mapping of model name -> folder")
    models = {str(n): _dataset(v, f"sets.models.{n}", base_dir, path) for n, v in models_raw.items()}
    for stage in stages:
        for needed in NEEDS[stage]:
            if needed == "models":
                if len(models) < 2:
                    raise _fail(path, "sets.models", "the compare stage needs at least two models")
            elif needed not in sets:
                raise _fail(path, f"sets.{needed}", f"missing (the {stage} stage needs it)")
    if "test" in sets and "train" not in sets:
        raise _fail(path, "sets.test", "needs sets.train beside it (the CT score compares both)")
    return sets, models


def _slices(raw: Mapping, path: Path | None) -> SliceSettings:
    from dataclasses import replace

    from ..features.slicing import PLANES

    value = _mapping(raw, "slices", ("max_slices", "tumour_slices", "plane"), path)
    plane = str(value.get("plane", DEFAULT_SLICES.plane))
    if plane not in (*PLANES, "all"):
        raise _fail(path, "slices.plane", f"unknown plane '{plane}' (choose from {', '.join(PLANES)}, all)")
    return replace(DEFAULT_SLICES, plane=plane,
                   max_slices=_int(value.get("max_slices", DEFAULT_SLICES.max_slices), "slices.max_slices", path, 1,
                                   allow_none=True),
                   tumour_slices=_int(value.get("tumour_slices", DEFAULT_SLICES.tumour_slices),
                                      "slices.tumour_slices", path))


def _compute(raw: Mapping, path: Path | None) -> tuple[str, int | None]:
    """``device`` and ``threads``, checked as the command line checks them."""
    from ..threads import check_device

    device = raw.get("device", "auto")
    if not isinstance(device, str):
        raise _fail(path, "device", f"expected auto, cpu, cuda or cuda:N, got {short(device)}")
    try:
        check_device(device)
    except ParameterError as exc:
        raise _fail(path, "device", str(exc)) from None
    return device, _int(raw.get("threads"), "threads", path, 1, allow_none=True)


def _names(raw: Mapping, path: Path | None) -> tuple[str, str | list[str]]:
    """The encoder and metric names, checked against the registries."""
    from ..features.registry import ENCODERS
    from ..metrics.suite import resolve_metrics

    encoder = raw.get("encoder", "domain")
    if not isinstance(encoder, str) or encoder not in ENCODERS:
        raise _fail(path, "encoder", f"unknown encoder {short(encoder)} (choose from {', '.join(ENCODERS)})")
    metrics = raw.get("metrics", "all")
    if not (isinstance(metrics, str) or isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        raise _fail(path, "metrics", f"expected 'all' or a list of metric names, got {short(metrics)}")
    try:
        resolve_metrics(metrics)
    except (ParameterError, TypeError) as exc:
        raise _fail(path, "metrics", str(exc)) from None
    return encoder, metrics


def _distributed(raw: Mapping, path: Path | None) -> Distributed:
    value = _mapping(raw, "distributed", ("scheduler", "workers"), path)
    scheduler, workers = value.get("scheduler"), _int(value.get("workers"), "distributed.workers", path, 1,
                                                      allow_none=True)
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise _fail(path, "distributed.scheduler", f"expected an address such as tcp://host:8786, got {short(scheduler)}")
    if scheduler is not None and workers is not None:
        raise _fail(path, "distributed", "give scheduler or workers, not both")
    return Distributed(scheduler, workers)


def _outputs(raw: Mapping, base_dir: Path, path: Path | None) -> Outputs:
    value = _mapping(raw, "outputs", ("folder", "scene", "scene_volumes", "report"), path)
    if "folder" not in value:
        raise _fail(path, "outputs.folder", "missing (the folder every output goes to)")
    return Outputs(_resolve(value["folder"], "outputs.folder", base_dir, path),
                   scene=_bool(value.get("scene", True), "outputs.scene", path),
                   scene_volumes=_int(value.get("scene_volumes", 4), "outputs.scene_volumes", path, 1),
                   report=_bool(value.get("report", True), "outputs.report", path))


def parse_job(raw: Any, *, path: Path | None = None, base_dir: Path | None = None) -> Job:
    """A validated ``Job`` from the parsed YAML mapping ``raw``."""
    if not isinstance(raw, Mapping):
        raise _fail(path, "(top level)", "expected a mapping")
    _check_size(raw, path)
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise _fail(path, sorted(unknown)[0], f"unknown key (known keys: {', '.join(TOP_KEYS)})")
    base_dir = base_dir or (path.parent if path else Path.cwd())
    stages = _stages(raw, path)
    sets, models = _sets(raw, stages, base_dir, path)
    seed = _int(raw.get("seed", 0), "seed", path)
    device, threads = _compute(raw, path)
    encoder, metrics = _names(raw, path)
    sweep = _mapping(raw, "sweep", ("perturbations", "max_volumes"), path)
    compare = _mapping(raw, "compare", ("baseline", "downstream"), path)
    baseline = compare.get("baseline")
    if baseline is not None and str(baseline) not in models:
        raise _fail(path, "compare.baseline", f"{short(baseline)} is not one of sets.models ({', '.join(models)})")
    segmenter = raw.get("segmenter")
    name = raw.get("name", path.stem if path else "batch")
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, "name", f"expected a name, got {short(name)}")
    return Job(name=name, sets=sets, models=models, stages=stages, outputs=_outputs(raw, base_dir, path), seed=seed,
               device=device, threads=threads, encoder=encoder, metrics=metrics,
               bootstrap=_int(raw.get("bootstrap", 20), "bootstrap", path),
               segmenter=_resolve(segmenter, "segmenter", base_dir, path) if segmenter is not None else None,
               slices=_slices(raw, path), cases=_case_options(raw.get("cases") or {}, path),
               conditions=_conditions(sweep.get("perturbations"), seed, path, "sweep.perturbations") if "sweep" in stages else [],
               sweep_max_volumes=_int(sweep.get("max_volumes"), "sweep.max_volumes", path, 1, allow_none=True),
               baseline=None if baseline is None else str(baseline),
               compare_downstream=_bool(compare.get("downstream", True), "compare.downstream", path),
               distributed=_distributed(raw, path), source=path)


def load_job(path: str | Path) -> Job:
    """Read and validate a YAML batch job."""
    path = Path(path)
    return parse_job(read_yaml_file(path, "job"), path=path)
