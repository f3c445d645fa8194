"""Volumes and masks in and out, geometry kept (SimpleITK underneath).

Conventions used throughout GenMedEval:

- ``Volume.array`` is indexed ``(z, y, x)`` (SimpleITK's ``GetArrayFromImage`` order).
- ``Volume.spacing``, ``origin`` and ``direction`` are in SimpleITK's ``(x, y, z)`` order.
- ``Volume.spacing_zyx`` gives the spacing in array-axis order; every perturbation takes its
  ``spacing`` argument in that order so that a sigma in mm converts per array axis.
- Outputs are written to a temporary file beside the target and renamed: a failed write never
  leaves a half-written file.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class Volume:
    """A 3D image: ``array`` (z, y, x) with its physical geometry in SimpleITK (x, y, z) order."""

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    path: Path | None = field(default=None, compare=False)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing in array-axis order (z, y, x), as the perturbations expect it."""
        return (float(self.spacing[2]), float(self.spacing[1]), float(self.spacing[0]))

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry around another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the volume's {self.array.shape}")
        return replace(self, array=array, path=None)

    @property
    def name(self) -> str:
        """File name without a volume suffix (``case01`` for ``case01.nii.gz``)."""
        if self.path is None:
            return "volume"
        return strip_volume_suffix(self.path.name)


def strip_volume_suffix(name: str) -> str:
    """``case01.nii.gz`` -> ``case01``; other names unchanged."""
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_volume_file(path: str | Path) -> bool:
    """True when the name ends in a supported volume suffix."""
    return str(path).lower().endswith(VOLUME_SUFFIXES)


def _read_image(path: str | Path):
    import SimpleITK as sitk

    from .filecheck import check_image_file, itk_reason, native_output_silenced

    path = Path(path)
    text = check_image_file(path)  # name, size vs header, NaN/Inf, geometry, memory: before SimpleITK reads
    try:
        with native_output_silenced():
            return sitk.ReadImage(text)
    except RuntimeError as exc:
        raise InputError(f"cannot read as an image ({itk_reason(exc)})", path) from None


def _to_volume(image, path: Path, dtype) -> Volume:
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar 3D image is needed", path)
    if image.GetDimension() != 3:
        raise InputError(f"is {image.GetDimension()}D; a 3D volume is needed", path)
    array = sitk.GetArrayFromImage(image)
    if array.ndim != 3 or min(array.shape) < 1:
        raise InputError(f"has shape {array.shape}; a 3D volume is needed", path)
    array = np.asarray(array, dtype=dtype)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"contains {bad} NaN or infinite voxels", path)
    return Volume(
        array=array,
        spacing=tuple(float(s) for s in image.GetSpacing()),
        origin=tuple(float(o) for o in image.GetOrigin()),
        direction=tuple(float(d) for d in image.GetDirection()),
        path=path,
    )


def read_volume(path: str | Path) -> Volume:
    """Read a 3D scalar image (NIfTI, NRRD, MHA) as float32; reject 2D/4D and non-finite voxels."""
    path = Path(path)
    return _to_volume(_read_image(path), path, np.float32)


def read_mask(path: str | Path, like: Volume | None = None) -> Volume:
    """Read a label mask as uint8 (any non-zero label -> its value); check geometry against ``like``."""
    path = Path(path)
    image = _read_image(path)
    vol = _to_volume(image, path, np.float64)
    values = vol.array
    if np.any(values != np.round(values)) or values.min() < 0 or values.max() > 255:
        raise InputError("is not a label mask (values must be integers 0..255)", path)
    mask = replace(vol, array=values.astype(np.uint8))
    if like is not None:
        check_same_geometry(like, mask)
    return mask


def check_same_geometry(image: Volume, mask: Volume, *, tol: float = 1e-4) -> None:
    """Raise ``InputError`` naming the mask file when its grid differs from the image's."""
    where = mask.path if mask.path is not None else None
    if image.array.shape != mask.array.shape:
        raise InputError(
            f"mask size {mask.array.shape[::-1]} differs from image size {image.array.shape[::-1]} (x, y, z)", where
        )
    for label, a, b in (("spacing", image.spacing, mask.spacing), ("origin", image.origin, mask.origin),
                        ("direction", image.direction, mask.direction)):
        if not np.allclose(a, b, atol=tol, rtol=tol):
            raise InputError(f"mask {label} {tuple(round(v, 4) for v in b)} differs from image {label} "
                             f"{tuple(round(v, 4) for v in a)}", where)


def to_sitk(volume: Volume, array: np.ndarray | None = None):
    """A SimpleITK image of ``array`` (default: the volume's) with the volume's geometry."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume.array if array is None else array)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction)
    return image


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = next((s for s in VOLUME_SUFFIXES if target.name.lower().endswith(s)), target.suffix)
    # the writer's pid in the name lets outputs.remove_stale_temporaries clear what a killed run left behind
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.genmedeval-tmp-{os.getpid()}.", suffix=f".tmp{suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_volume(volume: Volume, path: str | Path, array: np.ndarray | None = None, *, compress: bool = True) -> Path:
    """Write ``array`` (default: the volume's) with the volume's geometry, atomically."""
    import SimpleITK as sitk

    path = Path(path)
    if not is_volume_file(path):
        raise InputError(f"unsupported output format; use one of {', '.join(VOLUME_SUFFIXES)}", path)
    from .filecheck import check_name

    check_name(path)
    image = to_sitk(volume, array)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path


def read_json(path: str | Path):
    """A JSON file's content; one-line ``InputError`` naming the file when it is missing, not UTF-8 or not JSON."""
    import json

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"is not valid JSON ({exc.msg} at line {exc.lineno})", path) from None
    except RecursionError:
        raise InputError("is nested too deeply to read", path) from None


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def normalize_intensity(array: np.ndarray, low: float = 1.0, high: float = 99.0,
                        mask: np.ndarray | None = None) -> np.ndarray:
    """Clip to the ``low``-``high`` percentiles, then min-max to [0, 1] (SPEC section 1), as float32.

    Percentiles are taken over ``mask`` voxels when given, else over the whole volume. Done once,
    on reading, before any perturbation or metric; a constant volume maps to all zeros.
    """
    values = array[mask > 0] if mask is not None else array
    lo, hi = np.percentile(values, [low, high])
    out = np.clip(array.astype(np.float32), lo, hi)
    if hi <= lo:
        return np.zeros_like(out, dtype=np.float32)
    return ((out - lo) / (hi - lo)).astype(np.float32)


def read_normalized(path: str | Path) -> Volume:
    """Read a volume and normalise its intensities to [0, 1] (percentile clip, min-max)."""
    vol = read_volume(path)
    return replace(vol, array=normalize_intensity(vol.array))


@dataclass(frozen=True)
class CohortItem:
    """One volume of a cohort: its image, optional mask, class label and acquisition group."""

    name: str
    image: Path
    mask: Path | None = None
    label: str | None = None
    group: str | None = None
    split: str | None = None


def _find_mask(image: Path, mask_dir: Path | None) -> Path | None:
    stem = strip_volume_suffix(image.name)
    candidates: list[Path] = []
    folders = [mask_dir] if mask_dir is not None else [image.parent, image.parent.parent / "masks"]
    for folder in folders:
        for suffix in VOLUME_SUFFIXES:
            candidates += [folder / f"{stem}{suffix}", folder / f"{stem}_mask{suffix}", folder / f"{stem}_label{suffix}",
                           folder / f"{stem.removesuffix('_image')}_label{suffix}",
                           folder / f"{stem.removesuffix('_image')}_mask{suffix}"]
    for candidate in candidates:
        if candidate.exists() and candidate != image:
            return candidate
    return None


def _is_mask_name(name: str) -> bool:
    stem = strip_volume_suffix(name).lower()
    return stem.endswith(("_mask", "_label", "_seg"))


def read_cohort(folder: str | Path, csv_path: str | Path | None = None, mask_dir: str | Path | None = None) -> list[CohortItem]:
    """List a folder's volumes (sorted by name) with masks, classes and groups.

    Images are the volume files in ``folder`` not named ``*_mask``/``*_label``/``*_seg``. Masks
    are found in ``mask_dir`` (same stem) or beside the image (``STEM_mask``). The optional CSV
    (default ``cohort.csv`` in ``folder`` or its parent, when present) has a ``name`` column and optional ``label``
    and ``group`` columns.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("is not a folder", folder)
    images = sorted(p for p in folder.iterdir() if p.is_file() and is_volume_file(p.name) and not _is_mask_name(p.name))
    if not images:
        raise InputError(f"holds no volumes ({', '.join(VOLUME_SUFFIXES)})", folder)
    table: dict[str, dict[str, str]] = {}
    if csv_path is None:
        csv_path = next((c for c in (folder / "cohort.csv", folder.parent / "cohort.csv") if c.exists()), None)
    if csv_path is not None:
        table = read_cohort_csv(csv_path)
    items = []
    for image in images:
        name = strip_volume_suffix(image.name)
        row = table.get(name, {})
        items.append(CohortItem(name=name, image=image, mask=_find_mask(image, Path(mask_dir) if mask_dir else None),
                                label=row.get("label") or None, group=row.get("group") or None,
                                split=row.get("split") or None))
    return items


def read_cohort_csv(path: str | Path) -> dict[str, dict[str, str]]:
    """Read a cohort CSV (columns ``name`` and optionally ``label``, ``group``) into a dict by name."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "name" not in reader.fieldnames:
                raise InputError("CSV needs a 'name' column", path)
            return {row["name"]: row for row in reader}
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", path) from None
    except csv.Error as exc:
        raise InputError(f"is not a readable CSV ({exc})", path) from None
