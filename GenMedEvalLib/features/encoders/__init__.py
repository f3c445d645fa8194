"""Deep feature encoders (Inception, DINOv2, ResNet-50, MedicalNet 3D) behind ``features.base.Encoder``.

Each module imports torch only when an encoder is built; the registry imports them by name.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from ..base import Encoder
from ..weights import WeightsSpec, WeightsUnavailable, resolve_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def spec_with_hash(spec: WeightsSpec, env: str, sha256: str | None = None) -> WeightsSpec:
    """``spec`` with its SHA-256 taken from the argument, else ``$env``, else the spec's own.

    Official files whose full digest GenMedEval does not record with certainty ship with an
    empty ``sha256``; the user who places the file states its digest, and it is then checked.
    """
    digest = (sha256 or os.environ.get(env) or spec.sha256).strip().lower()
    return replace(spec, sha256=digest)


def resolve_checked(spec: WeightsSpec, env: str) -> Path:
    """``resolve_weights`` for a spec that may lack a digest: explain how to supply one."""
    if not spec.sha256:
        raise WeightsUnavailable(
            f"{spec.name}: no SHA-256 is recorded for {spec.filename}; put the file in the weights folder "
            f"(GENMEDEVAL_WEIGHTS) and set {env} to its SHA-256 (or pass sha256=...)")
    return resolve_weights(spec)


def load_state_dict(path: Path) -> dict:
    """A checkpoint's state dict on CPU (unwrapping ``state_dict``/``model`` containers)."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "teacher"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return dict(state)


def grey_to_input(batch, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(B, H, W) grey in [0, 1] -> (B, 3, size, size) resized bilinearly and mean/std normalised."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    x = batch[:, None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


class CheckpointEncoder(Encoder):
    """An encoder whose network is built from one verified checkpoint on first use.

    Subclasses call ``_use_weights`` in ``__init__``, implement ``_build(state) -> nn.Module`` and
    run the network through ``_forward`` (mixed precision on CUDA only, float32 on CPU).
    """

    amp_dtype: ClassVar[str] = "float16"

    def _use_weights(self, spec: WeightsSpec, env: str, sha256: str | None = None) -> None:
        self._spec = spec_with_hash(spec, env, sha256)
        self._env = env
        self._model = None

    @property
    def weights(self) -> WeightsSpec:
        return self._spec

    def _build(self, state: dict):
        raise NotImplementedError

    def _net(self):
        if self._model is None:
            self._model = self._build(load_state_dict(resolve_checked(self._spec, self._env))).to(self.device)
        return self._model

    def _forward(self, fn, x):
        import torch

        if self.device.startswith("cuda"):
            with torch.autocast("cuda", dtype=getattr(torch, self.amp_dtype)):
                return fn(x)
        return fn(x)
