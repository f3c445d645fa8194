"""``genmedeval segment``, ``train-segmenter``, ``quality`` and ``train-quality``: the downstream half."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from . import add_execution_options, at_least, fraction, probability

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    """Add the downstream commands."""
    from ..cases import add_case_arguments
    from ..cluster import add_cluster_arguments

    p = sub.add_parser("segment", help="segment every volume of a folder (tumour masks, same geometry)",
                       description="Run a segmenter on each case in IN_DIR (a volume file, or a case folder X/ of "
                       "several contrasts) and write its mask to OUT_DIR under the same file name (X.nii.gz for a "
                       "case folder, on the case's grid). --model: a GenMedEval checkpoint, a TorchScript file or a "
                       "MONAI bundle folder.")
    p.add_argument("in_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--model", type=Path, default=None, help="segmenter (default: the shipped U-Net)")
    add_execution_options(p, trust=True, overwrite="replace an output folder GenMedEval wrote before")
    add_cluster_arguments(p)
    p.set_defaults(func=run_segment)

    p = sub.add_parser("train-segmenter", help="train the built-in slice-wise U-Net on generated cohort cases")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (e.g. Resources/Models/segmenter.pt)")
    p.add_argument("--cases", type=at_least(1), default=120, help="cohort cases to generate for training (default 120)")
    p.add_argument("--seed", type=at_least(0), default=1, help="seed of the training cases and of training (default 1)")
    p.add_argument("--steps", type=at_least(1), default=2000)
    p.add_argument("--batch", type=at_least(1), default=16)
    p.add_argument("--validation-cases", type=at_least(1), default=8,
                   help="cases (seed + 2) on which the probability threshold is tuned (default 8; cohort-only training)")
    p.add_argument("--data", type=Path, default=None,
                   help="folder of real case folders (FLAIR + T1c + label, e.g. BraTS): train on them together with "
                        "domain-randomised synthetic slices and cohort slices (the shipped models' recipe)")
    p.add_argument("--contrasts", default="any",
                   help="with --data: 'any' (one-channel model for any single contrast, default), 'flair' or 't1c' "
                        "(one-channel model of that contrast alone) or 'flair,t1c'")
    p.add_argument("--holdout", default="",
                   help="with --data: case folder names (comma-separated) left out of training; their Dice is printed")
    p.add_argument("--pool", type=Path, default=None, help="with --data: file caching the drawn slice pool")
    p.add_argument("--reclip", type=probability, default=0.0, metavar="P",
                   help="with --data: probability (0..1) per channel of a training slice of clipping it at a lower "
                        "intensity ceiling, as a 99th-percentile normalisation does when the tumour is small "
                        "(default 0)")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--min-component-fraction", type=fraction, default=None, metavar="F",
                      help="the model's masks drop connected components smaller than F (0 < F <= 1) times the "
                           "largest (the shipped FLAIR + T1c model: 0.1; default: keep the whole mask)")
    rule.add_argument("--largest-component", dest="min_component_fraction", action="store_const", const=1.0,
                      help="the model's masks keep only their largest connected component (= "
                           "--min-component-fraction 1)")
    add_execution_options(p, trust=False, overwrite="replace an existing weights file")
    p.set_defaults(func=run_train_segmenter)

    p = sub.add_parser("quality", help="predicted Dice of segmentations without ground truth (EvaNySeg score)",
                       description="For every volume in --images: segment it (or take its mask from --predictions), "
                       "predict the segmentation's Dice from image and mask alone, and, when --masks holds ground "
                       "truth, compute the true Dice. Writes a CSV table (and prints it).")
    p.add_argument("--images", type=Path, required=True, help="folder of volumes or of case folders")
    p.add_argument("--masks", type=Path, default=None,
                   help="ground-truth masks (same file names; X.nii.gz for a case folder X/): adds the true Dice "
                   "(a case folder's own label file adds it too)")
    p.add_argument("--predictions", type=Path, default=None,
                   help="segmentations to judge (same file names, X.nii.gz for a case folder); default: run the "
                   "segmenter")
    p.add_argument("--segmenter", type=Path, default=None, help="segmenter (default: the shipped U-Net)")
    p.add_argument("--model", type=Path, default=None, help="quality model (default: the shipped one)")
    p.add_argument("--out", type=Path, default=None, help="CSV to write (default IMAGES/../quality.csv)")
    p.add_argument("--slices", action="store_true", help="also write the per-slice breakdown as JSON beside the CSV")
    add_execution_options(p, trust=True, overwrite="replace an existing table (never an input)")
    add_case_arguments(p)
    add_cluster_arguments(p)
    p.set_defaults(func=run_quality)

    p = sub.add_parser("train-quality", help="train the quality predictor on generated cases and measure it")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (e.g. Resources/Models/quality.pt)")
    p.add_argument("--cases", type=at_least(1), default=80, help="cohort cases to generate (default 80)")
    p.add_argument("--masks", type=at_least(1), default=16, help="perturbed masks per case (default 16)")
    p.add_argument("--seed", type=at_least(0), default=2)
    p.add_argument("--steps", type=at_least(1), default=20000)
    p.add_argument("--batch", type=at_least(1), default=48)
    p.add_argument("--segmenter", type=Path, default=None, help="segmenter whose predictions join the training pairs "
                   "(default: the shipped one; 'none' to skip)")
    p.add_argument("--data", type=Path, default=None,
                   help="folder of real case folders with labels (e.g. BraTS): their pairs (perturbed masks, texture "
                        "twins, misplaced masks, the segmenter's outputs; native and 5 mm slices) join the cohort's")
    p.add_argument("--holdout", default="", help="with --data: case folder names (comma-separated) kept out of "
                   "training and measured after it")
    p.add_argument("--init", type=Path, default=None, help="quality model to start from (fine-tuning)")
    p.add_argument("--heldout-cases", type=at_least(1), default=8, help="demo-cohort cases for the accuracy report")
    p.add_argument("--target", choices=("dice_share", "dice", "split"), default="dice_share",
                   help="slice targets: Dice and share |P|/(|P|+|G|) (default; the share weights the volume average), "
                        "Dice alone (mask-area weights), or precision and share")
    p.add_argument("--image-jitter", choices=("full", "gamma"), default="full",
                   help="image-channel augmentation: gamma + noise, and with 'full' also contrast and blur")
    p.add_argument("--calibration-cases", type=at_least(0), default=0,
                   help="fit a linear recalibration of the volume score on this many cohort cases of seed 3 "
                   "(default 0: none)")
    add_execution_options(p, trust=True, overwrite="replace an existing weights file and calibration plot")
    p.set_defaults(func=run_train_quality)

    p = sub.add_parser("calibrate-quality", help="fit a quality model's linear recalibration on unseen cases",
                       description="Predict the Dice of perturbed masks and segmenter outputs on --cases cohort cases "
                       "drawn with --seed, fit true = a + b * predicted, and write the model with that line.")
    p.add_argument("model", type=Path, help="quality model file")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: replace MODEL, with --overwrite)")
    p.add_argument("--cases", type=int, default=16)
    p.add_argument("--seed", type=at_least(0), default=3)
    p.add_argument("--segmenter", type=Path, default=None, help="segmenter whose predictions join the pairs")
    add_execution_options(p, trust=True, overwrite="replace an existing file (needed to recalibrate MODEL in place)")
    p.set_defaults(func=run_calibrate_quality)


def _path_or_none(value) -> Path | None:
    """A user path, or None for an absent one or the word 'none'."""
    return None if value is None or str(value) == "none" else Path(value)


def _log_every(interval: int):
    """A training callback that prints the running loss every ``interval`` steps (for logs of long runs)."""
    def log(step: int, loss: float) -> None:
        if step % interval == 0:
            print(f"step {step}: loss {loss:.4f}", flush=True)
    return log


def _command_line() -> str:
    return "genmedeval " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run_segment(args: argparse.Namespace) -> int:
    """Masks for a folder of volumes or case folders, written atomically beside nothing else.

    A case is segmented from all its contrasts (``Segmenter.segment_contrasts``), normalised once
    as in the sweep; a mask for case folder ``X/`` is ``X.nii.gz`` on the case's grid. With
    ``--scheduler``/``--workers`` the cases are segmented (and written) by Dask workers.
    """
    from ..cases import list_cases
    from ..cluster import absolute, cluster_options, image_limit_mb, map_chunks, open_client
    from ..outputs import atomic_folder, check_output_folder
    from ..progress import progress
    from ..segment import load_segmenter

    check_output_folder(args.out_dir, inputs=[args.in_dir, args.model], overwrite=args.overwrite)
    cluster = cluster_options(args)
    model = load_segmenter(args.model, device=args.device)  # a bad model fails before any output exists
    items = list_cases(args.in_dir)
    with atomic_folder(args.out_dir, "segment") as work, open_client(cluster) as client:  # no half-filled folder
        if client is None:
            for item in progress(items, desc="segmenting"):
                segment_case(item, model, work)
        else:
            model_path = None if args.model is None else str(Path(args.model).absolute())
            map_chunks(client, segment_chunk, absolute(items), model_path, args.device,
                       getattr(args, "trust_bundle", False), str(Path(work).absolute()), image_limit_mb(),
                       desc="segmenting")
    print(f"{len(items)} masks -> {args.out_dir}")
    return 0


def segment_case(item, model, folder: Path) -> None:
    """Segment one listed case (every contrast, normalised as in the sweep) and write its mask into ``folder``."""
    from ..cases import read_case
    from ..io import write_volume

    case = read_case(item.image).normalized()  # the same input as the sweep's
    mask = model.segment_contrasts(case.arrays(), case.spacing_zyx)
    write_volume(case.grid, Path(folder) / case.mask_name, mask)


def segment_chunk(items: list, model_path: str | None, device: str | None, trust: bool, folder: str,
                  max_image_mb: float | None) -> int:
    """In a Dask worker: segment and write a chunk of cases, the segmenter loaded once per worker process."""
    from ..cluster import prepare_worker, worker_cached
    from ..segment import load_segmenter

    prepare_worker(max_image_mb)
    model = worker_cached("segmenter", (model_path, device, trust),
                          lambda: load_segmenter(model_path, device=device, trust_bundle=trust))
    for item in items:
        segment_case(item, model, Path(folder))
    return len(items)


def run_train_segmenter(args: argparse.Namespace) -> int:
    """Generate cases, train, save; print where and how long."""
    import torch

    from ..outputs import check_output_file
    from ..segment.train import cohort_cases, train_segmenter

    check_output_file(args.out, inputs=[args.data], overwrite=args.overwrite, option="--out")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data is not None:
        return _train_segmenter_on_data(args)
    cases = cohort_cases(args.cases, args.seed)
    validation = cohort_cases(args.validation_cases, args.seed + 2)
    path, log = train_segmenter(args.out, cases=cases, steps=args.steps, batch=args.batch, seed=args.seed,
                                command=_command_line(), device=args.device, validation=validation,
                                on_step=_log_every(500),
                                min_component_fraction=args.min_component_fraction)
    print(f"segmenter -> {path} ({log.seconds:.0f} s, final loss {log.losses[-1]:.3f}); threshold tuned on "
          f"{args.validation_cases} validation cases (seed {args.seed + 2})")
    return 0


def _train_segmenter_on_data(args: argparse.Namespace) -> int:
    """The shipped models' recipe: real cases + synthetic + cohort slices from one pool, threshold 0.5."""
    from ..errors import ParameterError
    from ..segment.train import heldout_dice, pool_for, pool_sampler, train_segmenter, training_case_folders

    if args.contrasts not in ("any", "flair,t1c", "flair", "t1c"):
        raise ParameterError(f"--contrasts must be 'any', 'flair', 't1c' or 'flair,t1c', got {args.contrasts!r}")
    channels = 2 if args.contrasts == "flair,t1c" else 1
    contrast = args.contrasts if args.contrasts in ("flair", "t1c") else None
    folders = training_case_folders(args.data)
    holdout = tuple(h for h in args.holdout.split(",") if h)
    unknown = sorted(set(holdout) - {f.name for f in folders})
    if unknown:
        raise ParameterError(f"--holdout names no case folder of {args.data}: {', '.join(unknown)}")
    sampler = pool_sampler(pool_for(args.data, cache=args.pool), channels=channels, holdout=holdout,
                           reclip=args.reclip, contrast=contrast)
    path, log = train_segmenter(args.out, mixture=sampler, steps=args.steps, batch=args.batch, seed=args.seed,
                                threshold=0.5, command=_command_line(), device=args.device,
                                on_step=_log_every(500), extra_meta={"holdout": list(holdout)},
                                min_component_fraction=args.min_component_fraction)
    print(f"segmenter -> {path} ({log.seconds:.0f} s, final loss {log.losses[-1]:.3f})")
    for name, dice in heldout_dice(path, [f for f in folders if f.name in holdout], channels).items():
        print(f"  held-out {name}: Dice {dice:.3f}")
    return 0


def _judged_mask(case, predictions: Path | None, segmenter):
    """The segmentation to judge: from ``--predictions`` (same file name; X.nii.gz for a case folder) or from
    the segmenter (every contrast of the case)."""
    from ..errors import InputError
    from ..io import read_mask

    if predictions is None:
        return segmenter.segment_contrasts(case.arrays(), case.spacing_zyx)
    path = predictions / case.mask_name
    if not path.is_file():
        raise InputError(f"no segmentation named {case.mask_name} in {predictions}", path)
    return read_mask(path, like=case.grid).array


def quality_rows(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """One row per volume: predicted Dice, its spread, true Dice when ground truth is given.

    With ``--scheduler``/``--workers`` the rows are computed by Dask workers (in the same order).
    """
    from ..cases import list_cases, options_from_args, resolve_contrast
    from ..cluster import absolute, cluster_options, image_limit_mb, map_chunks, open_client
    from ..progress import progress
    from ..quality import load_predictor
    from ..segment import load_segmenter

    options = options_from_args(args)
    cluster = cluster_options(args)
    predictor = load_predictor(args.model, device=args.device)
    segmenter = load_segmenter(args.segmenter, device=args.device) if args.predictions is None else None
    items = list_cases(args.images, mask_dir=args.masks) if args.masks else list_cases(args.images)
    contrast = resolve_contrast(items, options.contrast)
    with open_client(cluster) as client:
        if client is None:
            results = [quality_row(item, args, contrast, predictor, segmenter)
                       for item in progress(items, desc="quality")]
        else:
            shared = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})
            results = [r for part in map_chunks(client, quality_chunk, absolute(items), shared, contrast,
                                                image_limit_mb(), desc="quality") for r in part]
    rows = [row for row, _ in results]
    per_slice = {row["volume"]: slices for row, slices in results if slices is not None}
    return rows, per_slice


def quality_row(item, args: argparse.Namespace, contrast: str | None, predictor, segmenter) -> tuple[dict, dict | None]:
    """One case's row (predicted Dice, spread, true Dice with ground truth) and its per-slice breakdown (None
    without a tumour)."""
    from ..cases import options_from_args, read_case, target_mask
    from ..io import read_mask
    from ..quality import dice_score

    options = options_from_args(args)
    case = read_case(item.image).normalized()  # once, as the sweep and the Slicer module do
    volume = case.primary(contrast)
    mask = _judged_mask(case, args.predictions, segmenter)
    row = {"volume": item.name, "predicted_dice": None, "spread": None, "mask_voxels": int(mask.astype(bool).sum()),
           "slices": 0, "true_dice": None}
    slices = None
    if mask.any():
        scores = predictor.predict_slices(volume.array, mask, volume.spacing_zyx)
        row.update(predicted_dice=round(scores.volume_score(), 4), spread=round(scores.volume_spread(), 4),
                   slices=len(scores.index))
        slices = {"axis": scores.axis, "slice": scores.index.tolist(),
                  "predicted": np.round(scores.predicted, 4).tolist(), "area": scores.areas.tolist(),
                  "weight": np.round(scores.weights, 1).tolist()}
    if args.masks or (case.folder and item.mask is not None):
        if item.mask is None:
            from ..errors import InputError

            raise InputError(f"no ground-truth mask for {item.name} in {args.masks}", item.image)
        label = read_mask(item.mask, like=volume)
        truth = target_mask(label.array, options.target, options.convention, source=item.mask)
        row["true_dice"] = round(dice_score(mask, truth), 4)
    return row, slices


def quality_chunk(items: list, args: argparse.Namespace, contrast: str | None,
                  max_image_mb: float | None) -> list[tuple[dict, dict | None]]:
    """In a Dask worker: the quality rows of a chunk of cases, the models loaded once per worker process."""
    from ..cluster import prepare_worker, worker_cached
    from ..quality import load_predictor
    from ..segment import load_segmenter

    prepare_worker(max_image_mb)
    predictor = worker_cached("predictor", (str(args.model), args.device),
                              lambda: load_predictor(args.model, device=args.device))
    segmenter = None
    if args.predictions is None:
        trust = bool(getattr(args, "trust_bundle", False))
        segmenter = worker_cached("segmenter", (str(args.segmenter), args.device, trust),
                                  lambda: load_segmenter(args.segmenter, device=args.device, trust_bundle=trust))
    return [quality_row(item, args, contrast, predictor, segmenter) for item in items]


def run_quality(args: argparse.Namespace) -> int:
    """Write and print the quality table."""
    import csv
    import io
    import json

    from ..io import write_text
    from ..outputs import check_output_file

    out = args.out or args.images.resolve().parent / "quality.csv"
    inputs = [args.images, args.masks, args.predictions, _path_or_none(args.segmenter), args.model]
    for target in [out] + ([out.with_suffix(".slices.json")] if args.slices else []):
        check_output_file(target, inputs=inputs, overwrite=args.overwrite, option="--out")
    rows, per_slice = quality_rows(args)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["volume"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(out, buf.getvalue())
    if args.slices:
        write_text(out.with_suffix(".slices.json"), json.dumps(per_slice, indent=1))
    for row in rows:
        true = "" if row["true_dice"] is None else f"  true {row['true_dice']:.3f}"
        pred = "no tumour found" if row["predicted_dice"] is None else f"predicted {row['predicted_dice']:.3f} +- {row['spread']:.3f}"
        print(f"{row['volume']}: {pred}{true}")
    print(f"table -> {out}")
    return 0


def run_train_quality(args: argparse.Namespace) -> int:
    """Generate pairs, train, then measure on the held-out cohort and real MRI and draw the calibration plot."""
    import torch

    from ..outputs import check_output_file
    from ..quality.calibrate import CALIBRATION_SEED, calibrate_model, calibration_cohort
    from ..quality.dataset import build_quality_data
    from ..quality.evaluate import accuracy, calibration_plot
    from ..quality.heldout import cohort_heldout, real_heldout
    from ..quality.model import load_predictor
    from ..quality.train import train_quality
    from ..segment import load_segmenter
    from ..segment.train import cohort_cases

    for target in (args.out, args.out.with_name(args.out.stem + "_calibration.png")):
        check_output_file(target, inputs=[_path_or_none(args.segmenter)], overwrite=args.overwrite, option="--out")
    if args.threads:
        torch.set_num_threads(args.threads)
    segmenter = None if str(args.segmenter) == "none" else load_segmenter(args.segmenter, device=args.device)
    cases = cohort_cases(args.cases, args.seed)
    triples = [(im, m, (cases.pixel_mm,) * 3) for im, m in zip(cases.images, cases.masks, strict=True)]
    data = build_quality_data(triples, n_masks=args.masks, seed=args.seed, segmenter=segmenter)
    real_train, real_heldout_cases = _real_quality_cases(args)
    if real_train:
        from ..quality.realpairs import merge, real_quality_data

        data = merge(data, real_quality_data(real_train, seed=args.seed, segmenter=segmenter))
    print(f"{len(data)} training pairs ({sum(len(t) for t in data.targets)} slices)", flush=True)
    path, losses = train_quality(args.out, data, steps=args.steps, batch=args.batch, seed=args.seed,
                                 command=_command_line(), device=args.device, on_log=_log_every(500),
                                 jitter=args.image_jitter, target=args.target, init=args.init)
    if args.calibration_cases:
        fit = calibrate_model(load_predictor(path, device=args.device),
                              calibration_cohort(args.calibration_cases, segmenter=segmenter))
        _print_fit(fit, args.calibration_cases, CALIBRATION_SEED)
    predictor = load_predictor(path, device=args.device)
    results = {"held-out demo cohort": accuracy(predictor, cohort_heldout(args.heldout_cases, segmenter=segmenter)),
               "real MRI, perturbed masks": accuracy(predictor, real_heldout())}
    if real_heldout_cases:
        from ..quality.realpairs import real_quality_data

        for case in real_heldout_cases:
            pairs = real_quality_data([case], seed=args.seed, segmenter=segmenter, show_progress=False)
            results[f"held-out real case {case.name}"] = accuracy(predictor, pairs)
    plot = calibration_plot(results, path.with_name(path.stem + "_calibration.png"))
    print(f"quality model -> {path} ({len(data)} pairs, final loss {losses[-1]:.4f}); calibration -> {plot}")
    for name, acc in results.items():
        print(f"  {name}: {acc.summary()}")
    return 0


def _real_quality_cases(args: argparse.Namespace) -> tuple[list, list]:
    """The real training and held-out cases of ``--data`` / ``--holdout`` (both empty without ``--data``)."""
    from ..errors import ParameterError
    from ..segment.realdata import load_real_case
    from ..segment.train import training_case_folders

    if args.data is None:
        return [], []
    folders = training_case_folders(args.data)
    holdout = {h for h in args.holdout.split(",") if h}
    unknown = sorted(holdout - {f.name for f in folders})
    if unknown:
        raise ParameterError(f"--holdout names no case folder of {args.data}: {', '.join(unknown)}")
    cases = [load_real_case(f) for f in folders]
    return [c for c in cases if c.name not in holdout], [c for c in cases if c.name in holdout]


def _print_fit(fit, cases: int, seed: int) -> None:
    print(f"recalibration on {fit.pairs} pairs of {cases} cases (seed {seed}): true = {fit.intercept:.3f} + "
          f"{fit.slope:.3f} * predicted; MAE there {fit.mae_before:.3f} -> {fit.mae_after:.3f}", flush=True)


def _check_calibration_output(args: argparse.Namespace) -> None:
    """Recalibrating MODEL in place replaces an input: only with ``--overwrite``; another ``--out`` as any output."""
    from ..errors import OutputError
    from ..outputs import check_output_file

    in_place = args.out is None or (args.out.exists() and args.model.exists() and args.out.samefile(args.model))
    if in_place and not args.overwrite:
        raise OutputError(f"calibrate-quality would replace the model {args.model}: pass --overwrite, or --out FILE")
    if not in_place:
        check_output_file(args.out, inputs=[args.model, _path_or_none(args.segmenter)], overwrite=args.overwrite,
                          option="--out")


def run_calibrate_quality(args: argparse.Namespace) -> int:
    """Fit and store the recalibration of an existing quality model."""
    from ..quality.calibrate import calibrate_model, calibration_cohort, check_cases
    from ..quality.model import load_predictor
    from ..segment import load_segmenter

    check_cases(args.cases)
    predictor = load_predictor(args.model, device=args.device)  # a bad file fails before the cohort is built
    _check_calibration_output(args)
    segmenter = None if str(args.segmenter) == "none" else load_segmenter(args.segmenter, device=args.device)
    fit = calibrate_model(predictor, calibration_cohort(args.cases, seed=args.seed, segmenter=segmenter),
                          out=args.out, seed=args.seed)
    _print_fit(fit, args.cases, args.seed)
    print(f"calibrated model -> {args.out or args.model}")
    return 0
