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
from .builtin import ANY_CONTRAST


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


@dataclass
class SliceMixture:
    """Where training slices come from: real cases, domain-randomised synthetic slices, cohort cases.

    ``contrasts``: the channels the real slices hold, in order (``ANY_CONTRAST``: every contrast of
    each case). ``build_pool`` draws from all three sources.
    """

    real: list = field(default_factory=list)
    cohort: TrainingCases | None = None
    contrasts: tuple[str, ...] = ANY_CONTRAST
    pixel_mm: float = 2.0

    @property
    def channels(self) -> int:
        """Channels of a real slice: one per named contrast (1 for ``ANY_CONTRAST``)."""
        return 1 if self.contrasts == ANY_CONTRAST else len(self.contrasts)


@dataclass
class SlicePool:
    """Pre-drawn augmented slices per source, reused across training runs (folds, models).

    Drawing a domain-randomised slice costs 10-20 ms; a training step of the U-Net about as much
    as 16 of them. Drawing every source once into a pool and sampling batches from it (with fresh
    flips, quarter turns and gamma) makes a leave-one-case-out study affordable on two cores.
    ``images[source]``: ``(N, C, roi, roi)`` float16; ``masks[source]``: ``(N, roi, roi)`` uint8; real
    cases are sources of their own (``real:NAME``) so a fold can leave one out.
    """

    images: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    contrasts: tuple[str, ...]
    pixel_mm: float = 2.0

    def save(self, path: str | Path) -> Path:
        """Write the pool as one ``.npz`` (atomic)."""
        from ..io import atomic_path

        arrays = {f"img|{k}": v for k, v in self.images.items()} | {f"msk|{k}": v for k, v in self.masks.items()}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, contrasts=np.array(self.contrasts), pixel_mm=self.pixel_mm, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SlicePool:
        """Read a pool written by ``save``."""
        with np.load(path) as data:
            images = {k[4:]: data[k] for k in data.files if k.startswith("img|")}
            masks = {k[4:]: data[k] for k in data.files if k.startswith("msk|")}
            return cls(images, masks, tuple(str(c) for c in data["contrasts"]), float(data["pixel_mm"]))


def build_pool(mixture: SliceMixture, *, per_case: int, synth: int, cohort: int, roi: int, seed: int,
               show_progress: bool = True) -> SlicePool:
    """Draw every source of ``mixture`` into a ``SlicePool`` (two channels of independent synthetic contrasts)."""
    from .realdata import real_slice
    from .synth import synth_slice

    rng = np.random.default_rng(seed)
    images: dict[str, list] = {}
    masks: dict[str, list] = {}
    jobs = [(f"real:{c.name}", per_case) for c in mixture.real] + [("synth", synth)]
    if mixture.cohort is not None:
        jobs.append(("cohort", cohort))
    cohort_index = _slice_index(mixture.cohort) if mixture.cohort is not None else None
    cases = {f"real:{c.name}": c for c in mixture.real}
    channels = max(len(mixture.contrasts), 2) if mixture.contrasts != ANY_CONTRAST else 2
    for source, n in jobs:
        for _ in progress(range(n), desc=f"pool {source}", enable=None if show_progress else False):
            if source in cases:
                x, y = real_slice(cases[source], rng, mixture.contrasts if mixture.channels > 1
                                  else tuple(cases[source].contrasts), roi, mixture.pixel_mm)
            elif source == "synth":
                x, y = synth_slice(rng, channels, roi, mixture.pixel_mm)
            else:
                xb, yb = sample_batch(mixture.cohort, cohort_index, 1, roi, rng)  # type: ignore[arg-type]
                x, y = np.repeat(xb[0], channels, axis=0), yb[0, 0]
            images.setdefault(source, []).append(x.astype(np.float16))
            masks.setdefault(source, []).append(y.astype(np.uint8))
    return SlicePool({k: np.stack(v) for k, v in images.items()}, {k: np.stack(v) for k, v in masks.items()},
                     mixture.contrasts, mixture.pixel_mm)


def cut_field_of_view(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blank everything beyond a random straight line (image and label): scans whose field of view
    cuts through the head (one BraTS case holds one hemisphere) otherwise look like nothing seen in training."""
    size = mask.shape[-1]
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.indices(mask.shape) - (size - 1) / 2
    cut = yy * np.cos(angle) + xx * np.sin(angle) > rng.uniform(-0.2, 0.3) * size
    return np.where(cut, 0, image), np.where(cut, 0, mask)


def reclip_ceiling(image: np.ndarray, probability: float, rng: np.random.Generator,
                   low: float = 0.6) -> np.ndarray:
    """``(C, H, W)`` slices whose channels, each with ``probability``, are clipped at a ceiling drawn from
    U(``low``, 1) and rescaled to [0, 1].

    Why: the 1st-99th percentile normalisation (SPEC 1) clips at the volume's 99th percentile. In a
    skull-stripped BraTS volume that lies in the top few per cent of the brain (pat0005: ~6 %); when the
    tumour is a small share of the brain, that ceiling falls in normal tissue, which then saturates with the
    tumour (pat0005's FLAIR: 55 % of its saturated voxels are normal tissue, 2-5 % in the other three
    cases). This draws such ceilings.
    """
    if probability <= 0:
        return image
    out = image.copy()
    for c in range(out.shape[0]):
        if rng.random() < probability:
            ceiling = rng.uniform(low, 1.0)
            out[c] = np.minimum(out[c], ceiling) / ceiling
    return out


@dataclass
class PoolSampler:
    """Batches from a ``SlicePool``: sources weighted, a random channel for one-channel models, flips, gamma,
    with probability ``fov_cut`` a field of view cut by a straight line (``cut_field_of_view``), and with
    probability ``reclip`` per channel a lower intensity ceiling (``reclip_ceiling``)."""

    pool: SlicePool
    channels: int
    weights: dict[str, float]
    pixel_mm: float = 2.0
    fov_cut: float = 0.3
    reclip: float = 0.0
    channel: int | None = None  # a one-channel model of one named contrast: its index in the pool's channels

    @property
    def contrasts(self) -> tuple[str, ...]:
        """The checkpoint's contrasts: the pool's for a multi-channel model, the named one or any for one channel."""
        if self.channels > 1:
            return self.pool.contrasts
        return ANY_CONTRAST if self.channel is None else (self.pool.contrasts[self.channel],)

    def describe(self) -> dict:
        """Sources and weights, for the checkpoint's metadata."""
        return {"sources": {k: int(len(v)) for k, v in self.pool.images.items() if k in self.weights},
                "weights": self.weights, "contrasts": list(self.contrasts), "fov_cut": self.fov_cut,
                "reclip": self.reclip}

    def batch(self, size: int, roi: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(B, C, roi, roi)`` images and ``(B, 1, roi, roi)`` masks."""
        names = sorted(self.weights)
        p = np.array([self.weights[n] for n in names], float)
        xs, ys = [], []
        for source in rng.choice(names, size=size, p=p / p.sum()):
            i = rng.integers(len(self.pool.images[source]))
            x = self.pool.images[source][i].astype(np.float32)
            y = self.pool.masks[source][i].astype(np.float32)
            if self.channels == 1:
                x = x[rng.integers(len(x)) if self.channel is None else self.channel][None]
            k = int(rng.integers(4))
            x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            x = np.clip(x, 0, None) ** rng.uniform(0.8, 1.25)
            x = reclip_ceiling(x, self.reclip, rng)
            if rng.random() < self.fov_cut:
                x, y = cut_field_of_view(x, y, rng)
            xs.append(x)
            ys.append(y)
        return np.stack(xs).astype(np.float32), np.stack(ys)[:, None].astype(np.float32)


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


def train_segmenter(out: str | Path, *, cases: TrainingCases | None = None, steps: int = 2000, batch: int = 16,
                    roi: int = 96, lr: float = 1e-3, seed: int = 1, command: str = "", device: str | None = None,
                    validation: TrainingCases | None = None,
                    on_step: Callable[[int, float], None] | None = None,
                    mixture: PoolSampler | None = None, threshold: float | None = None,
                    extra_meta: dict | None = None,
                    min_component_fraction: float | None = None) -> tuple[Path, TrainingLog]:
    """Train the U-Net for ``steps`` batches and save it with its recipe to ``out``.

    Batches come from ``mixture`` (a ``PoolSampler`` over real, synthetic and cohort slices; its
    channels and contrasts go into the checkpoint) or, without one, from the cohort ``cases`` alone.
    ``min_component_fraction``: the saved model drops its masks' connected components smaller than
    this fraction of the largest (``postprocess.keep_large_components``; None keeps the whole mask).
    """
    import torch
    from monai.losses import DiceCELoss

    from ..features.base import pick_device
    from .builtin import build_unet, save_checkpoint

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = pick_device(device)
    in_channels = mixture.channels if mixture is not None else 1
    net = build_unet({"in_channels": in_channels}).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    loss_fn = DiceCELoss(sigmoid=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)
    index = _slice_index(cases) if mixture is None else None
    log, running, start = TrainingLog(), [], time.perf_counter()
    net.train()
    for step in progress(range(steps), desc="train-segmenter"):
        x, y = mixture.batch(batch, roi, rng) if mixture is not None else sample_batch(cases, index, batch, roi, rng)
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
            "cases": len(cases.images) if cases is not None else mixture.describe(),  # type: ignore[union-attr]
            "train_seconds": round(log.seconds, 1), "final_loss": log.losses[-1], **(extra_meta or {})}
    net.eval()
    threshold = 0.5 if threshold is None else threshold
    if validation is not None:
        from .builtin import SliceUNetSegmenter

        probe = SliceUNetSegmenter({"arch": None, "pixel_mm": cases.pixel_mm, "roi": roi,
                                    "state_dict": net.cpu().state_dict()}, device="cpu")
        threshold, meta["validation_dice"] = tune_threshold(probe, validation)
        meta["validation_cases"] = len(validation.images)
    pixel_mm = mixture.pixel_mm if mixture is not None else cases.pixel_mm  # type: ignore[union-attr]
    contrasts = mixture.contrasts if mixture is not None else ANY_CONTRAST
    return save_checkpoint(net.cpu(), out, pixel_mm=pixel_mm, roi=roi, meta=meta, threshold=threshold,
                           arch={"in_channels": in_channels}, contrasts=contrasts,
                           min_component_fraction=min_component_fraction), log


#: batch shares per source: the multi-contrast model never sees cohort slices (T1 only)
MULTI_WEIGHTS = {"real": 0.3, "synth": 0.7}
SINGLE_WEIGHTS = {"real": 0.45, "synth": 0.35, "cohort": 0.20}


def pool_sampler(pool: SlicePool, *, channels: int, holdout: tuple[str, ...] = (),
                 reclip: float = 0.0, contrast: str | None = None) -> PoolSampler:
    """A sampler over ``pool`` without the held-out real cases, with the default source shares.

    ``contrast``: a one-channel model of that contrast alone (its real and synthetic channel of the pool, no
    cohort T1 slices), instead of a random contrast per slice.
    """
    if contrast is not None and contrast not in pool.contrasts:
        raise ValueError(f"the pool holds {', '.join(pool.contrasts)}, not {contrast}")
    shares = SINGLE_WEIGHTS if channels == 1 and contrast is None else MULTI_WEIGHTS
    real = [k for k in pool.images if k.startswith("real:") and k[5:] not in holdout]
    weights = {k: shares["real"] / max(len(real), 1) for k in real}
    weights["synth"] = shares["synth"]
    if "cohort" in shares and "cohort" in pool.images:
        weights["cohort"] = shares["cohort"]
    channel = pool.contrasts.index(contrast) if contrast is not None else None
    return PoolSampler(pool, channels, weights, pool.pixel_mm, reclip=reclip, channel=channel)


@dataclass(frozen=True)
class PoolRecipe:
    """How the shared slice pool is drawn (the shipped models' values are the defaults)."""

    per_case: int = 1500
    synth: int = 5000
    cohort_cases: int = 40
    cohort_seed: int = 1
    cohort_slices: int = 2500
    seed: int = 11
    roi: int = 96
    synth_version: int = 2  # 2: contrast priors, cystic cores, larger and peripheral tumours (segment/synth.py)


def pool_for(data_dir: str | Path, recipe: PoolRecipe = PoolRecipe(), *, cache: str | Path | None = None,
             show_progress: bool = True) -> SlicePool:
    """The slice pool of every case in ``data_dir`` plus synthetic and cohort slices; reused from ``cache``."""
    from ..io import write_text

    if cache is not None and Path(cache).is_file():
        meta = Path(str(cache) + ".json")
        if meta.is_file() and meta.read_text() == repr((str(Path(data_dir).resolve()), recipe)):
            return SlicePool.load(cache)
    real = [load_training_case(p) for p in training_case_folders(data_dir)]
    cohort = cohort_cases(recipe.cohort_cases, recipe.cohort_seed, show_progress=show_progress)
    mixture = SliceMixture(real=real, cohort=cohort, contrasts=("flair", "t1c"))
    pool = build_pool(mixture, per_case=recipe.per_case, synth=recipe.synth, cohort=recipe.cohort_slices,
                      roi=recipe.roi, seed=recipe.seed, show_progress=show_progress)
    if cache is not None:
        pool.save(cache)
        write_text(str(cache) + ".json", repr((str(Path(data_dir).resolve()), recipe)))
    return pool


def training_case_folders(data_dir: str | Path) -> list[Path]:
    """The case folders of ``data_dir`` (``cases.list_cases``), sorted; one-line error when there are none."""
    from ..cases import list_cases
    from ..errors import InputError

    found = [item.image for item in list_cases(data_dir) if item.image.is_dir()]
    if not found:
        raise InputError("holds no case folders (each with FLAIR, T1c and a label file)", data_dir)
    return found


def load_training_case(folder: Path):
    """One real training case with its whole-tumour mask (``realdata.load_real_case``)."""
    from .realdata import load_real_case

    return load_real_case(folder)


def heldout_dice(path: str | Path, folders: list[Path], channels: int) -> dict[str, float]:
    """Whole-tumour Dice of the model at ``path`` on each held-out case (per contrast for one channel)."""
    import torch

    from ..quality.dice import dice_score
    from .builtin import SliceUNetSegmenter

    seg = SliceUNetSegmenter(torch.load(path, weights_only=True), source=str(path), device="cpu")
    out: dict[str, float] = {}
    for folder in folders:
        case = load_training_case(folder)
        views = [tuple(case.contrasts)] if channels > 1 else [(c,) for c in case.contrasts if seg.reads([c])]
        for names in views:
            mask = seg.segment_contrasts({c: case.contrasts[c] for c in names}, case.spacing_zyx)
            out[f"{case.name}:{'+'.join(names)}"] = round(dice_score(mask, case.mask), 4)
    return out
