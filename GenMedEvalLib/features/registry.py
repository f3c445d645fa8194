"""Encoders by name, imported only when asked for, so that listing them never loads torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError
from .base import Encoder


@dataclass(frozen=True)
class EncoderEntry:
    """Where an encoder class lives, the options it is built with, and one line about it."""

    module: str
    cls: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type[Encoder]:
        """Import the module and return the encoder class."""
        return getattr(importlib.import_module(self.module, package=__package__), self.cls)


ENCODERS: dict[str, EncoderEntry] = {
    "inception": EncoderEntry(".encoders.inception", "InceptionEncoder",
                              "Inception-v3 (FID network, 299 px): 2048-d pool, 2023-d sFID spatial features"),
    "dinov2": EncoderEntry(".encoders.dinov2", "DinoV2Encoder", "DINOv2 ViT (224 px, ImageNet mean/std): CLS token"),
    "resnet50": EncoderEntry(".encoders.resnet", "ResNet50Encoder", "ResNet-50, ImageNet weights (224 px): 2048-d pool",
                             {"weights": "imagenet"}),
    "resnet50-radimagenet": EncoderEntry(".encoders.resnet", "ResNet50Encoder",
                                         "ResNet-50, RadImageNet weights (224 px): 2048-d pool",
                                         {"weights": "radimagenet"}),
    "medicalnet3d": EncoderEntry(".encoders.medicalnet", "MedicalNet3DEncoder",
                                 "MedicalNet 3D ResNet on whole volumes: pooled features"),
    "domain": EncoderEntry(".encoders.domain", "DomainEncoder",
                           "small brain-MRI CNN shipped with GenMedEval (64 px): 128-d embedding + class logits"),
}


def encoder_names() -> list[str]:
    """The registered encoder names, in registry order."""
    return list(ENCODERS)


def get_encoder(name: str, device: str | None = None, batch_size: int | None = None, **options: Any) -> Encoder:
    """Build the encoder called ``name``; an unknown name raises ``ParameterError`` listing the choices."""
    entry = ENCODERS.get(name)
    if entry is None:
        raise ParameterError(f"unknown encoder '{name}'; choose one of: {', '.join(ENCODERS)}")
    kwargs: dict[str, Any] = {**entry.options, **options, "device": device}
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    return entry.load()(**kwargs)
