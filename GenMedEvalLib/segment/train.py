"""``genmedeval train-segmenter``: train the built-in slice-wise U-Net on demo-cohort cases.

Training cases come from the cohort generator with their own seed (default 1), so the demo cohort
(seed 0) stays held out. Slices are drawn 60 % from tumour slices and 40 % from any brain slice,
given a bright skull-like shell half the time (clinical MRI is not skull-stripped), randomly cropped
to ``roi`` pixels, flipped, gamma-adjusted and lightly noised; loss Dice (over the batch) + BCE.
Noise augmentation stays mild on purpose: the study measures how much noise hurts segmentation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..progress import progress


@dataclass
class TrainingCases:
    """Normalised images and masks ``(N, Z, Y, X)`` at ``pixel_mm`` isotropic spacing."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    pixel_mm: float


@dataclass
class TrainingLog:
    """Loss per logging interval and the wall time, for the model file's metadata."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def cohort_cases(n: int, seed: int, pixel_mm: float = 2.0, *, show_progress: bool = True) -> TrainingCases:
    """``n`` freshly generated cohort cases (tumour-free ones included: they teach silence)."""
    from ..cohort.build import make_case
    from ..io import normalize_intensity

    images, masks = [], []
    for i in progress(range(n), desc="training cases", enable=None if show_progress else False):
        image, mask, _, _ = make_case(i, seed, pixel_mm)
        images.append(normalize_intensity(image).astype(np.float32))
        masks.append(mask.astype(np.uint8))
    return TrainingCases(images, masks, pixel_mm)


def _slice_index(cases: TrainingCases) -> tuple[np.ndarray, np.ndarray]:
    """(case, z) of every tumour slice, and of every slice with brain."""
    tumour, brain = [], []
    for c, (image, mask) in enumerate(zip(cases.images, cases.masks, strict=True)):
        for z in np.nonzero(mask.any(axis=(1, 2)))[0]:
            tumour.append((c, z))
        for z in np.nonzero((image > 0.05).mean(axis=(1, 2)) > 0.02)[0]:
            brain.append((c, z))
    return np.asarray(tumour).reshape(-1, 2), np.asarray(brain).reshape(-1, 2)


def _crop(image: np.ndarray, mask: np.ndarray, roi: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``roi`` x ``roi`` window (zero-padded when the slice is smaller)."""
    pad = [(0, max(0, roi - n)) for n in image.shape]
    image, mask = np.pad(image, pad), np.pad(mask, pad)
    y = rng.integers(0, image.shape[0] - roi + 1)
    x = rng.integers(0, image.shape[1] - roi + 1)
    return image[y:y + roi, x:x + roi], mask[y:y + roi, x:x + roi]


def add_skull(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint a bright, textured shell around the tissue: clinical MRI keeps skull and fat, the cohort does not."""
    from scipy import ndimage

    tissue = image > 0.05
    if not tissue.any():
        return image
    inner = ndimage.binary_dilation(tissue, iterations=int(rng.integers(1, 4)))
    outer = ndimage.binary_dilation(inner, iterations=int(rng.integers(2, 6)))
    shell = outer & ~inner
    out = image.copy()
    out[shell] = rng.uniform(0.5, 1.0) * (1.0 + 0.15 * rng.standard_normal(int(shell.sum())))
    return out


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma 0.7-1.5, contrast/brightness jitter, Gaussian noise up to 0.02."""
    out = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.5)
    out = out * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    return (out + rng.normal(0, rng.uniform(0, 0.02), out.shape)).astype(np.float32)


def sample_batch(cases: TrainingCases, index: tuple[np.ndarray, np.ndarray], batch: int, roi: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A training batch ``(B, 1, roi, roi)`` of images and masks."""
    tumour, brain = index
    images, masks = [], []
    for _ in range(batch):
        pool = tumour if (len(tumour) and rng.random() < 0.6) else brain
        c, z = pool[rng.integers(len(pool))]
        image = cases.images[c][z]
        if rng.random() < 0.5:
            image = add_skull(image, rng)
        image, mask = _crop(image, cases.masks[c][z], roi, rng)
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if rng.random() < 0.5:
            image, mask = image[::-1], mask[::-1]
        images.append(_augment(image, rng))
        masks.append(mask.astype(np.float32))
    return np.stack(images)[:, None], np.stack(masks)[:, None]


THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def tune_threshold(segmenter, validation: TrainingCases) -> tuple[float, float]:
    """The probability threshold with the best mean Dice on ``validation``'s tumour cases: (threshold, Dice)."""
    from ..quality.dice import dice_score

    spacing = (validation.pixel_mm,) * 3
    table = [[dice_score(prob >= t, mask) for t in THRESHOLDS]
             for image, mask in zip(validation.images, validation.masks, strict=True) if mask.any()
             for prob in [segmenter.probabilities(image, spacing)]]
    means = np.mean(table, axis=0)
    best = int(np.argmax(means))
    return THRESHOLDS[best], float(means[best])


def train_segmenter(out: str | Path, *, cases: TrainingCases, steps: int = 2000, batch: int = 16, roi: int = 96,
                    lr: float = 1e-3, seed: int = 1, command: str = "", device: str | None = None,
                    validation: TrainingCases | None = None,
                    on_step: Callable[[int, float], None] | None = None) -> tuple[Path, TrainingLog]:
    """Train the U-Net for ``steps`` batches and save it with its recipe to ``out``."""
    import torch
    from monai.losses import DiceCELoss

    from ..features.base import pick_device
    from .builtin import build_unet, save_checkpoint

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = pick_device(device)
    net = build_unet().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    loss_fn = DiceCELoss(sigmoid=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)
    index = _slice_index(cases)
    log, running, start = TrainingLog(), [], time.perf_counter()
    net.train()
    for step in progress(range(steps), desc="train-segmenter"):
        x, y = sample_batch(cases, index, batch, roi, rng)
        x, y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.losses.append(float(np.mean(running)))
            running = []
            if on_step is not None:
                on_step(step + 1, log.losses[-1])
    log.seconds = time.perf_counter() - start
    meta = {"command": command, "seed": seed, "steps": steps, "batch": batch, "lr": lr,
            "cases": len(cases.images), "train_seconds": round(log.seconds, 1), "final_loss": log.losses[-1]}
    net.eval()
    threshold = 0.5
    if validation is not None:
        from .builtin import SliceUNetSegmenter

        probe = SliceUNetSegmenter({"arch": None, "pixel_mm": cases.pixel_mm, "roi": roi,
                                    "state_dict": net.cpu().state_dict()}, device="cpu")
        threshold, meta["validation_dice"] = tune_threshold(probe, validation)
        meta["validation_cases"] = len(validation.images)
    return save_checkpoint(net.cpu(), out, pixel_mm=cases.pixel_mm, roi=roi, meta=meta, threshold=threshold), log
