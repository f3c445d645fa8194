"""The report of a small sweep: every heat map and Slicer view embedded; reuse of cached slices measured."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from scipy import ndimage

from GenMedEvalLib.cli import main


@pytest.mark.parametrize("kind", ["boundary_blur", "radial_gradient"])
@pytest.mark.parametrize("level", ["1", "2", "3"])
def test_mask_local_perturbations_leave_far_slices_bit_identical(kind, level):
    """What the content-hash cache relies on: slices away from the tumour are unchanged, bit for bit."""
    from GenMedEvalLib.perturb import PERTURBATIONS, apply_perturbation

    image = np.random.default_rng(0).random((40, 48, 48)).astype(np.float32)
    mask = np.zeros(image.shape, np.uint8)
    mask[18:24, 20:28, 20:28] = 1
    out = apply_perturbation(kind, image, mask=mask, spacing=(1.0, 1.0, 1.0), seed=0,
                             **PERTURBATIONS[kind].presets[level])
    far = ~ndimage.binary_dilation(mask, iterations=15)
    assert np.array_equal(out[far], image[far]) and not np.array_equal(out, image)
    changed = [z for z in range(image.shape[0]) if not np.array_equal(out[z], image[z])]
    assert changed and set(changed) <= set(range(18, 24))  # in-plane ("slice") mode: only the tumour's slices


CONFIG = """name: report-test
data:
  base: {folder: cohort/images, split: eval}
  reference: {folder: cohort/images, split: reference}
  train: {folder: cohort/images, split: train}
features: {encoder: domain, max_slices: 4, tumour_slices: 2}
metrics: [fd, kd, prdc, authpct]
bootstrap: 8
downstream: false
perturbations:
  gaussian_noise: ["0.1"]
  boundary_blur: ["3"]
  radial_gradient: ["3"]
  external_duplication: ["45%"]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from GenMedEvalLib.cohort import make_cohort

    root = tmp_path_factory.mktemp("report")
    os.environ["GENMEDEVAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    make_cohort(root / "cohort", n=12, seed=1, spacing=3.0)
    (root / "study.yaml").write_text(CONFIG)
    assert main(["sweep", str(root / "study.yaml"), "--out", str(root / "run")]) == 0
    return root / "run"


def test_report_embeds_every_heat_map_and_view(run_dir):
    page = (run_dir / "report.html").read_text()
    heatmaps = sorted(run_dir.glob("heatmap*.png"))
    views = sorted((run_dir / "views").glob("*.png"))
    assert {p.name for p in heatmaps} == {"heatmap.png", "heatmap_noise.png", "heatmap_tumour.png",
                                          "heatmap_duplication.png"}
    assert {p.name for p in views} >= {"original.png", "gaussian_noise_0.1.png", "boundary_blur_3.png",
                                       "boundary_blur_3_difference.png", "radial_gradient_3.png"}
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == len(heatmaps) + len(views)
    assert not re.search(r'src="(?!data:)', page)  # self-contained: no linked file
    assert "z = (value - baseline) / s" in page and "domain" in page and "Findings" in page


def test_view_images_show_the_brain_and_the_tumour_label(run_dir):
    import matplotlib.image as mpimg

    rgb = mpimg.imread(run_dir / "views" / "original.png")[..., :3]
    bright = rgb.mean(axis=-1) > 0.5
    label = (rgb[..., 2] - rgb[..., 0]) > 0.25  # the label overlay is drawn in colour (blue-ish)
    assert bright.mean() > 0.05 and label.sum() > 30
    thirds = np.array_split(label, 3, axis=1)  # axial, coronal, sagittal panels side by side
    assert all(part.sum() > 5 for part in thirds)  # the tumour is in every plane
    # drawn as an outline, not filled: the outlines enclose pixels they do not paint (the image shows through)
    interior = ndimage.binary_fill_holes(label) & ~label
    assert interior.sum() > 0.3 * label.sum()


def test_sweep_counts_forward_passes_against_the_naive_count(run_dir):
    run = json.loads((run_dir / "run.json").read_text())
    conditions = 4
    fixed = (run["naive_forward_passes_all_sets"] - run["naive_forward_passes"]) // conditions
    base = (run["naive_forward_passes"] - fixed) // (conditions + 1)
    assert base > 0 and fixed == 2 * base  # reference and train: as many volumes as the base set
    # baseline and Gaussian noise encode every base slice; blur and gradient only the tumour slices they
    # change; external duplication re-indexes cached features (no pass)
    assert fixed + 2 * base < run["network_forward_passes"] < fixed + 3 * base
    assert run["reduction"] == pytest.approx(run["naive_forward_passes"] / run["network_forward_passes"], rel=0.01)


def test_second_run_reuses_every_cached_result(run_dir):
    """Same data, same cache: no network pass, every metric table from the results cache, same numbers."""
    second = run_dir.parent / "again"
    assert main(["sweep", str(run_dir.parent / "study.yaml"), "--out", str(second), "--no-report"]) == 0
    run = json.loads((second / "run.json").read_text())
    assert run["network_forward_passes"] == 0
    assert run["results_cache_hits"] == 5 and run["results_cache_misses"] == 0  # baseline + 4 conditions
    assert (second / "upstream.csv").read_text() == (run_dir / "upstream.csv").read_text()
    first = json.loads((run_dir / "run.json").read_text())
    assert first["results_cache_misses"] == 5
    digests = json.loads((second / "perturbed" / "gaussian_noise" / "0.1" / "digests.json").read_text())
    assert digests == json.loads((run_dir / "perturbed" / "gaussian_noise" / "0.1" / "digests.json").read_text())


def test_changed_fraction_is_recorded_and_a_no_op_is_not_called_blindness(run_dir):
    from GenMedEvalLib.experiments.findings import check_findings
    from GenMedEvalLib.perturb import PERTURBATIONS, apply_perturbation

    run = json.loads((run_dir / "run.json").read_text())
    changed, touched = run["changed_fraction"], run["touched_fraction"]
    assert set(changed) == set(touched) == {"gaussian_noise@0.1", "boundary_blur@3", "radial_gradient@3"}
    assert changed["gaussian_noise@0.1"] > 0.5 and 0 < changed["boundary_blur@3"] < 0.05
    # noise changes every evaluated slice; blur only those through the tumour, not the evenly spaced ones away from it
    assert touched["gaussian_noise@0.1"]["fraction"] == 1.0
    assert 0 < touched["boundary_blur@3"]["fraction"] < 1
    assert touched["boundary_blur@3"]["evaluated"] >= touched["boundary_blur@3"]["touched"] > 0

    # a tumour-free volume is left as it is by boundary blur: a no-op must not count as blindness
    image = np.random.default_rng(1).random((20, 24, 24)).astype(np.float32)
    mask = np.zeros(image.shape, np.uint8)
    mask[8:12, 8:14, 8:14] = 1
    out = apply_perturbation("boundary_blur", image, mask=mask, spacing=(4.0, 4.0, 4.0), seed=0,
                             **PERTURBATIONS["boundary_blur"].presets["1"])
    assert not np.array_equal(out, image)  # on 4 mm voxels the band widens to the boundary voxels
    rows = [{"condition": "boundary_blur@1", "metric": "fd", "value": 1.0, "baseline": 1.0, "z": 0.0}]

    def blur(**kwargs):
        return next(f for f in check_findings(rows, **kwargs) if "boundary blur" in f.claim)

    assert blur(touched={"boundary_blur@1": 0.3}).holds is True
    assert blur().holds is None  # which evaluated slices it changed is unknown: blindness is not shown
    no_op = blur(changed={"boundary_blur@1": 0.0}, touched={"boundary_blur@1": 0.0})
    assert no_op.holds is None and "changed no evaluated slice" in no_op.detail


def test_reuse_sentence_says_when_the_cache_served_every_feature():
    from GenMedEvalLib.experiments.report import _reuse_sentence
    from GenMedEvalLib.experiments.sweep import _ratio

    assert _ratio(2736, 0) is None and _ratio(2736, 1268) == 2.16  # no ratio against zero passes

    run = {"network_forward_passes": 0, "naive_forward_passes": 2736, "naive_forward_passes_all_sets": 10032,
           "reduction": None, "reduction_all_sets": None}
    cached = _reuse_sentence(run)
    assert "none, every feature came from the cache" in cached and "2736" in cached and "x fewer" not in cached
    fresh = _reuse_sentence({**run, "network_forward_passes": 1268, "reduction": 2.16, "reduction_all_sets": 7.91})
    assert fresh.startswith("Network forward passes 1268:") and "(2.16x and 7.91x fewer)" in fresh
