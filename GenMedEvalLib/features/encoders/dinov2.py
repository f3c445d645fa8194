"""DINOv2 ViT-B/14 (Oquab et al. 2023) without torchvision or torch.hub: the CLS token, 768-d.

Module names follow facebookresearch/dinov2 so ``dinov2_vitb14_pretrain.pth`` loads key for key
(``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,
ls2.gamma}``, ``norm``, ``cls_token``, ``pos_embed``). The width and depth are read from the
checkpoint, so smaller ViTs with the same layout load too. The 518-px position embedding is
resized bicubically to the 16 x 16 patch grid of a 224-px input, as DINOv2 itself does.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..weights import WeightsSpec
from . import CheckpointEncoder, grey_to_input

INPUT_SIZE = 224
PATCH = 14
HEAD_DIM = 64
INTERPOLATE_OFFSET = 0.1  # DINOv2's offset for the position-embedding scale factor

DINOV2_VITB14 = WeightsSpec(
    name="DINOv2 ViT-B/14 (facebookresearch/dinov2)",
    filename="dinov2_vitb14_pretrain.pth",
    sha256="",  # not recorded with certainty: set GENMEDEVAL_DINOV2_SHA256 when placing the file
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
    size_mb=330.0,
    licence="Apache-2.0",
)
SHA_ENV = "GENMEDEVAL_DINOV2_SHA256"


def build_vit(dim: int = 768, depth: int = 12, heads: int = 12, grid: int = 37, mlp_ratio: float = 4.0):
    """A DINOv2-layout ViT (patch 14, LayerScale, LayerNorm eps 1e-6) returning the normed CLS token."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, dim, PATCH, PATCH)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, dim * 3)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v)
            return self.proj(out.transpose(1, 2).reshape(b, n, dim))

    class LayerScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return x * self.gamma

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
            self.act = nn.GELU()
            self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = Attention()
            self.ls1 = LayerScale()
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = Mlp()
            self.ls2 = LayerScale()

        def forward(self, x):
            x = x + self.ls1(self.attn(self.norm1(x)))
            return x + self.ls2(self.mlp(self.norm2(x)))

    class VisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
            self.mask_token = nn.Parameter(torch.zeros(1, dim))
            self.blocks = nn.ModuleList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim, eps=1e-6)

        def position_embedding(self, side: int):
            """Position embedding for a ``side`` x ``side`` patch grid (bicubic, DINOv2's offset)."""
            if side == grid:
                return self.pos_embed
            cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
            patch_pos = patch_pos.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
            scale = (side + INTERPOLATE_OFFSET) / grid
            patch_pos = F.interpolate(patch_pos, scale_factor=(scale, scale), mode="bicubic")
            patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, side * side, dim)
            return torch.cat([cls_pos, patch_pos], dim=1)

        def forward(self, x):
            side = x.shape[-1] // PATCH
            tokens = self.patch_embed(x)
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
            tokens = tokens + self.position_embedding(side).to(tokens.dtype)
            for block in self.blocks:
                tokens = block(tokens)
            return self.norm(tokens)[:, 0]

    return VisionTransformer()


def vit_config(state: dict) -> dict:
    """Width, depth, heads and position grid of a DINOv2 checkpoint, read from its tensors."""
    dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / dim
    return {"dim": dim, "depth": depth, "heads": max(dim // HEAD_DIM, 1), "grid": grid, "mlp_ratio": mlp_ratio}


def load_vit(state: dict, heads: int | None = None):
    """A ViT in eval mode holding ``state`` (``module.``/``backbone.`` prefixes dropped)."""
    state = {key.removeprefix("module.").removeprefix("backbone."): value for key, value in state.items()}
    config = vit_config(state)
    if heads:
        config["heads"] = heads
    model = build_vit(**config)
    model.load_state_dict(state, strict=True)
    return model.eval()


class DinoV2Encoder(CheckpointEncoder):
    """DINOv2 ViT-B/14 CLS token (768-d) of grey slices at 224 px with ImageNet mean/std."""

    name: ClassVar[str] = "dinov2"
    dim: ClassVar[int] = 768
    input_size: ClassVar[int] = INPUT_SIZE
    amp_dtype: ClassVar[str] = "bfloat16"

    def __init__(self, device: str | None = None, batch_size: int = 32, *, sha256: str | None = None,
                 heads: int | None = None):
        super().__init__(device=device, batch_size=batch_size)
        self._use_weights(DINOV2_VITB14, SHA_ENV, sha256)
        self._heads = heads

    def _build(self, state: dict):
        return load_vit(state, self._heads)

    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        net = self._net()
        with torch.inference_mode():
            x = grey_to_input(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device),
                              INPUT_SIZE)
            cls = self._forward(net, x)
        return {"pool": cls.float().cpu().numpy()}
