"""The ``genmedeval`` command line: a thin dispatcher over ``GenMedEvalLib.commands``.

Each module in ``GenMedEvalLib/commands/`` defines ``register(subparsers)`` that adds one or more
subcommands whose ``func(args) -> int`` does the work. Every failure ends as one line on stderr:
exit status 2 for bad input (``GenMedEvalError``, OS errors, undecodable files, allocation
failures), 1 for an internal failure; ``--debug`` prints the traceback as well. Library warnings
(ITK, numpy) are silenced; GenMedEval's own warnings are printed as one line each.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import traceback
import warnings
from collections.abc import Sequence

from .threads import prepare_environment

prepare_environment()  # before numpy, scipy and torch start their thread pools

from . import __version__, commands  # noqa: E402
from .errors import GenMedEvalError, GenMedEvalWarning, display_path, one_line  # noqa: E402

#: options understood anywhere on the command line (also after the command's name)
GLOBAL_FLAGS = ("--debug",)
GLOBAL_VALUES = ("--max-image-mb",)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command module's subcommands registered."""
    parser = argparse.ArgumentParser(
        prog="genmedeval",
        description="Evaluate synthetic brain MRI the way 'Metrics that matter' (Deo et al. 2025) does: "
        "perturb real volumes, compute upstream metrics on cached deep features, predict downstream "
        "segmentation quality without ground truth, sweep, compare and report.",
    )
    parser.add_argument("--version", action="version", version=f"genmedeval {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failure and library warnings")
    parser.add_argument("--max-image-mb", type=float, default=None, metavar="MB",
                        help="largest image (decompressed voxel data) any command reads, in MiB "
                        "(default $GENMEDEVAL_MAX_IMAGE_MB or 512); refuses gzip bombs and huge headers at once")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = sorted(
        (importlib.import_module(f"{commands.__name__}.{info.name}") for info in pkgutil.iter_modules(commands.__path__)),
        key=lambda module: (getattr(module, "ORDER", 100), module.__name__),
    )
    for module in modules:
        module.register(sub)
    return parser


def _pop_globals(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """Global options given after the command name: taken out of ``extra`` and set on ``args``."""
    rest, i = [], 0
    while i < len(extra):
        token = extra[i]
        name, _, inline = token.partition("=")
        if token in GLOBAL_FLAGS:
            setattr(args, token[2:].replace("-", "_"), True)
        elif name in GLOBAL_VALUES:
            value = inline if inline else (extra[i + 1] if i + 1 < len(extra) else "")
            i += 0 if inline else 1
            try:
                setattr(args, name[2:].replace("-", "_"), float(value))
            except ValueError:
                rest.append(token)  # left for the parser's own error
        else:
            rest.append(token)
        i += 1
    return rest


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"genmedeval: warning: {display_path(one_line(str(message)))}", file=sys.stderr)


def _silence_libraries() -> None:
    """ITK's own warnings (NIfTI qform/sform notes, MetaImage) go to stderr outside Python: switch them off."""
    from .filecheck import quiet_native_output

    quiet_native_output(True)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalWarningDisplay(False)
    except ImportError:  # pragma: no cover - SimpleITK is a dependency
        pass


def _failure(exc: BaseException) -> tuple[int, str]:
    """Exit status and one-line message for an exception escaping a command."""
    if isinstance(exc, GenMedEvalError):
        return 2, str(exc)
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return 2, f"{where}: {reason}" if where else reason
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__:
        return 2, "not enough memory for this input (is an image far larger than expected?)"
    if isinstance(exc, json.JSONDecodeError):
        return 2, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, UnicodeError):
        return 2, f"text is not valid UTF-8 ({exc})"
    if isinstance(exc, RecursionError):
        return 2, "input nested too deeply"
    return 1, f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback"


def run_command(args: argparse.Namespace) -> int:
    """Validate the shared options (limits, device, threads), then run the command."""
    from . import filecheck
    from .threads import apply_compute_options

    filecheck.set_max_image_mb(args.max_image_mb)  # None: the environment's or the default limit
    apply_compute_options(args)
    if getattr(args, "trust_bundle", False) or "GenMedEvalLib.segment.plugins" in sys.modules:
        from .segment.plugins import trust_bundles

        trust_bundles(getattr(args, "trust_bundle", False))  # one command's --trust-bundle, never the next's
    return int(args.func(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genmedeval`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    extra = _pop_globals(args, extra)
    if extra and not getattr(args, "accepts_params", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.params = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        if not args.debug:
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", GenMedEvalWarning)
            warnings.showwarning = _show_warning
            _silence_libraries()
        try:
            return run_command(args)
        except KeyboardInterrupt:
            print(f"genmedeval {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
            status, message = _failure(exc)
            if args.debug:
                traceback.print_exc()
            print(f"genmedeval {args.command}: error: {display_path(one_line(message))}", file=sys.stderr)
            return status


if __name__ == "__main__":
    sys.exit(main())
