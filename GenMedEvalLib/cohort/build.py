"""Build the demo cohort: distinct MNI-derived brains with known tumours, classes, scanners, splits.

Layout written: ``OUT/images/case_000.nii.gz``, ``OUT/masks/case_000.nii.gz`` (uint8 0/1, same
geometry; empty for class "none") and ``OUT/cohort.csv``. Each case ``i`` draws from its own
generator ``default_rng([seed, i])``, so adding cases never changes earlier ones.
"""

from __future__ import annotations

import csv
import io as stdio
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..io import Volume, write_text, write_volume
from ..progress import progress
from .anatomy import load_template, random_warp
from .scanner import SCANNERS, acquire
from .tumour import add_tumour, pick_centre

CLASS_CYCLE = ("none", "left", "right", "left", "right")  # "none" is the rarest class (20 %)
SPLIT_CYCLE = ("train", "reference", "eval", "test")  # 25 % each, both groups and all classes in each
CSV_COLUMNS = ("name", "label", "group", "split", "tumour_voxels", "tumour_diameter_mm",
               "centre_x", "centre_y", "centre_z", "seed")


@dataclass(frozen=True)
class CaseInfo:
    """One row of ``cohort.csv``."""

    name: str
    label: str
    group: str
    split: str
    tumour_voxels: int
    tumour_diameter_mm: float
    centre_x: float
    centre_y: float
    centre_z: float
    seed: int


def case_design(i: int) -> tuple[str, str, str]:
    """Class, group and split of case ``i``: balanced groups within each class, stratified splits."""
    label = CLASS_CYCLE[i % len(CLASS_CYCLE)]
    block = i // len(CLASS_CYCLE)
    group = "A" if block % 2 == 0 else "B"
    split = SPLIT_CYCLE[i % len(SPLIT_CYCLE)]
    return label, group, split


def _physical(geometry: Volume, index_zyx) -> np.ndarray:
    """Physical (LPS, mm) coordinates of an array index (z, y, x)."""
    ijk = np.array(index_zyx[::-1], dtype=float)
    direction = np.array(geometry.direction).reshape(3, 3)
    return np.array(geometry.origin) + direction @ (ijk * np.array(geometry.spacing))


def hemisphere_map(geometry: Volume, shape, side: str) -> np.ndarray:
    """Boolean map of the left (LPS x > 0) or right (x < 0) hemisphere, 5 mm from the midline."""
    x_index = np.arange(shape[2])
    x_phys = geometry.origin[0] + geometry.direction[0] * x_index * geometry.spacing[0]
    side_mask = x_phys > 5.0 if side == "left" else x_phys < -5.0
    return np.broadcast_to(side_mask[None, None, :], shape)


def make_case(i: int, seed: int = 0, spacing: float = 2.0) -> tuple[np.ndarray, np.ndarray, CaseInfo, Volume]:
    """One case: (image, mask, info, geometry). Deterministic in ``(seed, i, spacing)``."""
    template = load_template(spacing)
    rng = np.random.default_rng([seed, i])
    label, group, split = case_design(i)
    t1, gm, wm, brain = random_warp(template, rng)
    contrast = rng.uniform(-0.06, 0.06)
    image = np.clip(t1 + contrast * (wm - gm) * brain, 0, None)
    mask = np.zeros(image.shape, np.uint8)
    diameter, centre_phys = 0.0, np.full(3, np.nan)
    if label != "none":
        diameter = float(rng.uniform(10.0, 35.0))
        radius_vox = diameter / 2 / spacing
        side = hemisphere_map(template.geometry, image.shape, label)
        centre = pick_centre(wm, brain, side, rng, margin_vox=int(np.ceil(radius_vox * 1.2)))
        image, mask = add_tumour(image, brain, centre, radius_vox, rng)
        centre_phys = _physical(template.geometry, centre)
    image = acquire(image, SCANNERS[group], rng) * brain
    info = CaseInfo(name=f"case_{i:03d}", label=label, group=group, split=split, tumour_voxels=int(mask.sum()),
                    tumour_diameter_mm=round(diameter, 2), centre_x=round(float(centre_phys[0]), 2),
                    centre_y=round(float(centre_phys[1]), 2), centre_z=round(float(centre_phys[2]), 2), seed=seed)
    return image.astype(np.float32), mask, info, template.geometry


def cohort_csv(rows: list[CaseInfo]) -> str:
    """The CSV text of ``cohort.csv``."""
    buffer = stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return buffer.getvalue()


def make_cohort(out: str | Path, n: int = 40, seed: int = 0, spacing: float = 2.0, overwrite: bool = False) -> Path:
    """Write ``n`` cases to ``out`` (images/, masks/, cohort.csv); returns ``out``.

    Files are written atomically, ``cohort.csv`` last, so a folder with a ``cohort.csv`` is complete.
    """
    if n < 1:
        raise ParameterError(f"--n must be at least 1, got {n}")
    if not 0.5 <= spacing <= 8.0:
        raise ParameterError(f"--spacing must be in [0.5, 8] mm, got {spacing}")
    out = Path(out)
    if (out / "cohort.csv").exists() and not overwrite:
        raise ParameterError(f"{out} already holds a cohort; pass --overwrite to replace it")
    rows = []
    for i in progress(range(n), total=n, desc="cohort"):
        image, mask, info, geometry = make_case(i, seed, spacing)
        write_volume(geometry, out / "images" / f"{info.name}.nii.gz", image)
        write_volume(geometry, out / "masks" / f"{info.name}.nii.gz", mask)
        rows.append(info)
    write_text(out / "cohort.csv", cohort_csv(rows))
    return out
