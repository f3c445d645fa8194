"""Run a batch job (``batch.job.Job``): features, quality, metrics, sweep, compare and the scene, resumably.

Order: every set's features, volume by volume (one journal unit each; on a Dask cluster when the
job names one); the ``quality`` stage's segmentations, case by case; the ``metrics`` table; the
``sweep`` conditions; the ``compare`` models; the scene bundle. Each unit is journalled when done
(``batch.journal``) with the work it took. All work goes through the content-addressed caches
(features, metric tables, segmentations), so a run started again after a kill finds what the
killed run finished and recomputes none of it: the journal's ``reused`` units record zero work.
A finished condition's perturbation is derived again from its seed (cheap; its features, metrics
and segmentations come from the caches). Tables are written atomically, so a kill never leaves
a partial file, and a resumed run ends with tables byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..experiments.config import SweepConfig
from ..experiments.resultcache import ResultCache
from ..experiments.sweep import Downstream, LocalFeatures, SetCase, SliceFeatures, WorkCounter, metric_names
from ..features.localfeatures import stack_local, suite_local
from ..io import write_text
from .job import Job
from .journal import Journal

LOG = "batch.log"
SUMMARY = "batch.json"
#: the metric role of each set
ROLES = {"reference": "reference", "evaluated": "generated", "train": "train", "test": "test"}


@dataclass
class BatchRun:
    """What a batch run did: its folder, journal, the files it wrote and how long it took."""

    folder: Path
    journal: Journal
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def batch_log(path: Path) -> Iterator[logging.Logger]:
    """A logger writing time-stamped lines to ``path`` (appended: one file over every resumed run)."""
    logger = logging.getLogger(f"genmedeval.batch.{id(path)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


class Units:
    """Journal records with a log line; says when a unit an earlier run finished took work again."""

    def __init__(self, journal: Journal, log: logging.Logger):
        self.journal, self.log = journal, log

    def __call__(self, unit: str, work: dict[str, int]) -> None:
        entry = self.journal.record(unit, work)
        counts = ", ".join(f"{k} {v}" for k, v in work.items() if v) or "no new work"
        self.log.info("%s %s (%s)", entry["status"], unit, counts)
        if entry["status"] == "reused" and any(work.values()):
            self.log.info("  %s had to be computed again: its cache entries were gone", unit)


def check_job_inputs(job: Job) -> None:
    """Every set listed (files and folders exist, splits hold cases) before any output is written."""
    from ..experiments.sweep import list_set

    for name, data in {**job.sets, **{f"models.{k}": v for k, v in job.models.items()}}.items():
        list_set(data, f"sets.{name}")
    if job.outputs.scene:
        import importlib.util

        from ..mrml import in_slicer_application

        if not in_slicer_application() and importlib.util.find_spec("trame_slicer") is None:
            from ..errors import InputError

            raise InputError("outputs.scene: the Slicer scene bundle needs the slicer-core and trame-slicer wheels "
                             "(pip install 'GenMedEvalLib[slicer]', or the full Docker image); or set scene: false",
                             job.source or job.outputs.folder)
    if job.segmenter is not None and not job.segmenter.exists():
        from ..errors import InputError

        raise InputError("segmenter not found (key segmenter)", job.segmenter)


def run_batch(job: Job, *, restart: bool = False) -> BatchRun:
    """Run every stage of ``job`` into its outputs folder; resume from its journal unless ``restart``."""
    from ..outputs import check_output_folder, claim_run_folder

    start = time.perf_counter()
    check_job_inputs(job)
    out = job.outputs.folder
    check_output_folder(out, inputs=job.inputs(), resume=True, option="outputs.folder")
    claim_run_folder(out, "batch")
    journal = Journal(out, job.digest(), restart=restart)
    run = BatchRun(out, journal)
    with batch_log(out / LOG) as log:
        log.info("batch job %s: stages %s; %d units done before", job.name, ", ".join(job.stages), len(journal.done))
        units = Units(journal, log)
        _Stages(job, run, units, log).run_all()
        run.seconds = round(time.perf_counter() - start, 1)
        _write_summary(job, run)
        log.info("done in %.1f s: %d units done, %d reused", run.seconds,
                 sum(e["status"] == "done" for e in journal.this_run),
                 sum(e["status"] == "reused" for e in journal.this_run))
    return run


class _Stages:
    """The job's stages over one loading of its sets, sharing the encoder and the caches."""

    def __init__(self, job: Job, run: BatchRun, units: Units, log: logging.Logger):
        self.job, self.run, self.units, self.log = job, run, units, log
        self.out = run.folder
        self.sets: dict[str, list[SetCase]] = {}
        self.slice_features: dict[str, list[np.ndarray]] = {}  # per set, per volume (the features stage)
        self.local_features: dict[str, dict[str, list[np.ndarray]]] = {}  # per set, per kind, per volume
        self.segmented: dict[str, np.ndarray] = {}
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def run_all(self) -> None:
        from ..experiments.sweep import load_sets

        job = self.job
        self.sets = load_sets(dict(job.sets), job.cases)
        if job.distributed.enabled:
            self._on_cluster()
        needs_features = any(s in job.stages for s in ("metrics", "sweep", "compare"))
        if needs_features:
            self._features()
        if "quality" in job.stages:
            self._quality()
        if "metrics" in job.stages:
            self._metrics()
        if "sweep" in job.stages:
            self._sweep()
        if "compare" in job.stages:
            self._compare()
        if job.outputs.scene:
            self._scene()

    # -- the encoder's inputs ------------------------------------------------------------------
    def _encoder(self):
        if not hasattr(self, "_enc"):
            from ..experiments.demo import choose_encoder

            self._enc = choose_encoder(self.job.encoder)
            self.feats = SliceFeatures(self._enc, settings=self.job.slices)
            self.names = metric_names(self.job.metrics)
            self.local = LocalFeatures(self._enc, self.feats.cache, self.names, self.job.slices)
        return self._enc

    def _on_cluster(self) -> None:
        """Features (with the local metrics' inputs) of every set and model, and the quality stage's segmentations,
        on the Dask cluster into the shared caches; the stages then find them there."""
        from .. import cluster
        from ..experiments.sweep import list_set
        from ..threads import check_device

        job = self.job
        self._encoder()
        items = {name: [m.item for m in members] for name, members in self.sets.items()}
        items.update({f"models.{name}": list_set(data, name) for name, data in job.models.items()})
        kinds = {name: tuple(self.local.kinds) for name in items
                 if self.local.wanted(ROLES.get(name, "generated"))}
        with cluster.open_client(cluster.ClusterOptions(job.distributed.scheduler, job.distributed.workers)) as client:
            stats = cluster.prefetch(client, items, encoder=job.encoder, slices=job.slices, cases=job.cases,
                                     segmenter=str(job.segmenter) if job.segmenter else None,
                                     downstream=["evaluated"] if "quality" in job.stages else False,
                                     local_kinds=kinds, device=check_device(job.device))
        for part, counts in stats.items():
            self.log.info("Dask cluster, %s: %s", part, json.dumps({k: v for k, v in counts.items() if k != "by_worker"},
                                                                    default=str))

    def _features(self) -> None:
        """Each volume's slice features (and the local metrics' crops it needs): one unit per volume."""
        from ..progress import progress

        self._encoder()
        counter = WorkCounter(self.feats.cache, self.local.cache, ResultCache(enabled=False))
        counter.step()
        members = [(name, m) for name, ms in self.sets.items() for m in ms]
        for name, member in progress(members, desc="features"):
            self.slice_features.setdefault(name, []).extend(self.feats.of([member]))
            if self.local.wanted(ROLES[name]):
                for kind, blocks in self.local.of([member]).items():
                    self.local_features.setdefault(name, {}).setdefault(kind, []).extend(blocks)
            work = counter.step()
            work.pop("computed_results")
            self.units(f"features/{name}/{member.item.name}", work)

    # -- stages ----------------------------------------------------------------------------------
    def _quality(self) -> None:
        """Segment every evaluated case, predict its Dice; true Dice where the case has a tumour mask."""
        from ..io import write_volume
        from ..progress import progress
        from ..quality import dice_score

        results = ResultCache()
        downstream = Downstream.load(str(self.job.segmenter) if self.job.segmenter else None, results)
        rows = []
        for member in progress(self.sets["evaluated"], desc="quality"):
            name = member.item.name
            before = results.misses
            score = float(downstream.scores([member], keys=[name])[0])
            mask = np.asarray(downstream.masks.pop(name), np.uint8)
            self.segmented[f"evaluated {name}"] = mask
            target = self.out / "segmentations" / member.case.mask_name
            unit = f"segment/evaluated/{name}"
            if not (unit in self.run.journal.done and target.is_file()):
                write_volume(member.case.grid, target, mask)
            has_truth = member.item.mask is not None
            rows.append({"volume": name, "predicted_dice": None if np.isnan(score) else round(score, 4),
                         "true_dice": round(dice_score(mask, member.mask), 4) if has_truth else None,
                         "mask_voxels": int(mask.sum()), "found": bool(mask.any())})
            self.units(unit, {"computed_results": results.misses - before})
        self._table("quality", rows)

    def _metrics(self) -> None:
        """The metric suite of the evaluated set against the reference (train and test where given)."""
        from ..experiments.sweep import stack

        results = ResultCache()
        fixed = {ROLES[n]: stack(blocks) for n, blocks in self.slice_features.items()}
        fixed_local = {ROLES[n]: stack_local(per_kind) for n, per_kind in self.local_features.items()
                       if n != "evaluated"}
        generated_local = stack_local(self.local_features["evaluated"]) if "evaluated" in self.local_features \
            else None
        counter = WorkCounter(self.feats.cache, self.local.cache, results)
        counter.step()
        result = results.suite(fixed, self.names, bootstrap=self.job.bootstrap, seed=self.job.seed,
                               **suite_local(fixed_local, generated_local))
        result.to_csv(self.out / "metrics.csv")
        result.to_json(self.out / "metrics.json")
        self.tables["metrics"] = [{"metric": r.metric, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                                   "better": r.better, "n_reference": r.n_reference, "n_generated": r.n_generated}
                                  for r in result.rows]
        self.units("metrics", counter.step())

    def _sweep(self) -> None:
        """Phase 1 on the evaluated set: every condition of the job (the paper's by default)."""
        job = self.job
        order = ["evaluated", *(name for name in job.sets if name != "evaluated")]
        key = {name: "base" if name == "evaluated" else name for name in order}  # the sweep's set names
        data = {key[name]: job.sets[name] for name in order}
        config = SweepConfig(name=job.name, data=data, conditions=job.conditions, encoder=job.encoder,
                             max_slices=job.slices.max_slices, tumour_slices=job.slices.tumour_slices,
                             plane=job.slices.plane, cases=job.cases, metrics=job.metrics, bootstrap=job.bootstrap,
                             seed=job.seed, downstream=True,
                             segmenter=str(job.segmenter) if job.segmenter else None,
                             downstream_max_volumes=job.sweep_max_volumes, source=job.source)
        from ..experiments.sweep import run_sweep

        read = {key[name]: self.sets[name] for name in order}
        folder = run_sweep(config, self.out / "sweep", encoder=self._encoder(), report=job.outputs.report,
                           on_unit=self.units, sets=read)
        self.tables["sweep upstream"] = _csv_rows(folder / "upstream.csv")
        self.tables["sweep downstream"] = _csv_rows(folder / "downstream.csv")

    def _compare(self) -> None:
        """Phase 2: the models against the reference, upstream, downstream and rank agreement."""
        from ..experiments.compare import run_compare

        job = self.job
        folder = run_compare(job.sets["reference"], dict(job.models), self.out / "compare", encoder=job.encoder,
                             metrics=job.metrics, slices=job.slices, cases=job.cases, train=job.sets.get("train"),
                             test=job.sets.get("test"), downstream=job.compare_downstream,
                             segmenter=str(job.segmenter) if job.segmenter else None, bootstrap=job.bootstrap,
                             seed=job.seed, baseline=job.baseline, report=job.outputs.report, on_unit=self.units)
        self.tables["compare upstream"] = _csv_rows(folder / "compare_upstream.csv")
        self.tables["rank agreement"] = _csv_rows(folder / "rank_agreement.csv")

    def _scene(self) -> None:
        """The scene bundle: the first cases of each set, their masks and segmentations, and every table."""
        from ..cases import read_item
        from .scene import write_scene

        volumes, masks = {}, {}
        for name in ("reference", "evaluated"):
            for member in self.sets.get(name, [])[:self.job.outputs.scene_volumes]:
                key = f"{name} {member.item.name}"
                volumes[key] = read_item(member.item).primary(member.contrast)  # the scan's own intensities
                masks[key] = member.mask
        path = write_scene(self.out / "scene.mrb", volumes, masks,
                           {k: v for k, v in self.segmented.items() if k in volumes}, self.tables)
        self.run.files.append(path)
        self.units("scene", {})

    def _table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """A per-case table as CSV and JSON in the outputs folder, kept for the scene."""
        from ..experiments.tables import csv_text

        write_text(self.out / f"{name}.csv", csv_text(rows))
        write_text(self.out / f"{name}.json", json.dumps(rows, indent=1))
        self.tables[name] = rows


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    """A written table's rows (numbers as numbers) for the scene; none when the stage wrote no such table."""
    import csv

    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _write_summary(job: Job, run: BatchRun) -> None:
    """``batch.json``: the run's statistics (units done and reused, work, seconds): not a result table."""
    entries = run.journal.this_run
    summary = {"job": job.name, "digest": job.digest(), "stages": list(job.stages), "seconds": run.seconds,
               "units_done": sum(e["status"] == "done" for e in entries),
               "units_reused": sum(e["status"] == "reused" for e in entries),
               "recomputed": run.journal.recomputed(),
               "work": {k: sum(e.get(k, 0) for e in entries)
                        for k in ("forward_passes", "region_forward_passes", "computed_results")}}
    write_text(run.folder / SUMMARY, json.dumps(summary, indent=1))

