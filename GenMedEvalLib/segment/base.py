"""The segmenter interface: a grey volume ``(Z, Y, X)`` in, a ``uint8`` {0, 1} mask of the same shape out."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import Volume
from ..progress import progress


def check_output(output: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    """``output`` as a uint8 {0, 1} mask of ``shape``; a one-line error naming ``source`` otherwise."""
    out = np.asarray(output)
    if out.shape != tuple(shape):
        raise InputError(f"segmenter output has shape {out.shape}, the image has {tuple(shape)}: it does not fit", source)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise InputError("segmenter output contains NaN or infinite values: not a mask", source)
    values = np.unique(out)
    if not np.isin(values, (0, 1)).all():
        raise InputError(f"segmenter output is not a mask (values {values[:6].tolist()}...); expected 0 and 1", source)
    return out.astype(np.uint8)


class Segmenter(abc.ABC):
    """A tumour segmenter; subclasses implement ``_predict`` on an intensity-normalised volume."""

    name: str = "segmenter"

    def __init__(self, device: str | None = None):
        from ..features.base import pick_device

        self.device = pick_device(device)

    @abc.abstractmethod
    def _predict(self, image01: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        """The mask for ``image01`` (float32 in [0, 1]); any dtype with values 0/1, same shape."""

    def segment(self, image: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """The binary tumour mask of ``image`` (any intensity scale), same shape, uint8."""
        from ..io import normalize_intensity

        image = np.asarray(image)
        if image.ndim != 3:
            raise InputError(f"expected a 3D volume, got an array of shape {image.shape}", self.name)
        spacing = tuple(float(s) for s in spacing_zyx)
        mask = self._predict(normalize_intensity(image).astype(np.float32), spacing)  # type: ignore[arg-type]
        return check_output(mask, image.shape, self.name)

    #: contrasts this segmenter reads, in order; a single-contrast model takes the first the case has
    contrasts: tuple[str, ...] = ("flair", "t1c", "t1", "t2")

    def segment_contrasts(self, images: Mapping[str, np.ndarray],
                          spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """The tumour mask of a multi-contrast case (``{contrast: (Z, Y, X) array}``, one grid).

        The default reads one contrast: the first of ``self.contrasts`` that the case has.
        Multi-contrast models override this.
        """
        if not images:
            raise InputError("a case needs at least one contrast", self.name)
        for name in self.contrasts:
            if name in images:
                return self.segment(images[name], spacing_zyx)
        return self.segment(next(iter(images.values())), spacing_zyx)


def segment_volume(volume: Volume, segmenter: Segmenter | None = None) -> np.ndarray:
    """The tumour mask of ``volume`` (its zyx array order) with ``segmenter`` (default: the shipped model)."""
    from .loader import load_segmenter

    model = segmenter if segmenter is not None else load_segmenter()
    return model.segment(volume.array, volume.spacing_zyx)


def segment_many(volumes: Sequence[Volume], segmenter: Segmenter | None = None, *,
                 show_progress: bool = True) -> list[np.ndarray]:
    """Masks of several volumes with one loaded model and a progress bar."""
    from .loader import load_segmenter

    model = segmenter if segmenter is not None else load_segmenter()
    return [segment_volume(v, model) for v in progress(volumes, desc="segmenting", enable=None if show_progress else False)]
