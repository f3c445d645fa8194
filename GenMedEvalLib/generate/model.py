"""Generator checkpoints (save, verify, load) and sampling: ``Generator.sample(n, seed)``.

A checkpoint is a ``torch.save`` dict of tensors, strings and numbers (loaded with
``weights_only=True``, so it runs no code): format tag, kind, ``arch`` (every constructor
argument), the grid (size, field of view), the state dict and ``meta`` (how it was trained).
Sampling is deterministic per seed: one ``torch.Generator`` seeded with ``seed`` draws every
random number, in a fixed batch order, on the CPU (then moved to the device).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, ParameterError, first_line
from ..io import atomic_path
from .nets import Decoder, build_ddpm, ddim_schedule, ddim_step
from .slices import FOV_MM, SIZE, check_batch

FORMAT = "genmedeval-generator"
DEFAULT_DDIM_STEPS = 30
DEFAULT_DDIM_ETA = 0.5
"""DDIM's noise scale (0: the deterministic trajectory; 1: the DDPM posterior's variance), seeded either way.
Measured on the shipped model, 64 samples, seed 0: the deterministic trajectory lets its errors accumulate
(median border 0.14 of the range, and blown-out or speckled samples); eta 1 gives clean brains but keeps a
tumour in 5 % of samples (the small mask channel is washed out); 0.5 with 30 steps gives a median border
of 0.12 with tumours in 28 % of samples, 17 s for 64 on two threads."""


def check_eta(eta: float) -> float:
    """``eta`` when it is a DDIM noise scale in [0, 1]; one line otherwise (the CLI checks before any work)."""
    if not 0.0 <= eta <= 1.0:
        raise ParameterError(f"--eta must be in [0, 1], got {eta}")
    return float(eta)


SAMPLE_BATCH = 16
"""Samples per network pass: 16 is twice as fast as 64 on two CPU threads (11.7 s against 24.0 s for 64 DDPM
samples of 20 steps), the activations staying in cache."""


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path, *, fov_mm: float = FOV_MM) -> Path:
    """Write a trained generator atomically (the format tag and grid added)."""
    payload = {"format": FORMAT, "version": 1, "grid": {"size": int(checkpoint["arch"]["size"]), "fov_mm": fov_mm},
               **checkpoint}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A generator checkpoint's dict; one line naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
        raise InputError(f"is not a GenMedEval generator checkpoint ({first_line(exc)})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("is not a GenMedEval generator checkpoint (no 'genmedeval-generator' format tag)", path)
    return payload


@dataclass
class Generator:
    """A loaded generator of one kind; ``sample`` gives (images in [0, 1], binary masks), (N, S, S)."""

    kind: str
    arch: dict[str, Any]
    net: Any
    meta: dict[str, Any]
    fov_mm: float
    source: str
    device: str = "cpu"

    @property
    def size(self) -> int:
        return int(self.arch["size"])

    def sample(self, n: int, seed: int = 0, *, steps: int = DEFAULT_DDIM_STEPS, eta: float = DEFAULT_DDIM_ETA,
               batch: int = SAMPLE_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples, the same for the same ``seed`` (and, for DDPM, the same DDIM ``steps`` and ``eta``)."""
        if n < 1:
            raise ParameterError(f"--n must be >= 1, got {n}")
        if self.kind == "ddpm" and not 1 <= steps <= int(self.arch["train_timesteps"]):
            raise ParameterError(f"--steps must be in [1, {self.arch['train_timesteps']}], got {steps}")
        check_eta(eta)
        rng = torch.Generator().manual_seed(int(seed))
        if self.kind == "memoriser":
            return self._recall(n, rng)
        schedule = ddim_schedule(self.arch, steps) if self.kind == "ddpm" else []
        parts = []
        with torch.inference_mode():
            for start in range(0, n, batch):
                count = min(batch, n - start)
                parts.append(self._draw(count, rng, schedule, eta).float().cpu())
        x = torch.cat(parts).numpy()
        images = np.clip((x[:, 0] + 1) / 2, 0.0, 1.0).astype(np.float32)
        masks = (x[:, 1] > 0).astype(np.uint8)
        images, masks = _clean(images, masks)
        check_batch(images, masks, self.source)
        return images, masks

    def _draw(self, count: int, rng: torch.Generator, schedule: list[tuple[int, float, float]], eta: float
              ) -> torch.Tensor:
        if self.kind in ("vae", "gan"):
            z = torch.randn(count, int(self.arch["latent"]), generator=rng).to(self.device)
            return self.net(z)
        x = torch.randn(count, 2, self.size, self.size, generator=rng).to(self.device)
        for t, alpha_t, alpha_s in schedule:
            eps = self.net(x, timesteps=torch.full((count,), t, device=self.device, dtype=torch.long))
            x = ddim_step(eps, x, alpha_t, alpha_s, eta, rng)
        return x.clamp(-1, 1)

    def _recall(self, n: int, rng: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        stored = self.net["images"]
        index = torch.randperm(len(stored), generator=rng)
        if n > len(stored):
            index = torch.cat([index, torch.randint(0, len(stored), (n - len(stored),), generator=rng)])
        index = index[:n]
        images = stored[index].float() / 255 + float(self.arch["noise"]) * torch.randn(
            (n, *stored.shape[1:]), generator=rng)
        images = images.clamp(0, 1).numpy().astype(np.float32)
        masks = np.unpackbits(self.net["masks"][index].numpy(), axis=-1, count=stored.shape[-1]).astype(np.uint8)
        check_batch(images, masks, self.source)
        return images, masks


MIN_COMPONENT = 4
"""Smallest generated tumour component kept, in pixels (4 pixels of 3.6 mm: about 50 mm^2); smaller specks
are the mask channel's noise, not a tumour."""


def _clean(images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generated masks restricted to the generated brain (``slices.brain_mask``: a tumour cannot lie outside it)
    and cleared of specks under ``MIN_COMPONENT`` pixels; images unchanged."""
    from scipy.ndimage import label

    from .slices import brain_mask

    out = np.stack([masks[k].astype(bool) & brain_mask(images[k]) for k in range(len(masks))]).astype(np.uint8)
    for k in range(len(out)):
        components, count = label(out[k])
        if count:
            sizes = np.bincount(components.ravel())
            out[k] = (sizes[components] >= MIN_COMPONENT) & (components > 0)
    return images, out


def pick_device(device: str | None = None) -> str:
    """``device``, else the process default (``--device``), else CUDA when present, else CPU."""
    from ..threads import default_device

    return device or default_device() or ("cuda" if torch.cuda.is_available() else "cpu")


def load_generator(path: str | Path, *, device: str | None = None) -> Generator:
    """Load a generator checkpoint onto ``device`` (default: CUDA when present, else CPU)."""
    payload = read_checkpoint(path)
    kind, arch = payload.get("kind"), dict(payload.get("arch", {}))
    device = pick_device(device)
    try:
        if kind in ("vae", "gan"):
            net: Any = Decoder(int(arch["latent"]), int(arch["width"]), int(arch["size"]))
            net.load_state_dict(payload["state_dict"])
            net = net.to(device).eval()
        elif kind == "ddpm":
            net = build_ddpm(arch)
            net.load_state_dict(payload["state_dict"])
            net = net.to(device).eval()
        elif kind == "memoriser":
            net = {k: v.cpu() for k, v in payload["state_dict"].items()}
        else:
            raise InputError(f"has an unknown generator kind '{kind}'", path)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"does not hold a loadable {kind} generator ({first_line(exc)})", path) from None
    fov = float(payload.get("grid", {}).get("fov_mm", FOV_MM))
    return Generator(kind, arch, net, dict(payload.get("meta", {})), fov, str(path), device)


SHIPPED = {"vae": "generator_vae.pt", "gan": "generator_gan.pt", "ddpm": "generator_ddpm.pt",
           "memoriser": "generator_memoriser.pt"}
# The shipped files' digests (retraining: update them and Resources/Models/README.md).
SHIPPED_SHA256: dict[str, str] = {
    "vae": "f9f2e19f979bc2ea537c0c15f0f863573643c05eb1a5a7a595dbba36bd32c0ff",
    "gan": "3dcab0ca287be05608e3a3919f3585487ad463214691e2886eaafa9e56bb48b6",
    "ddpm": "a3bd16653511991d9343d965cab25d7f5851d3a441c4f0b4a0f00d635c19bef8",
    "memoriser": "9393e79686bd60d3b2e90f402f941974181c3de3dfac117cbb94ded7ec79a238",
}


def shipped_generator(kind: str) -> Path:
    """The shipped weights of ``kind`` after checking their SHA-256; one line when missing or altered."""
    from ..data import models_dir
    from ..features.weights import WeightsSpec, resolve_weights

    if kind not in SHIPPED:
        raise ParameterError(f"unknown generator '{kind}'; choose one of: {', '.join(SHIPPED)}, or a checkpoint file")
    spec = WeightsSpec(f"shipped {kind} generator", SHIPPED[kind], SHIPPED_SHA256[kind])
    return resolve_weights(spec, cache=models_dir(), download=False)


def resolve_generator(name: str | Path, *, device: str | None = None) -> Generator:
    """A shipped kind by name (``vae``, ``gan``, ``ddpm``, ``memoriser``) or a checkpoint file."""
    if str(name) in SHIPPED:
        return load_generator(shipped_generator(str(name)), device=device)
    return load_generator(name, device=device)


__all__ = ["DEFAULT_DDIM_STEPS", "Generator", "SHIPPED", "SIZE", "load_generator", "read_checkpoint",
           "resolve_generator", "save_checkpoint", "shipped_generator"]
