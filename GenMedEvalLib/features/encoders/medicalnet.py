"""MedicalNet 3D ResNet-10/18 (Chen et al. 2019) on whole volumes: 512-d global pooled features.

The network reproduces Tencent/MedicalNet's ``resnet.py`` (BasicBlock, shortcut B, layer3 and
layer4 dilated 2 and 4 at stride 1), which MONAI's ``ResNet`` does not (it strides instead), so
its pretrained weights compute what they were trained for. Module names match the official
checkpoints (``module.conv1.weight``, ``module.layer1.0.bn1.*``, ``module.layer2.0.downsample.0``)
after dropping ``module.``. Volumes are resampled to ``size``^3 (trilinear) and z-scored over
their non-zero voxels, as MedicalNet's data loader does.
"""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from ..weights import WeightsSpec
from . import CheckpointEncoder

DEPTH_LAYERS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}
SHA_ENV = "GENMEDEVAL_MEDICALNET_SHA256"


def medicalnet_spec(depth: int) -> WeightsSpec:
    """The official MedicalNet checkpoint for ``depth`` (digest supplied by the user who places it)."""
    return WeightsSpec(
        name=f"MedicalNet 3D ResNet-{depth} (Tencent, 23 datasets)",
        filename=f"resnet_{depth}_23dataset.pth",
        sha256="",  # not recorded with certainty: set GENMEDEVAL_MEDICALNET_SHA256 when placing the file
        url=None,
        licence="MIT (Tencent/MedicalNet)",
    )


def build_resnet3d(depth: int = 10):
    """MedicalNet's 3D ResNet without its segmentation head, returning the 512-d pooled features."""
    from torch import nn

    def conv3(inp: int, out: int, stride: int = 1, dilation: int = 1):
        return nn.Conv3d(inp, out, 3, stride, dilation, dilation=dilation, bias=False)

    class BasicBlock(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, downsample=None):
            super().__init__()
            self.conv1 = conv3(inplanes, planes, stride, dilation)
            self.bn1 = nn.BatchNorm3d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3(planes, planes, dilation=dilation)
            self.bn2 = nn.BatchNorm3d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet3D(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = DEPTH_LAYERS[depth]
            self.inplanes = 64
            self.conv1 = nn.Conv3d(1, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm3d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool3d(3, 2, 1)
            self.layer1 = self._layer(64, blocks[0])
            self.layer2 = self._layer(128, blocks[1], stride=2)
            self.layer3 = self._layer(256, blocks[2], dilation=2)
            self.layer4 = self._layer(512, blocks[3], dilation=4)

        def _layer(self, planes: int, count: int, stride: int = 1, dilation: int = 1):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(nn.Conv3d(self.inplanes, planes, 1, stride, bias=False),
                                           nn.BatchNorm3d(planes))
            layers = [BasicBlock(self.inplanes, planes, stride, dilation, downsample)]
            self.inplanes = planes
            layers += [BasicBlock(planes, planes, dilation=dilation) for _ in range(1, count)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return x.mean(dim=(2, 3, 4))

    return ResNet3D()


def medicalnet_keys(state: dict) -> dict:
    """Drop ``module.`` and the segmentation head (``conv_seg``) from a MedicalNet checkpoint."""
    return {key.removeprefix("module."): value for key, value in state.items()
            if not key.removeprefix("module.").startswith("conv_seg")}


def checkpoint_depth(state: dict) -> int:
    """10 or 18, from the number of blocks in ``layer1``."""
    blocks = {int(m.group(1)) for key in state if (m := re.match(r"(?:module\.)?layer1\.(\d+)\.", key))}
    return 18 if len(blocks) == 2 else 10


def load_resnet3d(state: dict):
    """A MedicalNet 3D ResNet in eval mode holding ``state`` (every weight must match)."""
    model = build_resnet3d(checkpoint_depth(state))
    missing, unexpected = model.load_state_dict(medicalnet_keys(state), strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]  # absent in old files
    if missing or unexpected:
        raise ValueError(f"MedicalNet checkpoint does not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def prepare_volumes(batch, size: int):
    """(B, Z, Y, X) -> (B, 1, size, size, size): trilinear resample, z-score over non-zero voxels."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    x = F.interpolate(batch[:, None], size=(size, size, size), mode="trilinear", align_corners=False)
    out = []
    for volume in x:
        inside = volume[volume > 0]
        ref = inside if inside.numel() > 1 else volume.flatten()
        std = ref.std()
        out.append((volume - ref.mean()) / (std if std > 0 else 1.0))
    return torch.stack(out)


class MedicalNet3DEncoder(CheckpointEncoder):
    """MedicalNet 3D ResNet-10/18 features (512-d) of whole volumes resampled to ``size``^3."""

    name: ClassVar[str] = "medicalnet3d"
    dim: ClassVar[int] = 512
    input_size: ClassVar[int] = 128
    spatial_dims: ClassVar[int] = 3

    def __init__(self, device: str | None = None, batch_size: int = 2, *, depth: int = 10, size: int = 128,
                 sha256: str | None = None):
        super().__init__(device=device, batch_size=batch_size)
        if depth not in DEPTH_LAYERS:
            from ...errors import ParameterError

            raise ParameterError(f"MedicalNet depth must be one of {sorted(DEPTH_LAYERS)}, got {depth}")
        self._use_weights(medicalnet_spec(depth), SHA_ENV, sha256)
        self.size = size
        self.input_size = size  # part of the cache identity

    def _build(self, state: dict):
        return load_resnet3d(state)

    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        if batch.ndim != 4:
            raise ValueError(f"expected volumes (B, Z, Y, X), got shape {batch.shape}")
        net = self._net()
        with torch.inference_mode():
            x = prepare_volumes(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device),
                                self.size)
            pool = self._forward(net, x)
        return {"pool": pool.float().cpu().numpy()}
