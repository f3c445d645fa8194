"""``genmedeval train-generator`` and ``generate``: the 2D generative models of Phase 2."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from . import add_execution_options, at_least

ORDER = 45


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-generator`` and ``generate``."""
    from ..cases import add_case_arguments
    from ..generate.train import KINDS

    p = sub.add_parser("train-generator", help="train a VAE, GAN or diffusion model (or build the memoriser) on "
                       "axial slices with their tumour masks",
                       description="Train a 2D generator of 64 x 64 axial slices (each slice squared as the encoders see "
                       "it, then downsampled) with the tumour mask as a second channel, on every case of --data (volume files or case "
                       "folders; --split picks one split of its cohort.csv). The memoriser stores training slices "
                       "and returns them with imperceptible noise: the failure AuthPct and the CT score catch.")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--data", type=Path, required=True, help="folder of cases with tumour labels")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    p.add_argument("--split", default=None, help="train on this split of the folder's cohort.csv only (e.g. train)")
    p.add_argument("--steps", type=at_least(1), default=None, help="optimiser steps (default: the shipped model's)")
    p.add_argument("--batch", type=at_least(2), default=None, help="batch size (default: the shipped model's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the shipped model's)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--init", type=Path, default=None,
                   help="continue training a diffusion model from this ddpm checkpoint (fresh optimiser)")
    add_execution_options(p, trust=False, overwrite="replace an existing checkpoint")
    add_case_arguments(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("generate", help="write N generated slices (image and tumour mask) as NIfTI",
                       description="Sample a shipped generator (vae, gan, ddpm, memoriser) or a checkpoint file and "
                       "write OUT_DIR/sample_NNNN.nii.gz with OUT_DIR/sample_NNNN_mask.nii.gz (one-slice axial "
                       "volumes whose pixel size is the training data's) and generated.json. The same --seed gives the same files.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--kind", required=True, help="vae, gan, ddpm, memoriser, or a generator checkpoint file")
    p.add_argument("--n", type=at_least(1), default=64, help="number of samples (default 64)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--steps", type=at_least(1), default=None,
                   help="DDIM sampling steps of a diffusion model (default 30; ignored by other kinds)")
    p.add_argument("--eta", type=float, default=None,
                   help="DDIM noise scale in [0, 1] (default 0.5; 0: the deterministic trajectory, whose errors "
                   "accumulate into grey, speckled samples with the shipped model; 1: the DDPM posterior's noise, "
                   "which washes out its small tumour masks); the noise is seeded")
    add_execution_options(p, trust=False, overwrite="replace an output folder GenMedEval wrote before")
    p.set_defaults(func=run_generate)


def _command_line() -> str:
    return "genmedeval " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run_train(args: argparse.Namespace) -> int:
    """Read the training slices, train, write the checkpoint; print what was learnt from what."""
    from ..cases import options_from_args
    from ..generate.model import pick_device, read_checkpoint, save_checkpoint
    from ..generate.slices import training_slices
    from ..generate.train import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_STEPS, TrainSettings, train_generator
    from ..outputs import check_output_file
    from ..progress import StepBar

    check_output_file(args.out, inputs=[args.data, args.init], overwrite=args.overwrite, option="--out")
    kind = args.kind
    init = read_checkpoint(args.init) if args.init is not None else None
    settings = TrainSettings(steps=args.steps or DEFAULT_STEPS[kind], batch=args.batch or DEFAULT_BATCH[kind],
                             lr=args.lr if args.lr is not None else DEFAULT_LR[kind], seed=args.seed)
    options = options_from_args(args)
    data = training_slices(args.data, split=args.split, contrast=options.contrast, target=options.target,
                           convention=options.convention, show_progress=True)
    total = settings.steps if kind != "memoriser" else 1
    with StepBar(total, desc=f"training {kind}") as tick:
        checkpoint = train_generator(kind, data, settings, device=pick_device(args.device), report=tick, init=init)
    checkpoint["meta"]["command"] = _command_line()
    checkpoint["meta"]["data"] = str(args.data) + (f" (split {args.split})" if args.split else "")
    path = save_checkpoint(checkpoint, args.out, fov_mm=data.fov_mm)
    meta = checkpoint["meta"]
    print(f"{kind} -> {path}: {meta['training_slices']} slices of {len(meta['training_cases'])} cases "
          f"({meta['training_tumour_fraction']:.0%} with tumour), {meta['steps']} steps in {meta['seconds']:.0f} s"
          + (f", final loss {meta['final_loss']:.4f}" if meta.get("final_loss") is not None else ""))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """Sample and write the samples atomically; print where."""
    from ..generate.model import DEFAULT_DDIM_ETA, DEFAULT_DDIM_STEPS, check_eta, resolve_generator
    from ..generate.write import write_samples

    eta = check_eta(DEFAULT_DDIM_ETA if args.eta is None else args.eta)  # before the checkpoint is read
    generator = resolve_generator(args.kind, device=args.device)
    steps = args.steps or DEFAULT_DDIM_STEPS
    out = write_samples(generator, args.out_dir, n=args.n, seed=args.seed, steps=steps, eta=eta,
                        overwrite=args.overwrite)
    extra = f", {steps} DDIM steps, eta {eta:g}" if generator.kind == "ddpm" else ""
    print(f"{args.n} {generator.kind} samples (seed {args.seed}{extra}) -> {out}")
    return 0
