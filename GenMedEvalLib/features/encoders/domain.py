"""The domain encoder: a small brain-MRI CNN trained on GenMedEval's demo cohort, shipped in
``Resources/Models/domain_encoder.pt``.

It answers two needs the ImageNet networks cannot: features tuned to brain MRI, and class
logits (none / left / right lesion) for a domain Inception Score, since the offline Inception
lacks the 1008-way head. Input: grey slices in [0, 1], resized (bilinear, antialiased) to 64 x 64;
outputs ``"pool"`` (128-d embedding) and ``"logits"`` (3 classes). Training recipe:
``GenMedEvalLib.features.train_domain`` (``genmedeval train-encoder``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...data import models_dir
from ..base import Encoder
from ..weights import WeightsSpec, WeightsUnavailable, resolve_weights, sha256_file, weights_dir

INPUT_SIZE = 64
EMBED_DIM = 128
CLASSES = ("none", "left", "right")
GROUPS = ("A", "B")

DOMAIN_WEIGHTS = WeightsSpec(
    name="domain encoder",
    filename="domain_encoder.pt",
    sha256="0972f93699f6219861fc6d0ea940ff6d89c24a2e167cbd60288ca35e017613da",
    url=None,
    size_mb=1.3,
    licence="Apache-2.0 (trained by GenMedEval on its synthetic demo cohort)",
)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 3x3, batch norm, ReLU, then 2x2 max pooling (halves the size)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class DomainNet(nn.Module):
    """Four conv blocks (16-32-64-128 channels) to a 4 x 4 map, flattened (not averaged: the lesion
    side is a position), a 128-d embedding, and two heads: lesion class and acquisition group."""

    def __init__(self, n_classes: int = len(CLASSES), n_groups: int = len(GROUPS), dim: int = EMBED_DIM):
        super().__init__()
        self.features = nn.Sequential(_block(1, 16), _block(16, 32), _block(32, 64), _block(64, 128),
                                      nn.Flatten())
        self.embed = nn.Sequential(nn.Dropout(0.2), nn.Linear(128 * (INPUT_SIZE // 16) ** 2, dim),
                                   nn.ReLU(inplace=True))
        self.class_head = nn.Linear(dim, n_classes)
        self.group_head = nn.Linear(dim, n_groups)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embedding, class logits, group logits) of a ``(B, 1, 64, 64)`` batch."""
        z = self.embed(self.features(x))
        return z, self.class_head(z), self.group_head(z)


def prepare(batch: np.ndarray | torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Grey slices ``(B, H, W)`` in [0, 1] -> ``(B, 1, size, size)`` centred around 0 (training and inference)."""
    x = torch.as_tensor(np.asarray(batch, dtype=np.float32))[:, None]
    if x.shape[-2:] != (size, size):
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - 0.5) / 0.25


def shipped_weights_path() -> Path:
    """The verified shipped weights: ``Resources/Models``, else the installed package copy, else the weights cache."""
    candidates = [models_dir(), Path(__file__).resolve().parents[2] / "models", weights_dir()]
    for folder in candidates:
        if (folder / DOMAIN_WEIGHTS.filename).exists():
            return resolve_weights(DOMAIN_WEIGHTS, cache=folder, download=False)
    raise WeightsUnavailable(f"{DOMAIN_WEIGHTS.name}: {DOMAIN_WEIGHTS.filename} not found in "
                             f"{', '.join(str(c) for c in candidates)}; retrain it with 'genmedeval train-encoder'")


def load_domain_net(path: str | Path) -> tuple[DomainNet, dict]:
    """A ``DomainNet`` in eval mode from a checkpoint (``state_dict`` + ``meta``) and its metadata."""
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    meta = checkpoint.get("meta", {})
    net = DomainNet(len(meta.get("classes", CLASSES)), len(meta.get("groups", GROUPS)), meta.get("dim", EMBED_DIM))
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval(), meta


class DomainEncoder(Encoder):
    """Brain-MRI CNN features (128-d ``pool``) and lesion-class ``logits``; ``weights_path`` overrides the shipped file."""

    name = "domain"
    dim = EMBED_DIM
    input_size = INPUT_SIZE
    outputs = ("pool", "logits")

    def __init__(self, device: str | None = None, batch_size: int = 32, *, weights_path: str | Path | None = None):
        super().__init__(device, batch_size)
        self._path = Path(weights_path) if weights_path is not None else shipped_weights_path()
        self._sha = sha256_file(self._path)
        net, self.meta = load_domain_net(self._path)
        self.net = net.to(self.device)

    @property
    def weights(self) -> WeightsSpec:
        """The weights actually loaded (the shipped spec, or the given file's hash)."""
        if self._sha == DOMAIN_WEIGHTS.sha256:
            return DOMAIN_WEIGHTS
        return WeightsSpec(DOMAIN_WEIGHTS.name, self._path.name, self._sha)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of the ``logits`` columns."""
        return tuple(self.meta.get("classes", CLASSES))

    @torch.no_grad()
    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Embedding and class logits of ``(B, H, W)`` slices in [0, 1]."""
        z, logits, _ = self.net(prepare(batch).to(self.device))
        return {"pool": z.float().cpu().numpy(), "logits": logits.float().cpu().numpy()}
