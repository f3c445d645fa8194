"""Benchmark: domain-encoder throughput on CPU and the feature cache's speed-up.

Run: ``.venv/bin/python Testing/benchmarks/bench_features.py [--threads 1] [--volumes 8]``.
Reference in the same run: the same extraction with the cache disabled (every slice through the
network), which is what a pipeline without a cache does on every metric call.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def _volumes(n: int) -> list[np.ndarray]:
    """``n`` distinct volumes: the real MRI when present (slightly rescaled copies), else MNI."""
    from GenMedEvalLib.data import mni_template_path, shared_real_dir
    from GenMedEvalLib.io import normalize_intensity, read_volume

    real = shared_real_dir()
    path = real / "brain1_image.nrrd" if real is not None else mni_template_path("t1")
    base = normalize_intensity(read_volume(path).array)
    return [np.clip(base * (1.0 + 0.01 * i), 0, 1).astype(np.float32) for i in range(n)]


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    """Print slices/s of the domain encoder and warm-cache vs no-cache times."""
    import torch

    from GenMedEvalLib.features import FeatureCache, SliceSettings, extract_features, get_encoder

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--volumes", type=int, default=8)
    parser.add_argument("--weights", default=None, help="domain weights file (default: the shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = get_encoder("domain", device="cpu", weights_path=args.weights)
    volumes = _volumes(args.volumes)
    settings = SliceSettings()

    batch = np.random.default_rng(0).random((256, 256, 256), dtype=np.float32)
    encoder.encode(batch[:16], show_progress=False)  # warm-up
    t_net, _ = _timed(lambda: encoder.encode(batch, show_progress=False))
    print(f"domain encoder, CPU, {args.threads} thread(s): {len(batch) / t_net:.0f} slices/s (256 x 256 input)")

    with tempfile.TemporaryDirectory() as root:
        naive = FeatureCache(root, enabled=False)
        t_naive, fs = _timed(lambda: extract_features(volumes, encoder, slices=settings, cache=naive,
                                                      show_progress=False))
        cache = FeatureCache(root)
        t_cold, _ = _timed(lambda: extract_features(volumes, encoder, slices=settings, cache=cache,
                                                    show_progress=False))
        cache.stats.reset()
        t_warm, warm = _timed(lambda: extract_features(volumes, encoder, slices=settings, cache=cache,
                                                       show_progress=False))
        assert np.array_equal(warm.pool, fs.pool)
        print(f"{args.volumes} volumes, {len(fs.info)} slices: no cache {t_naive:.2f} s, cold cache {t_cold:.2f} s, "
              f"warm cache {t_warm:.2f} s ({cache.stats.forward_passes} forward passes) -> "
              f"speed-up {t_naive / t_warm:.1f}x vs no cache")
        edited = [v.copy() for v in volumes]
        edited[0][12, 100:110, 100:110] = 1.0  # a mask-local change: one slice of one volume
        cache.stats.reset()
        t_local, _ = _timed(lambda: extract_features(edited, encoder, slices=settings, cache=cache,
                                                     show_progress=False))
        print(f"one slice changed: {t_local:.2f} s, {cache.stats.forward_passes} forward pass(es) of "
              f"{cache.stats.requested} slices (no cache would take {t_naive:.2f} s)")


if __name__ == "__main__":
    main()
