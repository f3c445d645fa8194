"""Radiomic features of 2D slices through the ``frd-score`` package (pyradiomics), cached like deep features.

The Fréchet Radiomic Distance (FRD; Konz, Osuala et al. 2026) compares standardised radiomic
features. GenMedEval does not re-implement them: each slice (and its mask, or none for the whole
slice) is written as a 2D NIfTI file with its pixel size and passed to the package's own
``process_image_mask_pair`` with the package's 2D extractor of the FRD version asked for (``v0``:
the Original image, 102 features; ``v1``, the package's default: Original, LoG and wavelet images,
about 400 features, 10 times the cost), exactly what ``python -m frd_score --frd_version V`` does
per file. The raw feature vector is stored in the content-addressed feature cache
under the package's versions, so a second sweep extracts none. Extraction runs in parallel over
slices in worker processes (``workers``, default the cores not busy now).

The ``frd-score`` package needs pyradiomics, whose PyPI release does not install on Python 3.11;
``make install`` installs the ``pyradiomics-bhklab`` fork, which does (README).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..errors import GenMedEvalError
from .cache import FeatureCache, content_hash

VERSIONS = ("v0", "v1")
KIND = "radiomics"


class RadiomicsUnavailable(GenMedEvalError):
    """The ``frd-score`` package (or pyradiomics) is not installed."""


def _package():
    try:
        from frd_score import frd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RadiomicsUnavailable("FRD needs the frd-score and pyradiomics-bhklab packages "
                                   "(make install, or pip install pyradiomics-bhklab frd-score)") from exc
    return frd


def _check_version(version: str) -> str:
    if version not in VERSIONS:
        from ..errors import ParameterError

        raise ParameterError(f"unknown FRD version {version!r}; choose one of {', '.join(VERSIONS)}")
    return version


@lru_cache(maxsize=2)
def extractor_identity(version: str) -> str:
    """The extractor's identity in the cache: frd-score's and pyradiomics' versions, the FRD version, 2D."""
    _package()
    from importlib.metadata import version as installed

    return f"frd-score-{installed('frd-score')}_pyradiomics-{installed('pyradiomics-bhklab')}_{version}_2d"


_EXTRACTORS: dict[str, object] = {}


def _extractor(version: str):
    """The package's 2D feature extractor of an FRD version, made once per process, radiomics logging silenced."""
    if version not in _EXTRACTORS:
        import logging

        frd = _package()
        from radiomics import setVerbosity

        setVerbosity(60)
        logging.getLogger("radiomics").setLevel(logging.ERROR)
        _EXTRACTORS[version] = frd.get_feature_extractor(frd_version=version, image_dim=2)
    return _EXTRACTORS[version]


def write_slice(path: str, image: np.ndarray, pixel_mm: float, *, mask: bool = False) -> str:
    """A 2D NIfTI file of one slice (float32 image, or uint8 0/1 mask) with square pixels of ``pixel_mm``."""
    import SimpleITK as sitk

    array = np.asarray(image > 0, np.uint8) if mask else np.asarray(image, np.float32)
    itk = sitk.GetImageFromArray(array)
    itk.SetSpacing((float(pixel_mm), float(pixel_mm)))
    sitk.WriteImage(itk, path)
    return path


def extract_one(task: tuple[np.ndarray, np.ndarray | None, float, str]) -> np.ndarray | None:
    """The package's raw FRD feature vector of one slice (with its mask, or the whole slice); None when skipped.

    ``task``: image, mask or None, pixel size (mm), FRD version. The package skips a mask with one
    voxel or none; so does this.
    """
    image, mask, pixel, version = task
    frd = _package()
    with tempfile.TemporaryDirectory(prefix="gme-frd-") as folder:
        image_path = write_slice(os.path.join(folder, "image.nii"), image, pixel)
        mask_path = None if mask is None else write_slice(os.path.join(folder, "mask.nii"), mask, pixel, mask=True)
        result = frd.process_image_mask_pair((image_path, mask_path), feature_extractor=_extractor(version),
                                             frd_version=version)
    return None if result is None else np.asarray(result[0], dtype=np.float64)


def slice_digest(image: np.ndarray, mask: np.ndarray | None, pixel_mm: float) -> str:
    """The cache key of one slice's radiomic features: its pixels, its mask's and its pixel size."""
    parts = [content_hash(image), content_hash(np.asarray(mask > 0, np.float32)) if mask is not None else "whole",
             repr(round(float(pixel_mm), 6))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _split64(values: np.ndarray) -> np.ndarray:
    """Float64 values as two float32 rows (high part, remainder) for the float32 feature cache: ~1e-14 relative."""
    values = np.asarray(values, dtype=np.float64)
    high = values.astype(np.float32)
    return np.stack([high, (values - high.astype(np.float64)).astype(np.float32)])


def _unsplit(stored: np.ndarray | None) -> np.ndarray | None:
    """The float64 values of ``_split64``'s two rows (None stays None)."""
    if stored is None:
        return None
    stored = np.asarray(stored).reshape(2, -1)
    return stored[0].astype(np.float64) + stored[1].astype(np.float64)


def _run(tasks: list, workers: int) -> list[np.ndarray | None]:
    """Extract the tasks, in worker processes when there are several."""
    if workers <= 1 or len(tasks) <= 1:
        return [extract_one(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(extract_one, tasks, chunksize=max(1, len(tasks) // (4 * workers))))


def radiomic_features(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None,
                      pixel_mm: Sequence[float], *, version: str = "v0", cache: FeatureCache | None = None,
                      workers: int | None = None) -> np.ndarray:
    """Raw FRD radiomic features of 2D slices, ``(N, F)`` float64, one row per slice (NaN where the package skips it).

    ``masks``: None for whole slices; ``version``: the FRD version's extractor. Cached by content;
    only distinct missing slices are extracted.
    """
    from ..threads import auto_threads

    _check_version(version)
    _package()
    cache = cache if cache is not None else FeatureCache()
    masks = list(masks) if masks is not None else [None] * len(images)
    identity = extractor_identity(version)
    digests = [slice_digest(im, m, p) for im, m, p in zip(images, masks, pixel_mm, strict=True)]
    rows: list[np.ndarray | None] = [_unsplit(cache.get(d, identity, KIND)) if cache.enabled else None for d in digests]
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row is None:
            first.setdefault(digests[i], i)
    todo = list(first.values())
    done = _run([(images[i], masks[i], float(pixel_mm[i]), version) for i in todo], workers or auto_threads())
    width = next((len(r) for r in [*rows, *done] if r is not None and len(r)), 0)
    skipped = np.full(width, np.nan)
    for i, result in zip(todo, done, strict=True):
        if result is None:
            rows[i] = skipped  # a skipped slice (NaN) is not stored
            continue
        stored = _split64(result)
        cache.put(digests[i], identity, KIND, stored)
        rows[i] = _unsplit(stored)  # what a later hit returns, so a hit equals the miss that stored it
    for i, row in enumerate(rows):
        if row is None:
            rows[i] = rows[first[digests[i]]]
    return np.asarray([np.asarray(r, np.float64) for r in rows]).reshape(len(rows), width)
