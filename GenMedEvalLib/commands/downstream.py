"""``genmedeval segment``, ``train-segmenter``, ``quality`` and ``train-quality``: the downstream half."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    """Add the downstream commands."""
    p = sub.add_parser("segment", help="segment every volume of a folder (tumour masks, same geometry)",
                       description="Run a segmenter on each volume in IN_DIR and write its mask to OUT_DIR under the "
                       "same file name. --model: a GenMedEval checkpoint, a TorchScript file or a MONAI bundle folder.")
    p.add_argument("in_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--model", type=Path, default=None, help="segmenter (default: the shipped U-Net)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_segment)

    p = sub.add_parser("train-segmenter", help="train the built-in slice-wise U-Net on generated cohort cases")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (e.g. Resources/Models/segmenter.pt)")
    p.add_argument("--cases", type=int, default=120, help="cohort cases to generate for training (default 120)")
    p.add_argument("--seed", type=int, default=1, help="seed of the training cases and of training (default 1)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--validation-cases", type=int, default=8,
                   help="cases (seed + 2) on which the probability threshold is tuned (default 8)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_train_segmenter)

    p = sub.add_parser("quality", help="predicted Dice of segmentations without ground truth (EvaNySeg score)",
                       description="For every volume in --images: segment it (or take its mask from --predictions), "
                       "predict the segmentation's Dice from image and mask alone, and, when --masks holds ground "
                       "truth, compute the true Dice. Writes a CSV table (and prints it).")
    p.add_argument("--images", type=Path, required=True, help="folder of volumes")
    p.add_argument("--masks", type=Path, default=None, help="ground-truth masks (same file names): adds the true Dice")
    p.add_argument("--predictions", type=Path, default=None,
                   help="segmentations to judge (same file names); default: run the segmenter")
    p.add_argument("--segmenter", type=Path, default=None, help="segmenter (default: the shipped U-Net)")
    p.add_argument("--model", type=Path, default=None, help="quality model (default: the shipped one)")
    p.add_argument("--out", type=Path, default=None, help="CSV to write (default IMAGES/../quality.csv)")
    p.add_argument("--slices", action="store_true", help="also write the per-slice breakdown as JSON beside the CSV")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_quality)

    p = sub.add_parser("train-quality", help="train the quality predictor on generated cases and measure it")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (e.g. Resources/Models/quality.pt)")
    p.add_argument("--cases", type=int, default=80, help="cohort cases to generate (default 80)")
    p.add_argument("--masks", type=int, default=16, help="perturbed masks per case (default 16)")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--segmenter", type=Path, default=None, help="segmenter whose predictions join the training pairs "
                   "(default: the shipped one; 'none' to skip)")
    p.add_argument("--heldout-cases", type=int, default=8, help="demo-cohort cases for the accuracy report")
    p.add_argument("--target", choices=("dice_share", "dice", "split"), default="dice_share",
                   help="slice targets: Dice and share |P|/(|P|+|G|) (default; the share weights the volume average), "
                        "Dice alone (mask-area weights), or precision and share")
    p.add_argument("--image-jitter", choices=("full", "gamma"), default="full",
                   help="image-channel augmentation: gamma + noise, and with 'full' also contrast and blur")
    p.add_argument("--calibration-cases", type=int, default=0,
                   help="fit a linear recalibration of the volume score on this many cohort cases of seed 3 "
                   "(default 0: none)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_train_quality)

    p = sub.add_parser("calibrate-quality", help="fit a quality model's linear recalibration on unseen cases",
                       description="Predict the Dice of perturbed masks and segmenter outputs on --cases cohort cases "
                       "drawn with --seed, fit true = a + b * predicted, and write the model with that line.")
    p.add_argument("model", type=Path, help="quality model file")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: replace MODEL)")
    p.add_argument("--cases", type=int, default=16)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--segmenter", type=Path, default=None, help="segmenter whose predictions join the pairs")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run_calibrate_quality)


def _log_every(interval: int):
    """A training callback that prints the running loss every ``interval`` steps (for logs of long runs)."""
    def log(step: int, loss: float) -> None:
        if step % interval == 0:
            print(f"step {step}: loss {loss:.4f}", flush=True)
    return log


def _command_line() -> str:
    return "genmedeval " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run_segment(args: argparse.Namespace) -> int:
    """Masks for a folder, written atomically beside nothing else."""
    from ..io import read_cohort, read_volume, write_volume
    from ..progress import progress
    from ..segment import load_segmenter, segment_volume

    model = load_segmenter(args.model, device=args.device)  # a bad model fails before any output exists
    items = read_cohort(args.in_dir)
    for item in progress(items, desc="segmenting"):
        volume = read_volume(item.image)
        write_volume(volume, args.out_dir / item.image.name, segment_volume(volume, model))
    print(f"{len(items)} masks -> {args.out_dir}")
    return 0


def run_train_segmenter(args: argparse.Namespace) -> int:
    """Generate cases, train, save; print where and how long."""
    import torch

    from ..segment.train import cohort_cases, train_segmenter

    if args.threads:
        torch.set_num_threads(args.threads)
    cases = cohort_cases(args.cases, args.seed)
    validation = cohort_cases(args.validation_cases, args.seed + 2)
    path, log = train_segmenter(args.out, cases=cases, steps=args.steps, batch=args.batch, seed=args.seed,
                                command=_command_line(), device=args.device, validation=validation,
                                on_step=_log_every(500))
    print(f"segmenter -> {path} ({log.seconds:.0f} s, final loss {log.losses[-1]:.3f}); threshold tuned on "
          f"{args.validation_cases} validation cases (seed {args.seed + 2})")
    return 0


def _judged_mask(item, volume, predictions: Path | None, segmenter):
    """The segmentation to judge: from ``--predictions`` (same file name) or from the segmenter."""
    from ..errors import InputError
    from ..io import read_mask

    if predictions is None:
        return segmenter.segment(volume.array, volume.spacing_zyx)
    path = predictions / item.image.name
    if not path.is_file():
        raise InputError(f"no segmentation named {item.image.name} in {predictions}", path)
    return read_mask(path, like=volume).array


def quality_rows(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """One row per volume: predicted Dice, its spread, true Dice when ground truth is given."""
    from ..io import read_cohort, read_mask, read_volume
    from ..progress import progress
    from ..quality import dice_score, load_predictor
    from ..segment import load_segmenter

    predictor = load_predictor(args.model, device=args.device)
    segmenter = load_segmenter(args.segmenter, device=args.device) if args.predictions is None else None
    items = read_cohort(args.images, mask_dir=args.masks) if args.masks else read_cohort(args.images)
    rows, per_slice = [], {}
    for item in progress(items, desc="quality"):
        volume = read_volume(item.image)
        mask = _judged_mask(item, volume, args.predictions, segmenter)
        row = {"volume": item.name, "predicted_dice": None, "spread": None, "mask_voxels": int(mask.astype(bool).sum()),
               "slices": 0, "true_dice": None}
        if mask.any():
            scores = predictor.predict_slices(volume.array, mask, volume.spacing_zyx)
            row.update(predicted_dice=round(scores.volume_score(), 4), spread=round(scores.volume_spread(), 4),
                       slices=len(scores.index))
            per_slice[item.name] = {"axis": scores.axis, "slice": scores.index.tolist(),
                                    "predicted": np.round(scores.predicted, 4).tolist(), "area": scores.areas.tolist(),
                                    "weight": np.round(scores.weights, 1).tolist()}
        if args.masks:
            if item.mask is None:
                from ..errors import InputError

                raise InputError(f"no ground-truth mask for {item.name} in {args.masks}", item.image)
            row["true_dice"] = round(dice_score(mask, read_mask(item.mask, like=volume).array), 4)
        rows.append(row)
    return rows, per_slice


def run_quality(args: argparse.Namespace) -> int:
    """Write and print the quality table."""
    import csv
    import io
    import json

    from ..io import write_text

    rows, per_slice = quality_rows(args)
    out = args.out or args.images.resolve().parent / "quality.csv"
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

    from ..quality.calibrate import CALIBRATION_SEED, calibrate_model, calibration_cohort
    from ..quality.dataset import build_quality_data
    from ..quality.evaluate import accuracy, calibration_plot
    from ..quality.heldout import cohort_heldout, real_heldout
    from ..quality.model import load_predictor
    from ..quality.train import train_quality
    from ..segment import load_segmenter
    from ..segment.train import cohort_cases

    if args.threads:
        torch.set_num_threads(args.threads)
    segmenter = None if str(args.segmenter) == "none" else load_segmenter(args.segmenter, device=args.device)
    cases = cohort_cases(args.cases, args.seed)
    triples = [(im, m, (cases.pixel_mm,) * 3) for im, m in zip(cases.images, cases.masks, strict=True)]
    data = build_quality_data(triples, n_masks=args.masks, seed=args.seed, segmenter=segmenter)
    print(f"{len(data)} training pairs ({sum(len(t) for t in data.targets)} slices)", flush=True)
    path, losses = train_quality(args.out, data, steps=args.steps, batch=args.batch, seed=args.seed,
                                 command=_command_line(), device=args.device, on_log=_log_every(500),
                                 jitter=args.image_jitter, target=args.target)
    if args.calibration_cases:
        fit = calibrate_model(load_predictor(path, device=args.device),
                              calibration_cohort(args.calibration_cases, segmenter=segmenter))
        _print_fit(fit, args.calibration_cases, CALIBRATION_SEED)
    predictor = load_predictor(path, device=args.device)
    results = {"held-out demo cohort": accuracy(predictor, cohort_heldout(args.heldout_cases, segmenter=segmenter)),
               "real MRI, perturbed masks": accuracy(predictor, real_heldout())}
    plot = calibration_plot(results, path.with_name(path.stem + "_calibration.png"))
    print(f"quality model -> {path} ({len(data)} pairs, final loss {losses[-1]:.4f}); calibration -> {plot}")
    for name, acc in results.items():
        print(f"  {name}: {acc.summary()}")
    return 0


def _print_fit(fit, cases: int, seed: int) -> None:
    print(f"recalibration on {fit.pairs} pairs of {cases} cases (seed {seed}): true = {fit.intercept:.3f} + "
          f"{fit.slope:.3f} * predicted; MAE there {fit.mae_before:.3f} -> {fit.mae_after:.3f}", flush=True)


def run_calibrate_quality(args: argparse.Namespace) -> int:
    """Fit and store the recalibration of an existing quality model."""
    from ..quality.calibrate import calibrate_model, calibration_cohort, check_cases
    from ..quality.model import load_predictor
    from ..segment import load_segmenter

    check_cases(args.cases)
    predictor = load_predictor(args.model, device=args.device)  # a bad file fails before the cohort is built
    segmenter = None if str(args.segmenter) == "none" else load_segmenter(args.segmenter, device=args.device)
    fit = calibrate_model(predictor, calibration_cohort(args.cases, seed=args.seed, segmenter=segmenter),
                          out=args.out, seed=args.seed)
    _print_fit(fit, args.cases, args.seed)
    print(f"calibrated model -> {args.out or args.model}")
    return 0
