"""The quality network and the predictor that turns its per-slice outputs into a volume's Dice.

Network: a MONAI ResNet (basic blocks, one per stage, 16-128 channels, 2D) on two input channels
(image crop, mask crop; ``crops.py``), trained with MSE (SPEC section 5). 64-pixel crops keep
training on a 2-core CPU to minutes. Three target kinds (``TARGETS``, recorded as ``arch["target"]``):

- ``dice`` (1 output): the slice's Dice; the volume score is the slice predictions averaged with
  the mask areas as weights;
- ``split`` (2 outputs): the slice's *precision* (fraction of the mask that is tumour) and *share*
  (|P| / (|P| + |G|)). With the known mask areas these give the volume's Dice exactly,
  2 sum(precision P) / sum(P / share), so no slice-to-volume approximation is added;
- ``dice_share`` (2 outputs; the shipped model): the slice's Dice and its share. The volume's Dice is
  exactly the slice Dice averaged with weights |P| + |G| = |P| / share, so the share fixes the
  weights that ``dice`` has to guess (mask area alone under-weights well-placed slices), while the
  Dice itself is learnt directly, which worked better than learning precision
  (Resources/Models/README.md).

Test-time flips (4 views) give each prediction a spread. A checkpoint may carry a linear
recalibration of the volume score (``calibrate.py``), fitted on cases the network never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .crops import slice_crops

CHECKPOINT_FORMAT = "genmedeval-quality/2"
READABLE_FORMATS = ("genmedeval-quality/1", CHECKPOINT_FORMAT)
DEFAULT_ARCH: dict[str, Any] = {"layers": [1, 1, 1, 1], "block_inplanes": [16, 32, 64, 128], "conv1_t_size": 5,
                                "outputs": 1}
TARGETS = {"dice": 1, "split": 2, "dice_share": 2}
MIN_SHARE = 0.05  # a slice's mask is at least 5 % of mask + tumour: bounds the tumour a prediction can imply
DEFAULT_QUALITY = "quality.pt"
# The shipped file's digest: a changed or corrupt file is refused (retraining: update it and Resources/Models/README.md).
QUALITY_SHA256 = "4d20d0ef99b3d0575095ec2b8b1af009cc1472700a8abfd9e3172c72f2ddc46c"


def build_regressor(arch: dict[str, Any] | None = None):
    """The 2-channel 2D ResNet with ``arch["outputs"]`` linear outputs (1: Dice, 2: precision and share)."""
    from monai.networks.nets import ResNet

    cfg = {**DEFAULT_ARCH, **(arch or {})}
    return ResNet(block="basic", layers=list(cfg["layers"]), block_inplanes=list(cfg["block_inplanes"]),
                  spatial_dims=2, n_input_channels=2, conv1_t_size=int(cfg["conv1_t_size"]), conv1_t_stride=1,
                  num_classes=int(cfg["outputs"]))


IDENTITY = (0.0, 1.0)


def apply_calibration(score: float, calibration: tuple[float, float] = IDENTITY) -> float:
    """``intercept + slope * score`` clipped to [0, 1]; nan stays nan."""
    intercept, slope = calibration
    return float(np.clip(intercept + slope * score, 0.0, 1.0))


def arch_target(arch: dict[str, Any]) -> str:
    """The target kind a network was trained for (checkpoints without the field: by output count)."""
    return str(arch.get("target") or ("dice" if int(arch.get("outputs", 1)) == 1 else "split"))


def _slice_totals(share: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """Predicted mask + tumour voxels of each slice, |P| / share (share bounded below by ``MIN_SHARE``)."""
    return areas / np.clip(share, MIN_SHARE, 1.0)


def slice_dice_from(outputs: np.ndarray, areas: np.ndarray, target: str = "dice") -> np.ndarray:
    """Slice Dice from network outputs ``(..., K)``: the first output, or (``split``) from precision and share."""
    if target != "split":
        return np.clip(outputs[..., 0], 0.0, 1.0)
    overlap = np.clip(outputs[..., 0], 0.0, 1.0) * areas
    return np.clip((2.0 * overlap + 1.0) / (_slice_totals(outputs[..., 1], areas) + 1.0), 0.0, 1.0)


def volume_dice_from(outputs: np.ndarray, areas: np.ndarray, target: str = "dice") -> float:
    """The volume's Dice from slice outputs ``(S, K)``.

    ``dice``: slice Dice weighted by mask area; ``dice_share``: weighted by |P| / share (= |P| + |G|);
    ``split``: 2 sum(precision |P|) / sum(|P| / share).
    """
    if len(areas) == 0:
        return float("nan")
    weights = slice_weights(outputs, areas, target)
    if target != "split":
        return float(np.average(np.clip(outputs[:, 0], 0.0, 1.0), weights=weights))
    overlap = np.clip(outputs[:, 0], 0.0, 1.0) * areas
    return float(np.clip((2.0 * overlap.sum() + 1.0) / (weights.sum() + 1.0), 0.0, 1.0))


def slice_weights(outputs: np.ndarray, areas: np.ndarray, target: str = "dice") -> np.ndarray:
    """Each slice's weight in the volume score: its mask area (``dice``), else predicted |P| + |G| = |P| / share."""
    return areas if target == "dice" else _slice_totals(outputs[:, 1], areas)


@dataclass(frozen=True)
class SliceScores:
    """Network outputs per slice and test-time view ``(S, V, K)``, the mask areas, slice indices and axis.

    ``target`` says what the outputs are (``TARGETS``).
    """

    index: np.ndarray
    areas: np.ndarray
    outputs: np.ndarray
    axis: int
    calibration: tuple[float, float] = IDENTITY
    target: str = "dice"

    @property
    def predicted(self) -> np.ndarray:
        """Predicted Dice of each slice (outputs averaged over the views)."""
        return slice_dice_from(self.outputs.mean(axis=1), self.areas, self.target)

    @property
    def spread(self) -> np.ndarray:
        """Standard deviation of each slice's predicted Dice over the test-time views."""
        return slice_dice_from(self.outputs, self.areas[:, None], self.target).std(axis=1)

    @property
    def weights(self) -> np.ndarray:
        """Each slice's weight in the volume score (``slice_weights``), outputs averaged over the views."""
        return slice_weights(self.outputs.mean(axis=1), self.areas, self.target)

    def raw_volume_score(self) -> float:
        """The volume's Dice as the network's slice outputs give it, before any recalibration."""
        return volume_dice_from(self.outputs.mean(axis=1), self.areas, self.target)

    def volume_score(self) -> float:
        """The volume's predicted Dice (recalibrated when the model carries a calibration), in [0, 1]."""
        return apply_calibration(self.raw_volume_score(), self.calibration)

    def volume_spread(self) -> float:
        """Standard deviation of the volume score over the test-time views: its uncertainty."""
        views = [apply_calibration(volume_dice_from(self.outputs[:, v], self.areas, self.target),
                                   self.calibration)
                 for v in range(self.outputs.shape[1])]
        return float(np.std(views))


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
                    arch: dict[str, Any] | None = None, calibration: dict[str, Any] | None = None) -> Path:
    """Write the weights and the crop recipe they were trained with (and a calibration), atomically."""
    import torch

    from ..io import atomic_path

    arch = {**DEFAULT_ARCH, "outputs": int(net.fc.out_features), **(arch or {})}
    payload = {"format": CHECKPOINT_FORMAT, "arch": arch, "size": int(size),
               "margin": float(margin), "min_mm": float(min_mm), "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    if calibration is not None:
        payload["calibration"] = dict(calibration)
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
        arch = {"outputs": 1, **payload["arch"]} if payload.get("format") == READABLE_FORMATS[0] else payload["arch"]
        self.arch = dict(arch)
        self.outputs = int(arch.get("outputs", 1))
        self.target = arch_target(arch)
        if self.target not in TARGETS or TARGETS[self.target] != self.outputs:
            raise InputError(f"unknown quality target {self.target!r} with {self.outputs} outputs", source)
        cal = payload.get("calibration") or {}
        self.calibration = (float(cal.get("intercept", 0.0)), float(cal.get("slope", 1.0)))
        self.net = build_regressor(arch)
        try:
            self.net.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise InputError(f"weights do not fit the quality network ({str(exc).splitlines()[0]})", source) from exc
        self.net.to(self.device).eval()

    def save(self, path: str | Path, calibration: dict[str, Any] | None = None) -> Path:
        """Write this model (in the current checkpoint format) with ``calibration``, atomically."""
        return save_checkpoint(self.net, path, size=self.size, margin=self.margin, min_mm=self.min_mm, meta=self.meta,
                               arch=self.arch, calibration=calibration)

    def predict_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Network outputs ``(S, V, K)`` for crops ``(S, 2, size, size)`` under V test-time flips."""
        import torch

        views = [(), (3,), (2,), (2, 3)] if self.tta else [()]
        outs = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(inputs[start:start + self.batch_size])).to(self.device)
                per_view = [self.net(batch.flip(dims) if dims else batch).float() for dims in views]
                outs.append(torch.stack(per_view, dim=1).cpu().numpy().astype(np.float64))
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, len(views), self.outputs))

    def score_inputs(self, inputs: np.ndarray, areas: np.ndarray, index: np.ndarray | None = None,
                     axis: int = 0) -> SliceScores:
        """Slice scores of prepared crops with their mask areas."""
        index = np.arange(len(areas)) if index is None else index
        return SliceScores(index, np.asarray(areas, np.float64), self.predict_inputs(inputs), axis, self.calibration,
                           self.target)

    def predict_slices(self, image: np.ndarray, mask: np.ndarray,
                       spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> SliceScores:
        """Per-slice predictions for every slice the mask touches."""
        check_pair(image, mask, self.source)
        crops = slice_crops(image, mask, spacing_zyx, size=self.size, margin=self.margin, min_mm=self.min_mm)
        return self.score_inputs(crops.inputs, crops.areas, crops.index, crops.axis)

    def predict_dice(self, image: np.ndarray, mask: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
        """The volume's predicted Dice."""
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
        raise InputError(f"not a quality model file (torch.load failed: {type(exc).__name__})", target) from exc
    if not (isinstance(payload, dict) and payload.get("format") in READABLE_FORMATS):
        raise InputError("not a GenMedEval quality model (format tag missing)", target)
    return QualityPredictor(payload, source=str(target), device=device, tta=tta)
