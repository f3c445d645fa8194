"""MRI acquisition artefacts through TorchIO (beyond the paper): motion, ghosting, spike, bias field, anisotropy.

Each function takes a normalised image (z, y, x) with ``spacing`` in the same axis order (mm) and
returns a new float32 array of the same shape; the input is never modified. The image goes to
TorchIO as a ``ScalarImage`` whose tensor is (C, x, y, z) with the affine ``diag(sx, sy, sz)``, so
millimetre parameters (motion translation, slice thickness) act in physical space. Random
parameters come from ``numpy.random.default_rng(seed)`` and are handed to TorchIO's deterministic
transforms (``Motion``, ``Ghosting``, ``Spike``, ``BiasField``, ``Resample``); TorchIO's one draw
from torch's global RNG (the probability ``p = 1``) runs inside ``fork_rng``, so the caller's RNG
state is untouched and the same inputs and seed give byte-identical output. Like the noise family the
result is not clipped (ringing and bias can leave [0, 1]).
"""

from __future__ import annotations

import math

import numpy as np

GHOST_AXES = ("y", "x", "z")
ANISOTROPY_AXES = ("coarsest", "z", "y", "x")
_ZYX = {"z": 0, "y": 1, "x": 2}


def _subject(image: np.ndarray, spacing):
    """A TorchIO subject holding ``image`` (z, y, x) as a (1, x, y, z) ScalarImage with the spacing affine."""
    import torch
    import torchio as tio

    sz, sy, sx = (float(s) for s in spacing)
    tensor = torch.from_numpy(np.array(np.asarray(image, dtype=np.float32).transpose(2, 1, 0), copy=True))[None]
    affine = np.diag([sx, sy, sz, 1.0])
    return tio.Subject(image=tio.ScalarImage(tensor=tensor, affine=affine))


def _run(transform, subject):
    """``transform(subject)`` with torch's global RNG restored after (TorchIO draws its probability ``p`` from it)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        return transform(subject)


def _array(subject) -> np.ndarray:
    """The subject's image back as a contiguous float32 (z, y, x) array."""
    data = subject["image"].data[0].detach().cpu().numpy()
    return np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32)


def _unit(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniform draws in [-1, 1) (scaled by the caller), float64 for SimpleITK."""
    return rng.uniform(-1.0, 1.0, shape)


def motion(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
           degrees: float = 5.0, translation: float = 5.0, num_transforms: int = 3) -> np.ndarray:
    """Rigid head motion during the scan (Shaw et al. 2019): k-space segments taken from moved copies.

    ``num_transforms`` movements at times ~ evenly spaced in (0, 1) (jittered by 30 % of a step, as
    TorchIO's ``RandomMotion``), each with rotations ``U(-degrees, degrees)`` about each axis around
    the volume centre and translations ``U(-translation, translation)`` mm. Each quantity has its own
    child generator of ``seed`` so that the first movements are the same whatever ``num_transforms``.
    """
    import torchio as tio

    rot_rng, shift_rng, time_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n = int(num_transforms)
    rotations = _unit(rot_rng, (n, 3)) * float(degrees)
    shifts = _unit(shift_rng, (n, 3)) * float(translation)
    step = 1.0 / (n + 1)
    times = np.arange(1, n + 1) * step + time_rng.uniform(-0.3 * step, 0.3 * step, n)
    transform = tio.Motion(degrees=rotations, translation=shifts, times=times, image_interpolation="linear")
    return _array(_run(transform, _subject(image, spacing)))


def ghosting(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
             num_ghosts: int = 4, intensity: float = 0.5, axis: str = "y", restore: float = 0.02) -> np.ndarray:
    """Periodic-motion ghosts along the phase-encode ``axis``: every ``num_ghosts``-th k-space plane scaled.

    The planes are multiplied by ``1 - intensity``; the central ``restore`` fraction of k-space along
    the axis (at least the centre plane, so the mean intensity is kept) is restored. ``seed`` is
    unused (deterministic).
    """
    import torchio as tio

    xyz_axis = 2 - _ZYX[axis]  # (z, y, x) name -> TorchIO's (x, y, z) tensor axis
    size = np.asarray(image).shape[_ZYX[axis]]
    keep = float(restore) if int(round(float(restore) * size)) >= 2 else None  # None: only the centre plane
    transform = tio.Ghosting(num_ghosts=int(num_ghosts), axis=xyz_axis, intensity=float(intensity), restore=keep)
    return _array(_run(transform, _subject(image, spacing)))


def spike(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
          num_spikes: int = 2, intensity: float = 0.5) -> np.ndarray:
    """Herringbone (spike) artefact: ``num_spikes`` k-space points raised by ``intensity`` x the spectrum maximum.

    Spike positions are uniform in k-space (as TorchIO's ``RandomSpike``) from ``seed``; the first
    positions are the same whatever ``num_spikes``. Each spike adds stripes of amplitude about
    ``intensity`` times the mean image intensity.
    """
    import torchio as tio

    positions = np.random.default_rng(seed).random((int(num_spikes), 3))
    transform = tio.Spike(spikes_positions=positions, intensity=float(intensity))
    return _array(_run(transform, _subject(image, spacing)))


def bias_field_terms(order: int) -> int:
    """Number of polynomial terms of total degree <= ``order`` in 3D (TorchIO's coefficient count)."""
    return math.comb(int(order) + 3, 3)


def bias_field(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
               coefficients: float = 0.2, order: int = 3) -> np.ndarray:
    """Smooth multiplicative intensity inhomogeneity (coil sensitivity): ``I * exp(sum_k c_k P_k)``.

    ``P_k`` are the monomials of total degree <= ``order`` on the field of view scaled to [-1, 1]
    per axis (TorchIO's ``BiasField``); ``c_k ~ U(-coefficients, coefficients)`` from ``seed``, so for
    one seed the log-field scales linearly with ``coefficients``.
    """
    import torchio as tio

    values = _unit(np.random.default_rng(seed), bias_field_terms(order)) * float(coefficients)
    transform = tio.BiasField(coefficients=values.tolist(), order=int(order))
    return _array(_run(transform, _subject(image, spacing)))


def anisotropy_axis(spacing, axis: str = "coarsest") -> int:
    """The (z, y, x) axis to thicken: the named one, or the coarsest (ties: the first, z = the slice axis)."""
    return int(np.argmax([float(s) for s in spacing])) if axis == "coarsest" else _ZYX[axis]


def anisotropy(image: np.ndarray, *, mask: np.ndarray | None = None, spacing=(1.0, 1.0, 1.0), seed: int = 0,
               factor: float = 3.0, axis: str = "coarsest") -> np.ndarray:
    """Thick-slice acquisition: resample to ``factor`` x the spacing along one axis and back to the grid.

    As TorchIO's ``RandomAnisotropy`` with fixed axis and factor, in mm: the target spacing is the
    axis's spacing times ``factor``; the downsampling is antialiased (TorchIO's Gaussian of Cardoso
    et al., a slice profile; skipped when an axis has under 4 voxels, which SimpleITK cannot smooth)
    and the upsampling linear. The volume is edge-padded along the axis first, so the outer slices
    are interpolated instead of falling outside the coarse grid. ``seed`` is unused (deterministic).
    """
    import torchio as tio

    img = np.asarray(image, dtype=np.float32)
    index = anisotropy_axis(spacing, axis)
    if float(factor) <= 1.0 or img.shape[index] < 2:
        return img.copy()
    pad = int(math.ceil(float(factor))) + 1
    widths = [(0, 0)] * 3
    widths[index] = (pad, pad)
    padded = np.pad(img, widths, mode="edge")
    subject = _subject(padded, spacing)
    shape, affine = subject["image"].spatial_shape, subject["image"].affine.copy()
    target = [float(s) for s in spacing][::-1]  # TorchIO spacing is (x, y, z)
    target[2 - index] *= float(factor)
    down = tio.Resample(tuple(target), image_interpolation="linear", antialias=min(padded.shape) >= 4)
    up = tio.Resample((shape, affine), image_interpolation="linear")
    out = _array(_run(up, _run(down, subject)))
    crop = [slice(None)] * 3
    crop[index] = slice(pad, pad + img.shape[index])
    return np.ascontiguousarray(out[tuple(crop)])
