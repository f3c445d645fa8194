"""Subcommands of ``genmedeval``: one module per concept, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse

TRUST_HELP = ("allow a MONAI bundle folder as a segmenter: MONAI runs whatever Python code the bundle's config "
              "names, so only for a bundle from a source you trust (checkpoints and TorchScript need no trust)")


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    """``--trust-bundle`` for a command that may load a MONAI bundle (refused without it)."""
    parser.add_argument("--trust-bundle", action="store_true", help=TRUST_HELP)


def add_execution_options(parser: argparse.ArgumentParser, *, trust: bool = True, overwrite: str | None = None) -> None:
    """``--device`` and ``--threads``; ``--trust-bundle`` where a segmenter may be loaded; ``--overwrite`` where a file
    may be replaced (its help says what)."""
    from ..threads import add_compute_options

    add_compute_options(parser)
    if overwrite:
        parser.add_argument("--overwrite", action="store_true", help=overwrite)
    if trust:
        add_trust_option(parser)


def at_least(low: int):
    """An argparse type: a whole number >= ``low`` (counts, sizes and seeds are checked before any work)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {low}")
        return value
    parse.__name__ = f"whole number >= {low}"
    return parse


def _unit_interval(*, open_low: bool):
    """An argparse type: a number in (0, 1] (``open_low``) or [0, 1], checked before any work."""
    interval = "(0, 1]" if open_low else "[0, 1]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (0.0 < value if open_low else 0.0 <= value) or not value <= 1.0:
            raise argparse.ArgumentTypeError(f"{value} is not in {interval}")
        return value
    parse.__name__ = f"number in {interval}"
    return parse


#: a share of something: a number in (0, 1]
fraction = _unit_interval(open_low=True)
#: a probability: a number in [0, 1]
probability = _unit_interval(open_low=False)


def write_template(path, text: str, *, overwrite: bool, option: str, what: str) -> int:
    """Write a starting file (a default config, an example job) unless it would replace one silently; print where."""
    from ..io import write_text
    from ..outputs import check_output_file

    check_output_file(path, overwrite=overwrite, option=option)
    print(f"{what} -> {write_text(path, text)}")
    return 0
