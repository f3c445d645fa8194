"""The ``genmedeval`` command line: a thin dispatcher over ``GenMedEvalLib.commands``.

Each module in ``GenMedEvalLib/commands/`` defines ``register(subparsers)`` that adds one or more
subcommands whose ``func(args) -> int`` does the work. User errors (``GenMedEvalError``) are
printed as one line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import __version__, commands
from .errors import GenMedEvalError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module's subcommands registered."""
    parser = argparse.ArgumentParser(
        prog="genmedeval",
        description="Evaluate synthetic brain MRI the way 'Metrics that matter' (Deo et al. 2025) does: "
        "perturb real volumes, compute upstream metrics on cached deep features, predict downstream "
        "segmentation quality without ground truth, sweep, compare and report.",
    )
    parser.add_argument("--version", action="version", version=f"genmedeval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = sorted(
        (importlib.import_module(f"{commands.__name__}.{info.name}") for info in pkgutil.iter_modules(commands.__path__)),
        key=lambda module: (getattr(module, "ORDER", 100), module.__name__),
    )
    for module in modules:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genmedeval`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_params", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.params = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GenMedEvalError as exc:
        print(f"genmedeval {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genmedeval {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
