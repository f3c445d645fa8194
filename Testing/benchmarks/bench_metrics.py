"""Speed of the metrics against the implementations other tools use, measured in the same run.

- FD, N = 10,000 vs 10,000, d = 2048, covariances included: GenMedEval (syrk covariances, Cholesky, sygst, two-stage eigenvalues) vs
  the scipy ``sqrtm`` path (pytorch-fid, clean-fid, MONAI) and the ``eigvals`` path: torch-fidelity's
  (``np.cov`` + ``eigvals``, reproduced below) and torchmetrics' own ``FrechetInceptionDistance``
  (float64 ``X^T X`` accumulation + ``torch.linalg.eigvals``; run when ``pip install .[bench]``
  installed it). Goals: >= 10x and >= 3x, same value to 1e-9.
- PRDC, k = 5, 10,000 vs 10,000: GenMedEval (float32 tiles + exact recomputation) vs the ``prdc`` package. Goal >= 2.5x,
  identical values; peak memory of GenMedEval's PRDC at N = 20,000 (goal < 1.5 GB).
- KID, 100 subsets of 1,000: vs the plain matrix-multiplication cost of the same kernels, on one thread
  (as the suite runs metrics, for thread-independent bits) and on every thread.
- The whole suite (all but FLS and the image metrics) on 2,000 vs 2,000, d = 2048.
Pass ``--quick`` for smaller sizes, ``--repeat`` for the back-to-back repetitions and ``--only
fd,prdc,memory,kid,suite`` to run some sections. Peak memory: VmHWM of a fresh subprocess (whole
process) and the tracemalloc peak of numpy allocations inside ``prdc()``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from GenMedEvalLib.threads import prepare_environment, set_threads

prepare_environment()  # idle OpenMP/OpenBLAS workers sleep instead of spinning: no pause is needed between calls

import numpy as np  # noqa: E402
from scipy import linalg  # noqa: E402

from GenMedEvalLib import metrics as M  # noqa: E402


def timed(fn):
    """``(fn(), seconds)``, timed back to back (the pools are sized once by ``threads.set_threads``)."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def features(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d) * 0.5
    return (rng.standard_normal((n, d)) @ mix + shift).astype(np.float32)


def fd_sqrtm(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2)).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fd_eigvals(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    eig = linalg.eigvals(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig.real.clip(0)).sum())


def fd_torchmetrics(x, y):
    """torchmetrics' FrechetInceptionDistance fed the features through a pass-through extractor; None if absent."""
    try:
        import torch
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        return None

    class PassThrough(torch.nn.Module):
        num_features = x.shape[1]

        def forward(self, feats):
            return feats

    metric = FrechetInceptionDistance(feature=PassThrough())
    metric.update(torch.from_numpy(x.astype(np.float64)), real=True)
    metric.update(torch.from_numpy(y.astype(np.float64)), real=False)
    return float(metric.compute())


PEAK_CODE = """
import sys, tracemalloc
import numpy as np
from GenMedEvalLib.metrics import prdc


def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


n, d = int(sys.argv[1]), int(sys.argv[2])
r = np.random.default_rng(0)
x = r.standard_normal((n, d), dtype=np.float32)
y = r.standard_normal((n, d), dtype=np.float32)
before = hwm()
tracemalloc.start()
prdc(x, y, k=5, max_samples=n)
traced = tracemalloc.get_traced_memory()[1] / 2**20
print(before, hwm(), traced)
"""


def peak_prdc_memory(n: int, d: int) -> tuple[float, float, float]:
    """(process peak before PRDC, process peak after, tracemalloc peak of PRDC's own allocations) in MB.

    Measured in a fresh subprocess. The process peak is VmHWM of /proc/self/status (peak resident
    memory of this process image, interpreter, libraries and the two float32 input sets included);
    ru_maxrss is not used because Linux carries the parent's peak over fork + exec. tracemalloc
    sees numpy's allocations made inside prdc().
    """
    out = subprocess.check_output([sys.executable, "-c", PEAK_CODE, str(n), str(d)]).decode().split()
    before, after, traced = (float(v) for v in out)
    return before, after, traced


def bench_fd(x, y, repeat: int) -> None:
    """FD: ours, then the sqrtm and eigvals paths, back to back, ``repeat`` times."""
    n, d = x.shape
    for rep in range(repeat):
        ours, t_ours = timed(lambda: M.frechet_distance(x, y))
        ref, t_ref = timed(lambda: fd_sqrtm(x.astype(np.float64), y.astype(np.float64)))
        eig, t_eig = timed(lambda: fd_eigvals(x.astype(np.float64), y.astype(np.float64)))
        tm, t_tm = timed(lambda: fd_torchmetrics(x, y))
        torchmetrics = ("torchmetrics not installed" if tm is None else
                        f"torchmetrics {t_tm:.2f} s ({t_tm / t_ours:.1f}x, goal >= 3x), rel diff {abs(ours - tm) / tm:.1e}")
        print(f"FD N={n} d={d} run {rep + 1}: ours {t_ours:.2f} s | sqrtm {t_ref:.2f} s "
              f"({t_ref / t_ours:.1f}x, goal >= 10x) | eigvals (torch-fidelity) {t_eig:.2f} s ({t_eig / t_ours:.1f}x, "
              f"goal >= 3x) | {torchmetrics} | "
              f"rel diff vs sqrtm {abs(ours - ref) / ref:.1e}, vs eigvals {abs(ours - eig) / eig:.1e}", flush=True)


def bench_prdc(x, y, repeat: int) -> None:
    """PRDC: ours then the prdc package, back to back, ``repeat`` times; results must be identical."""
    from prdc import compute_prdc

    n = len(x)
    for rep in range(repeat):
        ours_p, t_ours = timed(lambda: M.prdc(x, y, k=5, max_samples=n))
        ref_p, t_ref = timed(lambda: compute_prdc(real_features=x, fake_features=y, nearest_k=5))
        same = all(ours_p[k] == ref_p[k] for k in ref_p)
        print(f"PRDC k=5 N={n} d={x.shape[1]} run {rep + 1}: ours {t_ours:.2f} s | prdc package {t_ref:.2f} s "
              f"({t_ref / t_ours:.1f}x, goal >= 2.5x) | identical: {same}", flush=True)


def bench_memory(big: int, d: int) -> None:
    before, after, traced = peak_prdc_memory(big, d)
    print(f"PRDC peak memory at N={big}, d={d} (float32 inputs, {2 * big * d * 4 / 2**20:.0f} MB of them): "
          f"process peak (VmHWM) {after:.0f} MB (before prdc {before:.0f} MB; goal < 1500 MB), "
          f"tracemalloc peak inside prdc {traced:.0f} MB", flush=True)


def bench_kid(x, y, repeat: int) -> None:
    """KD against the bare matrix products of its subsets (the floor), alternated ``repeat`` times, per run."""
    from GenMedEvalLib.threads import metric_blas

    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def kd():
        return M.kernel_distance(x, y, num_subsets=100, subset_size=1000)

    def matmul_only():
        for ix, iy in M.distance.kid_subsets(len(x), len(y), num_subsets=100, subset_size=1000):
            a, b = x64[ix], y64[iy]
            a @ a.T, b @ b.T, a @ b.T

    for rep in range(repeat):
        _, t_free = timed(kd)
        _, t_mm = timed(matmul_only)
        with metric_blas():  # as the suite runs it: one BLAS and one torch thread, bits independent of --threads
            _, t_ours = timed(kd)
            _, t_mm1 = timed(matmul_only)
        print(f"KID 100 x 1000 run {rep + 1}, as the suite runs it (one thread): ours {t_ours:.2f} s | plain matmuls "
              f"{t_mm1:.2f} s (ratio {t_ours / t_mm1:.2f}, goal <= 1.2); on every thread: ours {t_free:.2f} s | plain "
              f"matmuls {t_mm:.2f} s (ratio {t_free / t_mm:.2f}); the price of thread-independent bits "
              f"{t_ours / t_free:.2f}x")


def bench_suite(m: int, d: int) -> None:
    sets = {"reference": features(m, d, 3), "generated": features(m, d, 4, 0.05), "train": features(m, d, 5),
            "test": features(m // 2, d, 6)}
    _, t_suite = timed(lambda: M.compute_suite(sets, "all"))
    print(f"suite (all feature metrics) {m} vs {m}, d={d}: {t_suite:.1f} s (goal < 60 s)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (N=2000, d=512)")
    parser.add_argument("--repeat", type=int, default=2, help="back-to-back repetitions of FD, PRDC and KID")
    parser.add_argument("--only", default="fd,prdc,memory,kid,suite", help="comma-separated sections")
    parser.add_argument("--threads", type=int, default=None, help="threads of every pool (default: the idle cores)")
    args = parser.parse_args(argv)
    print(f"threads: {set_threads(args.threads)} (BLAS, OpenMP and torch pools together)")
    only = set(args.only.split(","))
    n, d = (2000, 512) if args.quick else (10_000, 2048)
    x, y = features(n, d, 1), features(n, d, 2, shift=0.05)
    if "fd" in only:
        bench_fd(x, y, args.repeat)
    if "prdc" in only:
        bench_prdc(x, y, args.repeat)
    if "memory" in only:
        bench_memory(4000 if args.quick else 20_000, d)
    if "kid" in only:
        bench_kid(x, y, args.repeat)
    if "suite" in only:
        bench_suite(500 if args.quick else 2000, d)


if __name__ == "__main__":
    main(sys.argv[1:])
