"""``genmedeval train-quality``: fit the quality network to slice targets with MSE.

Targets (``model.TARGETS``): ``dice`` the slice's Dice; ``split`` the slice's precision and share,
from which the volume Dice follows exactly; ``dice_share`` (default) the slice's Dice and share (the
share gives the exact weights of the slice-to-volume average).

Slices are drawn with weights inversely proportional to how common their Dice decile is, so the
network sees bad and good masks equally often; crops are flipped at random (the predictor averages
the same flips at test time) and the image channel gets a random gamma and light noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..progress import progress
from .dataset import QualityData
from .model import TARGETS, build_regressor, save_checkpoint


def balanced_weights(targets: np.ndarray, bins: int = 10) -> np.ndarray:
    """Sampling probabilities that give every Dice decile the same total weight."""
    which = np.minimum((np.clip(targets, 0, 1) * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins).astype(float)
    weights = 1.0 / counts[which]
    return weights / weights.sum()


def _flip(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal/vertical flips of a batch ``(B, C, H, W)``."""
    if rng.random() < 0.5:
        batch = batch[..., ::-1]
    if rng.random() < 0.5:
        batch = batch[..., ::-1, :]
    return np.ascontiguousarray(batch)


JITTERS = ("full", "gamma")


def _jitter_image(batch: np.ndarray, rng: np.random.Generator, jitter: str = "full") -> np.ndarray:
    """Per-crop gamma (0.6-1.6) and light noise on the image channel; ``full`` adds contrast (0.5-1.2) and blur.

    Scanners and tumours differ in contrast and sharpness; the mask's fit is what must be learned.
    """
    from scipy import ndimage

    n = len(batch)
    image = np.clip(batch[:, 0], 0.0, 1.0) ** rng.uniform(0.6, 1.6, size=(n, 1, 1))
    if jitter == "full":
        mean = image.mean(axis=(1, 2), keepdims=True)
        image = mean + (image - mean) * rng.uniform(0.5, 1.2, size=(n, 1, 1))
        for i in np.nonzero(rng.random(n) < 0.5)[0]:
            image[i] = ndimage.gaussian_filter(image[i], float(rng.uniform(0.3, 1.5)))
    batch[:, 0] = image + rng.normal(0.0, 0.03, image.shape) * rng.random((n, 1, 1))
    return batch


def _load_init(net, init: str | Path, target: str) -> str:
    """Copy ``init``'s weights into ``net`` (same target); returns the file's SHA-256 for the metadata."""
    from ..errors import InputError
    from ..features.weights import sha256_file
    from .model import load_predictor

    start = load_predictor(init, device="cpu")
    if start.target != target:
        raise InputError(f"--init has target {start.target!r}, training asks for {target!r}", init)
    net.load_state_dict(start.net.state_dict())
    return sha256_file(init)


def training_targets(data: QualityData, target: str) -> np.ndarray:
    """Per-slice regression targets ``(N, K)`` for ``target``, in the order of ``data.slices()``."""
    dice = np.concatenate(data.targets)[:, None]
    if target == "dice":
        return dice
    split = data.split_slices()
    return split if target == "split" else np.concatenate([dice, split[:, 1:]], axis=1)


def train_quality(out: str | Path, data: QualityData, *, steps: int = 3000, batch: int = 64, lr: float = 2e-3,
                  seed: int = 2, size: int = 64, margin: float = 0.5, min_mm: float = 16.0, command: str = "",
                  jitter: str = "full", target: str = "dice_share", init: str | Path | None = None,
                  device: str | None = None, on_log: Callable[[int, float], None] | None = None) -> tuple[Path, list[float]]:
    """Train for ``steps`` batches on ``data``'s slices and save the predictor to ``out``.

    ``init``: a quality model of the same target whose weights training starts from (fine-tuning).
    """
    import torch

    from ..features.base import pick_device

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = pick_device(device)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, got {target!r}")
    inputs, dice = data.slices()
    targets = training_targets(data, target)
    probs = balanced_weights(dice)
    net = build_regressor({"outputs": TARGETS[target]})
    init_digest = _load_init(net, init, target) if init is not None else None
    net = net.to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    losses, running, start = [], [], time.perf_counter()
    net.train()
    for step in progress(range(steps), desc="train-quality"):
        rows = rng.choice(len(targets), size=batch, p=probs)
        x = torch.from_numpy(_flip(_jitter_image(inputs[rows].astype(np.float32), rng, jitter), rng)).to(dev)
        y = torch.from_numpy(targets[rows]).to(dev)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            losses.append(float(np.mean(running)))
            running = []
            if on_log is not None:
                on_log(step + 1, losses[-1])
    meta = {"command": command, "seed": seed, "steps": steps, "batch": batch, "lr": lr, "jitter": jitter,
            "target": target, "pairs": len(data), "init": init_digest,
            "slices": int(len(targets)), "train_seconds": round(time.perf_counter() - start, 1),
            "final_loss": losses[-1]}
    net.eval()
    path = save_checkpoint(net.cpu(), out, size=size, margin=margin, min_mm=min_mm, meta=meta,
                           arch={"target": target})
    return path, losses
