"""LPIPS (Zhang et al. 2018, arXiv 1801.03924) as no-reference set metrics: diversity and fidelity.

LPIPS compares two images through a frozen AlexNet: at each of its five ReLU outputs the
features are unit-normalised over channels, the squared difference is weighted per channel by
the learnt ``lin`` layers, averaged over space and summed over layers (``lpips`` package,
``net="alex"``, v0.1). The backbone loads torchvision's ``alexnet`` checkpoint key for key and
the ``lin`` weights load the ``lpips`` package's ``alex.pth`` (``lin0.model.1.weight`` ...).
Grey images in [0, 1] are scaled to [-1, 1] and replicated to RGB, as ``lpips`` expects.

Set metrics (SPEC 4): ``lpips_diversity`` = mean pairwise LPIPS inside the generated set (higher
= more diverse); ``lpips_fidelity`` = mean LPIPS from each generated image to its nearest
reference image (lower = closer to real images).
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from ..features.weights import WeightsSpec, WeightsUnavailable, resolve_weights

# torchvision alexnet features: (conv index, out channels); LPIPS taps the ReLU after each conv.
ALEX_CONVS = ((0, 64), (3, 192), (6, 384), (8, 256), (10, 256))
ALEX_POOL_BEFORE = {3, 6}  # max-pool (3, stride 2) precedes these convs
# lpips ScalingLayer: inputs in [-1, 1] are shifted/scaled to ImageNet statistics.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

ALEXNET = WeightsSpec(
    name="AlexNet ImageNet (torchvision IMAGENET1K_V1)",
    filename="alexnet-owt-7be5be79.pth",
    sha256="",  # full digest not recorded with certainty: set GENMEDEVAL_ALEXNET_SHA256
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    licence="BSD-3-Clause (torchvision)",
)
LPIPS_ALEX_LIN = WeightsSpec(
    name="LPIPS v0.1 linear layers for AlexNet (richzhang/PerceptualSimilarity)",
    filename="lpips_v0.1_alex.pth",
    sha256="",  # set GENMEDEVAL_LPIPS_ALEX_SHA256 (the file is lpips/weights/v0.1/alex.pth)
    url=None,
    licence="BSD-2-Clause (lpips)",
)


def _spec(spec: WeightsSpec, env: str) -> WeightsSpec:
    """``spec`` with the SHA-256 from ``$env``; WeightsUnavailable when no digest is known."""
    digest = os.environ.get(env, spec.sha256).strip().lower()
    if not digest:
        raise WeightsUnavailable(
            f"{spec.name}: put {spec.filename} in the weights folder (GENMEDEVAL_WEIGHTS) and set {env} to its SHA-256")
    return replace(spec, sha256=digest)


class LPIPSNetwork:
    """AlexNet-LPIPS on grey images: ``features`` per image, ``distance`` between feature sets."""

    def __init__(self, backbone: dict, lin: dict, device: str | None = None):
        import torch

        from ..features.base import pick_device

        self.device = pick_device(device)
        self.convs = [(backbone[f"features.{i}.weight"].float().to(self.device),
                       backbone[f"features.{i}.bias"].float().to(self.device)) for i, _ in ALEX_CONVS]
        self.lins = [lin[f"lin{k}.model.1.weight"].float().reshape(-1).to(self.device) for k in range(len(ALEX_CONVS))]
        self.shift = torch.tensor(SHIFT, device=self.device).view(1, 3, 1, 1)
        self.scale = torch.tensor(SCALE, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def from_weights(cls, device: str | None = None) -> LPIPSNetwork:
        """Load AlexNet and the LPIPS ``lin`` layers from the weights cache (SHA-256 checked)."""
        import torch

        paths = [resolve_weights(_spec(ALEXNET, "GENMEDEVAL_ALEXNET_SHA256")),
                 resolve_weights(_spec(LPIPS_ALEX_LIN, "GENMEDEVAL_LPIPS_ALEX_SHA256"))]
        backbone, lin = (torch.load(str(p), map_location="cpu", weights_only=True) for p in paths)
        return cls(backbone, lin, device)

    def features(self, images: np.ndarray) -> list:
        """Channel-normalised ReLU maps (one tensor per layer) of grey images (N, H, W) in [0, 1]."""
        import torch
        from torch.nn import functional as F  # noqa: N812

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)[:, None]
            x = ((x * 2 - 1) - self.shift) / self.scale
            taps = []
            for (index, _), (weight, bias) in zip(ALEX_CONVS, self.convs, strict=True):
                if index in ALEX_POOL_BEFORE:
                    x = F.max_pool2d(x, 3, 2)
                stride, pad = (4, 2) if index == 0 else (1, weight.shape[-1] // 2)
                x = F.relu(F.conv2d(x, weight, bias, stride, pad))
                taps.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS))
        return taps

    def distance(self, feats_a: list, feats_b: list) -> np.ndarray:
        """LPIPS between paired feature sets (broadcasting over the batch): (N,) float64."""
        import torch

        with torch.inference_mode():
            total = 0
            for fa, fb, w in zip(feats_a, feats_b, self.lins, strict=True):
                total = total + torch.einsum("nchw,c->n", (fa - fb).pow(2), w) / (fa.shape[-1] * fa.shape[-2])
        return total.double().cpu().numpy()


def _network(network: LPIPSNetwork | None) -> LPIPSNetwork:
    return network if network is not None else LPIPSNetwork.from_weights()


def _check_images(images: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) float32, else ValueError naming ``what``."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or len(arr) == 0:
        raise ValueError(f"{what}: expected grey images (N, H, W), got shape {np.shape(images)}")
    return arr


def lpips_distance(a: np.ndarray, b: np.ndarray, network: LPIPSNetwork | None = None) -> np.ndarray | float:
    """LPIPS between images ``a`` and ``b`` (each (H, W), or paired stacks (N, H, W))."""
    net = _network(network)
    single = np.ndim(a) == 2
    fa, fb = net.features(_check_images(a, "a")), net.features(_check_images(b, "b"))
    out = net.distance(fa, fb)
    return float(out[0]) if single else out


def sample_pairs(n: int, max_pairs: int, seed: int) -> np.ndarray:
    """Index pairs (i < j): all of them when there are at most ``max_pairs``, else a seeded sample."""
    i, j = np.triu_indices(n, k=1)
    pairs = np.stack([i, j], axis=1)
    if len(pairs) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False))
        pairs = pairs[keep]
    return pairs


def _select(feats: list, index) -> list:
    return [f[index] for f in feats]


def lpips_diversity(images: np.ndarray, *, network: LPIPSNetwork | None = None, max_pairs: int = 1000,
                    seed: int = 0, batch_size: int = 64) -> float:
    """Mean pairwise LPIPS inside a generated set (higher = more diverse); pairs sampled with ``seed``."""
    arr = _check_images(images, "images")
    if len(arr) < 2:
        raise ValueError("lpips_diversity needs at least 2 images")
    net = _network(network)
    feats = net.features(arr)
    pairs = sample_pairs(len(arr), max_pairs, seed)
    values = [net.distance(_select(feats, pairs[s:s + batch_size, 0]), _select(feats, pairs[s:s + batch_size, 1]))
              for s in range(0, len(pairs), batch_size)]
    return float(np.concatenate(values).mean())


def lpips_fidelity(generated: np.ndarray, reference: np.ndarray, *, network: LPIPSNetwork | None = None,
                   max_reference: int = 500, seed: int = 0) -> float:
    """Mean over generated images of the LPIPS to the nearest reference image (lower = closer to real).

    At most ``max_reference`` reference images (a seeded sample) are searched, to bound the cost.
    """
    gen = _check_images(generated, "generated")
    ref = _check_images(reference, "reference")
    if len(ref) > max_reference:
        ref = ref[np.sort(np.random.default_rng(seed).choice(len(ref), size=max_reference, replace=False))]
    net = _network(network)
    ref_feats = net.features(ref)
    nearest = []
    for g in range(len(gen)):
        g_feats = net.features(gen[g:g + 1])
        nearest.append(net.distance(g_feats, ref_feats).min())
    return float(np.mean(nearest))
