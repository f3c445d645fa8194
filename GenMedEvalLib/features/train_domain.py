"""Training recipe of the domain encoder on a labelled cohort's axial slices (pure library).

Each kept axial slice is labelled with its lesion class, ``none`` / ``left`` / ``right``: the
volume's class when the slice cuts its lesion mask, ``none`` otherwise (a slice without lesion
shows no side), and with the volume's acquisition group. The network learns both with a summed
cross-entropy. Deterministic: seeded torch and NumPy, one CPU thread, deterministic algorithms,
so the same cohort, epochs and seed give the same weights file (same SHA-256).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError
from ..io import atomic_path, normalize_intensity, read_cohort, read_mask, read_volume
from .slicing import SliceSettings, volume_slices

TRAIN_SLICES = SliceSettings(plane="axial", min_foreground=0.05, max_slices=None, tumour_slices=0)  # every slice


@dataclass
class SliceData:
    """Prepared network inputs ``(N, 1, 64, 64)`` with class and group indices and source volume names."""

    x: np.ndarray
    label: np.ndarray
    group: np.ndarray
    volume: list[str]

    def __len__(self) -> int:
        return len(self.label)


def _images_dir(cohort: Path) -> Path:
    """The cohort's image folder: ``COHORT/images`` when present, else ``COHORT``."""
    return cohort / "images" if (cohort / "images").is_dir() else cohort


def load_slices(cohort: str | Path, splits: Sequence[str] | None = ("train",), *, classes: Sequence[str],
                groups: Sequence[str], min_lesion_voxels: int = 10) -> SliceData:
    """Axial slices of the cohort volumes in ``splits`` (None: all), prepared and labelled per slice."""
    from .encoders.domain import prepare

    cohort = Path(cohort)
    items = [item for item in read_cohort(_images_dir(cohort)) if splits is None or item.split in splits]
    if not items:
        raise InputError(f"has no volumes in split(s) {', '.join(splits or [])}", cohort)
    xs, labels, group_ids, names = [], [], [], []
    for item in items:
        if item.label not in classes or item.group not in groups:
            raise InputError(f"{item.name}: label '{item.label}' / group '{item.group}' not in {classes} / {groups}",
                             item.image)
        image = read_volume(item.image)
        image = image.with_array(normalize_intensity(image.array))
        lesion = read_mask(item.mask, like=image).array > 0 if item.mask is not None else None
        sliced = volume_slices(image, TRAIN_SLICES)
        for img, info in zip(sliced.images, sliced.info, strict=True):
            hit = lesion is not None and int(lesion[info.index].sum()) >= min_lesion_voxels
            xs.append(prepare(img[None]).numpy()[0])
            labels.append(classes.index(item.label) if hit else classes.index("none"))
            group_ids.append(groups.index(item.group))
            names.append(item.name)
    return SliceData(np.stack(xs), np.array(labels), np.array(group_ids), names)


@contextmanager
def _deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed torch, use ``threads`` CPU threads and deterministic algorithms; restore the settings after."""
    import torch

    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def train_domain_net(data: SliceData, *, epochs: int = 10, seed: int = 0, batch_size: int = 64, lr: float = 2e-3,
                     max_steps: int | None = None, threads: int = 1, log=print):
    """Train a ``DomainNet`` on prepared slices (Adam, summed class + group cross-entropy); eval mode on return."""
    if len(data) == 0:
        raise ParameterError("no training slices")
    with _deterministic(seed, threads):
        return _fit(data, epochs, seed, batch_size, lr, max_steps, log)


def _fit(data: SliceData, epochs: int, seed: int, batch_size: int, lr: float, max_steps: int | None, log):
    """The training loop of :func:`train_domain_net` (seeded by the caller)."""
    import torch

    from .encoders.domain import DomainNet

    rng = np.random.default_rng(seed)
    net = DomainNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y, g = torch.from_numpy(data.x), torch.from_numpy(data.label), torch.from_numpy(data.group)
    steps = 0
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(data)))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            _, class_logits, group_logits = net(x[idx])
            loss = loss_fn(class_logits, y[idx]) + loss_fn(group_logits, g[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                return net.eval()
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(data):.4f}")
    return net.eval()


def accuracy(net, data: SliceData) -> tuple[float, float]:
    """(class accuracy, group accuracy) of an eval-mode net on prepared slices."""
    import torch

    with torch.no_grad():
        _, class_logits, group_logits = net(torch.from_numpy(data.x))
    return (float((class_logits.argmax(1).numpy() == data.label).mean()),
            float((group_logits.argmax(1).numpy() == data.group).mean()))


def save_domain_net(net, path: str | Path, meta: dict) -> Path:
    """Write ``{"state_dict", "meta"}`` atomically with ``torch.save``.

    Serialised in memory first: ``torch.save`` names the archive after the file, and the
    temporary name would make the bytes (and the SHA-256) differ between identical trainings.
    """
    import io

    import torch

    path = Path(path)
    buffer = io.BytesIO()
    torch.save({"state_dict": net.state_dict(), "meta": meta}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def train_domain_encoder(cohort: str | Path, out: str | Path, *, epochs: int = 12, seed: int = 0,
                         train_splits: Sequence[str] = ("train", "reference"),
                         heldout_splits: Sequence[str] = ("eval", "test"), max_steps: int | None = None,
                         threads: int = 1, log=print) -> dict:
    """Train on the cohort's ``train_splits``, report accuracy on ``heldout_splits``, save the weights.

    Returns the metadata stored in the file (classes, groups, seed, epochs, splits, accuracies).
    """
    from .encoders.domain import CLASSES, EMBED_DIM, GROUPS, INPUT_SIZE

    if epochs < 1:
        raise ParameterError(f"epochs must be >= 1, got {epochs}")
    start = time.perf_counter()
    train = load_slices(cohort, tuple(train_splits), classes=CLASSES, groups=GROUPS)
    log(f"{len(train)} training slices from {len(set(train.volume))} volumes")
    net = train_domain_net(train, epochs=epochs, seed=seed, max_steps=max_steps, threads=threads, log=log)
    meta = {"classes": list(CLASSES), "groups": list(GROUPS), "dim": EMBED_DIM, "input_size": INPUT_SIZE,
            "seed": seed, "epochs": epochs, "train_splits": list(train_splits), "train_slices": len(train)}
    if heldout_splits:
        held = load_slices(cohort, tuple(heldout_splits), classes=CLASSES, groups=GROUPS)
        class_acc, group_acc = accuracy(net, held)
        log(f"held-out slices: class accuracy {class_acc:.3f}, group accuracy {group_acc:.3f} ({len(held)} slices)")
        meta.update(heldout_splits=list(heldout_splits), heldout_class_accuracy=round(class_acc, 4),
                    heldout_group_accuracy=round(group_acc, 4))
    save_domain_net(net, out, meta)
    log(f"saved {out} in {time.perf_counter() - start:.0f} s")
    return meta
