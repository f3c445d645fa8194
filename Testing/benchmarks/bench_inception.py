"""Inception encoder speed on CPU: naive (replicated RGB, eager) vs optimised (fused grey stem, frozen).

Prints slices/s of both paths at 299 x 299 input and checks that their features agree within
1e-4 relative. GPU figures are not measured here (no GPU on the development machine).
Run: ``.venv/bin/python Testing/benchmarks/bench_inception.py [n_slices] [threads]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from GenMedEvalLib.features.encoders.inception import InceptionEncoder


def slices_per_second(encoder: InceptionEncoder, images: np.ndarray, repeats: int = 2) -> tuple[float, dict]:
    """Best-of-``repeats`` throughput after one warm-up batch, and the features of the last run."""
    encoder.encode_batch(images[: min(2, len(images))])
    best, features = 0.0, {}
    for _ in range(repeats):
        start = time.perf_counter()
        features = encoder.encode(images, show_progress=False)
        best = max(best, len(images) / (time.perf_counter() - start))
    return best, features


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
    torch.set_num_threads(threads)
    images = np.random.default_rng(0).random((n, 299, 299), dtype=np.float32)
    naive_rate, naive = slices_per_second(InceptionEncoder(device="cpu", batch_size=16, optimise=False), images)
    fast_rate, fast = slices_per_second(InceptionEncoder(device="cpu", batch_size=16), images)
    print(f"CPU, {threads} threads, {n} slices of 299x299")
    print(f"naive (RGB replicated, eager): {naive_rate:7.2f} slices/s")
    print(f"optimised (fused grey, frozen): {fast_rate:7.2f} slices/s  ratio {fast_rate / naive_rate:.2f}x")
    for key in ("pool", "spatial"):
        rel = np.abs(fast[key] - naive[key]).max() / np.abs(naive[key]).max()
        print(f"{key}: max relative difference {rel:.2e} ({'OK' if rel <= 1e-4 else 'FAIL'} at 1e-4)")
    if torch.cuda.is_available():
        gpu_images = np.random.default_rng(1).random((256, 299, 299), dtype=np.float32)
        g_naive, ref = slices_per_second(InceptionEncoder(device="cuda", batch_size=64, optimise=False), gpu_images)
        g_fast, got = slices_per_second(InceptionEncoder(device="cuda", batch_size=64), gpu_images)
        rel = np.abs(got["pool"] - ref["pool"]).max() / np.abs(ref["pool"]).max()
        print(f"GPU fp32 naive {g_naive:.1f} slices/s, fp16 autocast fused {g_fast:.1f} slices/s "
              f"(ratio {g_fast / g_naive:.2f}x, pool max relative difference {rel:.1e}: fp16, not held to 1e-4)")
    else:
        print("GPU: not available here, not measured")


if __name__ == "__main__":
    main()
