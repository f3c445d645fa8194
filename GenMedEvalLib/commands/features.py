"""``genmedeval features``, ``metrics`` and ``train-encoder``: thin wrappers over ``GenMedEvalLib.features``
and ``GenMedEvalLib.metrics``."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import at_least

ORDER = 30

SET_OPTIONS = ("reference", "generated", "train", "test")


def _add_slice_options(parser: argparse.ArgumentParser) -> None:
    """Encoder, plane, slice rules, case, cache folder and device options shared by ``features`` and ``metrics``.

    The slice defaults are ``features.slicing.DEFAULT_SLICES``, the same as the sweep's and compare's.
    """
    from ..cases import add_case_arguments
    from ..features.registry import ENCODERS
    from ..features.slicing import DEFAULT_SLICES
    from ..threads import add_compute_options

    parser.add_argument("--plane", default=DEFAULT_SLICES.plane, choices=("axial", "coronal", "sagittal", "all"),
                        help=f"slice plane(s), physical (from the direction matrix); default {DEFAULT_SLICES.plane}")
    parser.add_argument("--min-foreground", type=float, default=DEFAULT_SLICES.min_foreground,
                        help="skip slices with a smaller fraction of voxels above 0.05 (default 0.05)")
    parser.add_argument("--max-slices", type=int, default=DEFAULT_SLICES.max_slices,
                        help=f"at most this many slices per volume, evenly spaced (default {DEFAULT_SLICES.max_slices})")
    parser.add_argument("--tumour-slices", type=int, default=DEFAULT_SLICES.tumour_slices,
                        help=f"then this many through the tumour mask, when a volume has one "
                        f"(default {DEFAULT_SLICES.tumour_slices})")
    parser.add_argument("--mask-only", action="store_true", help="only slices that intersect the volume's mask")
    add_case_arguments(parser)
    parser.add_argument("--cache", type=Path, default=None,
                        help="feature cache folder (default $GENMEDEVAL_CACHE or ~/.cache/genmedeval/features)")
    parser.add_argument("--no-cache", action="store_true", help="compute every feature, store nothing")
    add_compute_options(parser)
    parser.add_argument("--batch-size", type=at_least(1), default=None, help="encoder batch size")
    from ..cluster import add_cluster_arguments

    add_cluster_arguments(parser)
    parser.epilog = "encoders: " + "; ".join(f"{name}: {entry.description}" for name, entry in ENCODERS.items())


def _settings(args: argparse.Namespace):
    from ..features.slicing import SliceSettings

    return SliceSettings(plane=args.plane, min_foreground=args.min_foreground, max_slices=args.max_slices,
                         mask_only=args.mask_only, tumour_slices=args.tumour_slices)


def _cache(args: argparse.Namespace):
    from ..features.cache import FeatureCache

    return FeatureCache(args.cache, enabled=not args.no_cache)


def _prefetch(args: argparse.Namespace, folders: dict[str, Path], metrics=(), outputs=None) -> None:
    """With ``--scheduler``/``--workers``: the folders' features computed on the Dask cluster into the cache first."""
    from ..cases import options_from_args
    from ..cluster import cluster_options, open_client, prefetch_folders
    from ..errors import ParameterError

    options = cluster_options(args)
    if not options.enabled:
        return
    if args.no_cache:
        raise ParameterError("--scheduler/--workers fill the shared feature cache: drop --no-cache")
    with open_client(options) as client:
        stats = prefetch_folders(client, folders, args.encoder, slices=_settings(args), cases=options_from_args(args),
                                 cache_root=_cache(args).root, metrics=metrics, outputs=outputs, device=args.device,
                                 batch_size=args.batch_size)
    print(stats.summary())


def _check_encoder_name(name: str) -> None:
    """Fail early (before any reading) on an unknown encoder name."""
    from ..errors import ParameterError
    from ..features.registry import ENCODERS

    if name not in ENCODERS:
        raise ParameterError(f"unknown encoder '{name}'; choose one of: {', '.join(ENCODERS)}")


def run_features(args: argparse.Namespace) -> int:
    """Fill the feature cache for a folder and print slice, hit and forward-pass counts."""
    from ..cases import options_from_args
    from ..features.evaluate import read_folder_check
    from ..features.extract import extract_folder
    from ..features.registry import get_encoder

    _check_encoder_name(args.encoder)
    settings, cache = _settings(args), _cache(args)
    options_from_args(args)  # an unknown target or a core target without a convention fails first
    read_folder_check(args.folder)  # a missing or empty folder fails before the encoder loads its weights
    _prefetch(args, {"folder": args.folder}, outputs=tuple(args.outputs.split(",")) if args.outputs else None)
    encoder = get_encoder(args.encoder, args.device, args.batch_size)
    outputs = tuple(args.outputs.split(",")) if args.outputs else encoder.outputs
    fs = extract_folder(args.folder, encoder, slices=settings, cache=cache, outputs=outputs,
                        options=options_from_args(args))
    print(f"{args.folder}: {fs.n_volumes} volumes, {len(fs.info)} {'inputs' if encoder.spatial_dims == 3 else 'slices'}, "
          f"{cache.stats.hits} cache hits, {cache.stats.forward_passes} network forward passes "
          f"({encoder.name}: {', '.join(f'{k} {v.shape[1]}-d' for k, v in fs.features.items())}; cache {cache.root})")
    return 0


def run_metrics(args: argparse.Namespace) -> int:
    """Features of every given set through one encoder, then the metric suite; CSV + JSON + table."""
    from ..cases import options_from_args
    from ..features.evaluate import evaluate_folders

    _check_encoder_name(args.encoder)
    folders = {name: getattr(args, name) for name in SET_OPTIONS if getattr(args, name) is not None}
    _check_metrics_outputs(args, folders)
    from ..metrics.suite import resolve_metrics

    _prefetch(args, folders, metrics=resolve_metrics(args.metrics))
    result = evaluate_folders(folders, args.encoder, metrics=args.metrics, bootstrap=args.bootstrap,
                                         seed=args.seed, slices=_settings(args), cache=_cache(args),
                                         device=args.device, batch_size=args.batch_size,
                                         cases=options_from_args(args))
    out = Path(args.out)
    result.to_csv(out)
    result.to_json(out.with_suffix(".json"))
    print(result.format())
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def _check_metrics_outputs(args: argparse.Namespace, folders: dict[str, Path]) -> None:
    """Metric names, bootstrap count and both output files checked before any feature is computed."""
    from ..errors import ParameterError
    from ..metrics.suite import resolve_metrics
    from ..outputs import check_output_file

    resolve_metrics(args.metrics)
    if args.bootstrap < 0:
        raise ParameterError(f"--bootstrap {args.bootstrap}: give 0 (none) or a positive number of resamples")
    for target in (Path(args.out), Path(args.out).with_suffix(".json")):
        check_output_file(target, inputs=list(folders.values()), overwrite=args.overwrite, option="--out")


def _split_list(text: str) -> tuple[str, ...]:
    """``"train,reference"`` -> ``("train", "reference")``; empty -> ``()``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run_train_encoder(args: argparse.Namespace) -> int:
    """Train the domain encoder on a labelled cohort and save its weights."""
    from ..features.train_domain import train_domain_encoder
    from ..features.weights import sha256_file
    from ..outputs import check_output_file

    check_output_file(args.out, inputs=[args.cohort], overwrite=args.overwrite, option="--out")
    train_domain_encoder(args.cohort, args.out, epochs=args.epochs, seed=args.seed, threads=args.threads,
                         train_splits=_split_list(args.train_splits), heldout_splits=_split_list(args.heldout_splits))
    print(f"SHA-256 {sha256_file(args.out)}")
    return 0


def register(subparsers) -> None:
    """Add the ``features``, ``metrics`` and ``train-encoder`` subcommands."""
    p = subparsers.add_parser("features", help="extract deep features of a folder's volumes into the cache",
                              description="Slice every volume of FOLDER, encode the slices, fill the feature cache; "
                              "prints how many slices were found in the cache and how many went through the network.")
    p.add_argument("folder", type=Path, help="folder of volumes (NIfTI, NRRD, MHA) or of case folders")
    p.add_argument("--encoder", default="inception", help="encoder name (default inception)")
    p.add_argument("--outputs", default=None, help="comma-separated outputs (default: all the encoder gives)")
    _add_slice_options(p)
    p.set_defaults(func=run_features)

    m = subparsers.add_parser("metrics", help="compare generated volumes to reference volumes with the metric suite",
                              description="Compute the upstream metric suite (FD, KD, PRDC, ...) between folders of "
                              "volumes on cached deep features; writes OUT (CSV) and OUT with .json.")
    m.add_argument("--reference", type=Path, required=True, help="folder of real reference volumes (or case folders)")
    m.add_argument("--generated", type=Path, required=True, help="folder of generated volumes (or case folders)")
    m.add_argument("--train", type=Path, default=None, help="training-set folder (AuthPct, CT score, FLS)")
    m.add_argument("--test", type=Path, default=None, help="held-out test folder (CT score, FLS)")
    m.add_argument("--encoder", default="inception", help="encoder name (default inception)")
    m.add_argument("--metrics", default="all", help="'all' or a comma-separated list of metric names")
    m.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for confidence intervals (default 0)")
    m.add_argument("--seed", type=at_least(0), default=0, help="random seed (default 0)")
    m.add_argument("--out", type=Path, required=True, help="results CSV (a JSON with the same stem is written too)")
    m.add_argument("--overwrite", action="store_true", help="replace existing result files (never an input)")
    _add_slice_options(m)
    m.set_defaults(func=run_metrics)

    t = subparsers.add_parser("train-encoder", help="train the domain encoder on a labelled cohort",
                              description="Train the small brain-MRI CNN (lesion class + acquisition group) on the "
                              "cohort's train split; reports held-out accuracy and the weights' SHA-256.")
    t.add_argument("--cohort", type=Path, required=True, help="cohort folder (images/, masks/, cohort.csv)")
    t.add_argument("--out", type=Path, required=True, help="output weights file (.pt)")
    t.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    t.add_argument("--seed", type=at_least(0), default=0, help="random seed (default 0)")
    t.add_argument("--train-splits", default="train,reference", help="splits to train on (default train,reference)")
    t.add_argument("--heldout-splits", default="eval,test",
                   help="splits to report accuracy on (default eval,test; empty: none)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing weights file")
    from ..threads import add_compute_options

    add_compute_options(t, threads_default=1)
    t.set_defaults(func=run_train_encoder)
