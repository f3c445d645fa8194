"""The MRML bridge and the module's scene logic on a real vtkMRMLScene (slicer-core / trame-slicer wheels)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from GenMedEvalLib import mrml
from GenMedEvalLib.errors import InputError, ParameterError
from GenMedEvalLib.io import normalize_intensity, read_mask, read_volume, to_sitk
from GenMedEvalLib.scene_logic import SceneLogic


@pytest.fixture(scope="module")
def real(real_dir):
    image = read_volume(real_dir / "brain1_image.nrrd")
    return image, read_mask(real_dir / "brain1_label.nrrd", like=image), real_dir


def on_grid_of(volume, like) -> np.ndarray:
    """``volume``'s voxels resampled (nearest) onto ``like``'s grid: equality then means the same physical image."""
    resampled = sitk.Resample(to_sitk(volume), to_sitk(like), sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    return sitk.GetArrayFromImage(resampled)


def test_volume_round_trip_keeps_voxels_and_geometry(scene, real):
    image, _, _ = real
    node = mrml.add_volume_node(scene, image, "img")
    back = mrml.volume_from_node(node)
    np.testing.assert_array_equal(back.array, image.array)
    assert back.spacing == pytest.approx(image.spacing)
    assert back.origin == pytest.approx(image.origin)
    assert back.direction == pytest.approx(image.direction)


def test_slicer_reader_and_simpleitk_agree_through_the_geometry(app, scene, real):
    """Slicer's NRRD reader orders this file's slices the other way (SPEC 7); physical positions still agree."""
    image, _, folder = real
    (node,) = app.io_manager.load_volumes(str(folder / "brain1_image.nrrd"))
    from_slicer = mrml.volume_from_node(node)
    assert from_slicer.direction != pytest.approx(image.direction)  # the reversed slice axis is real
    resampled = sitk.Resample(to_sitk(from_slicer), to_sitk(image), sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(resampled), image.array)
    ours = mrml.add_volume_node(scene, image, "ours")
    probe = np.array([10, 20, 5, 1.0])  # IJK of our node -> RAS -> IJK of Slicer's node: same voxel value
    ras = mrml._node_matrix(ours) @ probe
    ijk = np.rint(np.linalg.inv(mrml._node_matrix(node)) @ ras).astype(int)
    assert mrml.array_from_node(node)[ijk[2], ijk[1], ijk[0]] == image.array[5, 20, 10]


def test_label_map_and_segmentation_nodes_round_trip_the_mask(app, scene, real):
    image, mask, folder = real
    reference = mrml.add_volume_node(scene, image, "img")
    labelmap = app.volumes_logic.AddArchetypeVolume(str(folder / "brain1_label.nrrd"), "label", 1)
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(mrml.mask_from_node(scene, labelmap, reference), mask.array)
    segmentation = mrml.mask_to_segmentation(scene, image, mask.array, "tumour")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1
    np.testing.assert_array_equal(mrml.mask_from_node(scene, segmentation, reference), mask.array)


def test_perturbation_goes_to_a_new_node_with_the_same_geometry(scene, real):
    image, mask, _ = real
    source = mrml.add_volume_node(scene, image, "img")
    label = mrml.add_volume_node(scene, image, "mask", array=mask.array, label=True)
    before = mrml.array_from_node(source).copy()
    logic = SceneLogic(scene)
    preview = logic.perturb(source, "boundary_blur", {"sigma": 3.0}, mask_node=label)
    assert preview.volume_node is not source
    np.testing.assert_allclose(mrml._node_matrix(preview.volume_node), mrml._node_matrix(source))
    np.testing.assert_array_equal(mrml.array_from_node(source), before)  # input untouched
    from GenMedEvalLib.perturb import boundary_blur

    expected = boundary_blur(normalize_intensity(image.array), mask=mask.array, spacing=image.spacing_zyx, sigma=3.0)
    np.testing.assert_allclose(mrml.array_from_node(preview.volume_node), expected, atol=1e-6)
    overlay = mrml.array_from_node(preview.overlay_node)
    changed = np.abs(expected - normalize_intensity(image.array)) > 1e-6
    assert preview.changed_voxels == changed.sum() > 0
    np.testing.assert_array_equal(overlay == 2, changed)
    strong = np.abs(mrml.array_from_node(preview.volume_node) - normalize_intensity(image.array)).sum()
    again = logic.perturb(source, "boundary_blur", {"sigma": 1.0}, mask_node=label, output_node=preview.volume_node,
                          overlay_node=preview.overlay_node)
    weak = np.abs(mrml.array_from_node(again.volume_node) - normalize_intensity(image.array)).sum()
    assert again.volume_node is preview.volume_node and 0 < weak < strong  # the same node, updated


def test_preview_errors_are_one_line(scene, real):
    image, _, _ = real
    source = mrml.add_volume_node(scene, image, "img")
    logic = SceneLogic(scene)
    with pytest.raises(InputError, match="needs a tumour mask"):
        logic.perturb(source, "radial_gradient", {})
    with pytest.raises(ParameterError, match="unknown perturbation"):
        logic.perturb(source, "sharpen", {})
    with pytest.raises(ParameterError):
        logic.perturb(source, "gaussian_noise", {"sigma": -1.0})


def test_metric_table_node_holds_the_suite(scene, mni_t1):
    from GenMedEvalLib.metrics import compute_suite

    rng = np.random.default_rng(0)
    ref, gen = rng.normal(size=(40, 6)), rng.normal(0.5, 1.0, size=(40, 6))
    result = compute_suite({"reference": ref, "generated": gen}, "fd,kd,prdc", bootstrap=10, seed=0)
    node = SceneLogic(scene).result_table(result)
    rows = mrml.table_to_rows(node)
    assert [r["metric"] for r in rows] == [r.metric for r in result.rows]
    fd = next(r for r in rows if r["metric"] == "fd")
    assert fd["value"] == pytest.approx(result.value("fd"))
    assert fd["ci_low"] <= fd["value"] <= fd["ci_high"] and fd["better"] == "lower"
    assert fd["n_reference"] == 40 and fd["n_generated"] == 40


def test_bundle_round_trip_into_a_fresh_scene(app, scene, real, tmp_path):
    image, mask, _ = real
    mrml.add_volume_node(scene, image, "img")
    mrml.add_volume_node(scene, image, "mask", array=mask.array, label=True)
    mrml.rows_to_table(scene, [{"metric": "fd", "value": 1.25, "better": "lower"}], "metrics")
    bundle = mrml.save_bundle(app, tmp_path / "scene.mrb")
    assert bundle.is_file() and not list(tmp_path.glob("*.tmp*"))
    scene.Clear(0)
    assert not mrml.nodes_by_name(scene, "img")
    mrml.load_bundle(app, bundle)
    (img,) = mrml.nodes_by_name(scene, "img")
    (label,) = mrml.nodes_by_name(scene, "mask")
    (table,) = mrml.nodes_by_name(scene, "metrics")
    np.testing.assert_array_equal(on_grid_of(mrml.volume_from_node(img), image), image.array)
    assert label.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(on_grid_of(mrml.volume_from_node(label), image), mask.array)
    row = mrml.table_to_rows(table)[0]
    assert row["metric"] == "fd" and float(row["value"]) == 1.25
    with pytest.raises(InputError, match="not found"):
        mrml.load_bundle(app, tmp_path / "absent.mrb")


def tinted(rgb: np.ndarray) -> np.ndarray:
    """Pixels with colour (grey background pixels have equal R, G and B)."""
    rgb = rgb.astype(int)
    return np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max(axis=2) > 20


def pixels_to_ijk(app, plane: str, rows: np.ndarray, cols: np.ndarray, height: int, volume) -> np.ndarray:
    """Voxel indices (i, j, k) under image pixels (top row first), through the view's XY-to-RAS and the volume."""
    xy = np.stack([cols, height - 1 - rows, np.zeros_like(cols), np.ones_like(cols)]).astype(float)
    return np.rint(np.linalg.inv(mrml.ijk_to_ras(volume)) @ mrml.view_xy_to_ras(app, plane) @ xy)[:3].astype(int)


def test_axial_view_shows_the_tumour_overlay(app, real_case, artifacts_dir):
    """The overlay colour lies on the mask's voxels (mapped back through Slicer's view geometry) and nowhere else."""
    image, mask = real_case
    views = mrml.render_slice_views(image, overlays=[mask.array], planes=("axial", "coronal", "sagittal"), app=app)
    for plane, rgb in views.items():
        assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
        mrml.save_png(rgb, artifacts_dir / f"slicer_{plane}_overlay.png")
        assert tinted(rgb).sum() > 50, plane  # every plane goes through the tumour's centre of mass
    rgb = views["axial"]
    rows, cols = np.nonzero(tinted(rgb))
    i, j, k = pixels_to_ijk(app, "axial", rows, cols, rgb.shape[0], image)
    assert len(set(k)) == 1  # one axial slice is shown
    assert mask.array[k, j, i].mean() > 0.85  # coloured pixels are tumour voxels
    # and the tumour voxels of that slice are coloured: map every view pixel to its voxel
    rr, cc = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    ai, aj, ak = pixels_to_ijk(app, "axial", rr.ravel(), cc.ravel(), rgb.shape[0], image)
    inside = (ai >= 0) & (ai < mask.array.shape[2]) & (aj >= 0) & (aj < mask.array.shape[1])
    under_mask = np.zeros(rr.size, bool)
    under_mask[inside] = mask.array[ak[inside], aj[inside], ai[inside]] > 0
    assert under_mask.sum() > 50
    assert tinted(rgb).ravel()[under_mask].mean() > 0.85
    centre = tuple(np.argwhere(mask.array).mean(axis=0))
    plain = mrml.render_slice_views(image, planes=("axial",), app=app, center_zyx=centre)["axial"]
    assert tinted(plain).sum() < 10  # the grey MRI alone has no colour
    differs = (np.abs(rgb.astype(int) - plain.astype(int)).sum(axis=2) > 30).ravel()
    assert differs.sum() > 50 and differs[~under_mask].sum() < 0.1 * differs.sum()  # the overlay changes only the tumour


def test_two_overlays_get_different_label_colours(app, real_case, artifacts_dir):
    image, mask = real_case
    second = np.zeros_like(mask.array)
    k = int(round(np.argwhere(mask.array).mean(axis=0)[0]))
    second[k, 100:130, 150:180] = 1  # a square beside the tumour, same slice
    rgb = mrml.render_slice_views(image, overlays=[mask.array, second], planes=("axial",), app=app)["axial"]
    mrml.save_png(rgb, artifacts_dir / "slicer_axial_two_overlays.png")
    rr, cc = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    ai, aj, ak = pixels_to_ijk(app, "axial", rr.ravel(), cc.ravel(), rgb.shape[0], image)
    inside = (ai >= 0) & (ai < 256) & (aj >= 0) & (aj < 256) & (ak == k)
    labels = np.zeros(rr.size, np.uint8)
    combined = mrml.combine_overlays([mask.array, second], mask.array.shape)
    labels[inside] = combined[ak[inside], aj[inside], ai[inside]]
    pixels = rgb.reshape(-1, 3).astype(float)
    first_colour = np.median(pixels[(labels == 1) & tinted(rgb).ravel()], axis=0)
    second_colour = np.median(pixels[(labels == 2) & tinted(rgb).ravel()], axis=0)
    assert (labels == 2).sum() > 100 and tinted(rgb).ravel()[labels == 2].mean() > 0.9
    assert np.abs(first_colour - second_colour).max() > 40  # label values 1 and 2 have distinct colours
    assert second_colour[0] > second_colour[1] + 30 and first_colour[2] > first_colour[0] + 30  # red, blue


def test_view_colours_are_distinct_and_none_is_white(app):
    table = mrml.view_colour_node(app.scene)
    assert mrml.view_colour_node(app.scene) is table  # one table per scene
    colours = []
    for value in (1, 2, 3):
        rgba = [0.0] * 4
        table.GetColor(value, rgba)
        colours.append(np.array(rgba[:3]))
        assert min(rgba[:3]) < 0.5 and rgba[3] == 1.0  # saturated, opaque: readable over grey anatomy
    assert all(np.abs(a - b).max() > 0.3 for i, a in enumerate(colours) for b in colours[i + 1:])


def test_combine_overlays_marks_overlap_as_three():
    a, b = np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 3), np.uint8)
    a[0, :2], b[0, 1:] = 1, 1
    combined = mrml.combine_overlays([a, b], a.shape)
    assert combined[0, 0, 0] == 1 and combined[0, 1, 0] == 3 and combined[0, 2, 0] == 2 and combined[1].max() == 0
    assert mrml.combine_overlays([], a.shape) is None


@pytest.fixture(scope="module")
def untrained_predictor_file(tmp_path_factory):
    """A seeded, untrained quality network saved in the shipped format (the shipped weights are trained elsewhere)."""
    import torch

    from GenMedEvalLib.quality.model import build_regressor, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("quality") / "quality.pt"
    return save_checkpoint(build_regressor(), path, size=64, margin=0.5, min_mm=16.0, meta={"test": True})


class RecordingSegmenter:
    """The real segmenter, keeping what it was given and what it returned (to compare with the nodes)."""

    def __init__(self, model):
        self.model, self.inputs, self.outputs = model, [], []

    def segment(self, image, spacing_zyx):
        self.inputs.append(np.array(image))
        self.outputs.append(self.model.segment(image, spacing_zyx))
        return self.outputs[-1]


def test_segmentation_and_predicted_dice_into_nodes(scene, untrained_predictor_file):
    from GenMedEvalLib.io import Volume
    from GenMedEvalLib.quality import dice_score, load_predictor, predict_dice
    from GenMedEvalLib.quality.heldout import cohort_heldout_cases
    from GenMedEvalLib.segment import load_segmenter

    image, truth, spacing = cohort_heldout_cases(1, spacing=3.0)[0]  # 3 mm keeps the CPU segmenter quick
    volume = Volume(image, spacing=spacing[::-1])  # Volume keeps x, y, z spacing
    node = mrml.add_volume_node(scene, volume, "case")
    truth_node = mrml.add_volume_node(scene, volume, "truth", array=truth, label=True)
    segmenter = RecordingSegmenter(load_segmenter())
    segmentation, score, table = SceneLogic(scene).segment_and_score(
        node, segmenter=segmenter, predictor=str(untrained_predictor_file), truth_node=truth_node)
    mask = mrml.mask_from_node(scene, segmentation, node)
    assert segmentation.IsA("vtkMRMLSegmentationNode") and segmentation.GetSegmentation().GetNumberOfSegments() == 1
    normalised = normalize_intensity(image)
    np.testing.assert_array_equal(segmenter.inputs[0], normalised)  # the model saw the node's normalised voxels
    np.testing.assert_array_equal(mask, segmenter.outputs[0])  # and the segmentation node holds its output
    row = mrml.table_to_rows(table)[0]
    assert row["mask_voxels"] == mask.sum() > 0
    assert row["true_dice"] == pytest.approx(dice_score(mask, truth))
    expected = predict_dice(normalised, mask, spacing_zyx=volume.spacing_zyx,
                            predictor=load_predictor(untrained_predictor_file))
    assert row["predicted_dice"] == pytest.approx(score) == pytest.approx(expected, abs=1e-5)


def test_export_table_as_csv_and_html(scene, tmp_path):
    node = mrml.rows_to_table(scene, [{"metric": "fd", "value": 2.5}], "m")
    logic = SceneLogic(scene)
    assert "fd,2.5" in logic.export_table(node, tmp_path / "m.csv").read_text()
    assert "<td>fd</td>" in logic.export_table(node, tmp_path / "m.html").read_text()
    with pytest.raises(InputError):
        logic.export_table(node, tmp_path / "m.xlsx")


def load_batch_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "GenMedEval" / "Scripts" / "batch.py"
    spec = importlib.util.spec_from_file_location("genmedeval_batch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batch_script_runs_the_logic_headless(app, scene, real, tmp_path, capsys):
    from GenMedEvalLib.perturb import radial_gradient

    image, mask, folder = real
    batch = load_batch_module()
    code = batch.main(["--volume", str(folder / "brain1_image.nrrd"), "--mask", str(folder / "brain1_label.nrrd"),
                       "--perturbation", "radial_gradient", "--param", "amplitude=0.3", "--seed", "1",
                       "--out", str(tmp_path / "out"), "--scene", str(tmp_path / "out" / "scene.mrb")])
    assert code == 0
    written = read_volume(tmp_path / "out" / "brain1_image_radial_gradient.nii.gz")
    expected = radial_gradient(normalize_intensity(image.array), mask=mask.array, spacing=image.spacing_zyx,
                               amplitude=0.3, seed=1)
    np.testing.assert_allclose(written.array, expected, atol=1e-6)
    assert written.spacing == pytest.approx(image.spacing) and written.direction == pytest.approx(image.direction)
    assert (tmp_path / "out" / "scene.mrb").stat().st_size > 1000
    assert "voxels changed" in capsys.readouterr().out


def test_batch_script_bad_input_is_one_line(tmp_path, capsys):
    batch = load_batch_module()
    code = batch.main(["--volume", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "missing.nii.gz" in err
    assert not (tmp_path / "out").exists()
