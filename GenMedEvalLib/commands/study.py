"""``genmedeval sweep``, ``compare`` and ``report``: the study on any data (Phase 1, Phase 2, HTML report)."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    """Add the study commands."""
    p = sub.add_parser("sweep", help="Phase 1: every perturbation condition of a YAML config, upstream and downstream",
                       description="Run every condition of CONFIG (YAML; see --write-default for the paper's "
                       "conditions) and write tables, z-score heat maps and report.html to --out.")
    p.add_argument("config", type=Path, nargs="?", help="sweep config (YAML)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: beside the config, named after it)")
    p.add_argument("--write-default", type=Path, default=None, metavar="PATH",
                   help="write the default config (the paper's conditions) to PATH and stop")
    p.add_argument("--no-report", action="store_true", help="tables only")
    p.set_defaults(func=run_sweep_command)

    p = sub.add_parser("compare", help="Phase 2: models against a reference set, upstream, downstream, rank agreement",
                       description="Upstream metrics and predicted Dice for every --model NAME=DIR against --reference, "
                       "Kendall tau between each metric's ranking and the downstream ranking, heat map, report.")
    p.add_argument("--reference", type=Path, required=True, help="reference folder")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR", required=True,
                   help="a model's output folder (repeat for each model; at least two)")
    p.add_argument("--train", type=Path, default=None, help="training folder (enables AuthPct)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--encoder", default="domain")
    p.add_argument("--metrics", default="all")
    p.add_argument("--max-slices", type=int, default=6)
    p.add_argument("--bootstrap", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-downstream", action="store_true", help="skip the segmenter and predicted Dice")
    p.add_argument("--segmenter", default=None)
    p.set_defaults(func=run_compare_command)

    p = sub.add_parser("report", help="(re)write report.html for a sweep or compare run folder")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=run_report_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    """Validate the config, run the sweep, print where everything is."""
    from ..errors import ParameterError
    from ..experiments.config import default_config_text, load_config
    from ..experiments.sweep import run_sweep
    from ..io import write_text

    if args.write_default is not None:
        print(f"default config -> {write_text(args.write_default, default_config_text())}")
        return 0
    if args.config is None:
        raise ParameterError("give a CONFIG file (or --write-default PATH)")
    config = load_config(args.config)
    for name, data in config.data.items():  # fail before any work on a missing folder
        if not data.folder.is_dir():
            from ..errors import InputError

            raise InputError(f"data.{name}: folder not found", data.folder)
    out = args.out or args.config.parent / f"{args.config.stem}_run"
    run_sweep(config, out, report=not args.no_report)
    print(f"{len(config.conditions)} conditions -> {out}")
    if not args.no_report:
        print(f"report: {(out / 'report.html').resolve()}")
    return 0


def _models(pairs: list[str]):
    from ..errors import ParameterError
    from ..experiments.config import DataSet

    models = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"--model {pair!r}: expected NAME=DIR")
        name, folder = pair.split("=", 1)
        if name in models:
            raise ParameterError(f"--model {name}: given twice")
        models[name] = DataSet(Path(folder))
    return models


def run_compare_command(args: argparse.Namespace) -> int:
    """Compare the models and print the rank agreement."""
    from ..experiments.compare import run_compare
    from ..experiments.config import DataSet
    from ..io import read_cohort

    models = _models(args.model)
    for folder in [args.reference, *(m.folder for m in models.values())]:
        read_cohort(folder)  # a missing or empty folder fails before any work
    run_compare(DataSet(args.reference), models, args.out, encoder=args.encoder, metrics=args.metrics,
                max_slices=args.max_slices, train=DataSet(args.train) if args.train else None,
                downstream=not args.no_downstream, segmenter=args.segmenter, bootstrap=args.bootstrap, seed=args.seed)
    print(f"comparison -> {args.out}; report: {(args.out / 'report.html').resolve()}")
    return 0


def run_report_command(args: argparse.Namespace) -> int:
    from ..experiments.report import write_report

    print(f"report: {write_report(args.run_dir).resolve()}")
    return 0
