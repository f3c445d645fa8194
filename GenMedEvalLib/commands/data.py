"""``genmedeval data brats-examples DIR``: fetch public example data, every file's SHA-256 checked."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 12


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data`` and its ``brats-examples`` subcommand."""
    p = sub.add_parser("data", help="download public example data (BraTS example cases)",
                       description="Download public example data with every file's SHA-256 checked.")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATASET")
    b = data_sub.add_parser("brats-examples", help="the DeepMedic project's four BraTS 2013/2015 example cases",
                            description="Download the BraTS example cases of the DeepMedic project "
                            "(github.com/deepmedic/deepmedic, examples/dataForExamples/brats2015TrainingData/) into "
                            "DIR/pat0003 ... DIR/pat0006 (FLAIR, T1c, labels, brain mask), each file's SHA-256 "
                            "checked. Licence CC BY-NC-SA 3.0 (DIR/LICENSE.txt); cite Menze et al. 2015.")
    b.add_argument("dir", type=Path, help="folder to put the case folders in")
    b.add_argument("--url", default=None,
                   help="base URL of a server with the same layout (default $GENMEDEVAL_BRATS_URL, else GitHub)")
    b.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each file (default 60)")
    b.set_defaults(func=run_brats_examples)
    p.set_defaults(func=lambda args: _data_help(p))


def _data_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_brats_examples(args: argparse.Namespace) -> int:
    """Download (or verify) the example cases and say where they are."""
    from ..brats_examples import download_examples
    from ..errors import InputError

    if args.dir.exists() and not args.dir.is_dir():
        raise InputError("is a file; give a folder for the case folders", args.dir)
    fetched: list[Path] = []
    paths = download_examples(args.dir, url=args.url, timeout=args.timeout, on_file=fetched.append)
    cases = sorted({p.parent.name for p in paths if p.parent != args.dir})
    print(f"{len(cases)} BraTS example cases in {args.dir} ({', '.join(cases)}): {len(fetched)} files downloaded, "
          f"{len(paths) - len(fetched)} already there; SHA-256 checked. Licence CC BY-NC-SA 3.0 ({args.dir / 'LICENSE.txt'})")
    return 0
