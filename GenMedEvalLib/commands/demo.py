"""``genmedeval demo``: the main job on the built-in demo cohort (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import at_least

ORDER = 5


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="cohort -> Phase 1 sweep (paper conditions) -> Phase 2 -> report",
                       description="Build (or reuse) the demo cohort, run the default sweep (every condition of the "
                       "study) on its eval split against its reference split with upstream metrics from cached "
                       "features and downstream predicted Dice, a Phase 2 comparison, and write report.html.")
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--data", type=Path, default=None,
                   help="a folder of real case folders with tumour labels (e.g. BraTS): run the study on them instead "
                   "of the built-in cohort (alternating eval/reference split; see the README)")
    p.add_argument("--n", type=int, default=40, help="cohort size (default 40)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--encoder", default=None, help="default: the offline domain encoder when shipped, else inception")
    from ..features.slicing import DEFAULT_SLICES

    p.add_argument("--max-slices", type=int, default=DEFAULT_SLICES.max_slices,
                   help=f"evenly spaced axial slices per volume (default {DEFAULT_SLICES.max_slices})")
    p.add_argument("--tumour-slices", type=int, default=DEFAULT_SLICES.tumour_slices,
                   help=f"extra slices through the tumour (default {DEFAULT_SLICES.tumour_slices})")
    p.add_argument("--no-downstream", action="store_true", help="skip the segmenter and predicted Dice")
    p.add_argument("--downstream-volumes", type=at_least(0), default=0,
                   help="volumes per condition and model that are segmented (default 0 = all: the 10 eval volumes; "
                   "a paired test needs at least 6 to reach p < 0.05)")
    p.add_argument("--samples", type=at_least(2), default=80,
                   help="Phase 2: slices generated per shipped model (default 80, the reference split's slice count)")
    p.add_argument("--bootstrap", type=at_least(0), default=20, help="bootstrap resamples of the baseline for z-scores")
    from ..threads import add_compute_options

    add_compute_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where the report is."""
    import time

    from ..experiments.demo import run_demo
    from ..outputs import check_output_folder, claim_run_folder

    check_output_folder(args.out, inputs=[args.data], resume=True, option="--out")  # never into an input or a foreign folder
    claim_run_folder(args.out, "demo")
    start = time.perf_counter()
    report = run_demo(args.out, n=args.n, seed=args.seed, encoder=args.encoder, max_slices=args.max_slices,
                      tumour_slices=args.tumour_slices, bootstrap=args.bootstrap, downstream=not args.no_downstream,
                      downstream_max_volumes=args.downstream_volumes or None, data=args.data,
                      samples=args.samples)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    print(f"report: {report.resolve()}")
    print(f"tables: {report.parent / 'upstream.csv'}, heat map: {report.parent / 'heatmap.png'}, "
          f"perturbed volumes: {report.parent / 'perturbed'}")
    return 0
