"""Generative models of Phase 2: a VAE, a GAN, a diffusion model (DDPM training, DDIM sampling) and a memoriser.

Each generates 64 x 64 axial slices with their tumour mask (``slices``: the grid and the training
slices; ``nets``: the networks; ``train``: one seeded training function per kind; ``model``:
checkpoints, the shipped weights and ``Generator.sample``; ``write``: samples as NIfTI).
"""

from .model import SHIPPED, Generator, load_generator, resolve_generator, shipped_generator
from .slices import SliceSet, training_slices
from .train import KINDS, TrainSettings, train_generator

__all__ = ["KINDS", "SHIPPED", "Generator", "SliceSet", "TrainSettings", "load_generator", "resolve_generator",
           "shipped_generator", "train_generator", "training_slices"]
