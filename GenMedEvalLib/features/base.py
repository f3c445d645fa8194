"""The one interface every feature encoder implements.

A 2D encoder takes grey slices in [0, 1] of any size, shape ``(B, H, W)`` float32, and does its
own resizing, channel replication and normalisation, so those steps can be fused into the
network (for example grey-to-RGB folded into the first convolution). A 3D encoder takes whole
volumes ``(B, Z, Y, X)``. Outputs are float32 arrays keyed by feature kind: ``"pool"`` (the main
embedding, ``(B, dim)``), and optionally ``"spatial"`` (sFID features) and ``"logits"``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from .weights import WeightsSpec


def pick_device(device: str | None = None) -> str:
    """``device`` when given, else ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if device:
        return device
    from ..threads import default_device

    if default_device():
        return default_device()
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batches(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def fixed_shape(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` padded with zero inputs to ``size`` along its first axis (unchanged when already that long)."""
    if len(batch) >= size:
        return batch
    return np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), dtype=batch.dtype)])


class Encoder(abc.ABC):
    """A feature extractor: name, dimension, input size, weights identity, device-aware batches."""

    name: ClassVar[str]
    dim: ClassVar[int]
    input_size: ClassVar[int]
    spatial_dims: ClassVar[int] = 2
    outputs: ClassVar[tuple[str, ...]] = ("pool",)

    def __init__(self, device: str | None = None, batch_size: int = 32):
        self.device = pick_device(device)
        self.batch_size = batch_size

    @property
    @abc.abstractmethod
    def weights(self) -> WeightsSpec | None:
        """The weights file this encoder loads (None when it has no external weights)."""

    def identity(self) -> str:
        """A string that changes whenever the features could change: name, weights hash, input size, batch size.

        The batch size is in it because the network's arithmetic (its convolution kernels' blocking)
        depends on the batch's shape: the same slice encoded in batches of 3 and of 5 differs by up
        to 5e-5 in the domain encoder's float32 features, while in two batches of one shape it is
        bit-identical whatever its companions (``encode`` pads every batch to that shape).
        """
        sha = self.weights.sha256[:16] if self.weights is not None else "none"
        return f"{self.name}-{sha}-{self.input_size}-b{self.batch_size}"

    @abc.abstractmethod
    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Features of one batch: ``(B, H, W)`` (2D) or ``(B, Z, Y, X)`` (3D) float32 in [0, 1]."""

    def encode(self, images: np.ndarray, *, show_progress: bool = True) -> dict[str, np.ndarray]:
        """Features of all ``images``, batched, with a progress bar; float32 arrays ``(N, ...)``.

        Every batch has exactly ``batch_size`` inputs (the last one padded with zero images), so an
        image's features never depend on how many others were encoded with it, nor on which of them
        the cache already held: a resumed, distributed or second run gives bit-identical features.
        """
        from ..progress import progress

        chunks: dict[str, list[np.ndarray]] = {}
        spans = list(batches(len(images), self.batch_size))
        for span in progress(spans, desc=f"{self.name} features", enable=None if show_progress else False):
            batch = fixed_shape(np.asarray(images[span], dtype=np.float32), self.batch_size)
            for key, value in self.encode_batch(batch).items():
                chunks.setdefault(key, []).append(np.asarray(value, dtype=np.float32)[:span.stop - span.start])
        return {key: np.concatenate(parts, axis=0) for key, parts in chunks.items()}
