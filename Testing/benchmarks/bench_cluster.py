"""Benchmark: feature extraction on a local Dask cluster of 1 and 2 worker processes against one process.

Run: ``nice -n 10 .venv/bin/python Testing/benchmarks/bench_cluster.py [--volumes 100 --max-slices 20]``
(about 2,000 slices of a generated cohort). Each measurement starts from an empty cache; the
in-process reference (one thread, and every core) is measured in the same run, and a second
cluster run over the filled cache gives the hit rate. The load average is printed before and
after: on a small machine the numbers are only as good as the quiet they were measured in.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _load() -> str:
    """The 1, 5 and 15 minute load averages and the core count."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def _in_process(folder: Path, encoder_name: str, settings, root: Path, threads: int) -> tuple[float, object]:
    """Seconds for the single-process extraction (reading included) into a fresh cache, and its features."""
    from GenMedEvalLib.features import FeatureCache, extract_folder, get_encoder
    from GenMedEvalLib.threads import set_threads

    set_threads(threads)
    encoder = get_encoder(encoder_name)
    start = time.perf_counter()
    fs = extract_folder(folder, encoder, slices=settings, cache=FeatureCache(root), outputs=encoder.outputs,
                        show_progress=False)
    return time.perf_counter() - start, fs


def _on_cluster(folder: Path, encoder_name: str, settings, root: Path, workers: int) -> dict:
    """Seconds to start a LocalCluster, to fill a fresh cache on it, and to read the features back in-process."""
    from GenMedEvalLib.cases import DEFAULT_CASE_OPTIONS
    from GenMedEvalLib.cluster import ClusterOptions, open_client, prefetch_folders
    from GenMedEvalLib.features import FeatureCache, extract_folder, get_encoder

    start = time.perf_counter()
    with open_client(ClusterOptions(workers=workers)) as client:
        client.run(lambda: __import__("torch") and None)
        started = time.perf_counter()
        stats = prefetch_folders(client, {"set": folder}, encoder_name, slices=settings, cases=DEFAULT_CASE_OPTIONS,
                                 cache_root=root)
        filled = time.perf_counter()
        again = prefetch_folders(client, {"set": folder}, encoder_name, slices=settings, cases=DEFAULT_CASE_OPTIONS,
                                 cache_root=root)
        second = time.perf_counter() - filled
    encoder = get_encoder(encoder_name)
    cache = FeatureCache(root)
    read_start = time.perf_counter()
    fs = extract_folder(folder, encoder, slices=settings, cache=cache, outputs=encoder.outputs, show_progress=False)
    return {"start": started - start, "prefetch": filled - started, "second": second, "stats": stats,
            "again": again, "main_passes": cache.stats.forward_passes, "main_read": time.perf_counter() - read_start,
            "features": fs}


def _inception_rate(n: int = 32) -> float:
    """Inception-v3 slices per second in this process (one thread), for the 100,000-slice estimate."""
    from GenMedEvalLib.features import get_encoder
    from GenMedEvalLib.threads import set_threads

    set_threads(1)
    encoder = get_encoder("inception")
    batch = np.random.default_rng(0).random((n, 240, 240), dtype=np.float32)
    encoder.encode(batch[:4], show_progress=False)
    start = time.perf_counter()
    encoder.encode(batch, show_progress=False)
    return n / (time.perf_counter() - start)


def main() -> None:
    """Build the cohort, measure in-process and 1/2-worker extraction, print times, ratios and the hit rate."""
    from GenMedEvalLib.cohort.build import make_cohort
    from GenMedEvalLib.features.slicing import SliceSettings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--max-slices", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--encoder", default="domain")
    parser.add_argument("--inception", action="store_true", help="also measure Inception-v3's one-thread rate")
    args = parser.parse_args()
    settings = SliceSettings(max_slices=args.max_slices, tumour_slices=0)
    print(_load(), "(start)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        folder = make_cohort(root / "cohort", n=args.volumes, spacing=args.spacing) / "images"
        print(f"cohort: {args.volumes} volumes at {args.spacing} mm in {time.perf_counter() - t0:.1f} s")
        one_thread, reference = _in_process(folder, args.encoder, settings, root / "c_in1", 1)
        all_threads, _ = _in_process(folder, args.encoder, settings, root / "c_inall", os.cpu_count() or 1)
        slices = len(reference.info)
        print(f"{slices} slices, encoder {args.encoder}")
        print(f"in-process, 1 thread:       {one_thread:7.1f} s  ({slices / one_thread:.0f} slices/s)")
        print(f"in-process, {os.cpu_count()} threads:      {all_threads:7.1f} s  ({slices / all_threads:.0f} slices/s)")
        runs = {}
        for workers in (1, 2):
            run = runs[workers] = _on_cluster(folder, args.encoder, settings, root / f"c_w{workers}", workers)
            same = all(np.array_equal(run["features"].features[k], reference.features[k]) for k in reference.features)
            print(f"{workers} worker(s): cluster start {run['start']:5.1f} s, fill cache {run['prefetch']:7.1f} s "
                  f"({slices / run['prefetch']:.0f} slices/s, {run['stats'].forward_passes} passes), main process "
                  f"after: {run['main_passes']} passes in {run['main_read']:.1f} s; features identical to "
                  f"in-process: {same}")
            print(f"   second run on the filled cache: {run['second']:.1f} s, hit rate "
                  f"{run['again'].hits / max(1, run['again'].inputs):.1%} ({run['again'].forward_passes} passes)")
            for worker, work in sorted(run["stats"].by_worker.items()):
                print(f"   {worker}: {work['volumes']} volumes, {work['forward_passes']} forward passes")
        speedup = runs[1]["prefetch"] / runs[2]["prefetch"]
        print(f"speed-up 2 vs 1 workers: {speedup:.2f}x; 2 workers vs in-process 1 thread: "
              f"{one_thread / runs[2]['prefetch']:.2f}x, vs in-process {os.cpu_count()} threads: "
              f"{all_threads / runs[2]['prefetch']:.2f}x")
        per_worker = runs[1]["prefetch"] / slices
        print(f"estimate, 100,000 slices on one worker ({args.encoder}, this CPU): {per_worker * 1e5 / 60:.0f} min")
    if args.inception:
        try:
            rate = _inception_rate()
        except Exception as exc:  # noqa: BLE001 - weights absent offline: say so, keep the other numbers
            print(f"inception not measured: {exc}")
        else:
            print(f"inception, 1 thread: {rate:.1f} slices/s -> 100,000 slices on one worker: "
                  f"{1e5 / rate / 3600:.1f} h")
    print(_load(), "(end)")


if __name__ == "__main__":
    main()
