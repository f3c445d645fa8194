"""The inputs of the local metrics for a set of volumes, per volume: region-crop features, descriptors, radiomics.

One call gives, for each kind the chosen metrics take (``metrics.registry.LOCAL_INPUTS``), one
matrix per volume (rows: that volume's region crops or slices), so that set-level perturbations
can re-index volumes as they do with the global features:

- ``roi`` / ``band``: the encoder's main features of the region crops (``regions``), through the
  same content-addressed cache as whole slices;
- ``boundary`` / ``edge_width`` / ``interior``: the crops' boundary-sharpness, edge-width and
  interior-profile descriptors (``metrics.local``);
- ``radiomics`` / ``radiomics_v1``: the frd-score radiomic features (FRDv0 / FRDv1) of the slices the
  global metrics see (``slices``);
- ``radiomics_roi`` / ``radiomics_v1_roi``: those of the region crops with their masks.

Volumes without a mask (or with an empty one) give no rows for the region kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..io import Volume
from .base import Encoder
from .cache import FeatureCache
from .extract import encode_cached
from .regions import DEFAULT_REGIONS, RegionSet, RegionSettings, region_set
from .slicing import DEFAULT_SLICES, SliceSettings, plane_axes, slice_volumes

REGION_KINDS = ("roi", "band", "boundary", "edge_width", "interior", "radiomics_roi", "radiomics_v1_roi")
RADIOMIC_KINDS = {"radiomics": "v0", "radiomics_roi": "v0", "radiomics_v1": "v1", "radiomics_v1_roi": "v1"}


def radiomics_available() -> bool:
    """Whether the frd-score package (and pyradiomics) can be imported here."""
    try:
        import frd_score  # noqa: F401
        import radiomics  # noqa: F401
    except ImportError:
        return False
    return True


def slice_pixels(volumes: Sequence[Volume], info) -> list[float]:
    """The square pixel size (mm) of each slice ``slicing`` made: the finer in-plane spacing of its volume."""
    out = []
    for item in info:
        volume = volumes[item.volume]
        axis = plane_axes(volume.direction)[item.plane]
        out.append(float(min(s for a, s in enumerate(volume.spacing_zyx) if a != axis)))
    return out


def _split(matrix: np.ndarray, index: np.ndarray, n_volumes: int, width: int) -> list[np.ndarray]:
    """Rows of ``matrix`` grouped by volume (``index``), an empty ``(0, width)`` block for volumes without."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(len(index), -1) if len(index) else np.zeros((0, width))
    return [matrix[index == v] for v in range(n_volumes)]


def local_inputs(volumes: Sequence[Volume], masks: Sequence[np.ndarray | Volume | None], kinds: Sequence[str], *,
                 encoder: Encoder | None = None, cache: FeatureCache | None = None,
                 regions: RegionSettings = DEFAULT_REGIONS, slices: SliceSettings = DEFAULT_SLICES,
                 workers: int | None = None) -> dict[str, list[np.ndarray]]:
    """Per kind, one float64 matrix per volume (see the module's docstring); unknown kinds are ignored."""
    from ..metrics.local import DESCRIPTORS, descriptors

    cache = cache if cache is not None else FeatureCache()
    n = len(volumes)
    out: dict[str, list[np.ndarray]] = {}
    found = region_set(volumes, masks, regions) if any(k in REGION_KINDS for k in kinds) else RegionSet(n_volumes=n)
    index = found.volume_index
    for region in ("roi", "band"):
        if region in kinds and encoder is not None:
            pool = encode_cached(found.images(region), encoder, cache)["pool"] if found.crops else np.zeros((0, 0))
            out[region] = _split(pool, index, n, pool.shape[1] if pool.ndim == 2 else 0)
    wanted = tuple(k for k in DESCRIPTORS if k in kinds)
    if wanted:
        per_volume = [descriptors([c for c in found.crops if c.volume == v], wanted) for v in range(n)]
        for kind in wanted:
            out[kind] = [d[kind] for d in per_volume]
    for kind, version in RADIOMIC_KINDS.items():
        if kind not in kinds or not radiomics_available():
            continue
        from .radiomics import radiomic_features

        if kind.endswith("_roi"):
            feats = radiomic_features([c.roi for c in found.crops], [c.mask for c in found.crops],
                                      [c.pixel_mm for c in found.crops], version=version, cache=cache, workers=workers)
            out[kind] = _split(feats, index, n, feats.shape[1])
        else:
            cut = slice_volumes(volumes, slices, masks)
            feats = radiomic_features(cut.images, None, slice_pixels(volumes, cut.info), version=version, cache=cache,
                                      workers=workers)
            out[kind] = _split(feats, np.array([i.volume for i in cut.info], dtype=np.int64), n, feats.shape[1])
    return out


@dataclass
class LocalSet:
    """One set's local-metric inputs: per kind a matrix, and for the region kinds the volume (cluster) of each row."""

    data: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, np.ndarray] = field(default_factory=dict)


def stack_local(per_volume: dict[str, list[np.ndarray]]) -> LocalSet:
    """Each kind's per-volume matrices stacked; region-crop rows keep their volume's position as cluster id."""
    out = LocalSet()
    for kind, blocks in per_volume.items():
        rows = [b for b in blocks if len(b)]  # a volume without a region has no rows (and, read alone, no width)
        out.data[kind] = np.concatenate(rows, axis=0) if rows else np.zeros((0, 0))
        if kind in REGION_KINDS:
            out.groups[kind] = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks)]).astype(np.int64) \
                if blocks else np.zeros(0, np.int64)
    return out


def suite_local(fixed: dict[str, LocalSet], generated: LocalSet | None) -> dict[str, dict]:
    """``compute_suite``'s ``local`` and ``groups`` arguments from the fixed sets' and a condition's local inputs."""
    local: dict[str, dict[str, np.ndarray]] = {}
    groups: dict[str, dict[str, np.ndarray]] = {}
    for role, found in {**fixed, **({"generated": generated} if generated is not None else {})}.items():
        for kind, matrix in found.data.items():
            local.setdefault(kind, {})[role] = matrix
        for kind, ids in found.groups.items():
            groups.setdefault(kind, {})[role] = ids
    return {"local": local, "groups": groups}
