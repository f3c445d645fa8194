"""ResNet-50 (He et al. 2016) without torchvision: one architecture, ImageNet or RadImageNet weights.

Module names follow torchvision's ``resnet50`` so its checkpoints load key for key; RadImageNet
checkpoints (a ``Sequential`` of the same children, often under ``backbone.``/``module.``) are
mapped onto those names by ``torchvision_keys``. Features: the 2048-d global average pool.
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from ..weights import WeightsSpec
from . import CheckpointEncoder, grey_to_input

INPUT_SIZE = 224

RESNET50_IMAGENET = WeightsSpec(
    name="ResNet-50 ImageNet (torchvision IMAGENET1K_V1)",
    filename="resnet50-0676ba61.pth",
    # torch.hub names files by the first 8 hex digits of their SHA-256; this full digest (of the
    # 102,530,333-byte file) starts with them.
    sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
    url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
    size_mb=97.8,
    licence="BSD-3-Clause (torchvision)",
)

RESNET50_RADIMAGENET = WeightsSpec(
    name="ResNet-50 RadImageNet (Mei et al. 2022)",
    filename="RadImageNet-ResNet50_notop.pth",
    sha256="",  # not recorded with certainty: set GENMEDEVAL_RADIMAGENET_SHA256 when placing the file
    url="https://huggingface.co/MONAI/checkpoints/resolve/main/RadImageNet-ResNet50_notop.pth",
    licence="RadImageNet terms of use (research)",
)

SPECS = {"imagenet": (RESNET50_IMAGENET, "GENMEDEVAL_RESNET50_SHA256"),
         "radimagenet": (RESNET50_RADIMAGENET, "GENMEDEVAL_RADIMAGENET_SHA256")}

# Index of each torchvision child in ``nn.Sequential(*list(resnet.children())[:-1])``.
_SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def build_resnet50(num_classes: int = 1000):
    """A torchvision-compatible ResNet-50 (Bottleneck blocks [3, 4, 6, 3], stride in the 3x3 conv)."""
    from torch import nn

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    class ResNet50(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._layer(64, 3, 1)
            self.layer2 = self._layer(128, 4, 2)
            self.layer3 = self._layer(256, 6, 2)
            self.layer4 = self._layer(512, 3, 2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2048, num_classes)

        def _layer(self, planes: int, blocks: int, stride: int):
            downsample = None
            if stride != 1 or self.inplanes != planes * 4:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes * 4))
            layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * 4
            layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def features(self, x):
            """The pooled 2048-d embedding (before ``fc``)."""
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.avgpool(x).flatten(1)

        def forward(self, x):
            return self.fc(self.features(x))

    return ResNet50()


def torchvision_keys(state: dict) -> dict:
    """Map a ResNet-50 checkpoint's keys onto torchvision names (drops ``module.``/``backbone.``)."""
    mapped = {}
    for key, value in state.items():
        name = re.sub(r"^(module\.|backbone\.|model\.|encoder\.)+", "", key)
        head, _, rest = name.partition(".")
        if head in _SEQUENTIAL_NAMES and rest:
            name = f"{_SEQUENTIAL_NAMES[head]}.{rest}"
        mapped[name] = value
    return mapped


def load_resnet50(state: dict):
    """A ResNet-50 in eval mode holding ``state`` (every backbone weight must be present)."""
    model = build_resnet50()
    missing, unexpected = model.load_state_dict(torchvision_keys(state), strict=False)
    # The head is not used; old checkpoints (such as torchvision's) lack num_batches_tracked.
    missing = [key for key in missing if not key.startswith("fc.") and not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"ResNet-50 checkpoint does not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


class ResNet50Encoder(CheckpointEncoder):
    """ResNet-50 pooled features (2048-d) at 224 px with ImageNet mean/std, ImageNet or RadImageNet weights."""

    name: ClassVar[str] = "resnet50"
    dim: ClassVar[int] = 2048
    input_size: ClassVar[int] = INPUT_SIZE

    def __init__(self, device: str | None = None, batch_size: int = 32, *, weights: str = "imagenet",
                 sha256: str | None = None):
        super().__init__(device=device, batch_size=batch_size)
        if weights not in SPECS:
            from ...errors import ParameterError

            raise ParameterError(f"ResNet-50 weights must be one of {sorted(SPECS)}, got {weights!r}")
        spec, env = SPECS[weights]
        self._use_weights(spec, env, sha256)
        self.variant = weights
        if weights != "imagenet":
            self.name = f"resnet50-{weights}"  # the registry name; part of the cache identity

    def _build(self, state: dict):
        return load_resnet50(state)

    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        net = self._net()
        with torch.inference_mode():
            x = grey_to_input(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device),
                              INPUT_SIZE)
            pool = self._forward(net.features, x)
        return {"pool": pool.float().cpu().numpy()}
