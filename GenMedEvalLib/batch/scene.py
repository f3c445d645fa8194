"""The batch job's Slicer scene bundle (``scene.mrb``), written with the slicer-core wheel.

It holds, per set, the first ``scene_volumes`` cases at their own intensities and geometry, their
tumour masks and the segmenter's outputs as segmentation nodes, and every result table of the job
as a table node, so a radiologist opens the batch run in Slicer (File > Add Data) as it was
evaluated. Node names: ``SET CASE`` (volume), ``SET CASE tumour`` (mask), ``SET CASE segmenter``
(the segmenter's output) and ``TABLE`` (results).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import Volume


def scene_nodes(scene, volumes: Mapping[str, Volume], masks: Mapping[str, np.ndarray],
                segmentations: Mapping[str, np.ndarray], tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Add the volumes (by node name), tumour masks and segmenter outputs (by the volume's name) and tables."""
    from .. import mrml

    for name, volume in volumes.items():
        mrml.add_volume_node(scene, volume, name)
        if name in masks and np.asarray(masks[name]).any():
            mrml.mask_to_segmentation(scene, volume, masks[name], f"{name} tumour")
        if name in segmentations:
            mrml.masks_to_segmentation(scene, volume, {"segmenter": segmentations[name]}, f"{name} segmenter",
                                       colours={"segmenter": (0.95, 0.75, 0.1)}, outline=True)
    for name, rows in tables.items():
        if rows:
            mrml.rows_to_table(scene, rows, name)


def write_scene(path: str | Path, volumes: Mapping[str, Volume], masks: Mapping[str, np.ndarray],
                segmentations: Mapping[str, np.ndarray], tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """Build the scene in an emptied scene (Slicer's own inside Slicer, else slicer-core's) and save it as ``path``."""
    from .. import mrml

    return mrml.write_bundle(lambda scene: scene_nodes(scene, volumes, masks, segmentations, tables), path)
