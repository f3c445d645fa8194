"""Folders of volumes to the metric suite: read, slice, encode (cached), measure.

The library side of ``genmedeval metrics`` (and of the Slicer module's Apply): every folder and
name is checked before the encoder loads, so bad input fails fast with one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .base import Encoder
from .cache import FeatureCache
from .extract import FeatureSet, encoder_inputs, extract_features
from .registry import get_encoder
from .slicing import DEFAULT_SLICES, SliceSettings, square_slice

SET_NAMES = ("reference", "generated", "train", "test")


def stack_slices(slices: Sequence[np.ndarray]) -> np.ndarray:
    """Square slices of possibly different sizes -> one ``(N, S, S)`` array, smaller ones zero-padded centred."""
    size = max(s.shape[0] for s in slices)
    return np.stack([s if s.shape[0] == size else square_slice(np.pad(s, ((0, size - s.shape[0]), (0, 0))))
                     for s in slices]) if slices else np.zeros((0, 0, 0), np.float32)


def _needs(registry: Mapping, names: Sequence[str], kind: str) -> bool:
    """True when any named metric takes the input ``kind`` (``images``, ``logits``)."""
    return any(getattr(registry[name], "input", "features") == kind for name in names)


def folder_features(folders: Mapping[str, str | Path], encoder: Encoder, *, slices: SliceSettings = DEFAULT_SLICES,
                    cache: FeatureCache | None = None, keep_slices: bool = False,
                    show_progress: bool = True, options=None, read: dict | None = None) -> dict[str, FeatureSet]:
    """Features (every output the encoder gives) of each named folder; all folders are read before encoding.

    The folders hold volume files or case folders; one primary contrast is chosen for all of them
    (``cases.resolve_contrast``), so every set's encoder sees the same contrast. ``read``, when
    given, receives each set's (volumes, masks) as read, for the local metrics.
    """
    from ..cases import list_cases, resolve_contrast

    listed = {name: list_cases(folder) for name, folder in folders.items()}
    contrast = resolve_contrast([i for items in listed.values() for i in items], options.contrast if options else None)
    inputs = {name: encoder_inputs(items, options, with_masks=slices.mask_only, contrast=contrast)
              for name, items in listed.items()}
    if read is not None:
        read.update(inputs)
    sets = {}
    for name, (volumes, masks) in inputs.items():
        sets[name] = extract_features(volumes, encoder, slices=slices, masks=masks,
                                      cache=cache, outputs=encoder.outputs, show_progress=show_progress,
                                      keep_slices=keep_slices, names=[item.name for item in listed[name]])
    return sets


def evaluate_folders(folders: Mapping[str, str | Path], encoder: str | Encoder = "inception", *,
                     metrics: str | Sequence[str] = "all", bootstrap: int = 0, seed: int = 0,
                     slices: SliceSettings = DEFAULT_SLICES, cache: FeatureCache | None = None,
                     device: str | None = None, batch_size: int | None = None, options: Mapping | None = None,
                     show_progress: bool = True, cases=None):
    """The metric suite (``metrics.compute_suite``) between folders named ``reference``, ``generated``
    and optionally ``train``/``test``; slices go to image metrics, logits to the Inception Score.

    ``cases`` (``cases.CaseOptions``): the contrast the encoder sees and the tumour target of the
    tumour slices."""
    from ..metrics import METRICS, compute_suite
    from ..metrics.suite import resolve_metrics

    names = resolve_metrics(metrics)
    unknown = [name for name in folders if name not in SET_NAMES]
    if unknown:
        raise ParameterError(f"unknown set name(s) {', '.join(unknown)}; use {', '.join(SET_NAMES)}")
    for name in folders:  # fail on a missing or empty folder before the encoder loads its weights
        read_folder_check(folders[name])
    model = encoder if isinstance(encoder, Encoder) else get_encoder(encoder, device, batch_size)
    need_images = _needs(METRICS, names, "images")
    read: dict = {}
    sets = folder_features(folders, model, slices=slices, cache=cache, keep_slices=need_images,
                           show_progress=show_progress, options=cases, read=read)
    local = folder_local(read, names, model, cache, slices)
    features = {name: np.asarray(fs.pool, dtype=np.float64) for name, fs in sets.items()}
    logits = {name: fs.features["logits"] for name, fs in sets.items()} if "logits" in model.outputs else None
    spatial = {name: fs.features["spatial"] for name, fs in sets.items()} if "spatial" in model.outputs else None
    images = {name: stack_slices(fs.slices or []) for name, fs in sets.items()} if need_images else None
    return compute_suite(features, names, images=images, logits=logits, spatial=spatial, bootstrap=bootstrap,
                         seed=seed, options=options, **local)


def folder_local(read: Mapping, names: Sequence[str], encoder: Encoder, cache: FeatureCache | None,
                 slices: SliceSettings) -> dict[str, dict]:
    """``compute_suite``'s ``local`` and ``groups`` arguments (``localfeatures``) for each set read.

    Sets without masks give no region inputs (their metrics then say so).
    """
    from ..metrics.registry import LOCAL_INPUTS, METRICS
    from .cache import FeatureCache
    from .localfeatures import REGION_KINDS, local_inputs, stack_local, suite_local

    kinds = sorted({METRICS[n].input for n in names if METRICS[n].input in LOCAL_INPUTS})
    if not kinds:
        return suite_local({}, None)
    cache = cache if cache is not None else FeatureCache()
    sets = {}
    for name, (volumes, masks) in read.items():
        wanted = [k for k in kinds if k not in REGION_KINDS or all(m is not None for m in masks)]
        sets[name] = stack_local(local_inputs(volumes, masks, wanted, encoder=encoder, cache=cache, slices=slices))
    return suite_local(sets, None)


def read_folder_check(folder: str | Path) -> None:
    """Raise ``InputError`` when ``folder`` is missing or holds no cases (cheap: lists by name, does not read)."""
    from ..cases import list_cases

    list_cases(folder)
