"""The built-in segmenter: a MONAI 2D U-Net run slice by slice at 2 mm in-plane pixels.

Why 2D: clinical tumour MRI is usually thick-sliced (the real MRI here has 6.5 mm slices), where a
3D network trained on isotropic volumes would see a different anatomy per voxel; a 2D network on
slices resampled to a fixed pixel size sees the same thing on both. Why 2 mm: the demo cohort is
built at 2 mm, a tumour of 10-35 mm spans 5-18 pixels, and the net trains on this CPU in minutes.
Slices are tiled with MONAI's sliding-window inferer at the training crop size (a slice no larger
than one tile goes through whole, padded to a multiple of 16), so any matrix size works. Slices
without tissue are skipped (probability 0). A checkpoint may ask for its mask's small connected
components to be dropped (``min_component_fraction``; ``postprocess.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import Segmenter, check_output
from .postprocess import keep_large_components
from .slices import from_slices, in_plane_spacing, resampled_shape, resize_slices, slice_axis

CHECKPOINT_FORMAT = "genmedeval-segmenter/1"
DEFAULT_ARCH: dict[str, Any] = {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1,
                                 "in_channels": 1}
#: what a one-channel model reads: any single contrast (the first of these that a case has)
ANY_CONTRAST = ("flair", "t1c", "t1", "t2")


def build_unet(arch: dict[str, Any] | None = None):
    """The 2D U-Net (``in_channels`` contrasts in, one tumour logit channel out)."""
    from monai.networks.nets import UNet

    cfg = {**DEFAULT_ARCH, **(arch or {})}
    return UNet(spatial_dims=2, in_channels=int(cfg["in_channels"]), out_channels=1, channels=tuple(cfg["channels"]),
                strides=tuple(cfg["strides"]), num_res_units=int(cfg["num_res_units"]))


def save_checkpoint(net, path: str | Path, *, pixel_mm: float, roi: int, meta: dict[str, Any],
                    arch: dict[str, Any] | None = None, threshold: float = 0.5,
                    contrasts: tuple[str, ...] = ANY_CONTRAST, min_component_fraction: float | None = None) -> Path:
    """Write the weights and everything needed to rebuild and apply them, atomically.

    ``contrasts``: the contrasts the input channels hold, in order (a one-channel model: the
    preference order among the contrasts a case has). ``min_component_fraction``: the model's
    masks keep only the connected components of at least this fraction of the largest (1: the
    largest alone; None: the whole mask).
    """
    import torch

    from ..io import atomic_path

    payload = {"format": CHECKPOINT_FORMAT, "arch": {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in {**DEFAULT_ARCH, **(arch or {})}.items()},
               "pixel_mm": float(pixel_mm), "roi": int(roi), "threshold": float(threshold), "meta": meta,
               "contrasts": list(contrasts), **({"min_component_fraction": float(min_component_fraction)}
                                                    if min_component_fraction is not None else {}),
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def component_rule(payload: dict[str, Any]) -> float | None:
    """The checkpoint's ``min_component_fraction`` (None: keep the whole mask); files of the earlier
    format that say ``largest_component`` read as 1 (the largest component alone)."""
    if "min_component_fraction" in payload:
        return float(payload["min_component_fraction"])
    return 1.0 if payload.get("largest_component") else None


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
        self.in_channels = int({**DEFAULT_ARCH, **(payload.get("arch") or {})}["in_channels"])
        self.contrasts = tuple(payload.get("contrasts", ANY_CONTRAST))
        self.min_component_fraction = component_rule(payload)
        if self.min_component_fraction is not None and not 0.0 < self.min_component_fraction <= 1.0:
            raise InputError(f"min_component_fraction must be in (0, 1], the file says {self.min_component_fraction}",
                             source)
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
        """Tumour probability per voxel, float32, ``(Z, Y, X)`` (0 on slices without tissue).

        ``image01``: ``(Z, Y, X)`` for a one-channel model, ``(C, Z, Y, X)`` with the checkpoint's
        contrasts in order for a multi-contrast one; intensities normalised to [0, 1].
        """
        torch = self._torch
        channels = image01 if image01.ndim == 4 else image01[None]
        if channels.shape[0] != self.in_channels:
            raise InputError(f"the model reads {self.in_channels} contrasts ({', '.join(self.contrasts)}), "
                             f"got {channels.shape[0]}", self.name)
        axis = slice_axis(spacing_zyx)
        stack = np.ascontiguousarray(np.moveaxis(channels, axis + 1, 0), dtype=np.float32)  # (S, C, H, W)
        shape_hw = stack.shape[2:]
        work_hw = resampled_shape(shape_hw, in_plane_spacing(spacing_zyx, axis), self.pixel_mm)
        out = np.zeros((stack.shape[0], *shape_hw), dtype=np.float32)
        tissue = np.nonzero((stack[:, 0] > 0.05).mean(axis=(1, 2)) > 0.01)[0]
        with torch.inference_mode():
            for start in range(0, len(tissue), self.batch_size):
                rows = tissue[start:start + self.batch_size]
                batch = resize_slices(torch.from_numpy(stack[rows]).to(self.device), work_hw)
                logits = resize_slices(self._logits(batch).float(), shape_hw)
                out[rows] = torch.sigmoid(logits)[:, 0].cpu().numpy()
        return from_slices(out, axis)

    def _predict(self, image01: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        mask = (self.probabilities(image01, spacing_zyx) >= self.threshold).astype(np.uint8)
        if self.min_component_fraction is None:
            return mask
        return keep_large_components(mask, self.min_component_fraction)

    def reads(self, available: Sequence[str]) -> bool:
        """True when a case with contrasts ``available`` has what this model needs: every contrast of a multi-contrast
        model, one of a named one-contrast model's, anything for an any-contrast model."""
        if self.in_channels > 1:
            return all(c in available for c in self.contrasts)
        return self.contrasts == ANY_CONTRAST or any(c in available for c in self.contrasts)

    def segment_contrasts(self, images: Mapping[str, np.ndarray],
                          spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """The mask of a case: a one-channel model reads its preferred contrast, a multi-contrast one all of its own."""
        from ..io import normalize_intensity

        if self.in_channels == 1:
            return super().segment_contrasts(images, spacing_zyx)
        missing = [c for c in self.contrasts if c not in images]
        if missing:
            raise InputError(f"the model needs the contrasts {', '.join(self.contrasts)}; the case lacks "
                             f"{', '.join(missing)}", self.name)
        shape = next(iter(images.values())).shape
        stack = np.stack([normalize_intensity(np.asarray(images[c])) for c in self.contrasts])
        spacing = tuple(float(s) for s in spacing_zyx)
        return check_output(self._predict(stack, spacing), shape, self.name)  # type: ignore[arg-type]


class ContrastRouter(Segmenter):
    """The shipped models, picked by the contrasts a case has: the multi-contrast model when the case has all of its
    contrasts, else a one-contrast model trained on real scans of a contrast the case has (``real``:
    ``{contrast: model}``), else the demo cohort's any-contrast model (T1, T2, unnamed volumes)."""

    def __init__(self, multi: SliceUNetSegmenter, single: SliceUNetSegmenter,
                 real: Mapping[str, SliceUNetSegmenter] | None = None):
        self.device = single.device
        self.multi, self.single, self.real = multi, single, dict(real or {})
        self.name = " + ".join(Path(m.name).name for m in (single, *self.real.values(), multi))

    def pick(self, available: Sequence[str]) -> SliceUNetSegmenter:
        """The model that a case with contrasts ``available`` goes to (it reads its own contrasts of the case)."""
        return next((m for m in (self.multi, *self.real.values()) if m.reads(available)), self.single)

    def _predict(self, image01: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        return self.single._predict(image01, spacing_zyx)

    def segment_contrasts(self, images: Mapping[str, np.ndarray],
                          spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """Route the case by the contrasts it has."""
        return self.pick(list(images)).segment_contrasts(images, spacing_zyx)
