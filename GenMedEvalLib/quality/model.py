"""The quality network and the predictor that turns its per-slice outputs into a volume's Dice.

Network: a MONAI ResNet (basic blocks, one per stage, 16-128 channels, 2D) on two input channels
(image crop, mask crop; ``crops.py``) with one linear output, the slice's Dice, trained with MSE
(SPEC section 5). 64-pixel crops keep training on a 2-core CPU to minutes. The volume score is
the slice predictions averaged with the slices' mask areas as weights, so large slices count as
they do in the volume's Dice. Test-time flips (4 views) give each prediction a spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .crops import slice_crops

CHECKPOINT_FORMAT = "genmedeval-quality/1"
DEFAULT_ARCH: dict[str, Any] = {"layers": [1, 1, 1, 1], "block_inplanes": [16, 32, 64, 128], "conv1_t_size": 5}
DEFAULT_QUALITY = "quality.pt"
# The shipped file's digest: a changed or corrupt file is refused (retraining: update it and Resources/Models/README.md).
QUALITY_SHA256 = "056ff301cddc5f419301437f0525d6ec7c46c17102084daaa9c39a0172a6e127"


def build_regressor(arch: dict[str, Any] | None = None):
    """The 2-channel 2D ResNet with one linear output."""
    from monai.networks.nets import ResNet

    cfg = {**DEFAULT_ARCH, **(arch or {})}
    return ResNet(block="basic", layers=list(cfg["layers"]), block_inplanes=list(cfg["block_inplanes"]),
                  spatial_dims=2, n_input_channels=2, conv1_t_size=int(cfg["conv1_t_size"]), conv1_t_stride=1,
                  num_classes=1)


@dataclass(frozen=True)
class SliceScores:
    """Predicted Dice per slice (with its test-time spread) and the mask area that weights it."""

    index: np.ndarray
    areas: np.ndarray
    predicted: np.ndarray
    spread: np.ndarray
    axis: int

    def volume_score(self) -> float:
        """Area-weighted mean of the slice predictions, clipped to [0, 1]."""
        return float(np.clip(np.average(self.predicted, weights=self.areas), 0.0, 1.0))

    def volume_spread(self) -> float:
        """Area-weighted mean of the slice spreads: the volume score's uncertainty."""
        return float(np.average(self.spread, weights=self.areas))


def default_quality_path() -> Path:
    """``Resources/Models/quality.pt`` (not verified; ``shipped_quality`` verifies)."""
    from ..data import models_dir

    return models_dir() / DEFAULT_QUALITY


def shipped_quality() -> Path:
    """The shipped weights after checking their SHA-256; one-line error when missing or altered."""
    from ..features.weights import WeightsSpec, resolve_weights

    spec = WeightsSpec("shipped quality model", DEFAULT_QUALITY, QUALITY_SHA256)
    return resolve_weights(spec, cache=default_quality_path().parent, download=False)


def save_checkpoint(net, path: str | Path, *, size: int, margin: float, min_mm: float, meta: dict[str, Any],
                    arch: dict[str, Any] | None = None) -> Path:
    """Write the weights and the crop recipe they were trained with, atomically."""
    import torch

    from ..io import atomic_path

    payload = {"format": CHECKPOINT_FORMAT, "arch": {**DEFAULT_ARCH, **(arch or {})}, "size": int(size),
               "margin": float(margin), "min_mm": float(min_mm), "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


class QualityPredictor:
    """Predict a segmentation's Dice from the image and the mask alone."""

    def __init__(self, payload: dict[str, Any], *, source: str = "quality", device: str | None = None,
                 tta: bool = True, batch_size: int = 64):
        from ..features.base import pick_device

        self.source = source
        self.device = pick_device(device)
        self.size, self.margin, self.min_mm = int(payload["size"]), float(payload["margin"]), float(payload["min_mm"])
        self.meta = dict(payload.get("meta", {}))
        self.tta, self.batch_size = tta, batch_size
        self.net = build_regressor(payload["arch"])
        try:
            self.net.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise InputError(f"weights do not fit the quality network ({str(exc).splitlines()[0]})", source) from exc
        self.net.to(self.device).eval()

    def predict_inputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the prediction over test-time flips for crops ``(S, 2, size, size)``."""
        import torch

        views = [(), (3,), (2,), (2, 3)] if self.tta else [()]
        outs = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(inputs[start:start + self.batch_size])).to(self.device)
                per_view = [self.net(batch.flip(dims) if dims else batch)[:, 0].float() for dims in views]
                outs.append(torch.stack(per_view, dim=1).cpu().numpy())
        pred = np.concatenate(outs, axis=0) if outs else np.zeros((0, len(views)))
        return np.clip(pred.mean(axis=1), 0.0, 1.0), pred.std(axis=1)

    def predict_slices(self, image: np.ndarray, mask: np.ndarray,
                       spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> SliceScores:
        """Per-slice predicted Dice for every slice the mask touches."""
        check_pair(image, mask, self.source)
        crops = slice_crops(image, mask, spacing_zyx, size=self.size, margin=self.margin, min_mm=self.min_mm)
        predicted, spread = self.predict_inputs(crops.inputs)
        return SliceScores(crops.index, crops.areas, predicted, spread, crops.axis)

    def predict_dice(self, image: np.ndarray, mask: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
        """The volume's predicted Dice (area-weighted over slices)."""
        return self.predict_slices(image, mask, spacing_zyx).volume_score()


def check_pair(image: np.ndarray, mask: np.ndarray, source: str = "mask") -> None:
    """One-line errors for a mask that does not fit the image, is not binary, or is empty."""
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3:
        raise InputError(f"expected a 3D image, got shape {image.shape}", source)
    if mask.shape != image.shape:
        raise InputError(f"mask shape {mask.shape} does not match the image shape {image.shape}", source)
    if mask.dtype.kind == "f" and not np.isin(np.unique(mask), (0.0, 1.0)).all():
        raise InputError("mask is not binary (values other than 0 and 1)", source)
    if not np.any(mask):
        raise InputError("mask is empty: there is no segmentation to judge", source)


def load_predictor(path: str | Path | None = None, *, device: str | None = None, tta: bool = True) -> QualityPredictor:
    """The quality predictor at ``path`` (default: the shipped one)."""
    import torch

    target = Path(path) if path is not None else shipped_quality()
    if not target.is_file():
        raise InputError("quality model not found", target)
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable files are bad input
        raise InputError(f"not a quality model file ({str(exc).splitlines()[0][:120]})", target) from exc
    if not (isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT):
        raise InputError("not a GenMedEval quality model (format tag missing)", target)
    return QualityPredictor(payload, source=str(target), device=device, tta=tta)
