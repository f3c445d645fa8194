"""The segmenter interface, its plug-ins (TorchScript, MONAI bundle), training recipe, CLI and shipped model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from GenMedEvalLib.cli import main
from GenMedEvalLib.errors import InputError
from GenMedEvalLib.io import Volume, normalize_intensity, read_volume, write_volume
from GenMedEvalLib.quality.dice import dice_score
from GenMedEvalLib.segment import check_output, load_segmenter, segment_volume
from GenMedEvalLib.segment.loader import default_segmenter_path


class Threshold2D(torch.nn.Module):
    """Logit 20 * (x - 0.5): tumour where the normalised intensity exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20.0 * (x - 0.5)


class Halve(torch.nn.Module):
    """A network whose output is half the input's size: must be refused."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 2)


@pytest.fixture
def bright_cube() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 5.0, (10, 70, 60)).astype(np.float32)
    image[3:7, 20:40, 25:45] += 200.0
    return image


def expected_threshold(image: np.ndarray) -> np.ndarray:
    return (normalize_intensity(image) > 0.5).astype(np.uint8)


def test_torchscript_2d_plugin_applies_network_slice_by_slice(tmp_path, bright_cube):
    path = tmp_path / "threshold.pt"
    torch.jit.script(Threshold2D()).save(str(path))
    seg = load_segmenter(path)
    assert seg.spatial_dims == 2
    mask = seg.segment(bright_cube, (3.0, 1.0, 1.0))
    assert mask.dtype == np.uint8 and mask.shape == bright_cube.shape
    np.testing.assert_array_equal(mask, expected_threshold(bright_cube))
    assert mask[3:7, 20:40, 25:45].all() and mask.sum() == 4 * 20 * 20


def test_torchscript_3d_plugin(tmp_path, bright_cube):
    class Threshold3D(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.dim() == 5
            return 20.0 * (x - 0.5)

    path = tmp_path / "threshold3d.pt"
    torch.jit.script(Threshold3D()).save(str(path))
    seg = load_segmenter(path, roi=32)
    assert seg.spatial_dims == 3
    np.testing.assert_array_equal(seg.segment(bright_cube, (3.0, 1.0, 1.0)), expected_threshold(bright_cube))


def test_output_that_does_not_fit_is_refused(tmp_path, bright_cube):
    path = tmp_path / "halve.pt"
    torch.jit.script(Halve()).save(str(path))
    with pytest.raises(InputError, match="does not fit"):
        load_segmenter(path).segment(bright_cube, (3.0, 1.0, 1.0))


def test_check_output_rejects_non_masks():
    with pytest.raises(InputError, match="not a mask"):
        check_output(np.full((2, 3, 4), 0.3), (2, 3, 4), "model.pt")
    with pytest.raises(InputError, match="does not fit"):
        check_output(np.zeros((2, 3, 5)), (2, 3, 4), "model.pt")
    assert check_output(np.ones((2, 3, 4), bool), (2, 3, 4), "m").dtype == np.uint8


def write_bundle(folder, weight: float = 20.0, bias: float = -10.0):
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    config = {"network_def": {"_target_": "torch.nn.Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 1},
              "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [48, 48]}}
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    state = {"weight": torch.full((1, 1, 1, 1), weight), "bias": torch.tensor([bias])}
    torch.save(state, folder / "models" / "model.pt")


def test_monai_bundle_plugin(tmp_path, bright_cube):
    write_bundle(tmp_path / "bundle")
    seg = load_segmenter(tmp_path / "bundle", trust_bundle=True)  # a bundle runs its config's code: trusted here
    assert seg.roi == 48 and seg.spatial_dims == 2
    np.testing.assert_array_equal(seg.segment(bright_cube, (3.0, 1.0, 1.0)), expected_threshold(bright_cube))


def test_bundle_and_file_errors_name_the_problem(tmp_path):
    write_bundle(tmp_path / "bundle")
    (tmp_path / "bundle" / "models" / "model.pt").unlink()
    with pytest.raises(InputError, match="models/model.pt"):
        load_segmenter(tmp_path / "bundle", trust_bundle=True)
    with pytest.raises(InputError, match="not found"):
        load_segmenter(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a segmenter file"):
        load_segmenter(junk)
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(InputError, match="GenMedEval segmenter format"):
        load_segmenter(tmp_path / "plain.pt")


def test_training_recipe_is_seeded_and_yields_a_loadable_model(tmp_path):
    from GenMedEvalLib.segment.train import cohort_cases, train_segmenter

    cases = cohort_cases(2, seed=7, pixel_mm=4.0, show_progress=False)
    paths = []
    for name in ("a.pt", "b.pt"):
        path, log = train_segmenter(tmp_path / name, cases=cases, steps=3, batch=4, roi=32, seed=3)
        assert len(log.losses) == 1 and np.isfinite(log.losses[0])
        paths.append(path)
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in paths)
    assert all(torch.equal(a[k], b[k]) for k in a)
    seg = load_segmenter(paths[0])
    mask = seg.segment(cases.images[1], (4.0, 4.0, 4.0))
    assert mask.shape == cases.images[1].shape and set(np.unique(mask)) <= {0, 1}


def test_shipped_segmenter_finds_held_out_cohort_tumours():
    """Dice of the shipped U-Net on demo-cohort (seed 0) tumour cases it never saw (trained on seed 1)."""
    from GenMedEvalLib.quality.heldout import cohort_heldout_cases

    seg = load_segmenter()
    dices = [dice_score(seg.segment(image, spacing), mask) for image, mask, spacing in cohort_heldout_cases(3)]
    assert np.mean(dices) >= 0.75, dices
    assert default_segmenter_path().stat().st_size < 10e6


def test_segment_cli_writes_masks_with_the_image_geometry(tmp_path, bright_cube, capsys):
    path = tmp_path / "threshold.pt"
    torch.jit.script(Threshold2D()).save(str(path))
    vol = Volume(bright_cube, spacing=(1.0, 1.0, 3.0), origin=(5.0, 6.0, 7.0),
                 direction=(1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    write_volume(vol, tmp_path / "in" / "case1.nii.gz")
    assert main(["segment", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(path)]) == 0
    out = read_volume(tmp_path / "out" / "case1.nii.gz")
    assert out.spacing == pytest.approx(vol.spacing) and out.origin == pytest.approx(vol.origin)
    np.testing.assert_array_equal(out.array, expected_threshold(bright_cube))
    np.testing.assert_array_equal(segment_volume(vol, load_segmenter(path)), expected_threshold(bright_cube))


def test_segment_cli_bad_model_is_one_line_and_writes_nothing(tmp_path, capsys):
    write_volume(Volume(np.zeros((4, 8, 8), np.float32)), tmp_path / "in" / "a.nii.gz")
    code = main(["segment", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tmp_path / "nope.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope.pt" in err and "not found" in err
    assert not (tmp_path / "out").exists()


def test_shipped_weights_are_verified_by_sha256(tmp_path, monkeypatch):
    from GenMedEvalLib.features.weights import WeightsUnavailable, sha256_file
    from GenMedEvalLib.quality.model import QUALITY_SHA256, default_quality_path, load_predictor
    from GenMedEvalLib.segment.loader import SEGMENTER_SHA256

    assert sha256_file(default_segmenter_path()) == SEGMENTER_SHA256
    assert sha256_file(default_quality_path()) == QUALITY_SHA256
    models = tmp_path / "Models"
    models.mkdir()
    for path in (default_segmenter_path(), default_quality_path()):
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF  # one flipped byte
        (models / path.name).write_bytes(bytes(data))
    monkeypatch.setenv("GENMEDEVAL_RESOURCES", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="SHA-256"):
        load_segmenter()
    with pytest.raises(WeightsUnavailable, match="SHA-256"):
        load_predictor()
