"""``genmedeval demo``: the main job on the built-in demo cohort (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 5


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="cohort -> every paper perturbation -> metrics -> heat map and report",
                       description="Build (or reuse) the demo cohort, perturb its eval split at every level of the "
                       "study, compute the upstream metrics against its reference split from cached features, "
                       "and write tables, a z-score heat map and report.html.")
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--n", type=int, default=40, help="cohort size (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", default=None, help="default: the offline domain encoder when shipped, else inception")
    p.add_argument("--max-slices", type=int, default=6, help="axial slices per volume (default 6)")
    p.add_argument("--bootstrap", type=int, default=20, help="bootstrap resamples of the baseline for z-scores")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where the report is."""
    from ..experiments.demo import run_demo

    report = run_demo(args.out, n=args.n, seed=args.seed, encoder=args.encoder, max_slices=args.max_slices,
                      bootstrap=args.bootstrap)
    print(f"report: {report.resolve()}")
    print(f"tables: {report.parent / 'upstream.csv'}, heat map: {report.parent / 'heatmap.png'}, "
          f"perturbed volumes: {report.parent / 'perturbed'}")
    return 0
