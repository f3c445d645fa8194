"""Speed of the metrics against the implementations other tools use, measured in the same run.

- FD, N = 10,000 vs 10,000, d = 2048, covariances included: GenMedEval (Cholesky + eigvalsh) vs
  the scipy ``sqrtm`` path (pytorch-fid, clean-fid, MONAI) and the ``eigvals`` path
  (torch-fidelity, torchmetrics). Goals: >= 10x and >= 3x, same value to 1e-9.
- PRDC, k = 5, 10,000 vs 10,000: GenMedEval (streamed blocks) vs the ``prdc`` package. Goal >= 2.5x,
  identical values; peak memory of GenMedEval's PRDC at N = 20,000 (goal < 1.5 GB).
- KID, 100 subsets of 1,000: vs the plain matrix-multiplication cost of the same kernels.
- The whole suite (all but FLS and the image metrics) on 2,000 vs 2,000, d = 2048.
Pass ``--quick`` for smaller sizes.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
from scipy import linalg

from GenMedEvalLib import metrics as M


def timed(fn):
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


def peak_prdc_memory(n: int, d: int) -> float:
    code = (f"import resource, numpy as np; from GenMedEvalLib.metrics import prdc; "
            f"r=np.random.default_rng(0); x=r.standard_normal(({n},{d})).astype(np.float32); "
            f"y=r.standard_normal(({n},{d})).astype(np.float32); prdc(x,y,k=5,max_samples={n}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)")
    return float(subprocess.check_output([sys.executable, "-c", code]).decode().strip())


def main(quick: bool) -> None:
    n, d = (2000, 512) if quick else (10_000, 2048)
    x, y = features(n, d, 1), features(n, d, 2, shift=0.05)
    ours, t_ours = timed(lambda: M.frechet_distance(x, y))
    ref, t_ref = timed(lambda: fd_sqrtm(x.astype(np.float64), y.astype(np.float64)))
    eig, t_eig = timed(lambda: fd_eigvals(x.astype(np.float64), y.astype(np.float64)))
    print(f"FD N={n} d={d}: ours {t_ours:.2f} s | sqrtm {t_ref:.2f} s ({t_ref / t_ours:.1f}x) | "
          f"eigvals {t_eig:.2f} s ({t_eig / t_ours:.1f}x) | rel diff vs sqrtm {abs(ours - ref) / ref:.1e}, "
          f"vs eigvals {abs(ours - eig) / eig:.1e}")

    from prdc import compute_prdc

    ours_p, t_ours = timed(lambda: M.prdc(x, y, k=5))
    ref_p, t_ref = timed(lambda: compute_prdc(real_features=x, fake_features=y, nearest_k=5))
    same = all(ours_p[k] == ref_p[k] for k in ref_p)
    print(f"PRDC N={n}: ours {t_ours:.2f} s | prdc package {t_ref:.2f} s ({t_ref / t_ours:.1f}x) | identical: {same}")
    big = 4000 if quick else 20_000
    print(f"PRDC peak memory (whole process) at N={big}, d={d}: {peak_prdc_memory(big, d):.0f} MB")

    ours_k, t_ours = timed(lambda: M.kernel_distance(x, y, num_subsets=100, subset_size=1000))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def matmul_only():
        for ix, iy in M.distance.kid_subsets(len(x), len(y), num_subsets=100, subset_size=1000):
            a, b = x64[ix], y64[iy]
            a @ a.T, b @ b.T, a @ b.T

    _, t_mm = timed(matmul_only)
    print(f"KID 100 x 1000: ours {t_ours:.2f} s | plain matmuls {t_mm:.2f} s (ratio {t_ours / t_mm:.2f}, goal <= 1.2)")

    m = 500 if quick else 2000
    sets = {"reference": features(m, d, 3), "generated": features(m, d, 4, 0.05), "train": features(m, d, 5),
            "test": features(m // 2, d, 6)}
    _, t_suite = timed(lambda: M.compute_suite(sets, "all"))
    print(f"suite (all feature metrics) {m} vs {m}, d={d}: {t_suite:.1f} s (goal < 60 s)")


if __name__ == "__main__":
    main("--quick" in sys.argv)
