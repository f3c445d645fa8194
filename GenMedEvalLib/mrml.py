"""The one bridge between GenMedEval and Slicer's MRML scene: nodes <-> arrays, tables, bundles, slice views.

Every function takes the scene (or the application object that owns it) as an argument, so the
same code runs inside desktop Slicer and on the ``slicer-core`` / ``trame-slicer`` wheels. This is
the only library module that imports ``slicer`` or ``vtk``; nothing imports it at package import.

Geometry: a ``Volume`` keeps ITK's LPS physical frame (``direction``, ``origin``, ``spacing`` in
x, y, z order) and a (z, y, x) array. MRML uses RAS, so IJK-to-RAS = diag(-1, -1, 1) x
[direction x spacing | origin]. The voxel with array index (k, j, i) is IJK (i, j, k) in both, so
arrays cross the bridge without transposes; conversions always go through this matrix, never by
assuming two readers order the slices alike (SPEC section 7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
LABEL_COLOURS = "vtkMRMLColorTableNodeLabels"
PLANES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal"}
_APP: Any = None


def get_app():
    """A process-wide ``trame_slicer`` application (real scene and logics; built once, about 2-8 s)."""
    global _APP
    if _APP is None:
        quiet_vtk()
        from trame_slicer.core import SlicerApp

        _APP = SlicerApp()
    return _APP


def quiet_vtk() -> None:
    """Keep VTK's off-screen warnings (no X display, deprecated events) off the user's terminal."""
    import vtk

    vtk.vtkObject.GlobalWarningDisplayOff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)


# -- geometry --------------------------------------------------------------------------------

def ijk_to_ras(volume: Volume) -> np.ndarray:
    """The 4 x 4 IJK-to-RAS matrix of ``volume``."""
    direction = np.asarray(volume.direction, float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(volume.spacing)
    matrix[:3, 3] = LPS_TO_RAS @ np.asarray(volume.origin, float)
    return matrix


def _vtk_matrix(matrix: np.ndarray):
    import vtk

    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def _node_matrix(node) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def geometry_from_node(node) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(spacing, origin, direction) in ITK LPS terms from a volume node's IJK-to-RAS matrix."""
    matrix = _node_matrix(node)
    lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = LPS_TO_RAS @ matrix[:3, 3]
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


# -- volumes and masks -----------------------------------------------------------------------

def _set_array(node, array: np.ndarray) -> None:
    """Give ``node`` a fresh vtkImageData holding ``array`` (z, y, x), copied."""
    import vtk
    from vtk.util import numpy_support

    data = np.ascontiguousarray(array)
    image = vtk.vtkImageData()
    image.SetDimensions(int(data.shape[2]), int(data.shape[1]), int(data.shape[0]))
    scalars = numpy_support.numpy_to_vtk(data.ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    node.SetAndObserveImageData(image)


def array_from_node(node) -> np.ndarray:
    """A copy of a volume node's voxels as a (z, y, x) array."""
    from vtk.util import numpy_support

    image = node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise InputError(f"volume node '{node.GetName()}' has no image data")
    nx, ny, nz = image.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return flat.reshape(nz, ny, nx).copy()


def volume_from_node(node) -> Volume:
    """A ``Volume`` (float32 voxels, LPS geometry) from a scalar or label-map volume node."""
    spacing, origin, direction = geometry_from_node(node)
    return Volume(array_from_node(node).astype(np.float32), spacing=spacing, origin=origin, direction=direction)


def add_volume_node(scene, volume: Volume, name: str, *, array: np.ndarray | None = None, label: bool = False,
                    node=None):
    """A new (or the given, updated) scalar / label-map volume node holding ``volume``'s geometry and voxels."""
    data = volume.array if array is None else np.asarray(array)
    if data.shape != volume.array.shape:
        raise InputError(f"array shape {data.shape} does not match the volume's {volume.array.shape}", name)
    if node is None:
        cls = "vtkMRMLLabelMapVolumeNode" if label else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(cls, name)
    node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras(volume)))
    _set_array(node, data.astype(np.uint8) if label else data.astype(np.float32))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    if label:
        node.GetDisplayNode().SetAndObserveColorNodeID(label_colour_node(scene).GetID())
    return node


def label_colour_node(scene):
    """The scene's ``Labels`` colour table (label 0 transparent), created when missing."""
    nodes = scene.GetNodesByClassByName("vtkMRMLColorTableNode", "Labels")
    if nodes.GetNumberOfItems():
        return nodes.GetItemAsObject(0)
    node = scene.GetFirstNodeByName("Labels")
    if node is not None and node.IsA("vtkMRMLColorTableNode"):
        return node
    import slicer

    table = slicer.vtkMRMLColorTableNode()
    table.SetTypeToLabels()
    table.SetName("Labels")
    table.SetSingletonTag("GenMedEvalLabels")
    return scene.AddNode(table)


# Colours of the rendered views' labels: blue where only the first overlay (the tumour mask) is,
# red where only the second (the segmenter's output), green where both agree. Slicer's ``Labels``
# table would draw 2 in pale peach and 3 in white, unreadable over a brain.
VIEW_COLOURS = {1: ("tumour mask only", (0.2, 0.5, 0.9)), 2: ("segmenter output only", (0.95, 0.3, 0.25)),
                3: ("both", (0.3, 0.85, 0.35))}


def view_colour_node(scene):
    """The colour table for ``render_slice_views`` overlays (``VIEW_COLOURS``; 0 transparent), created once."""
    node = scene.GetFirstNodeByName("GenMedEval overlays")
    if node is not None and node.IsA("vtkMRMLColorTableNode"):
        return node
    import slicer

    table = slicer.vtkMRMLColorTableNode()
    table.SetTypeToUser()
    table.SetNumberOfColors(4)
    table.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for value, (name, (r, g, b)) in VIEW_COLOURS.items():
        table.SetColor(value, name, r, g, b, 1.0)
    table.SetName("GenMedEval overlays")
    table.SetSingletonTag("GenMedEvalOverlays")
    return scene.AddNode(table)


def mask_to_segmentation(scene, volume: Volume, mask: np.ndarray, name: str, segment_name: str = "tumour"):
    """A segmentation node with one segment from a binary mask (through a temporary label map)."""
    import slicer

    labelmap = add_volume_node(scene, volume, f"{name}-labelmap", array=(np.asarray(mask) > 0).astype(np.uint8),
                               label=True)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.CreateDefaultDisplayNodes()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    if not logic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
        raise InputError("could not convert the mask to a segmentation", name)
    segment = segmentation.GetSegmentation().GetNthSegment(0)
    if segment is not None:
        segment.SetName(segment_name)
    scene.RemoveNode(labelmap)
    return segmentation


def masks_to_segmentation(scene, volume: Volume, masks: Mapping[str, np.ndarray], name: str, *,
                          colours: Mapping[str, Sequence[float]] | None = None, outline: bool = False, node=None):
    """A segmentation node with one segment per named binary mask, in order (segments may overlap).

    ``node``: an existing segmentation node to refill (its segments are replaced, its ID kept);
    ``colours``: RGB in [0, 1] by segment name; ``outline``: slice views draw the segments' outlines
    only, so the image under them stays visible. An empty mask gives an empty segment.
    """
    import slicer

    segmentation = node if node is not None else scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.SetName(name)
    if segmentation.GetDisplayNode() is None:
        segmentation.CreateDefaultDisplayNodes()
    segments = segmentation.GetSegmentation()
    segments.RemoveAllSegments()
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    for segment_name, mask in masks.items():
        binary = (np.asarray(mask) > 0).astype(np.uint8)
        before = segments.GetNumberOfSegments()
        if binary.any():
            labelmap = add_volume_node(scene, volume, f"{name}-labelmap", array=binary, label=True)
            try:
                if not logic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
                    raise InputError(f"could not convert the mask '{segment_name}' to a segment", name)
            finally:
                scene.RemoveNode(labelmap)
        if segments.GetNumberOfSegments() == before:  # nothing imported (an empty mask)
            segments.AddEmptySegment("", segment_name)
        segment = segments.GetNthSegment(before)
        segment.SetName(segment_name)
        if colours and segment_name in colours:
            segment.SetColor(*(float(c) for c in colours[segment_name]))
    display = segmentation.GetDisplayNode()
    display.SetVisibility(True)
    display.SetVisibility2DFill(not outline)
    display.SetVisibility2DOutline(True)
    return segmentation


def segment_masks(scene, segmentation, reference) -> dict[str, np.ndarray]:
    """Each segment of ``segmentation`` as a binary (z, y, x) uint8 mask on ``reference``'s grid, by segment name."""
    import slicer
    import vtk

    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    like = volume_from_node(reference)
    segments = segmentation.GetSegmentation()
    out = {}
    for index in range(segments.GetNumberOfSegments()):
        segment_id = segments.GetNthSegmentID(index)
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "genmedeval-export")
        try:
            if not logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference):
                raise InputError(f"could not export the segment '{segments.GetNthSegment(index).GetName()}'",
                                 segmentation.GetName())
            exported = volume_from_node(labelmap) if labelmap.GetImageData() is not None else None
        finally:
            scene.RemoveNode(labelmap)
        name = segments.GetNthSegment(index).GetName()
        out[name] = np.zeros(like.array.shape, np.uint8) if exported is None or exported.array.size == 0 \
            else resample_mask(exported, like)
    return out


def segmentation_to_mask(scene, segmentation, reference) -> np.ndarray:
    """All segments of ``segmentation`` as one binary (z, y, x) mask on ``reference``'s voxel grid."""
    import slicer

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "genmedeval-export")
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    try:
        if not logic.ExportAllSegmentsToLabelmapNode(segmentation, labelmap, 0):
            raise InputError("could not export the segmentation", segmentation.GetName())
        exported = volume_from_node(labelmap)
    finally:
        scene.RemoveNode(labelmap)
    return resample_mask(exported, volume_from_node(reference))


def resample_mask(mask: Volume, like: Volume) -> np.ndarray:
    """``mask`` (any grid) resampled nearest-neighbour onto ``like``'s grid, binary uint8."""
    import SimpleITK as sitk

    from .io import to_sitk

    resampled = sitk.Resample(to_sitk(mask), to_sitk(like), sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    return (sitk.GetArrayFromImage(resampled) > 0).astype(np.uint8)


def mask_from_node(scene, node, reference) -> np.ndarray:
    """A binary mask on ``reference``'s grid from a label-map volume node or a segmentation node."""
    if node.IsA("vtkMRMLSegmentationNode"):
        return segmentation_to_mask(scene, node, reference)
    return resample_mask(volume_from_node(node), volume_from_node(reference))


# -- tables ----------------------------------------------------------------------------------

TABLE_COLUMNS = ("metric", "value", "ci_low", "ci_high", "better", "n_reference", "n_generated")


def rows_to_table(scene, rows: Iterable[Mapping[str, Any]], name: str, *, columns: Sequence[str] | None = None,
                  node=None):
    """Write dict rows into a (new or given) ``vtkMRMLTableNode``; numbers become double columns."""
    import vtk

    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else TABLE_COLUMNS))
    table_node = node or scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = table_node.GetTable()
    table.Initialize()
    for column in columns:
        numeric = all(isinstance(r.get(column), int | float | np.floating | type(None)) and
                      not isinstance(r.get(column), bool) for r in rows) and rows
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(column)
        for r in rows:
            value = r.get(column)
            if numeric:
                array.InsertNextValue(float("nan") if value is None else float(value))
            else:
                array.InsertNextValue("" if value is None else str(value))
        table.AddColumn(array)
    table_node.Modified()
    return table_node


def table_to_rows(table_node) -> list[dict[str, Any]]:
    """Read a table node back as dict rows (double columns as floats, others as strings)."""
    table = table_node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for c, name in enumerate(names):
            column = table.GetColumn(c)
            row[name] = column.GetValue(r) if column.IsA("vtkStringArray") else float(column.GetValue(r))
        rows.append(row)
    return rows


def suite_rows(result) -> list[dict[str, Any]]:
    """``SuiteResult`` rows in the table layout: metric, value, 95 % CI, better direction, set sizes."""
    return [{"metric": r.metric, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "better": r.better,
             "n_reference": r.n_reference, "n_generated": r.n_generated} for r in result.rows]


# -- scenes ----------------------------------------------------------------------------------

def save_bundle(app, path: str | Path) -> Path:
    """Save the whole scene as a ``.mrb`` bundle (written to a temporary name, then renamed)."""
    from .filecheck import native_output_silenced
    from .io import atomic_path

    target = Path(path)
    with atomic_path(target) as tmp, native_output_silenced():  # the zip writer's per-file notes (command line)
        staged = tmp.with_suffix(".mrb")
        if not app.io_manager.save_scene(str(staged)):
            raise InputError("Slicer could not save the scene", target)
        staged.replace(tmp)
    return target


def in_slicer_application() -> bool:
    """True inside the desktop (or windowless) Slicer application, where ``slicer.app`` exists."""
    import sys

    module = sys.modules.get("slicer")
    return module is not None and getattr(module, "app", None) is not None


def write_bundle(build, path: str | Path) -> Path:
    """A ``.mrb`` of the nodes ``build(scene)`` adds to an emptied scene, written atomically.

    Inside Slicer: the application's own scene and ``slicer.util.saveScene`` (the scene is cleared
    first and after: a batch run owns it); elsewhere the slicer-core wheel's (``get_app``).
    """
    if in_slicer_application():
        import slicer

        from .io import atomic_path

        scene, target = slicer.mrmlScene, Path(path)
        scene.Clear(0)
        try:
            build(scene)
            with atomic_path(target) as tmp:
                staged = tmp.with_suffix(".mrb")
                if not slicer.util.saveScene(str(staged)):
                    raise InputError("Slicer could not save the scene", target)
                staged.replace(tmp)
            return target
        finally:
            scene.Clear(0)
    app = get_app()
    app.scene.Clear(0)
    try:
        build(app.scene)
        return save_bundle(app, path)
    finally:
        app.scene.Clear(0)


def load_bundle(app, path: str | Path) -> None:
    """Load a ``.mrb`` bundle into ``app``'s scene."""
    if not Path(path).is_file():
        raise InputError("scene bundle not found", path)
    if not app.io_manager.load_scene(str(path)):
        raise InputError("Slicer could not read the scene bundle", path)


def nodes_by_name(scene, name: str) -> list:
    """Every node of the scene called ``name``."""
    found = scene.GetNodesByName(name)
    return [found.GetItemAsObject(i) for i in range(found.GetNumberOfItems())]


# -- off-screen slice views ------------------------------------------------------------------

def _slice_view(app, plane: str, size: int):
    """An off-screen slice view of ``plane`` (created once per app and plane)."""
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition

    views = getattr(app, "_genmedeval_views", None)
    if views is None:
        app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
        views = app._genmedeval_views = {}
    if plane not in views:
        layout = getattr(ViewLayoutDefinition, f"{plane}_view")(label=f"GenMedEval{PLANES[plane]}")
        views[plane] = app.view_manager.create_view(layout)
    view = views[plane]
    view.render_window().SetSize(size, size)
    return view


def _capture(view) -> np.ndarray:
    """The view's pixels as an H x W x 3 uint8 array (top row first)."""
    import vtk
    from vtk.util import numpy_support

    view.render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(view.render_window())
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[..., :3]
    return pixels[::-1].copy()


def combine_overlays(overlays: Sequence[np.ndarray], shape) -> np.ndarray | None:
    """Overlays as one label map: first = 1, second = 2, both = 3 (Slicer has one label layer)."""
    if not overlays:
        return None
    out = np.zeros(shape, np.uint8)
    for value, overlay in zip((1, 2), overlays[:2], strict=False):
        out[np.asarray(overlay) > 0] |= value
    return out


def _centre_ras(volume: Volume, overlay: np.ndarray | None, centre_zyx) -> np.ndarray:
    if centre_zyx is None:
        if overlay is not None and overlay.any():
            centre_zyx = np.argwhere(overlay > 0).mean(axis=0)
        else:
            centre_zyx = (np.asarray(volume.array.shape) - 1) / 2.0
    ijk = np.array([centre_zyx[2], centre_zyx[1], centre_zyx[0], 1.0])
    return (ijk_to_ras(volume) @ ijk)[:3]


def render_slice_views(volume: Volume, *, overlays: Sequence[np.ndarray] = (),
                       planes: Sequence[str] = ("axial", "coronal", "sagittal"),
                       center_zyx: Sequence[float] | None = None, size: int = 256, app=None,
                       label_opacity: float = 0.5, outline: bool = False) -> dict[str, np.ndarray]:
    """Render ``volume`` with label overlays in Slicer's slice views, off-screen: {plane: H x W x 3 uint8}.

    The first overlay is label 1, the second 2, their overlap 3, drawn in ``VIEW_COLOURS`` (blue, red,
    green). ``outline``: draw each label region's outline only (the slice node's label-outline mode), so
    the image under a changed boundary stays visible. Each view is centred on the first overlay's
    centre of mass (or ``center_zyx``) and fitted to the volume.
    """
    app = app or get_app()
    scene = app.scene
    label = combine_overlays(overlays, volume.array.shape)
    nodes = [add_volume_node(scene, volume, "genmedeval-view-background")]
    if label is not None:
        nodes.append(add_volume_node(scene, volume, "genmedeval-view-labels", array=label, label=True))
        nodes[1].GetDisplayNode().SetAndObserveColorNodeID(view_colour_node(scene).GetID())
    centre = _centre_ras(volume, label, center_zyx)
    images = {}
    try:
        for plane in planes:
            if plane not in PLANES:
                raise InputError(f"unknown plane '{plane}'; choose from {', '.join(PLANES)}")
            view = _slice_view(app, plane, size)
            composite = view._logic.GetSliceCompositeNode()
            composite.SetBackgroundVolumeID(nodes[0].GetID())
            composite.SetLabelVolumeID(nodes[1].GetID() if label is not None else None)
            composite.SetLabelOpacity(label_opacity)
            view._logic.GetSliceNode().SetUseLabelOutline(bool(outline))
            view.fit_view_to_content()
            view._logic.SetSliceOffset(_plane_offset(view._logic.GetSliceNode(), centre))
            images[plane] = _capture(view)
    finally:
        for node in nodes:
            scene.RemoveNode(node)
    return images


def view_xy_to_ras(app, plane: str) -> np.ndarray:
    """The 4 x 4 matrix taking a rendered view's pixel (x right, y up, 0, 1) to RAS millimetres."""
    views = getattr(app, "_genmedeval_views", {})
    if plane not in views:
        raise InputError(f"no {plane} view has been rendered yet")
    matrix = views[plane]._logic.GetSliceNode().GetXYToRAS()
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _plane_offset(slice_node, centre_ras: np.ndarray) -> float:
    """The slice offset (mm along the view's normal) that puts the plane through ``centre_ras``.

    Slicer's sagittal normal points to patient left (-R), so the offset is not simply a coordinate.
    """
    matrix = slice_node.GetSliceToRAS()
    normal = np.array([matrix.GetElement(r, 2) for r in range(3)])
    return float(normal @ centre_ras)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an H x W x 3 uint8 image as PNG, atomically."""
    import matplotlib.image as mpimg

    from .io import atomic_path

    with atomic_path(path) as tmp:
        mpimg.imsave(tmp, np.asarray(rgb, np.uint8), format="png")
    return Path(path)
