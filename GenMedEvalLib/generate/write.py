"""Generated samples to disk: ``sample_NNNN.nii.gz`` + ``sample_NNNN_mask.nii.gz`` and ``generated.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io import write_volume
from .model import DEFAULT_DDIM_ETA, DEFAULT_DDIM_STEPS, Generator
from .slices import balanced_pick, sample_names, sample_volume


def write_slices(out_dir: Path, images: np.ndarray, masks: np.ndarray, *, fov_mm: float, command: str,
                 summary: dict) -> Path:
    """Slices and masks as ``sample_NNNN`` one-slice volumes plus ``generated.json``, atomically."""
    from ..outputs import atomic_folder

    n = len(images)
    with atomic_folder(out_dir, command) as work:
        for name, image, mask in zip(sample_names(n), images, masks, strict=True):
            volume = sample_volume(image, fov_mm=fov_mm)
            write_volume(volume, work / f"{name}.nii.gz")
            write_volume(volume, work / f"{name}_mask.nii.gz", mask[None].astype(np.uint8))
        (work / "generated.json").write_text(json.dumps({"n": n, **summary}, indent=1))
    return out_dir


def write_real_slices(folder: str | Path, out_dir: str | Path, *, n: int, seed: int = 0, split: str | None = None,
                      overwrite: bool = False) -> Path:
    """Real slices of ``folder`` on the generators' grid, written as samples are: the yardstick that separates what
    the 64 x 64 grid costs (resolution) from what generation costs."""
    from ..outputs import check_output_folder
    from .slices import training_slices

    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite=overwrite, option="OUT_DIR")
    data = training_slices(folder, split=split)
    index = balanced_pick(data, n, seed)
    summary = {"generator": "real slices on the generators' grid", "source": str(folder), "split": split,
               "seed": seed, "pixel_mm": data.fov_mm / data.images.shape[-1], "size": int(data.images.shape[-1]),
               "with_tumour": int(data.masks[index].reshape(len(index), -1).any(axis=1).sum()),
               "slices": [data.sources[i] for i in index]}
    return write_slices(out_dir, data.images[index], data.masks[index], fov_mm=data.fov_mm, command="generate",
                        summary=summary)


def sampler_record(kind: str, steps: int, eta: float) -> dict[str, float | int | None]:
    """The sampler settings ``generated.json`` records (DDIM steps and eta; None for kinds without a sampler)."""
    ddpm = kind == "ddpm"
    return {"ddim_steps": steps if ddpm else None, "ddim_eta": eta if ddpm else None}


def write_samples(generator: Generator, out_dir: str | Path, *, n: int, seed: int = 0, steps: int = DEFAULT_DDIM_STEPS,
                  eta: float = DEFAULT_DDIM_ETA, overwrite: bool = False) -> Path:
    """Sample ``n`` slices and write them into ``out_dir`` atomically (the folder appears whole or not at all)."""
    from ..outputs import check_output_folder

    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite=overwrite, option="OUT_DIR")
    images, masks = generator.sample(n, seed, steps=steps, eta=eta)
    from ..features.weights import sha256_file

    summary = {"generator": generator.kind, "source": generator.source, "weights_sha256": sha256_file(generator.source),
               "seed": seed,
               **sampler_record(generator.kind, steps, eta),
               "pixel_mm": generator.fov_mm / generator.size, "size": generator.size,
               "with_tumour": int(masks.reshape(n, -1).any(axis=1).sum()),
               "trained": {k: generator.meta.get(k) for k in ("steps", "total_steps", "seed", "data", "training_slices",
                                                             "command") if k in generator.meta}}
    return write_slices(out_dir, images, masks, fov_mm=generator.fov_mm, command="generate", summary=summary)
