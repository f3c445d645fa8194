"""User segmenters selected by path: a TorchScript file, or a MONAI bundle directory.

Contract for both: the network takes intensity-normalised images (1st-99th percentile clipped,
scaled to [0, 1]) shaped ``(B, 1, H, W)`` (2D, applied slice by slice along the thick-slice axis)
or ``(B, 1, Z, Y, X)`` (3D), and returns logits ``(B, C, ...)`` of the same spatial size: one
channel is thresholded at 0 (sigmoid 0.5), several channels are arg-maxed and every non-zero class
counts as tumour. Inputs are tiled with MONAI's sliding-window inferer (``roi`` per side).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, first_line
from .base import Segmenter
from .slices import from_slices, slice_axis, to_slices


def logits_to_mask(logits, source: str) -> np.ndarray:
    """A {0, 1} mask from network logits ``(B, C, ...)``."""
    if logits.ndim < 4:
        raise InputError(f"segmenter output has shape {tuple(logits.shape)}; expected (batch, channels, ...)", source)
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).cpu().numpy().astype(np.uint8)
    return (logits.argmax(dim=1) > 0).cpu().numpy().astype(np.uint8)


def _dims_of(net, probe_size: int) -> int:
    """2 when the network accepts a 2D probe ``(1, 1, s, s)``, else 3."""
    import torch

    try:
        with torch.inference_mode():
            net(torch.zeros(1, 1, probe_size, probe_size))
        return 2
    except Exception:  # noqa: BLE001 - any failure means "not a 2D network"; 3D is tried at use
        return 3


class NetworkSegmenter(Segmenter):
    """Apply a loaded torch module under the plug-in contract above."""

    def __init__(self, net, *, source: str, roi: int = 96, spatial_dims: int | None = None,
                 device: str | None = None, batch_size: int = 16):
        super().__init__(device)
        self.name = source
        self.net = net.to(self.device).eval()
        self.roi = int(roi)
        self.batch_size = batch_size
        self.spatial_dims = spatial_dims or _dims_of(self.net.cpu(), self.roi)
        self.net.to(self.device)

    def _infer(self, batch):
        from monai.inferers import sliding_window_inference

        roi = (self.roi,) * (batch.ndim - 2)
        try:
            return sliding_window_inference(batch, roi, sw_batch_size=self.batch_size, predictor=self.net, overlap=0.25)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - a foreign network failing is a user-facing input problem
            raise InputError(f"the network failed on input {tuple(batch.shape)}: {first_line(exc, 200)}",
                             self.name) from exc

    def _predict(self, image01: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if self.spatial_dims == 3:
                batch = torch.from_numpy(np.ascontiguousarray(image01)[None, None]).to(self.device)
                return self._checked(self._infer(batch), image01.shape)[0]
            axis = slice_axis(spacing_zyx)
            stack = np.ascontiguousarray(to_slices(image01, axis))
            parts = []
            for start in range(0, len(stack), self.batch_size):
                batch = torch.from_numpy(stack[start:start + self.batch_size, None]).to(self.device)
                parts.append(self._checked(self._infer(batch), batch.shape[2:], batch.shape[0]))
            return from_slices(np.concatenate(parts, axis=0), axis)

    def _checked(self, logits, spatial: tuple[int, ...], batch: int = 1) -> np.ndarray:
        if tuple(logits.shape[2:]) != tuple(spatial) or logits.shape[0] != batch:
            raise InputError(f"segmenter output has shape {tuple(logits.shape)} for input of spatial size "
                             f"{tuple(spatial)}: it does not fit", self.name)
        return logits_to_mask(logits, self.name)


def load_torchscript(path: Path, *, device: str | None = None, roi: int = 96) -> NetworkSegmenter:
    """A TorchScript file as a segmenter."""
    import torch

    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
        raise InputError(f"not a TorchScript file ({first_line(exc, 160)})", path) from exc
    return NetworkSegmenter(net, source=str(path), roi=roi, device=device)


def _bundle_settings(config: dict[str, Any]) -> tuple[int, int | None]:
    """(roi, spatial_dims) from a bundle's inference config when it states them."""
    roi = 96
    inferer = config.get("inferer")
    if isinstance(inferer, dict) and "roi_size" in inferer:
        size = inferer["roi_size"]
        roi = int(size[0] if isinstance(size, list | tuple) else size)
    net = config.get("network_def")
    dims = net.get("spatial_dims") if isinstance(net, dict) else None
    return roi, int(dims) if isinstance(dims, int) else None


_trust_bundles = False


def trust_bundles(trusted: bool) -> None:
    """Process-wide default of ``load_bundle(trust=None)``: the CLI's ``--trust-bundle`` sets it for one command."""
    global _trust_bundles
    _trust_bundles = bool(trusted)


def check_bundle_trust(folder: Path, trust: bool | None) -> None:
    """Refuse a MONAI bundle unless the caller trusts it: its config can instantiate any Python object."""
    if not (_trust_bundles if trust is None else trust):
        raise InputError("is a MONAI bundle: loading it runs whatever Python code its config names; pass "
                         "--trust-bundle (Slicer: 'Trust bundle code') only for a bundle from a source you trust", folder)


def load_bundle(folder: Path, *, device: str | None = None, trust: bool | None = None) -> NetworkSegmenter:
    """A MONAI bundle directory (``configs/inference.json`` + ``models/model.pt``) as a segmenter.

    The bundle's config is executable (MONAI instantiates the classes and calls it names), so it is
    loaded only when ``trust`` is true (``None``: the process default, :func:`trust_bundles`).
    Its weights are read with ``weights_only=True``.
    """
    import torch
    from monai.bundle import ConfigParser

    check_bundle_trust(folder, trust)
    config_path, weights_path = folder / "configs" / "inference.json", folder / "models" / "model.pt"
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise InputError(f"MONAI bundle is missing {needed.relative_to(folder)}", folder)
    try:
        config = json.loads(config_path.read_text())
        parser = ConfigParser(config)
        net = parser.get_parsed_content("network_def")
    except Exception as exc:  # noqa: BLE001 - malformed configs are user input
        raise InputError(f"cannot build network_def ({first_line(exc, 160)})", config_path) from exc
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable or pickled-code weights file is a bad input
        raise InputError(f"not a weights file loadable with weights_only ({first_line(exc, 120)})",
                         weights_path) from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"weights do not fit network_def ({first_line(exc, 160)})", weights_path) from exc
    roi, dims = _bundle_settings(config)
    return NetworkSegmenter(net, source=str(folder), roi=roi, spatial_dims=dims, device=device)
