"""The built-in segmenter: a MONAI 2D U-Net run slice by slice at 2 mm in-plane pixels.

Why 2D: clinical tumour MRI is usually thick-sliced (the real MRI here has 6.5 mm slices), where a
3D network trained on isotropic volumes would see a different anatomy per voxel; a 2D network on
slices resampled to a fixed pixel size sees the same thing on both. Why 2 mm: the demo cohort is
built at 2 mm, a tumour of 10-35 mm spans 5-18 pixels, and the net trains on this CPU in minutes.
Slices are tiled with MONAI's sliding-window inferer at the training crop size (a slice no larger
than one tile goes through whole, padded to a multiple of 16), so any matrix size works. Slices
without tissue are skipped (probability 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import Segmenter
from .slices import from_slices, in_plane_spacing, resampled_shape, resize_slices, slice_axis, to_slices

CHECKPOINT_FORMAT = "genmedeval-segmenter/1"
DEFAULT_ARCH: dict[str, Any] = {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1}


def build_unet(arch: dict[str, Any] | None = None):
    """The 2D U-Net (one grey input channel, one tumour logit channel)."""
    from monai.networks.nets import UNet

    cfg = {**DEFAULT_ARCH, **(arch or {})}
    return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=tuple(cfg["channels"]),
                strides=tuple(cfg["strides"]), num_res_units=int(cfg["num_res_units"]))


def save_checkpoint(net, path: str | Path, *, pixel_mm: float, roi: int, meta: dict[str, Any],
                    arch: dict[str, Any] | None = None, threshold: float = 0.5) -> Path:
    """Write the weights and everything needed to rebuild and apply them, atomically."""
    import torch

    from ..io import atomic_path

    payload = {"format": CHECKPOINT_FORMAT, "arch": {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in {**DEFAULT_ARCH, **(arch or {})}.items()},
               "pixel_mm": float(pixel_mm), "roi": int(roi), "threshold": float(threshold), "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def is_checkpoint(payload: Any) -> bool:
    """True for a dict written by ``save_checkpoint``."""
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


class SliceUNetSegmenter(Segmenter):
    """Slice-wise U-Net segmenter from a GenMedEval checkpoint (``save_checkpoint``)."""

    name = "builtin-unet2d"

    def __init__(self, payload: dict[str, Any], *, source: str = "segmenter", device: str | None = None,
                 threshold: float | None = None, batch_size: int = 32):
        super().__init__(device)
        import torch

        self.name = source
        self.pixel_mm = float(payload["pixel_mm"])
        self.roi = int(payload["roi"])
        self.meta = dict(payload.get("meta", {}))
        self.threshold = float(threshold if threshold is not None else payload.get("threshold", 0.5))
        self.batch_size = batch_size
        self.whole_slice_limit = self.roi
        self.net = build_unet(payload["arch"])
        try:
            self.net.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise InputError(f"weights do not fit the U-Net described in the file ({str(exc).splitlines()[0]})",
                             source) from exc
        self.net.to(self.device).eval()
        self._torch = torch

    def _logits(self, batch):
        """Logits of a batch of slices: one pass on the whole (padded) slice when it is small, else tiled."""
        import torch.nn.functional as F
        from monai.inferers import sliding_window_inference

        h, w = batch.shape[-2:]
        if max(h, w) > self.whole_slice_limit:
            return sliding_window_inference(batch, (self.roi, self.roi), sw_batch_size=self.batch_size,
                                            predictor=self.net, overlap=0.25, mode="gaussian")
        ph, pw = (-h) % 16, (-w) % 16
        padded = F.pad(batch, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return self.net(padded)[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]

    def probabilities(self, image01: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        """Tumour probability per voxel, float32, same shape as ``image01`` (0 on slices without tissue)."""
        torch = self._torch
        axis = slice_axis(spacing_zyx)
        stack = np.ascontiguousarray(to_slices(image01, axis), dtype=np.float32)
        shape_hw = stack.shape[1:]
        work_hw = resampled_shape(shape_hw, in_plane_spacing(spacing_zyx, axis), self.pixel_mm)
        out = np.zeros(stack.shape, dtype=np.float32)
        tissue = np.nonzero((stack > 0.05).mean(axis=(1, 2)) > 0.01)[0]
        with torch.inference_mode():
            for start in range(0, len(tissue), self.batch_size):
                rows = tissue[start:start + self.batch_size]
                batch = resize_slices(torch.from_numpy(stack[rows, None]).to(self.device), work_hw)
                logits = resize_slices(self._logits(batch).float(), shape_hw)
                out[rows] = torch.sigmoid(logits)[:, 0].cpu().numpy()
        return from_slices(out, axis)

    def _predict(self, image01: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        return (self.probabilities(image01, spacing_zyx) >= self.threshold).astype(np.uint8)
