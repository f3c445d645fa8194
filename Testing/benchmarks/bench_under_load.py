"""Speed under load: every heavy step idle and beside one competing CPU-bound process, and the ratio.

A radiologist runs GenMedEval beside Slicer, a researcher on a shared server: the idle figure is not
what they get. This benchmark times FD (N = 10,000, d = 2048), PRDC (k = 5, 10,000 vs 10,000), KID
(100 subsets of 1,000), the domain and Inception encoders and the shipped segmenter, first idle, then
while a competing process it starts itself (a pure-Python busy loop, one core) runs; before each
timed call the pools are sized the way every ``genmedeval`` command sizes them at its start
(``threads.set_threads()``: the cores not busy with other runnable processes). Goal: every figure
under load within 2.5x of its idle figure.

Run: ``.venv/bin/python Testing/benchmarks/bench_under_load.py [--quick] [--cores N] [--naive]``.
``--cores N`` pins this process and the competitor to the first N cores (default: 2, the case of
issue #17); ``--naive`` adds the old behaviour (one thread per core whatever the load) under load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from GenMedEvalLib.threads import available_cores, prepare_environment, set_threads

prepare_environment()  # before numpy, scipy and torch start their pools

import numpy as np  # noqa: E402

BUSY_LOOP = "while True: pass"


def features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d) * 0.5
    return (rng.standard_normal((n, d)) @ mix + shift).astype(np.float32)


def workloads(quick: bool) -> dict[str, callable]:
    """Name -> a call doing one unit of work (its set-up done here, outside the timing)."""
    import torch

    from GenMedEvalLib import metrics as M
    from GenMedEvalLib.features.registry import get_encoder
    from GenMedEvalLib.segment import load_segmenter

    n, d = (3000, 1024) if quick else (10_000, 2048)
    x, y = features(n, d, 1), features(n, d, 2, 0.05)
    slices = np.random.default_rng(0).random((16 if quick else 64, 256, 256)).astype(np.float32)
    volume = np.random.default_rng(1).random((40 if quick else 155, 240, 240)).astype(np.float32)
    calls = {
        f"FD N={n} d={d}": lambda: M.frechet_distance(x, y),
        f"PRDC k=5 N={n}": lambda: M.prdc(x, y, k=5),
        f"KID 100 x {min(1000, n)}": lambda: M.kernel_distance(x, y),
    }
    for name in ("domain", "inception"):
        try:
            encoder = get_encoder(name, device="cpu")
        except Exception as exc:  # noqa: BLE001 - an absent encoder is reported, not fatal
            print(f"{name} encoder unavailable: {exc}")
            continue
        count = len(slices) if name == "domain" else len(slices) // 2
        calls[f"{name} encoder, {count} slices"] = (
            lambda encoder=encoder, count=count: encoder.encode(slices[:count], show_progress=False))
    segmenter = load_segmenter(device="cpu")
    calls[f"segmenter, {volume.shape[0]} x 240 x 240"] = lambda: segmenter.segment(volume, (1.0, 1.0, 1.0))
    torch.set_grad_enabled(False)
    return calls


def timed(fn, threads: int | None) -> tuple[float, int]:
    """Seconds of one call after sizing the pools as a command would at its start; and the thread count used."""
    used = set_threads(threads)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, used


def start_competitor(cores: list[int]) -> subprocess.Popen:
    """One CPU-bound process on the same cores (a busy loop: what another program's computation looks like)."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    if cores:
        os.sched_setaffinity(proc.pid, cores)
    time.sleep(1.0)  # let it reach the run queue before anything is measured
    return proc


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--cores", type=int, default=2, help="pin to the first N cores (0: no pinning)")
    parser.add_argument("--naive", action="store_true", help="also time one thread per core under load")
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))[: args.cores] if args.cores else []
    if cores:
        os.sched_setaffinity(0, cores)
    print(f"cores: {available_cores()}; load average before: {os.getloadavg()[0]:.2f}")
    calls = workloads(args.quick)
    for fn in calls.values():  # warm-up: weights loaded, caches filled, pools started
        timed(fn, None)
    idle = {name: timed(fn, None) for name, fn in calls.items()}
    competitor = start_competitor(cores)
    try:
        loaded = {name: timed(fn, None) for name, fn in calls.items()}
        naive = {name: timed(fn, available_cores()) for name, fn in calls.items()} if args.naive else {}
    finally:
        competitor.kill()
        competitor.wait()
    print(f"\n| step | idle s (threads) | beside one busy process s (threads) | ratio |{' naive s |' if naive else ''}")
    print(f"|---|---|---|---|{'---|' if naive else ''}")
    worst = 0.0
    for name in calls:
        (t0, n0), (t1, n1) = idle[name], loaded[name]
        worst = max(worst, t1 / t0)
        extra = f" {naive[name][0]:.2f} ({naive[name][1]}) |" if naive else ""
        print(f"| {name} | {t0:.2f} ({n0}) | {t1:.2f} ({n1}) | {t1 / t0:.2f}x |{extra}")
    print(f"\nworst ratio {worst:.2f}x (goal <= 2.5x): {'met' if worst <= 2.5 else 'NOT met'}")


if __name__ == "__main__":
    main(sys.argv[1:])
