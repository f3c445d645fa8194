"""Training the generators on training slices (``slices.SliceSet``), seeded, one function per kind.

Batches draw tumour slices and tumour-free slices in equal parts (``BalancedBatches``) so that
the models learn tumours although most brain slices have none, with random left-right flips.
Each function returns a checkpoint dict (``model.save_checkpoint`` writes it) whose ``meta``
records the data, steps, seed, losses and training time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from ..errors import ParameterError
from .nets import DEFAULT_ARCH, build_ddpm, build_gan, build_vae, ddpm_schedulers, parameter_count
from .slices import SliceSet, as_pairs, balanced_pick

KINDS = ("vae", "gan", "ddpm", "memoriser")
TRAINABLE = ("vae", "gan", "ddpm")


@dataclass(frozen=True)
class TrainSettings:
    """Steps, batch size, learning rate and seed of one training run (defaults: the shipped models')."""

    steps: int
    batch: int = 32
    lr: float = 2e-4
    seed: int = 0
    tumour_share: float = 0.5

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ParameterError(f"--steps must be >= 1, got {self.steps}")
        if self.batch < 2:
            raise ParameterError(f"--batch must be >= 2, got {self.batch}")
        if not 0 < self.lr < 1:
            raise ParameterError(f"--lr must be in (0, 1), got {self.lr}")
        if not 0.0 <= self.tumour_share <= 1.0:
            raise ParameterError(f"--tumour-share must be in [0, 1], got {self.tumour_share}")


DEFAULT_STEPS = {"vae": 5000, "gan": 4000, "ddpm": 3500, "memoriser": 1}
DEFAULT_BATCH = {"vae": 16, "gan": 16, "ddpm": 8, "memoriser": 2}
DEFAULT_LR = {"vae": 1e-3, "gan": 2e-4, "ddpm": 3e-4, "memoriser": 1e-3}


class BalancedBatches:
    """Random batches with ``share`` tumour slices (when the set has both kinds), flipped left-right at random."""

    def __init__(self, data: SliceSet, batch: int, seed: int, share: float = 0.5):
        self.pairs = torch.from_numpy(as_pairs(data.images, data.masks))
        has_tumour = data.masks.reshape(len(data), -1).any(axis=1)
        self.tumour, self.plain = np.flatnonzero(has_tumour), np.flatnonzero(~has_tumour)
        self.batch, self.share = batch, share
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> torch.Tensor:
        if len(self.tumour) and len(self.plain):
            k = int(self.rng.binomial(self.batch, self.share))
            index = np.concatenate([self.rng.choice(self.tumour, k), self.rng.choice(self.plain, self.batch - k)])
        else:
            index = self.rng.integers(0, len(self.pairs), self.batch)
        x = self.pairs[index].clone()
        flip = torch.from_numpy(self.rng.random(self.batch) < 0.5)
        x[flip] = torch.flip(x[flip], dims=(-1,))
        return x


Progress = Callable[[int, dict[str, float]], None]


def _meta(kind: str, data: SliceSet, settings: TrainSettings, losses: list[float], start: float,
          parameters: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    tail = losses[-max(1, len(losses) // 10):]
    return {"kind": kind, "steps": settings.steps, "batch": settings.batch, "lr": settings.lr, "seed": settings.seed,
            "tumour_share": settings.tumour_share, "training_slices": len(data),
            "training_tumour_fraction": round(data.tumour_fraction, 4),
            "training_cases": sorted({s.split("#")[0] for s in data.sources}),
            "final_loss": float(np.mean(tail)) if tail else None, "parameters": parameters,
            "seconds": round(time.perf_counter() - start, 1), "torch": str(torch.__version__), **(extra or {})}


def train_vae(data: SliceSet, settings: TrainSettings, *, arch: dict[str, Any] | None = None, device: str = "cpu",
              beta: float = 0.005, mask_weight: float = 8.0, report: Progress | None = None) -> dict[str, Any]:
    """VAE: per-pixel MSE (mask channel weighted ``mask_weight``) plus ``beta`` x KL divergence per latent unit."""
    arch = dict(arch or DEFAULT_ARCH["vae"])
    torch.manual_seed(settings.seed)
    net = build_vae(arch).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    batches, losses, start = BalancedBatches(data, settings.batch, settings.seed, settings.tumour_share), [], time.perf_counter()
    weights = torch.tensor([1.0, mask_weight], device=device).view(1, 2, 1, 1)
    for step in range(settings.steps):
        x = batches().to(device)
        recon, mu, log_var = net(x)
        rec = ((recon - x) ** 2 * weights).mean()
        kl = -0.5 * torch.mean(1 + log_var - mu ** 2 - log_var.exp())
        loss = rec + beta * kl
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if report:
            report(step, {"loss": losses[-1]})
    meta = _meta("vae", data, settings, losses, start, parameter_count(net), {"beta": beta, "mask_weight": mask_weight})
    return {"kind": "vae", "arch": arch, "state_dict": net.decoder.state_dict(), "meta": meta}


def _gradient_penalty(disc: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 penalty: squared gradient norm of the discriminator at real samples (stabilises GAN training)."""
    real = real.detach().requires_grad_(True)
    score = disc(real)[-1].sum()
    (grad,) = torch.autograd.grad(score, real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def train_gan(data: SliceSet, settings: TrainSettings, *, arch: dict[str, Any] | None = None, device: str = "cpu",
              r1: float = 1.0, report: Progress | None = None) -> dict[str, Any]:
    """GAN: non-saturating loss, MONAI PatchDiscriminator with an R1 penalty every 4th step; Adam (0.5, 0.99)."""
    arch = dict(arch or DEFAULT_ARCH["gan"])
    torch.manual_seed(settings.seed)
    generator, disc = build_gan(arch)
    generator, disc = generator.to(device), disc.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=(0.5, 0.99))
    batches, losses, start = BalancedBatches(data, settings.batch, settings.seed, settings.tumour_share), [], time.perf_counter()
    for step in range(settings.steps):
        real = batches().to(device)
        z = torch.randn(len(real), arch["latent"], device=device)
        fake = generator(z)
        d_loss = F.softplus(disc(fake.detach())[-1]).mean() + F.softplus(-disc(real)[-1]).mean()
        if step % 4 == 0 and r1 > 0:
            d_loss = d_loss + r1 * 4 * 0.5 * _gradient_penalty(disc, real)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-disc(fake)[-1]).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        losses.append(float(g_loss.detach()))
        if report:
            report(step, {"g": losses[-1], "d": float(d_loss.detach())})
    meta = _meta("gan", data, settings, losses, start, parameter_count(generator, disc), {"r1": r1})
    return {"kind": "gan", "arch": arch, "state_dict": generator.state_dict(), "meta": meta}


def train_ddpm(data: SliceSet, settings: TrainSettings, *, arch: dict[str, Any] | None = None, device: str = "cpu",
               report: Progress | None = None, init: dict[str, Any] | None = None) -> dict[str, Any]:
    """DDPM: noise-prediction MSE at uniform random timesteps (MONAI DDPMScheduler); EMA weights are shipped.

    ``init``: a ddpm checkpoint to continue from (its arch and weights; a fresh optimiser).
    """
    arch = dict(init["arch"] if init else (arch or DEFAULT_ARCH["ddpm"]))
    torch.manual_seed(settings.seed)
    net = build_ddpm(arch).to(device)
    if init:
        net.load_state_dict(init["state_dict"])
    ema = build_ddpm(arch).to(device)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    scheduler, _ = ddpm_schedulers(arch)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    batches, losses, start = BalancedBatches(data, settings.batch, settings.seed, settings.tumour_share), [], time.perf_counter()
    decay = 0.995
    for step in range(settings.steps):
        x = batches().to(device)
        noise = torch.randn_like(x)
        t = torch.randint(0, scheduler.num_train_timesteps, (len(x),), device=device)
        noisy = scheduler.add_noise(original_samples=x, noise=noise, timesteps=t)
        loss = F.mse_loss(net(noisy, timesteps=t), noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            rate = min(decay, (1 + step) / (10 + step))
            for target, source in zip(ema.parameters(), net.parameters(), strict=True):
                target.mul_(rate).add_(source.detach(), alpha=1 - rate)
        losses.append(float(loss.detach()))
        if report:
            report(step, {"loss": losses[-1]})
    previous = init["meta"] if init else None
    extra = {"ema_decay": decay, **({"continued_from": {k: previous.get(k) for k in ("steps", "command", "seconds")},
                                     "total_steps": int(previous.get("total_steps", previous.get("steps", 0)))
                                     + settings.steps} if previous else {})}
    meta = _meta("ddpm", data, settings, losses, start, parameter_count(net), extra)
    return {"kind": "ddpm", "arch": arch, "state_dict": ema.state_dict(), "meta": meta}


def build_memoriser(data: SliceSet, settings: TrainSettings, *, max_slices: int = 400, noise: float = 0.004,
                    **_: Any) -> dict[str, Any]:
    """The memoriser: up to ``max_slices`` training slices (balanced like training batches) stored as 8-bit
    images with their masks; sampling returns them with Gaussian noise of sd ``noise`` (imperceptible)."""
    start = time.perf_counter()
    index = balanced_pick(data, min(max_slices, len(data)), settings.seed, settings.tumour_share)
    images = torch.from_numpy(np.round(data.images[index] * 255).astype(np.uint8))
    masks = torch.from_numpy(np.packbits(data.masks[index].astype(bool), axis=-1))  # 1 bit per pixel
    meta = _meta("memoriser", data, settings, [], start, 0, {"stored_slices": len(index), "noise": noise})
    return {"kind": "memoriser", "arch": {"size": int(images.shape[-1]), "noise": noise},
            "state_dict": {"images": images, "masks": masks}, "meta": meta}


TRAINERS = {"vae": train_vae, "gan": train_gan, "ddpm": train_ddpm, "memoriser": build_memoriser}


def train_generator(kind: str, data: SliceSet, settings: TrainSettings, *, device: str = "cpu",
                    report: Progress | None = None, init: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or, for the memoriser, build) one generator of ``kind`` on ``data``; ``init`` (ddpm only) continues one."""
    if kind not in TRAINERS:
        raise ParameterError(f"unknown generator kind '{kind}'; choose one of: {', '.join(KINDS)}")
    if init is not None and (kind != "ddpm" or init.get("kind") != "ddpm"):
        raise ParameterError("--init continues a diffusion model only: give --kind ddpm and a ddpm checkpoint")
    if kind == "memoriser":
        return build_memoriser(data, settings)
    if init is not None:
        return train_ddpm(data, settings, device=device, report=report, init=init)
    return TRAINERS[kind](data, settings, device=device, report=report)
