"""Feature extraction, segmentation and quality prediction on a Dask cluster, through the shared caches.

A command given ``--workers N`` (a ``LocalCluster`` of N single-threaded worker processes) or
``--scheduler ADDRESS`` (a running ``dask.distributed`` scheduler) sends one task per chunk of
volumes to the workers. Each task reads its volumes in the worker and writes what it computes
into the same content-addressed caches the single-process run uses (``features.cache`` for deep
features, ``experiments.resultcache`` for predicted Dice and masks), at a cache root every worker
can reach (a shared folder), and returns only small counters. The main process then runs its
usual code, finds every input in the cache (0 forward passes) and computes the metrics once, so
the results are those of the single-process run. Perturbed sweep conditions stay in-process.

Workers load the encoder, segmenter and quality model once per worker process
(:func:`worker_cached`), not once per task.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GenMedEvalError, InputError, ParameterError, first_line

#: seconds to wait for a scheduler to answer before giving up with one line
CONNECT_TIMEOUT = 5.0
#: volumes per task at most (a task per volume is cheap, but batches of slices encode faster)
MAX_CHUNK = 16
#: tasks per worker thread aimed for, so that a slow volume does not leave the other workers idle
TASKS_PER_THREAD = 4
_ADDRESS = re.compile(r"^((tcp|tls|ws|wss|ucx)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")
_SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "BLIS_NUM_THREADS")}
_worker_objects: dict[tuple, Any] = {}  # per worker process: encoders, segmenters, predictors by identity
_worker_loads: dict[str, int] = {}  # per worker process: how many objects of each kind were built


@dataclass(frozen=True)
class ClusterOptions:
    """Where the parallel work runs: a scheduler's address, or N local worker processes (neither: in-process)."""

    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.scheduler is not None and self.workers is not None:
            raise ParameterError("give --scheduler ADDRESS or --workers N, not both")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)):
            raise ParameterError(f"--workers {self.workers!r}: give a whole number of worker processes >= 1")
        if self.workers is not None:
            check_workers(self.workers)
        if self.scheduler is not None:
            check_address(self.scheduler)

    @property
    def enabled(self) -> bool:
        """Whether the work goes to a cluster at all."""
        return self.scheduler is not None or self.workers is not None


def check_address(address: str) -> str:
    """``address`` when it reads as ``[tcp://]HOST:PORT`` (tcp, tls, ws, wss, ucx), else ``ParameterError``."""
    text = str(address).strip()
    if not _ADDRESS.match(text) or not 0 < int(text.rsplit(":", 1)[1]) < 65536:
        raise ParameterError(f"--scheduler {address!r}: expected a Dask scheduler address such as "
                             "tcp://host:8786 or host:8786")
    return text


def check_workers(workers: Any) -> int:
    """``workers`` as a whole number >= 1 (text from the command line too), else ``ParameterError``."""
    value = None
    if isinstance(workers, int) and not isinstance(workers, bool):
        value = workers
    elif isinstance(workers, str) and workers.strip().isdigit():
        value = int(workers)
    if value is None or value < 1:
        raise ParameterError(f"--workers {workers!r}: give a whole number of worker processes >= 1")
    return value


def _argument(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a check that raises ``ParameterError`` (argparse then prints the one line)."""
    import argparse

    def parse(text: str) -> Any:
        try:
            return check(text)
        except ParameterError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    parse.__name__ = check.__name__.removeprefix("check_")
    return parse


def add_cluster_arguments(parser) -> None:
    """``--scheduler ADDRESS`` and ``--workers N`` for a command whose per-volume work may run on Dask."""
    group = parser.add_argument_group("distributed (Dask)")
    group.add_argument("--scheduler", type=_argument(check_address), default=None, metavar="ADDRESS",
                       help="run the per-volume work on this Dask scheduler's workers (tcp://host:8786); the "
                       "cache folder must be shared with them")
    group.add_argument("--workers", type=_argument(check_workers), default=None, metavar="N",
                       help="run the per-volume work on a local Dask cluster of N single-threaded worker processes")


def cluster_options(args) -> ClusterOptions:
    """The validated ``ClusterOptions`` of parsed ``add_cluster_arguments`` options."""
    return ClusterOptions(getattr(args, "scheduler", None), getattr(args, "workers", None))


def _distributed():
    """The ``distributed`` module, or a one-line ``ParameterError`` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ParameterError("--scheduler/--workers need Dask: pip install 'GenMedEvalLib[dask]' "
                             "(dask and distributed)") from None
    return distributed


@contextmanager
def open_client(options: ClusterOptions | None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``options`` (None when no cluster is asked for); closes what it opened.

    ``workers=N`` starts a quiet ``LocalCluster`` of N single-threaded processes without a dashboard;
    ``scheduler`` connects, failing with one line after ``CONNECT_TIMEOUT`` seconds.
    """
    if options is None or not options.enabled:
        yield None
        return
    distributed = _distributed()
    cluster = None
    if options.workers is not None:
        cluster = distributed.LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR,
                                           env=dict(_SINGLE_THREAD, OMP_WAIT_POLICY="PASSIVE"))
        client = distributed.Client(cluster)
    else:
        try:
            client = distributed.Client(options.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ParameterError(f"--scheduler {options.scheduler}: no Dask scheduler answers there "
                                 f"({first_line(exc)})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------------------------------- in the workers


def prepare_worker(max_image_mb: float | None = None) -> None:
    """In a worker: one thread for every pool (the worker processes are the parallelism), the image size limit."""
    from . import filecheck
    from .threads import prepare_environment, set_threads

    prepare_environment()
    set_threads(1)
    filecheck.set_max_image_mb(max_image_mb)


def worker_cached(kind: str, key: tuple, build: Callable[[], Any]) -> Any:
    """The object ``build()`` makes, built once per worker process for each ``(kind, key)``."""
    if (kind, key) not in _worker_objects:
        _worker_objects[(kind, key)] = build()
        _worker_loads[kind] = _worker_loads.get(kind, 0) + 1
    return _worker_objects[(kind, key)]


def _worker_name() -> str:
    """This worker's address (its process id outside a Dask worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _failure(exc: BaseException, items: Sequence) -> GenMedEvalError:
    """A one-line error naming the first file of ``items`` for an exception a task raised."""
    if isinstance(exc, GenMedEvalError):
        return exc
    where = getattr(items[0], "image", items[0]) if items else None
    return InputError(f"failed on a Dask worker ({type(exc).__name__}: {first_line(exc)})", where)


@dataclass(frozen=True)
class FeatureJob:
    """What a feature task needs besides its volumes: encoder, slice rules, case options, cache root."""

    encoder: str
    slices: Any
    cases: Any
    contrast: str | None
    cache_root: str
    read: str = "members"  # "members": sweep/compare/batch (``load_set``); "folder": metrics/features commands
    outputs: tuple[str, ...] | None = None  # None: every output the encoder gives
    local_kinds: tuple[str, ...] = ()
    device: str | None = None
    batch_size: int | None = None
    max_image_mb: float | None = None


def _encoder(job: FeatureJob):
    """The job's encoder, loaded once per worker process."""
    from .features.registry import get_encoder

    encoder = worker_cached("encoder", (job.encoder, job.device, job.batch_size),
                            lambda: get_encoder(job.encoder, job.device, job.batch_size))
    from .threads import set_threads

    set_threads(1)  # torch was perhaps loaded just now
    return encoder


def _read_inputs(items: Sequence, job: FeatureJob) -> tuple[list, list]:
    """(volumes, masks) of ``items`` exactly as the main process reads them for the job's kind of run."""
    if job.read == "folder":
        from .features.extract import encoder_inputs

        return encoder_inputs(items, job.cases, with_masks=job.slices.mask_only, contrast=job.contrast)
    from .experiments.sweep import load_set

    members = load_set(list(items), "prefetch", job.cases, job.contrast)
    return [m.volume for m in members], [m.mask for m in members]


def features_task(items: Sequence, job: FeatureJob) -> dict[str, Any]:
    """In a worker: a chunk of cases read and encoded through the shared cache by the single-process code
    (``extract_features``, ``local_inputs``); only counters come back.

    The features are bit for bit the main process's own: every encoder batch has one shape
    (``Encoder.encode`` pads it), so a slice's features do not depend on the chunk it was in.
    """
    start = time.perf_counter()
    try:
        prepare_worker(job.max_image_mb)
        from .features.cache import FeatureCache
        from .features.extract import extract_features
        from .features.localfeatures import local_inputs

        encoder = _encoder(job)
        volumes, masks = _read_inputs(items, job)
        slices, crops = FeatureCache(job.cache_root), FeatureCache(job.cache_root)
        found = extract_features(volumes, encoder, slices=job.slices, masks=masks, cache=slices,
                                 outputs=job.outputs or encoder.outputs, show_progress=False)
        if job.local_kinds:
            local_inputs(volumes, masks, list(job.local_kinds), encoder=encoder, cache=crops, slices=job.slices)
    except Exception as exc:  # noqa: BLE001 - every failure goes back as one line naming a file
        raise _failure(exc, items) from None
    return {"worker": _worker_name(), "pid": os.getpid(), "volumes": len(items), "inputs": len(found.info),
            "forward_passes": slices.stats.forward_passes, "region_forward_passes": crops.stats.forward_passes,
            "hits": slices.stats.hits, "encoder_loads": _worker_loads.get("encoder", 0),
            "seconds": time.perf_counter() - start}


@dataclass(frozen=True)
class DownstreamJob:
    """What a downstream task needs: segmenter (None: the shipped one), case options, contrast, cache root."""

    segmenter: str | None
    cases: Any
    contrast: str | None
    cache_root: str
    max_image_mb: float | None = None


def downstream_task(items: Sequence, job: DownstreamJob) -> dict[str, Any]:
    """In a worker: segmentation and predicted Dice of ``items`` into the shared result cache (the sweep's keys)."""
    start = time.perf_counter()
    try:
        prepare_worker(job.max_image_mb)
        from .experiments.resultcache import ResultCache
        from .experiments.sweep import Downstream, load_set

        downstream = worker_cached("downstream", (job.segmenter,), lambda: Downstream.load(job.segmenter))
        downstream.results = ResultCache(Path(job.cache_root) / "_results")
        downstream.volumes_segmented = 0
        downstream.scores(load_set(list(items), "prefetch", job.cases, job.contrast))
    except Exception as exc:  # noqa: BLE001 - every failure goes back as one line naming a file
        raise _failure(exc, items) from None
    results = downstream.results
    return {"worker": _worker_name(), "pid": os.getpid(), "volumes": len(items), "segmented": results.misses,
            "hits": results.hits, "downstream_loads": _worker_loads.get("downstream", 0),
            "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------- in the main process


def chunk_size(n_items: int, n_threads: int) -> int:
    """Volumes per task: about ``TASKS_PER_THREAD`` tasks per worker thread, at most ``MAX_CHUNK`` volumes each."""
    return max(1, min(MAX_CHUNK, math.ceil(n_items / max(1, TASKS_PER_THREAD * n_threads))))


def chunks(items: Sequence, size: int) -> list[list]:
    """``items`` cut into consecutive lists of ``size`` (the last may be shorter)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _threads(client) -> int:
    """Worker threads the cluster has now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def map_chunks(client, task: Callable, items: Sequence, *args: Any, desc: str = "cluster",
               size: int | None = None) -> list:
    """``task(chunk, *args)`` for each chunk of ``items`` on the cluster, results in chunk order, with a bar.

    A failing task stops the run with its one-line error (naming a file); the remaining tasks are cancelled.
    """
    parts = chunks(list(items), size or chunk_size(len(items), _threads(client)))
    if not parts:
        return []
    scattered = [client.scatter(a, broadcast=True) if _is_large(a) else a for a in args]
    return collect(client, [client.submit(task, part, *scattered, pure=False) for part in parts], parts, desc)


def collect(client, futures: list, parts: Sequence[Sequence], desc: str) -> list:
    """The results of ``futures`` in their order, a bar over those finished; the first failure (one line naming a
    file of its part) cancels the rest."""
    from distributed import as_completed

    from .progress import progress

    where = {future.key: part for future, part in zip(futures, parts, strict=True)}
    results: dict[str, Any] = {}
    try:
        for future in progress(as_completed(futures), total=len(futures), desc=desc):
            results[future.key] = _result(future, where[future.key])
    finally:
        client.cancel([f for f in futures if f.key not in results])
    return [results[f.key] for f in futures]


def _is_large(value: Any) -> bool:
    """Whether an argument is worth sending to the workers once rather than with every task (arrays)."""
    return hasattr(value, "nbytes") and value.nbytes > (1 << 20)


def _result(future, items: Sequence) -> Any:
    """A finished task's result, or its failure as a one-line error naming a file of its chunk."""
    try:
        return future.result()
    except GenMedEvalError:
        raise
    except Exception as exc:  # noqa: BLE001 - a killed worker, a lost connection, an unpicklable result
        raise _failure(exc, items) from None


@dataclass
class PrefetchStats:
    """Counters of a prefetch, summed over its tasks and per worker."""

    tasks: int = 0
    volumes: int = 0
    inputs: int = 0
    forward_passes: int = 0
    region_forward_passes: int = 0
    hits: int = 0
    segmented: int = 0
    seconds: float = 0.0
    by_worker: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, result: Mapping[str, Any]) -> None:
        """Count one task's result."""
        self.tasks += 1
        for name in ("volumes", "inputs", "forward_passes", "region_forward_passes", "hits", "segmented"):
            setattr(self, name, getattr(self, name) + int(result.get(name, 0)))
        worker = self.by_worker.setdefault(result["worker"], {"tasks": 0, "volumes": 0, "forward_passes": 0,
                                                              "segmented": 0, "seconds": 0.0, "pid": result["pid"]})
        worker["tasks"] += 1
        worker["volumes"] += int(result.get("volumes", 0))
        worker["forward_passes"] += int(result.get("forward_passes", 0))
        worker["segmented"] += int(result.get("segmented", 0))
        worker["seconds"] += float(result.get("seconds", 0.0))
        for kind in ("encoder_loads", "downstream_loads"):
            if kind in result:
                worker[kind] = max(worker.get(kind, 0), int(result[kind]))

    def as_dict(self) -> dict[str, Any]:
        """Every counter, for a journal or a test."""
        return {"tasks": self.tasks, "volumes": self.volumes, "inputs": self.inputs,
                "forward_passes": self.forward_passes, "region_forward_passes": self.region_forward_passes,
                "hits": self.hits, "segmented": self.segmented, "seconds": round(self.seconds, 2),
                "workers": len(self.by_worker), "by_worker": self.by_worker}

    def summary(self) -> str:
        """One line for the command's output."""
        return (f"cluster: {self.tasks} tasks on {len(self.by_worker)} workers, {self.volumes} volumes, "
                f"{self.forward_passes} forward passes, {self.hits} cache hits"
                + (f", {self.segmented} segmented" if self.segmented else "") + f" ({self.seconds:.1f} s)")


def absolute(items: Sequence) -> list:
    """``CohortItem``s with absolute image and mask paths (the workers may run in another folder)."""
    from dataclasses import replace

    return [replace(i, image=Path(i.image).absolute(), mask=None if i.mask is None else Path(i.mask).absolute())
            for i in items]


def _root(cache_root: str | Path | None) -> str:
    """The feature cache root as an absolute path the workers are given (default: this process's default)."""
    from .features.cache import default_cache_dir

    return str(Path(cache_root if cache_root is not None else default_cache_dir()).expanduser().resolve())


def image_limit_mb() -> float | None:
    """This process's image size limit in MiB, so that the workers refuse the same files."""
    from . import filecheck

    return filecheck.max_image_bytes() / (1 << 20)


def _gather(client, task: Callable, items: Sequence, job: Any, desc: str,
            stats: PrefetchStats | None = None) -> PrefetchStats:
    """Run ``task`` over ``items`` in chunks and sum the counters into ``stats``."""
    stats = stats if stats is not None else PrefetchStats()
    start = time.perf_counter()
    for result in map_chunks(client, task, items, job, desc=desc):
        stats.add(result)
    stats.seconds += time.perf_counter() - start
    return stats


def prefetch_features(client, items: Sequence, encoder_name: str, *, slices=None, cases=None,
                      contrast: str | None = None, cache_root: str | Path | None = None, read: str = "members",
                      outputs: Sequence[str] | None = None, local_kinds: Sequence[str] = (),
                      device: str | None = None, batch_size: int | None = None,
                      stats: PrefetchStats | None = None) -> PrefetchStats:
    """Fill the feature cache at ``cache_root`` with the features of one set of ``items`` (``CohortItem``s).

    One task per chunk of cases (``features_task``). ``read``: "members" reads cases as the sweep,
    compare and batch job do (``load_set``), "folder" as ``genmedeval features``/``metrics`` do
    (``encoder_inputs``); ``contrast`` is the primary contrast resolved across every set of the
    run. ``local_kinds``: local-metric inputs to cache too.
    """
    from .cases import DEFAULT_CASE_OPTIONS
    from .features.slicing import DEFAULT_SLICES

    job = FeatureJob(encoder_name, slices or DEFAULT_SLICES, cases or DEFAULT_CASE_OPTIONS, contrast, _root(cache_root),
                     read, tuple(outputs) if outputs else None, tuple(local_kinds), device, batch_size, image_limit_mb())
    return _gather(client, features_task, absolute(items), job, f"features on {len(client.nthreads())} workers",
                   stats)


def prefetch_downstream(client, items: Sequence, segmenter_path: str | Path | None = None, *, cases=None,
                        contrast: str | None = None, cache_root: str | Path | None = None,
                        stats: PrefetchStats | None = None) -> PrefetchStats:
    """Fill the result cache (``cache_root/_results``) with each case's (predicted Dice, mask), the sweep's keys."""
    from .cases import DEFAULT_CASE_OPTIONS

    job = DownstreamJob(None if segmenter_path is None else str(segmenter_path),  # as given: part of the key
                        cases or DEFAULT_CASE_OPTIONS, contrast, _root(cache_root), image_limit_mb())
    return _gather(client, downstream_task, absolute(items), job, f"segmentation on {len(client.nthreads())} workers",
                   stats)


def prefetch(client, sets: dict[str, list], *, encoder: str, slices=None, cases=None,
             segmenter: str | Path | None = None, downstream: bool | Sequence[str] = False,
             cache_root: str | Path | None = None, local_kinds: Mapping[str, Sequence[str]] | None = None,
             device: str | None = None) -> dict[str, Any]:
    """Features of every set (and, with ``downstream``, predicted Dice) into the shared caches; returns counters.

    ``sets``: name -> ``CohortItem`` list, read as ``load_set`` reads them, one primary contrast
    resolved across all. ``downstream``: True for every set, or the names of the sets to segment.
    ``local_kinds``: per set name, local-metric inputs to cache as well. The caller then runs its
    usual in-process code, which finds everything in the cache.
    """
    from .cases import DEFAULT_CASE_OPTIONS, resolve_contrast

    cases = cases or DEFAULT_CASE_OPTIONS
    contrast = resolve_contrast([i for items in sets.values() for i in items], cases.contrast)
    features = PrefetchStats()
    for name, items in sets.items():
        prefetch_features(client, items, encoder, slices=slices, cases=cases, contrast=contrast, cache_root=cache_root,
                          local_kinds=(local_kinds or {}).get(name, ()), device=device, stats=features)
    out: dict[str, Any] = {"features": features.as_dict()}
    wanted = list(sets) if downstream is True else list(downstream or [])
    if wanted:
        scores = PrefetchStats()
        for name in wanted:
            prefetch_downstream(client, sets[name], segmenter, cases=cases, contrast=contrast, cache_root=cache_root,
                                stats=scores)
        out["downstream"] = scores.as_dict()
    return out


def prefetch_folders(client, folders: Mapping[str, Path], encoder_name: str, *, slices, cases,
                     cache_root: str | Path | None, metrics: Sequence[str] = (), outputs: Sequence[str] | None = None,
                     device: str | None = None, batch_size: int | None = None) -> PrefetchStats:
    """``genmedeval features``/``metrics``: the folders' features (and the named metrics' local inputs) cached."""
    from .cases import list_cases, resolve_contrast

    listed = {name: list_cases(folder) for name, folder in folders.items()}
    contrast = resolve_contrast([i for items in listed.values() for i in items], cases.contrast if cases else None)
    stats = PrefetchStats()
    for items in listed.values():
        prefetch_features(client, items, encoder_name, slices=slices, cases=cases, contrast=contrast,
                          cache_root=cache_root, read="folder", outputs=outputs,
                          local_kinds=folder_local_kinds(metrics, items), device=device, batch_size=batch_size,
                          stats=stats)
    return stats


def folder_local_kinds(metrics: Sequence[str], items: Sequence) -> tuple[str, ...]:
    """The local inputs ``evaluate.folder_local`` computes for one set: region kinds only when every case has a mask."""
    from .features.localfeatures import REGION_KINDS
    from .metrics.registry import LOCAL_INPUTS, METRICS

    kinds = sorted({METRICS[n].input for n in metrics if METRICS[n].input in LOCAL_INPUTS})
    masked = all(item.mask is not None for item in items)
    return tuple(k for k in kinds if k not in REGION_KINDS or masked)


def prefetch_sweep(client, config) -> dict[str, Any]:
    """A sweep's unperturbed sets (and their downstream scores) into the caches; perturbed conditions stay in-process."""
    from .cases import resolve_contrast
    from .experiments.sweep import LocalFeatures, list_set, metric_names
    from .features.cache import FeatureCache

    sets = {name: list_set(data, name) for name, data in config.data.items()}
    local = LocalFeatures(None, FeatureCache(), metric_names(config.metrics), config.slice_settings)
    duplicates = any(c.perturbation == "external_duplication" for c in config.conditions)
    local_kinds = {name: tuple(local.kinds) for name in sets
                   if local.wanted("generated" if name == "base" else name)
                   or (name == "train" and duplicates and local.wanted("generated"))}
    out = prefetch(client, sets, encoder=config.encoder or "domain", slices=config.slice_settings,
                   cases=config.cases, local_kinds=local_kinds)
    if config.downstream:
        contrast = resolve_contrast([i for items in sets.values() for i in items], config.cases.contrast)
        segmented = {"base": sets["base"][:config.downstream_max_volumes] if config.downstream_max_volumes
                     else sets["base"]}
        if "train" in sets and duplicates:
            segmented["train"] = sets["train"]
        scores = PrefetchStats()
        for items in segmented.values():
            prefetch_downstream(client, items, config.segmenter, cases=config.cases, contrast=contrast, stats=scores)
        out["downstream"] = scores.as_dict()
    return out
