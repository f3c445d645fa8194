"""Cost of the local metrics and FRD per 1,000 slices against FD's on the same slices, idle and under load.

Issue #16: each new metric's cost per 1,000 slices beside FD's (the reference, measured in the
same run on the same volumes): from the volumes to the value, i.e. slicing or region cropping,
feature extraction (the domain encoder for FD and the ``_roi``/``_band`` twins, the region
descriptors, frd-score's radiomics in parallel over slices) and the metric itself, on an empty
cache; then the same again on the filled cache (a second sweep: no network pass, no radiomic
extraction). Under load: everything again beside one competing CPU-bound process, pools sized as
every command sizes them (``threads.set_threads()``).

Run: ``.venv/bin/python Testing/benchmarks/bench_local.py [--cases 12]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from GenMedEvalLib.threads import prepare_environment, set_threads

prepare_environment()


from GenMedEvalLib.features import FeatureCache, extract_features, get_encoder  # noqa: E402
from GenMedEvalLib.features.localfeatures import local_inputs, radiomics_available, stack_local  # noqa: E402
from GenMedEvalLib.features.regions import region_set  # noqa: E402
from GenMedEvalLib.features.slicing import DEFAULT_SLICES  # noqa: E402
from GenMedEvalLib.metrics import compute_suite  # noqa: E402

LOCAL = {"fd_roi": "roi", "fd_band": "band", "boundary": "boundary", "edge_width": "edge_width",
         "interior": "interior", "frd": "radiomics", "frd_roi": "radiomics_roi"}


def load(cases: int, folder: Path):
    """Two halves of a built-in cohort: (volumes, masks) each."""
    from GenMedEvalLib.cohort import make_cohort
    from GenMedEvalLib.experiments.sweep import DataSet, load_set

    make_cohort(folder, n=cases, seed=0, spacing=2.0)
    members = load_set(DataSet(folder / "images"), "bench")
    half = len(members) // 2
    return [([m.volume for m in part], [m.mask for m in part]) for part in (members[:half], members[half:])]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(sets, cache_root: Path, label: str) -> dict[str, tuple[float, int]]:
    """Seconds and sample count of each metric, from the volumes (empty cache at ``cache_root`` the first time)."""
    threads = set_threads()
    encoder = get_encoder("domain")
    cache = FeatureCache(cache_root)
    out: dict[str, tuple[float, int]] = {}

    def fd():
        feats = [extract_features(v, encoder, slices=DEFAULT_SLICES, masks=m, cache=cache, show_progress=False).pool
                 for v, m in sets]
        return compute_suite({"reference": feats[0], "generated": feats[1]}, ["fd"]).value("fd"), len(feats[1])

    seconds, (_, n) = timed(fd)
    out["fd"] = (seconds, n)
    for metric, kind in LOCAL.items():
        if kind.startswith("radiomics") and not radiomics_available():
            continue

        def local(kind=kind, metric=metric):
            per = [stack_local(local_inputs(v, m, [kind], encoder=encoder, cache=cache)).data for v, m in sets]
            inputs = {kind: {"reference": per[0][kind], "generated": per[1][kind]}}
            result = compute_suite({}, [metric], local=inputs)
            return result.rows[0].value, len(per[1][kind])

        seconds, (_, n) = timed(local)
        out[metric] = (seconds, n)
    print(f"-- {label}: {threads} thread(s)")
    base = out["fd"][0] / out["fd"][1] * 1000
    for metric, (seconds, n) in out.items():
        per_1000 = seconds / max(n, 1) * 1000
        print(f"{metric:11s} {n:5d} samples {seconds:7.2f} s  {per_1000:8.2f} s per 1,000  ratio to FD {per_1000 / base:7.2f}",
              flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gme-bench-local-") as tmp:
        root = Path(tmp)
        sets = load(args.cases, root / "cohort")
        crops = sum(len(region_set(v, m).crops) for v, m in sets)
        print(f"{args.cases} cohort cases at 2 mm, {crops} region crops")
        idle = run(sets, root / "cache", "idle, empty cache")
        again = run(sets, root / "cache", "idle, filled cache (a second sweep)")
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            loaded = run(sets, root / "cache-load", "under load (one competing busy process), empty cache")
        finally:
            busy.kill()
    print("-- under load / idle: " + ", ".join(f"{k} {loaded[k][0] / idle[k][0]:.2f}x" for k in idle))
    print("-- filled / empty cache: " + ", ".join(f"{k} {again[k][0] / idle[k][0]:.2f}x" for k in idle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
