"""The generators' networks: a convolutional VAE, a DCGAN generator with MONAI's PatchDiscriminator,
and MONAI's DiffusionModelUNet for DDPM training with DDIM sampling.

Every network maps between noise and (B, 2, S, S) tensors in [-1, 1]: channel 0 the image,
channel 1 the tumour mask (generated together, so a generated mask belongs to its image).
``arch`` dicts hold every constructor argument, so a checkpoint rebuilds its network exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

CHANNELS = 2
DEFAULT_ARCH: dict[str, dict[str, Any]] = {
    "vae": {"size": 64, "width": 16, "latent": 64},
    "gan": {"size": 64, "width": 16, "latent": 64, "disc_channels": 16, "disc_layers": 3},
    "ddpm": {"size": 64, "channels": [16, 32, 64], "attention": [False, False, True], "res_blocks": 1,
             "head_channels": 16, "train_timesteps": 1000, "schedule": "scaled_linear_beta",
             "beta_start": 0.0015, "beta_end": 0.0195},
}


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.GroupNorm(8, c_out), nn.SiLU())


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1),
                         nn.GroupNorm(8, c_out), nn.SiLU())


class Decoder(nn.Module):
    """Latent vector -> (B, 2, size, size) in [-1, 1] (tanh), through a 4 x 4 map and four upsamplings."""

    def __init__(self, latent: int, width: int, size: int):
        super().__init__()
        if size % 16:
            raise ValueError(f"size must be a multiple of 16, got {size}")
        self.start = size // 16
        self.width = width
        self.project = nn.Linear(latent, width * 8 * self.start * self.start)
        self.body = nn.Sequential(nn.GroupNorm(8, width * 8), nn.SiLU(),
                                  _up(width * 8, width * 4), _up(width * 4, width * 2), _up(width * 2, width),
                                  _up(width, width), nn.Conv2d(width, CHANNELS, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(len(z), self.width * 8, self.start, self.start)
        return self.body(x)


class VAE(nn.Module):
    """A plain convolutional VAE: encoder to (mu, log-variance) of a ``latent``-vector, ``Decoder`` back."""

    def __init__(self, size: int = 64, width: int = 32, latent: int = 64):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(_down(CHANNELS, width), _down(width, width * 2), _down(width * 2, width * 4),
                                     _down(width * 4, width * 8), nn.Flatten())
        features = width * 8 * (size // 16) ** 2
        self.mu = nn.Linear(features, latent)
        self.log_var = nn.Linear(features, latent)
        self.decoder = Decoder(latent, width, size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.log_var(h).clamp(-10, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, log_var = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return self.decoder(z), mu, log_var


def build_vae(arch: dict[str, Any]) -> VAE:
    return VAE(arch["size"], arch["width"], arch["latent"])


def build_gan(arch: dict[str, Any]) -> tuple[Decoder, nn.Module]:
    """(generator, discriminator): the DCGAN-style ``Decoder`` and MONAI's ``PatchDiscriminator``."""
    from monai.networks.nets import PatchDiscriminator

    generator = Decoder(arch["latent"], arch["width"], arch["size"])
    discriminator = PatchDiscriminator(spatial_dims=2, channels=arch["disc_channels"], in_channels=CHANNELS,
                                       out_channels=1, num_layers_d=arch["disc_layers"], norm="INSTANCE")
    return generator, discriminator


def build_ddpm(arch: dict[str, Any]) -> nn.Module:
    """MONAI's ``DiffusionModelUNet`` predicting the noise of (B, 2, S, S) inputs."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(spatial_dims=2, in_channels=CHANNELS, out_channels=CHANNELS,
                              channels=tuple(arch["channels"]), attention_levels=tuple(arch["attention"]),
                              num_res_blocks=arch["res_blocks"], num_head_channels=arch["head_channels"],
                              norm_num_groups=8)


def ddpm_schedulers(arch: dict[str, Any]):
    """(DDPMScheduler for training, DDIMScheduler for sampling) with the same noise schedule."""
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    kwargs = {"num_train_timesteps": arch["train_timesteps"], "schedule": arch["schedule"],
              "beta_start": arch["beta_start"], "beta_end": arch["beta_end"]}
    return DDPMScheduler(**kwargs), DDIMScheduler(**kwargs, clip_sample=True)


def ddim_step(eps: torch.Tensor, x: torch.Tensor, alpha_t: float, alpha_s: float, eta: float,
              rng: torch.Generator | None = None) -> torch.Tensor:
    """One DDIM update (Song et al. 2021, eq. 12) from ``x`` at cumulative alpha ``alpha_t`` to ``alpha_s``.

    The predicted image is clipped to [-1, 1] and the noise estimate recomputed from the clipped image,
    so both terms describe one image. MONAI 1.6's ``DDIMScheduler.step`` keeps the unclipped noise:
    with it, 20 deterministic steps of the earlier shipped weights gave a grey background (median border
    0.25 of the range, against 0.20 with this step). ``eta`` scales the fresh noise: 0 follows the
    deterministic trajectory, 1 the DDPM posterior's variance; the noise is drawn from ``rng`` on the
    CPU, so a seed gives the same samples on every device.
    """
    x0 = ((x - (1.0 - alpha_t) ** 0.5 * eps) / alpha_t ** 0.5).clamp(-1.0, 1.0)
    eps = (x - alpha_t ** 0.5 * x0) / (1.0 - alpha_t) ** 0.5
    sigma = eta * max((1.0 - alpha_s) / (1.0 - alpha_t) * (1.0 - alpha_t / alpha_s), 0.0) ** 0.5
    out = alpha_s ** 0.5 * x0 + max(1.0 - alpha_s - sigma ** 2, 0.0) ** 0.5 * eps
    if sigma > 0:
        out = out + sigma * torch.randn(x.shape, generator=rng, dtype=x.dtype).to(x.device)
    return out


def ddim_schedule(arch: dict[str, Any], steps: int) -> list[tuple[int, float, float]]:
    """The ``steps`` sampling steps as (timestep, alpha_t, alpha_s): MONAI's DDIM spacing from T - 1 down to 0,
    the last step landing on the clean image (alpha_s = 1)."""
    _, ddim = ddpm_schedulers(arch)
    ddim.set_timesteps(steps)
    times = [int(t) for t in ddim.timesteps]
    alphas = ddim.alphas_cumprod.double()
    return [(t, float(alphas[t]), float(alphas[times[i + 1]]) if i + 1 < len(times) else 1.0)
            for i, t in enumerate(times)]


def parameter_count(*modules: nn.Module) -> int:
    """Trainable parameters of ``modules`` together."""
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
