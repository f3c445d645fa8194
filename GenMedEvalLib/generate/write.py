"""Generated samples to disk: ``sample_NNNN.nii.gz`` + ``sample_NNNN_mask.nii.gz`` and ``generated.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io import write_volume
from .model import Generator
from .slices import sample_names, sample_volume


def write_samples(generator: Generator, out_dir: str | Path, *, n: int, seed: int = 0, steps: int = 25,
                  overwrite: bool = False) -> Path:
    """Sample ``n`` slices and write them into ``out_dir`` atomically (the folder appears whole or not at all)."""
    from ..outputs import atomic_folder, check_output_folder

    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite=overwrite, option="OUT_DIR")
    images, masks = generator.sample(n, seed, steps=steps)
    with atomic_folder(out_dir, "generate") as work:
        for name, image, mask in zip(sample_names(n), images, masks, strict=True):
            volume = sample_volume(image, fov_mm=generator.fov_mm)
            write_volume(volume, work / f"{name}.nii.gz")
            write_volume(volume, work / f"{name}_mask.nii.gz", mask[None].astype(np.uint8))
        summary = {"generator": generator.kind, "source": generator.source, "n": n, "seed": seed,
                   "ddim_steps": steps if generator.kind == "ddpm" else None,
                   "pixel_mm": generator.fov_mm / generator.size, "size": generator.size,
                   "with_tumour": int(masks.reshape(n, -1).any(axis=1).sum()),
                   "trained": {k: generator.meta.get(k) for k in ("steps", "seed", "data", "training_slices",
                                                                 "command") if k in generator.meta}}
        (work / "generated.json").write_text(json.dumps(summary, indent=1))
    return out_dir
