"""``genmedeval features``, ``metrics`` and ``train-encoder``: thin wrappers over ``GenMedEvalLib.features``
and ``GenMedEvalLib.metrics``."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 30

SET_OPTIONS = ("reference", "generated", "train", "test")


def _add_slice_options(parser: argparse.ArgumentParser) -> None:
    """Encoder, plane, slice rules, cache folder and device options shared by ``features`` and ``metrics``."""
    from ..features.registry import ENCODERS

    parser.add_argument("--plane", default="axial", choices=("axial", "coronal", "sagittal", "all"),
                        help="slice plane(s), physical (from the direction matrix); default axial")
    parser.add_argument("--min-foreground", type=float, default=0.05,
                        help="skip slices with a smaller fraction of voxels above 0.05 (default 0.05)")
    parser.add_argument("--max-slices", type=int, default=None, help="at most this many slices per volume, evenly spaced")
    parser.add_argument("--mask-only", action="store_true", help="only slices that intersect the volume's mask")
    parser.add_argument("--cache", type=Path, default=None,
                        help="feature cache folder (default $GENMEDEVAL_CACHE or ~/.cache/genmedeval/features)")
    parser.add_argument("--no-cache", action="store_true", help="compute every feature, store nothing")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--batch-size", type=int, default=None, help="encoder batch size")
    parser.epilog = "encoders: " + "; ".join(f"{name}: {entry.description}" for name, entry in ENCODERS.items())


def _settings(args: argparse.Namespace):
    from ..features.slicing import SliceSettings

    return SliceSettings(plane=args.plane, min_foreground=args.min_foreground, max_slices=args.max_slices,
                         mask_only=args.mask_only)


def _cache(args: argparse.Namespace):
    from ..features.cache import FeatureCache

    return FeatureCache(args.cache, enabled=not args.no_cache)


def _check_encoder_name(name: str) -> None:
    """Fail early (before any reading) on an unknown encoder name."""
    from ..errors import ParameterError
    from ..features.registry import ENCODERS

    if name not in ENCODERS:
        raise ParameterError(f"unknown encoder '{name}'; choose one of: {', '.join(ENCODERS)}")


def run_features(args: argparse.Namespace) -> int:
    """Fill the feature cache for a folder and print slice, hit and forward-pass counts."""
    from ..features.evaluate import read_folder_check
    from ..features.extract import extract_folder
    from ..features.registry import get_encoder

    _check_encoder_name(args.encoder)
    settings, cache = _settings(args), _cache(args)
    read_folder_check(args.folder)  # a missing or empty folder fails before the encoder loads its weights
    encoder = get_encoder(args.encoder, args.device, args.batch_size)
    outputs = tuple(args.outputs.split(",")) if args.outputs else encoder.outputs
    fs = extract_folder(args.folder, encoder, slices=settings, cache=cache, outputs=outputs)
    print(f"{args.folder}: {fs.n_volumes} volumes, {len(fs.info)} {'inputs' if encoder.spatial_dims == 3 else 'slices'}, "
          f"{cache.stats.hits} cache hits, {cache.stats.forward_passes} network forward passes "
          f"({encoder.name}: {', '.join(f'{k} {v.shape[1]}-d' for k, v in fs.features.items())}; cache {cache.root})")
    return 0


def run_metrics(args: argparse.Namespace) -> int:
    """Features of every given set through one encoder, then the metric suite; CSV + JSON + table."""
    from ..features.evaluate import evaluate_folders

    _check_encoder_name(args.encoder)
    folders = {name: getattr(args, name) for name in SET_OPTIONS if getattr(args, name) is not None}
    result = evaluate_folders(folders, args.encoder, metrics=args.metrics, bootstrap=args.bootstrap,
                                         seed=args.seed, slices=_settings(args), cache=_cache(args),
                                         device=args.device, batch_size=args.batch_size)
    out = Path(args.out)
    result.to_csv(out)
    result.to_json(out.with_suffix(".json"))
    print(result.format())
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def _split_list(text: str) -> tuple[str, ...]:
    """``"train,reference"`` -> ``("train", "reference")``; empty -> ``()``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run_train_encoder(args: argparse.Namespace) -> int:
    """Train the domain encoder on a labelled cohort and save its weights."""
    from ..features.train_domain import train_domain_encoder
    from ..features.weights import sha256_file

    train_domain_encoder(args.cohort, args.out, epochs=args.epochs, seed=args.seed, threads=args.threads,
                         train_splits=_split_list(args.train_splits), heldout_splits=_split_list(args.heldout_splits))
    print(f"SHA-256 {sha256_file(args.out)}")
    return 0


def register(subparsers) -> None:
    """Add the ``features``, ``metrics`` and ``train-encoder`` subcommands."""
    p = subparsers.add_parser("features", help="extract deep features of a folder's volumes into the cache",
                              description="Slice every volume of FOLDER, encode the slices, fill the feature cache; "
                              "prints how many slices were found in the cache and how many went through the network.")
    p.add_argument("folder", type=Path, help="folder of volumes (NIfTI, NRRD, MHA)")
    p.add_argument("--encoder", default="inception", help="encoder name (default inception)")
    p.add_argument("--outputs", default=None, help="comma-separated outputs (default: all the encoder gives)")
    _add_slice_options(p)
    p.set_defaults(func=run_features)

    m = subparsers.add_parser("metrics", help="compare generated volumes to reference volumes with the metric suite",
                              description="Compute the upstream metric suite (FD, KD, PRDC, ...) between folders of "
                              "volumes on cached deep features; writes OUT (CSV) and OUT with .json.")
    m.add_argument("--reference", type=Path, required=True, help="folder of real reference volumes")
    m.add_argument("--generated", type=Path, required=True, help="folder of generated volumes")
    m.add_argument("--train", type=Path, default=None, help="training-set folder (AuthPct, CT score, FLS)")
    m.add_argument("--test", type=Path, default=None, help="held-out test folder (CT score, FLS)")
    m.add_argument("--encoder", default="inception", help="encoder name (default inception)")
    m.add_argument("--metrics", default="all", help="'all' or a comma-separated list of metric names")
    m.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for confidence intervals (default 0)")
    m.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    m.add_argument("--out", type=Path, required=True, help="results CSV (a JSON with the same stem is written too)")
    _add_slice_options(m)
    m.set_defaults(func=run_metrics)

    t = subparsers.add_parser("train-encoder", help="train the domain encoder on a labelled cohort",
                              description="Train the small brain-MRI CNN (lesion class + acquisition group) on the "
                              "cohort's train split; reports held-out accuracy and the weights' SHA-256.")
    t.add_argument("--cohort", type=Path, required=True, help="cohort folder (images/, masks/, cohort.csv)")
    t.add_argument("--out", type=Path, required=True, help="output weights file (.pt)")
    t.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--train-splits", default="train,reference", help="splits to train on (default train,reference)")
    t.add_argument("--heldout-splits", default="eval,test",
                   help="splits to report accuracy on (default eval,test; empty: none)")
    t.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    t.set_defaults(func=run_train_encoder)
