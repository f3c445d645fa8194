"""Features of volumes through an encoder, via the slice rules and the content-addressed cache.

All inputs are hashed first; only the distinct inputs missing from the cache go through the
network, grouped by size into the encoder's batches, and the cache is filled with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError
from ..io import Volume, normalize_intensity
from .base import Encoder
from .cache import FeatureCache, content_hash
from .slicing import DEFAULT_SLICES, SliceInfo, SliceSettings, slice_volumes


@dataclass
class FeatureSet:
    """Feature matrices per output kind (N x D, float32), one row per slice (or volume for 3D)."""

    features: dict[str, np.ndarray]
    info: list[SliceInfo]
    n_volumes: int
    names: list[str] = field(default_factory=list)
    slices: list[np.ndarray] | None = None

    @property
    def pool(self) -> np.ndarray:
        """The main embedding (``"pool"``)."""
        return self.features["pool"]

    @property
    def volume_index(self) -> np.ndarray:
        """The input volume of each row."""
        return np.array([item.volume for item in self.info], dtype=np.int64)

    def per_volume(self, kind: str = "pool") -> np.ndarray:
        """Mean feature vector of each volume (V x D, float64); NaN rows for volumes with no slice."""
        matrix = np.asarray(self.features[kind], dtype=np.float64)
        out = np.full((self.n_volumes, matrix.shape[1]), np.nan)
        index = self.volume_index
        for v in range(self.n_volumes):
            rows = matrix[index == v]
            if len(rows):
                out[v] = rows.mean(axis=0)
        return out


def _inputs(volumes: Sequence[np.ndarray | Volume], encoder: Encoder, settings: SliceSettings,
            masks: Sequence | None) -> tuple[list[np.ndarray], list[SliceInfo]]:
    """The network inputs: squared slices for 2D encoders, whole float32 volumes for 3D ones."""
    if encoder.spatial_dims == 3:
        arrays = [np.asarray(v.array if isinstance(v, Volume) else v, dtype=np.float32) for v in volumes]
        return arrays, [SliceInfo(i, "volume", 0) for i in range(len(arrays))]
    sliced = slice_volumes(volumes, settings, masks)
    return sliced.images, sliced.info


def _compute(inputs: list[np.ndarray], positions: list[int], encoder: Encoder, show_progress: bool) -> dict[int, dict]:
    """Encoder outputs for the inputs at ``positions``, batched by input shape."""
    by_shape: dict[tuple, list[int]] = {}
    for pos in positions:
        by_shape.setdefault(inputs[pos].shape, []).append(pos)
    results: dict[int, dict] = {}
    for group in by_shape.values():
        out = encoder.encode(np.stack([inputs[p] for p in group]), show_progress=show_progress)
        for row, pos in enumerate(group):
            results[pos] = {kind: value[row] for kind, value in out.items()}
    return results


def extract_features(volumes: Sequence[np.ndarray | Volume], encoder: Encoder, *,
                     slices: SliceSettings = DEFAULT_SLICES, masks: Sequence | None = None,
                     cache: FeatureCache | None = None, outputs: Sequence[str] = ("pool",),
                     show_progress: bool = True, keep_slices: bool = False, names: Sequence[str] | None = None,
                     ) -> FeatureSet:
    """Features of ``volumes`` (z, y, x in [0, 1]) for each kind in ``outputs``, cached by content.

    ``cache=None`` uses the default on-disk cache. ``keep_slices`` keeps the network inputs (for
    pixel metrics). Raises ``ParameterError`` when the encoder lacks a requested output.
    """
    outputs = tuple(outputs)
    missing_kinds = [kind for kind in outputs if kind not in encoder.outputs]
    if missing_kinds:
        raise ParameterError(f"encoder '{encoder.name}' has no output {', '.join(missing_kinds)}; "
                             f"it gives {', '.join(encoder.outputs)}")
    cache = cache if cache is not None else FeatureCache()
    inputs, info = _inputs(volumes, encoder, slices, masks)
    features = encode_cached(inputs, encoder, cache, outputs, show_progress)
    return FeatureSet(features, info, len(volumes), list(names or []), inputs if keep_slices else None)


def encode_cached(inputs: list[np.ndarray], encoder: Encoder, cache: FeatureCache, outputs: Sequence[str] = ("pool",),
                  show_progress: bool = False) -> dict[str, np.ndarray]:
    """Encoder outputs ``(N, D)`` float32 of network inputs, each distinct missing one computed once, the cache filled."""
    outputs = tuple(outputs)
    identity = encoder.identity()
    digests = [content_hash(x) for x in inputs]
    found, missing = cache.lookup(digests, identity, outputs)
    first_of: dict[str, int] = {}
    for pos in missing:
        first_of.setdefault(digests[pos], pos)
    computed = _compute(inputs, list(first_of.values()), encoder, show_progress) if first_of else {}
    cache.stats.forward_passes += len(computed)
    for pos, result in computed.items():
        for kind in outputs:
            cache.put(digests[pos], identity, kind, result[kind])
    for pos in missing:
        result = computed[first_of[digests[pos]]]
        for kind in outputs:
            found[kind][pos] = result[kind]
    return {kind: _stack(found[kind]) for kind in outputs}


def _stack(rows: list) -> np.ndarray:
    """Rows to an (N x D) float32 matrix (0 x 0 when there are none)."""
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(r, dtype=np.float32).reshape(-1) for r in rows])


def encoder_inputs(items: Sequence, options=None, *, with_masks: bool = False,
                   contrast: str | None = None) -> tuple[list[Volume], list[Volume | None]]:
    """The primary contrast of each listed case, intensity-normalised once, with its tumour mask (a Volume).

    Each case is read whole (its grids checked) and only the primary contrast kept. ``contrast``
    overrides ``options.contrast`` (a contrast already resolved across several sets). A case
    without a label has mask None; ``with_masks`` makes that an ``InputError``.
    """
    from ..cases import DEFAULT_CASE_OPTIONS, read_item

    options = options or DEFAULT_CASE_OPTIONS
    chosen = contrast if contrast is not None else options.contrast
    volumes, masks = [], []
    for item in items:
        case = read_item(item)
        primary = case.primary(chosen)
        volumes.append(replace(primary, array=normalize_intensity(primary.array)))
        tumour = case.tumour(options.target, options.convention)
        if with_masks and tumour is None:
            raise InputError(f"no mask found for {item.name}", item.image)
        masks.append(None if tumour is None else primary.with_array(tumour))
    return volumes, masks


def read_folder(folder: str | Path, *, with_masks: bool = False, options=None,
                contrast: str | None = None) -> tuple[list[Volume], list[Volume | None], list]:
    """The cases of a folder (volume files or case folders) as encoder inputs: primary contrast, normalised, masks.

    Masks (the tumour target of each case's label) come whenever a case has one; ``with_masks``
    makes a missing one an error.
    """
    from ..cases import list_cases, resolve_contrast

    items = list_cases(folder)
    chosen = contrast if contrast is not None else resolve_contrast(items, options.contrast if options else None)
    volumes, masks = encoder_inputs(items, options, with_masks=with_masks, contrast=chosen)
    return volumes, masks, items


def extract_folder(folder: str | Path, encoder_name: str | Encoder, *, slices: SliceSettings = DEFAULT_SLICES,
                   cache: FeatureCache | None = None, outputs: Sequence[str] = ("pool",), device: str | None = None,
                   batch_size: int | None = None, show_progress: bool = True, keep_slices: bool = False,
                   options=None) -> FeatureSet:
    """Features of every case of a folder (``cases.list_cases``: volume files or case folders; normalised once).

    ``options`` (``cases.CaseOptions``): the contrast the encoder sees and the tumour target.
    """
    from .registry import get_encoder

    encoder = encoder_name if isinstance(encoder_name, Encoder) else get_encoder(encoder_name, device, batch_size)
    volumes, masks, items = read_folder(folder, with_masks=slices.mask_only, options=options)
    return extract_features(volumes, encoder, slices=slices, masks=masks, cache=cache,
                            outputs=outputs, show_progress=show_progress, keep_slices=keep_slices,
                            names=[item.name for item in items])
