"""``genmedeval sweep``, ``compare`` and ``report``: the study on any data (Phase 1, Phase 2, HTML report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_execution_options, at_least, write_template

ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    """Add the study commands."""
    from ..cases import add_case_arguments
    from ..features.slicing import DEFAULT_SLICES

    p = sub.add_parser("sweep", help="Phase 1: every perturbation condition of a YAML config, upstream and downstream",
                       description="Run every condition of CONFIG (YAML; see --write-default for the paper's "
                       "conditions) and write tables, z-score heat maps and report.html to --out.")
    p.add_argument("config", type=Path, nargs="?", help="sweep config (YAML)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: beside the config, named after it)")
    p.add_argument("--write-default", type=Path, default=None, metavar="PATH",
                   help="write the default config (the paper's conditions) to PATH and stop")
    p.add_argument("--no-report", action="store_true", help="tables only")
    add_execution_options(p, overwrite="replace an existing --write-default file")
    from ..cluster import add_cluster_arguments

    add_cluster_arguments(p)  # the unperturbed sets' features and Dice on Dask; perturbed conditions in-process
    p.set_defaults(func=run_sweep_command)

    p = sub.add_parser("compare", help="Phase 2: models against a reference set, upstream, downstream, rank agreement",
                       description="Upstream metrics and predicted Dice for every --model NAME=DIR against --reference, "
                       "Kendall tau between each metric's ranking and the downstream ranking, heat map, report.")
    p.add_argument("--reference", type=Path, required=True, help="reference folder (volume files or case folders)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR", required=True,
                   help="a model's output folder, volume files or case folders (repeat for each model; at least two)")
    p.add_argument("--train", type=Path, default=None,
                   help="the models' training folder (enables AuthPct and the nearest-training-image pictures)")
    p.add_argument("--test", type=Path, default=None, help="held-out folder beside --train (enables the CT score)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--encoder", default="domain")
    p.add_argument("--metrics", default="all")
    p.add_argument("--max-slices", type=int, default=DEFAULT_SLICES.max_slices,
                   help=f"evenly spaced slices per volume (default {DEFAULT_SLICES.max_slices}, as sweep and metrics)")
    p.add_argument("--tumour-slices", type=int, default=DEFAULT_SLICES.tumour_slices,
                   help=f"then slices through the tumour mask (default {DEFAULT_SLICES.tumour_slices})")
    p.add_argument("--plane", default=DEFAULT_SLICES.plane, choices=("axial", "coronal", "sagittal", "all"))
    add_case_arguments(p)
    p.add_argument("--bootstrap", type=int, default=20,
                   help="bootstrap resamples behind every model's 95 %% intervals and z-scores (default 20, as sweep)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="the model the z-scores are measured from (default: the first --model; give real held-out "
                   "data first or name it here)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--no-downstream", action="store_true", help="skip the segmenter and predicted Dice")
    p.add_argument("--segmenter", default=None)
    add_execution_options(p)
    p.set_defaults(func=run_compare_command)

    p = sub.add_parser("report", help="(re)write report.html for a sweep or compare run folder")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=run_report_command)


def _claim_run_folder(out: Path, inputs: list, command: str) -> None:
    """Refuse a run folder that is or holds an input or another program's files; mark it, clear dead temporaries."""
    from ..outputs import check_output_folder, claim_run_folder

    check_output_folder(out, inputs=inputs, resume=True, option="--out")
    claim_run_folder(out, command)


def run_sweep_command(args: argparse.Namespace) -> int:
    """Validate the config, run the sweep, print where everything is."""
    from ..errors import ParameterError
    from ..experiments.config import default_config_text, load_config
    from ..experiments.sweep import run_sweep

    if args.write_default is not None:
        return write_template(args.write_default, default_config_text(), overwrite=args.overwrite,
                              option="--write-default", what="default config")
    if args.config is None:
        raise ParameterError("give a CONFIG file (or --write-default PATH)")
    config = load_config(args.config)
    from ..experiments.sweep import list_set

    for name, data in config.data.items():  # fail before any work on a missing folder or file
        if data.folder is not None and not data.folder.is_dir():
            from ..errors import InputError

            raise InputError(f"data.{name}: folder not found", data.folder)
        list_set(data, name)
    out = args.out or args.config.parent / f"{args.config.stem}_run"
    _claim_run_folder(out, [args.config, *(p for d in config.data.values() for p in d.paths()), config.segmenter],
                      "sweep")
    _prefetch_sweep(args, config)
    run_sweep(config, out, report=not args.no_report)
    print(f"{len(config.conditions)} conditions -> {out}")
    if not args.no_report:
        print(f"report: {(out / 'report.html').resolve()}")
    return 0


def _prefetch_sweep(args: argparse.Namespace, config) -> None:
    """With ``--scheduler``/``--workers``: the unperturbed sets' features and predicted Dice computed on Dask first."""
    from ..cluster import cluster_options, open_client, prefetch_sweep

    with open_client(cluster_options(args)) as client:
        if client is not None:
            stats = prefetch_sweep(client, config)
            print(f"cluster: {stats['features']['forward_passes']} forward passes, "
                  f"{stats.get('downstream', {}).get('segmented', 0)} volumes segmented on "
                  f"{stats['features']['workers']} workers (perturbed conditions run in this process)")


def _models(pairs: list[str]):
    from ..errors import ParameterError
    from ..experiments.config import DataSet

    models = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"--model {pair!r}: expected NAME=DIR")
        name, folder = pair.split("=", 1)
        if not name.strip() or not folder.strip():
            raise ParameterError(f"--model {pair!r}: both NAME and DIR must be given (NAME=DIR)")
        if name in models:
            raise ParameterError(f"--model {name}: given twice")
        models[name] = DataSet(Path(folder))
    return models


def _check_counts(args: argparse.Namespace) -> None:
    """Metric names and bootstrap count checked before any work."""
    from ..errors import ParameterError
    from ..metrics.suite import resolve_metrics

    resolve_metrics(args.metrics)
    if args.bootstrap < 0:
        raise ParameterError(f"--bootstrap {args.bootstrap}: give 0 (none) or a positive number of resamples")


def run_compare_command(args: argparse.Namespace) -> int:
    """Compare the models and print the rank agreement."""
    from dataclasses import replace

    from ..cases import list_cases, options_from_args
    from ..errors import ParameterError
    from ..experiments.compare import run_compare
    from ..experiments.config import DataSet
    from ..features.slicing import DEFAULT_SLICES

    models = _models(args.model)
    options = options_from_args(args)
    slices = replace(DEFAULT_SLICES, max_slices=args.max_slices, tumour_slices=args.tumour_slices, plane=args.plane)
    for folder in [args.reference, *(m.folder for m in models.values())]:
        list_cases(folder)  # a missing or empty folder, or a case folder without a contrast, fails before any work
    _check_counts(args)
    if len(models) < 2:
        raise ParameterError("compare needs at least two models (--model NAME=DIR, repeated)")
    if args.baseline is not None and args.baseline not in models:
        raise ParameterError(f"--baseline {args.baseline!r} is not one of the models: {', '.join(models)}")
    if args.test is not None and args.train is None:
        raise ParameterError("--test needs --train (the CT score compares both with the models)")
    _claim_run_folder(args.out, [args.reference, *(m.folder for m in models.values()), args.train, args.test,
                                 args.segmenter], "compare")
    run_compare(DataSet(args.reference), models, args.out, encoder=args.encoder, metrics=args.metrics,
                slices=slices, cases=options, train=DataSet(args.train) if args.train else None,
                test=DataSet(args.test) if args.test else None,
                downstream=not args.no_downstream, segmenter=args.segmenter, bootstrap=args.bootstrap, seed=args.seed,
                baseline=args.baseline)
    print(f"comparison -> {args.out}; report: {(args.out / 'report.html').resolve()}")
    return 0


def _check_run_files(run_dir: Path) -> None:
    """Every JSON table of a run folder read once first: one line naming a file that is corrupt, not UTF-8 or not an object."""
    from ..errors import InputError
    from ..io import read_json

    if not run_dir.is_dir():
        raise InputError("run folder not found", run_dir)
    for path in [*(run_dir / n for n in ("run.json", "compare.json", "views.json")), *run_dir.glob("*/compare.json")]:
        if path.exists() and not isinstance(read_json(path), dict):
            raise InputError("is not a JSON object as GenMedEval writes it", path)


def run_report_command(args: argparse.Namespace) -> int:
    """(Re)write report.html after checking the run folder's files."""
    from ..experiments.report import write_report

    _check_run_files(args.run_dir)

    print(f"report: {write_report(args.run_dir).resolve()}")
    return 0
