"""The module's logic (GenMedEvalLogic delegates to SceneLogic) on a real vtkMRMLScene, without Slicer's GUI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from GenMedEvalLib import mrml
from GenMedEvalLib.errors import InputError, ParameterError
from GenMedEvalLib.io import Volume, normalize_intensity
from GenMedEvalLib.perturb import PERTURBATIONS, apply_perturbation
from GenMedEvalLib.scene_logic import (
    MODULE_CONTROLS,
    REGION_SEGMENTS,
    REGIONS_NODE,
    SceneLogic,
    beyond_paper,
    choice_controls,
    control_ranges,
    evaluate_command,
    kind_note,
    kinds_tooltip,
    module_params,
    progress_percent,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_case():
    """The self-test's case: a 24 x 64 x 64 noisy volume, 2 mm slices, with a bright ellipsoid tumour."""
    rng = np.random.default_rng(0)
    array = rng.normal(0.4, 0.05, (24, 64, 64)).astype(np.float32)
    zz, yy, xx = np.ogrid[:24, :64, :64]
    tumour = ((zz - 12) ** 2 * 4 + (yy - 30) ** 2 + (xx - 34) ** 2) < 100
    array[tumour] = 0.9
    return Volume(array, spacing=(1.0, 1.0, 2.0), origin=(-31.0, -40.0, 5.0)), tumour.astype(np.uint8)


def test_module_controls_match_the_perturbation_registry():
    """Each preview kind's controls carry the registry's defaults, and their shared range is valid for every kind."""
    ranges = control_ranges()
    for kind, controls in MODULE_CONTROLS.items():
        spec = PERTURBATIONS[kind]
        assert spec.kind == "volume"
        for param, control in controls.items():
            assert param in spec.params, (kind, param)
            if control in ranges:
                assert ranges[control].default == spec.params[param].default, (kind, param)
                assert spec.params[param].low <= ranges[control].low <= ranges[control].high <= spec.params[param].high
        defaults = {control: r.default for control, r in ranges.items()} | {"mode": "slice", "ghostAxis": "y",
                                                                           "anisotropyAxis": "coarsest"}
        assert spec.validate(module_params(kind, defaults)) == spec.validate({})  # panel defaults = library defaults
        assert set(controls.values()) <= set(ranges) | set(choice_controls())  # every control is ranged or a choice
    assert ranges["noiseLevel"].low == PERTURBATIONS["poisson_noise"].params["level"].low  # the intersection
    with pytest.raises(ParameterError, match="preview offers"):
        module_params("duplication", {})


ARTEFACTS = ("motion", "ghosting", "spike", "bias_field", "anisotropy")
SEEDLESS = {"ghosting", "anisotropy"}  # deterministic transforms: the seed is unused


def test_the_preview_offers_every_artefact_beyond_the_paper_with_a_control_per_parameter():
    """The five TorchIO artefacts are previewable, each parameter has its own control, and their presets (levels 1-3)
    lie in the controls' ranges and choices; only they are marked beyond the paper, as `perturb --list` says."""
    from GenMedEvalLib.commands.perturb import describe_registry

    ranges, choices = control_ranges(), choice_controls()
    assert {k for k, s in PERTURBATIONS.items() if s.beyond_paper} == set(ARTEFACTS) <= set(MODULE_CONTROLS)
    listing = {line.split()[0]: line for line in describe_registry().splitlines() if not line.startswith(" ")}
    for kind in MODULE_CONTROLS:
        spec = PERTURBATIONS[kind]
        assert beyond_paper(kind) is spec.beyond_paper
        assert ("beyond the paper" in listing[kind]) is ("Beyond the paper" in kind_note(kind)) is spec.beyond_paper
        assert (kind in kinds_tooltip()) is spec.beyond_paper
        if not spec.beyond_paper:
            continue
        controls = MODULE_CONTROLS[kind]
        assert set(controls) == set(spec.params), kind  # one control per parameter
        for level, preset in spec.presets.items():
            for param, value in spec.validate(preset).items():
                control = controls[param]
                if control in choices:
                    assert value in choices[control], (kind, level, param)
                else:
                    assert ranges[control].low <= value <= ranges[control].high, (kind, level, param)
                    assert ranges[control].integer is (spec.params[param].type is int)
    other = [c for kind, cs in MODULE_CONTROLS.items() if kind not in ARTEFACTS for c in cs.values()]
    assert not {c for kind in ARTEFACTS for c in MODULE_CONTROLS[kind].values()} & set(other)  # no shared knob
    assert choices == {"mode": ["slice", "3d"], "ghostAxis": ["y", "x", "z"],
                       "anisotropyAxis": ["coarsest", "z", "y", "x"]}


@pytest.mark.parametrize("kind", ARTEFACTS)
def test_artefact_preview_changes_the_voxels_deterministically_per_seed(scene, small_case, kind):
    """Each artefact at its middle level through the module's preview: the library's output on the node's grid, the
    same voxels for the same seed, other voxels for another seed (the seeded ones), the changes marked."""
    volume, _ = small_case
    source = mrml.add_volume_node(scene, volume, "case")
    logic, spec = SceneLogic(scene), PERTURBATIONS[kind]
    controls = {MODULE_CONTROLS[kind][param]: value for param, value in spec.validate(spec.preset("2")).items()}
    params = module_params(kind, controls)
    first = logic.perturb(source, kind, params, seed=3)
    again = logic.perturb(source, kind, params, seed=3)
    other = logic.perturb(source, kind, params, seed=4, output_node=again.volume_node)
    assert other.volume_node is again.volume_node  # the output node is updated, not duplicated
    expected = apply_perturbation(kind, normalize_intensity(volume.array), spacing=volume.spacing_zyx, seed=3,
                                  **params)
    got = mrml.array_from_node(first.volume_node)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert first.changed_voxels > 0
    changed = np.abs(expected - normalize_intensity(volume.array)) > 1e-6
    np.testing.assert_array_equal(mrml.array_from_node(first.overlay_node) == 2, changed)
    repeated = logic.perturb(source, kind, params, seed=3)
    np.testing.assert_array_equal(mrml.array_from_node(repeated.volume_node), got)  # byte-identical per seed
    if kind in SEEDLESS:
        np.testing.assert_array_equal(mrml.array_from_node(other.volume_node), got)
    else:
        assert np.abs(mrml.array_from_node(other.volume_node) - got).max() > 1e-4
    assert mrml.volume_from_node(first.volume_node).spacing == pytest.approx(volume.spacing)


def test_preview_matches_the_library_and_marks_changes(scene, small_case):
    volume, tumour = small_case
    source = mrml.add_volume_node(scene, volume, "selftest-volume")
    mask_node = mrml.add_volume_node(scene, volume, "selftest-mask", array=tumour, label=True)
    preview = SceneLogic(scene).perturb(source, "radial_gradient", {"amplitude": 0.3}, mask_node=mask_node, seed=4)
    expected = apply_perturbation("radial_gradient", normalize_intensity(volume.array), mask=tumour,
                                  spacing=volume.spacing_zyx, seed=4, amplitude=0.3)
    got = mrml.volume_from_node(preview.volume_node)
    np.testing.assert_allclose(got.array, expected, atol=1e-6)
    assert got.spacing == pytest.approx(volume.spacing) and got.origin == pytest.approx(volume.origin)
    labels = mrml.array_from_node(preview.overlay_node)
    changed = np.abs(expected - normalize_intensity(volume.array)) > 1e-6
    assert preview.overlay_node.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(labels == 2, changed)
    np.testing.assert_array_equal(labels == 1, (tumour > 0) & ~changed)
    assert preview.changed_voxels == changed.sum() > 0
    assert not (changed & (tumour == 0)).any()  # the radial gradient acts inside the tumour only


def test_preview_follows_a_modified_input_node(scene, small_case):
    """The cached input arrays are dropped when the volume node changes, so the preview shows the new voxels."""
    volume, tumour = small_case
    source = mrml.add_volume_node(scene, volume, "v")
    logic = SceneLogic(scene)
    first = logic.perturb(source, "gaussian_noise", {"sigma": 0.0})
    brighter = volume.array.copy()
    brighter[:, :, :32] += 0.5
    mrml.add_volume_node(scene, volume, "v", array=brighter, node=source)
    second = logic.perturb(source, "gaussian_noise", {"sigma": 0.0}, output_node=first.volume_node)
    np.testing.assert_allclose(mrml.array_from_node(second.volume_node), normalize_intensity(brighter), atol=1e-6)
    assert not np.allclose(mrml.array_from_node(second.volume_node), normalize_intensity(volume.array))


def test_evaluate_volumes_fills_the_table_with_the_suite(scene, small_case):
    from GenMedEvalLib.features import FeatureCache, SliceSettings, extract_features, get_encoder
    from GenMedEvalLib.metrics import compute_suite

    volume, _ = small_case
    rng = np.random.default_rng(1)
    reference = [volume.with_array(volume.array + rng.normal(0, 0.01, volume.array.shape).astype(np.float32))
                 for _ in range(3)]
    evaluated = [volume.with_array(volume.array * 0.7 + rng.normal(0, 0.05, volume.array.shape).astype(np.float32))
                 for _ in range(3)]
    node = SceneLogic(scene).evaluate_volumes(reference, evaluated, metrics="fd,kd", max_slices=4)
    rows = mrml.table_to_rows(node)
    encoder, settings = get_encoder("domain"), SliceSettings(max_slices=4)
    feats = [extract_features([v.array for v in vols], encoder, slices=settings, cache=FeatureCache(enabled=False),
                              show_progress=False).pool.astype(np.float64) for vols in (reference, evaluated)]
    expected = compute_suite({"reference": feats[0], "generated": feats[1]}, "fd,kd", seed=0)
    assert [r["metric"] for r in rows] == [r.metric for r in expected.rows] == ["fd", "kd", "kd_std"]
    for row, exp in zip(rows, expected.rows, strict=True):
        assert row["value"] == pytest.approx(exp.value, rel=1e-6) and row["better"] == exp.better
        assert row["n_reference"] == exp.n_reference == 12  # 3 volumes x 4 slices


def test_progress_percent_reads_tqdm_lines():
    assert progress_percent("features:  42%|####      | 21/50 [00:03<00:04]") == 42
    assert progress_percent("features: 100%|##########| 50/50") == 100
    assert progress_percent("wrote metrics.csv") is None


def test_evaluate_process_reports_progress_and_its_csv_becomes_a_table(scene, tmp_path):
    """The Evaluate section's background command, run as a process: progress lines, then a CSV -> table node.

    Batches of 4 slices give each set three encoder batches, so the process has progress to report.
    """
    import json

    from GenMedEvalLib.cohort import make_cohort

    cohort = make_cohort(tmp_path / "cohort", n=6, seed=3, spacing=4.0)
    images = sorted((cohort / "images").iterdir())
    for name, files in (("reference", images[:3]), ("evaluated", images[3:])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f.name).symlink_to(f)
    out_csv = tmp_path / "metrics.csv"
    args = evaluate_command(tmp_path / "reference", tmp_path / "evaluated", out_csv, encoder="domain",
                            metrics="fd,kd,prdc", max_slices=4, seed=2, batch_size=4)
    env = {k: v for k, v in os.environ.items() if k != "GENMEDEVAL_NO_PROGRESS"}
    env["GENMEDEVAL_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-m", "GenMedEvalLib.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).replace("\r", "\n").split("\n")
    percents = [p for p in map(progress_percent, lines) if p is not None]
    assert percents and max(percents) == 100
    node = SceneLogic(scene).load_result_csv(out_csv)
    rows = mrml.table_to_rows(node)
    records = json.loads(out_csv.with_suffix(".json").read_text())
    assert [r["metric"] for r in rows] == [r["metric"] for r in records]
    for row, rec in zip(rows, records, strict=True):
        assert row["value"] == pytest.approx(rec["value"]) and row["n_generated"] == rec["n_generated"] == 12
    assert list(mrml.TABLE_COLUMNS[:2]) == [node.GetTable().GetColumnName(c) for c in range(2)]
    with pytest.raises(InputError, match="not found"):
        SceneLogic(scene).load_result_csv(tmp_path / "absent.csv")


def test_batch_segments_and_predicts_with_the_given_models(app, tmp_path, capsys):
    """batch.py --segment: the segmentation written beside a downstream table whose true Dice is recomputed here."""
    import csv
    import importlib.util

    import torch

    from GenMedEvalLib.io import read_volume, write_volume
    from GenMedEvalLib.quality import dice_score
    from GenMedEvalLib.quality.heldout import cohort_heldout_cases
    from GenMedEvalLib.quality.model import build_regressor, save_checkpoint

    image, truth, spacing = cohort_heldout_cases(1, spacing=3.0)[0]
    volume = Volume(image, spacing=spacing)
    write_volume(volume, tmp_path / "case.nii.gz")
    write_volume(volume, tmp_path / "truth.nii.gz", truth.astype(np.uint8))
    torch.manual_seed(0)
    quality = save_checkpoint(build_regressor(), tmp_path / "q.pt", size=64, margin=0.5, min_mm=16.0, meta={})
    spec = importlib.util.spec_from_file_location("genmedeval_batch", ROOT / "GenMedEval" / "Scripts" / "batch.py")
    batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batch)
    code = batch.main(["--volume", str(tmp_path / "case.nii.gz"), "--mask", str(tmp_path / "truth.nii.gz"),
                       "--segment", "--quality-model", str(quality), "--out", str(tmp_path / "out")])
    assert code == 0
    segmentation = read_volume(tmp_path / "out" / "case_segmentation.nii.gz").array > 0
    assert segmentation.any()
    with open(tmp_path / "out" / "downstream.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["true_dice"]) == pytest.approx(dice_score(segmentation, truth), abs=1e-4)
    assert int(float(row["mask_voxels"])) == segmentation.sum()
    assert 0.0 <= float(row["predicted_dice"]) <= 1.0
    assert f"predicted Dice: {float(row['predicted_dice']):.3f}" in capsys.readouterr().out


def test_show_regions_outlines_where_the_local_metrics_look(scene, small_case):
    """The segmentation node of the local metrics' regions: two segments whose voxels are ``region_label`` exactly
    (crop = label >= 1, band = label 2), the band inside the crop, outlines in the slice views; refilled in place."""
    from GenMedEvalLib.features.regions import DEFAULT_REGIONS, region_label, region_slices
    from GenMedEvalLib.features.slicing import plane_axes

    volume, tumour = small_case
    source = mrml.add_volume_node(scene, volume, "case")
    mask_node = mrml.add_volume_node(scene, volume, "case-mask", array=tumour, label=True)
    logic = SceneLogic(scene)
    node = logic.show_regions(source, mask_node)
    assert node.IsA("vtkMRMLSegmentationNode") and node.GetName() == REGIONS_NODE == "GenMedEval local regions"
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == list(REGION_SEGMENTS) == ["ROI crop", "boundary band"]
    display = node.GetDisplayNode()
    assert display.GetVisibility() and display.GetVisibility2DOutline() and not display.GetVisibility2DFill()

    segments = mrml.segment_masks(scene, node, source)
    crop, band = segments["ROI crop"], segments["boundary band"]
    expected = region_label(mrml.volume_from_node(source).with_array(normalize_intensity(volume.array)), tumour)
    exported = crop.astype(np.uint8)
    exported[band > 0] = 2
    np.testing.assert_array_equal(exported, expected)  # the segments are region_label, voxel for voxel
    assert band.any() and not (band & ~crop).any()  # the band lies within the ROI crop
    axis = plane_axes(volume.direction)["axial"]
    marked = np.flatnonzero(crop.any(axis=tuple(a for a in range(3) if a != axis)))
    np.testing.assert_array_equal(marked, region_slices(tumour, axis, volume.spacing_zyx, DEFAULT_REGIONS))
    assert (band & (tumour > 0)).any() and (band & (tumour == 0)).any()  # both sides of the boundary

    smaller = tumour.copy()
    smaller[:, :, 34:] = 0  # half the tumour: other crops
    mrml.add_volume_node(scene, volume, "case-mask", array=smaller, label=True, node=mask_node)
    again = logic.show_regions(source, mask_node, segmentation_node=node)
    assert again is node and len(mrml.nodes_by_name(scene, REGIONS_NODE)) == 1
    assert again.GetSegmentation().GetNumberOfSegments() == 2
    refilled = mrml.segment_masks(scene, again, source)
    relabelled = refilled["ROI crop"].astype(np.uint8)
    relabelled[refilled["boundary band"] > 0] = 2
    np.testing.assert_array_equal(relabelled, region_label(volume.with_array(normalize_intensity(volume.array)),
                                                           smaller))
    assert not np.array_equal(relabelled, expected)


def test_show_regions_needs_a_tumour_mask(scene, small_case):
    """No mask, an empty mask, or a mask too small for any crop: an InputError that says so (no node left behind)."""
    volume, tumour = small_case
    source = mrml.add_volume_node(scene, volume, "case")
    logic = SceneLogic(scene)
    with pytest.raises(InputError, match="choose a tumour mask"):
        logic.show_regions(source, None)
    empty = mrml.add_volume_node(scene, volume, "empty", array=np.zeros_like(tumour), label=True)
    with pytest.raises(InputError, match="mask is empty"):
        logic.show_regions(source, empty)
    speck = np.zeros_like(tumour)
    speck[12, 30, 34] = 1  # 1 mm2: under the 40 mm2 a slice's region needs
    tiny = mrml.add_volume_node(scene, volume, "tiny", array=speck, label=True)
    with pytest.raises(InputError, match="no slice of the tumour mask covers 40 mm2"):
        logic.show_regions(source, tiny)
    assert not mrml.nodes_by_name(scene, REGIONS_NODE)
