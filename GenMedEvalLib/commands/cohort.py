"""``genmedeval cohort OUT``: write the built-in demo cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import at_least

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cohort``."""
    p = sub.add_parser("cohort", help="write the demo cohort (MNI152 brains with synthetic tumours)",
                       description="Brains derived from the MNI152 template shipped in nilearn, each with a synthetic "
                       "tumour of known mask, three classes (none/left/right) and two scanner groups (A/B).")
    p.add_argument("out", type=Path, help="output folder (images/, masks/, cohort.csv)")
    p.add_argument("--n", type=int, default=40, help="number of cases (default 40)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--spacing", type=float, default=2.0, help="isotropic voxel size in mm (default 2; 1 = template)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cohort")
    from ..threads import add_compute_options

    add_compute_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the cohort and say where it is."""
    from ..cohort import make_cohort

    out = make_cohort(args.out, n=args.n, seed=args.seed, spacing=args.spacing, overwrite=args.overwrite)
    print(f"{args.n} cases -> {out / 'images'}, masks in {out / 'masks'}, table {out / 'cohort.csv'}")
    return 0
