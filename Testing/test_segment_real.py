"""The segmenter for real scans: synthetic and real training slices, multi-contrast models, routing, accuracy.

Accuracy floors are measured on cases the shipped models never saw: the clinical MRI in
``../shared/data/real/`` (post-contrast T1, skull on, 6.5 mm slices; never used in training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from GenMedEvalLib.errors import InputError
from GenMedEvalLib.quality.dice import dice_score
from GenMedEvalLib.segment.builtin import (
    ANY_CONTRAST,
    ContrastRouter,
    SliceUNetSegmenter,
    build_unet,
    save_checkpoint,
)
from GenMedEvalLib.segment.realdata import RealCase, real_slice
from GenMedEvalLib.segment.synth import TUMOUR_LABELS, add_tumour_labels, synth_slice, tissue_slices

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def test_synthetic_slices_are_seeded_in_range_and_masks_are_the_tumour_labels():
    a = synth_slice(np.random.default_rng(5), 2, 64)
    b = synth_slice(np.random.default_rng(5), 2, 64)
    np.testing.assert_array_equal(a[0], b[0])
    image, mask = a
    assert image.shape == (2, 64, 64) and mask.shape == (64, 64)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert not np.array_equal(image[0], image[1])  # each contrast draws its own intensities
    labels = tissue_slices(2.0).labels[20]
    painted = add_tumour_labels(labels, np.random.default_rng(0), 2.0)
    tumour = np.isin(painted, TUMOUR_LABELS)
    assert tumour.any() and not np.isin(labels, TUMOUR_LABELS).any()
    assert np.all((labels[tumour] >= 1) & (labels[tumour] <= 3))  # tumours grow only inside brain tissue


def _toy_case() -> RealCase:
    z, y, x = np.indices((20, 40, 40))
    mask = ((z - 10) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 < 36).astype(np.uint8)
    brain = ((y - 20) ** 2 + (x - 20) ** 2 < 300).astype(np.float32)
    flair = np.clip(0.4 * brain + 0.5 * mask, 0, 1).astype(np.float32)
    t1c = np.clip(0.6 * brain - 0.3 * mask, 0, 1).astype(np.float32)
    return RealCase("toy", {"flair": flair, "t1c": t1c}, mask, (1.0, 1.0, 1.0))


def test_contrast_priors_order_the_tissues_like_flair_and_t1c_and_cystic_cores_match_csf():
    from GenMedEvalLib.segment.synth import CONTRAST_PRIORS, LABELS, label_means

    index = {name: i for i, name in enumerate(LABELS)}
    for seed in range(20):
        flair = label_means(np.random.default_rng(seed), "flair")
        t1c = label_means(np.random.default_rng(seed), "t1c", cystic=True)
        assert flair[index["oedema"]] > flair[index["white"]] + 0.15 > flair[index["csf"]]  # oedema bright in FLAIR
        assert t1c[index["enhancing"]] > t1c[index["white"]] > t1c[index["grey"]]  # rim enhances, WM above GM
        assert 0.0 <= t1c[index["necrosis"]] - t1c[index["csf"]] <= 0.1  # a fluid-filled core looks like CSF
        for prior, means in (("flair", flair), ("t1c", t1c)):
            lows = np.array([CONTRAST_PRIORS[prior][n][0] for n in LABELS])
            highs = np.array([CONTRAST_PRIORS[prior][n][1] for n in LABELS])
            keep = np.arange(len(LABELS)) != index["necrosis"]
            assert np.all((means[keep] >= lows[keep]) & (means[keep] <= highs[keep]))
    randomised = [label_means(np.random.default_rng(s)) for s in range(20)]
    white = np.array([m[index["white"]] for m in randomised])
    assert white.min() < 0.3 and white.max() > 0.7  # without a prior, intensities range over [0, 1]


def test_synthetic_tumours_reach_the_brain_surface_and_80_mm():
    labels = tissue_slices(2.0).labels[20]
    brain = (labels >= 1) & (labels <= 3)
    from scipy import ndimage

    core = ndimage.binary_erosion(brain, iterations=10)
    surface, largest = 0, 0.0
    for seed in range(40):
        painted = add_tumour_labels(labels, np.random.default_rng(seed), 2.0)
        tumour = np.isin(painted, TUMOUR_LABELS)
        if not tumour.any():
            continue
        cy, cx = np.argwhere(tumour).mean(axis=0).round().astype(int)
        surface += int(not core[cy, cx])
        core_and_rim = np.isin(painted, (5, 6)).sum()
        largest = max(largest, 2 * np.sqrt(core_and_rim / np.pi) * 2.0)  # equivalent diameter, mm
    assert surface >= 8  # about 40 % are centred near the surface (binomial, 40 draws)
    assert largest > 50.0  # core + rim diameters beyond the previous 50 mm limit


def test_field_of_view_cut_blanks_image_and_label_beyond_one_line():
    from GenMedEvalLib.segment.train import cut_field_of_view

    image = np.ones((2, 32, 32), np.float32)
    mask = np.ones((32, 32), np.float32)
    a = cut_field_of_view(image, mask, np.random.default_rng(3))
    b = cut_field_of_view(image, mask, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    cut_image, cut_mask = a
    blank = cut_mask == 0
    assert 0.1 < blank.mean() < 0.9  # part of the view, not all of it
    assert np.all(cut_image[:, blank] == 0) and np.all(cut_image[:, ~blank] == 1)  # image and label cut alike
    assert image.min() == 1 and mask.min() == 1  # inputs untouched
    for y in range(32):  # a half-plane: one contiguous blank run per row and per column
        column = np.nonzero(blank[:, y])[0]
        if len(column):
            assert column.max() - column.min() + 1 == len(column)
        row = np.nonzero(blank[y])[0]
        if len(row):
            assert row.max() - row.min() + 1 == len(row)


def test_reclip_ceiling_saturates_each_channel_at_a_drawn_ceiling_and_rescales():
    from GenMedEvalLib.segment.train import reclip_ceiling

    ramp = np.broadcast_to(np.linspace(0, 1, 101, dtype=np.float32), (2, 101, 101)).copy()
    assert reclip_ceiling(ramp, 0.0, np.random.default_rng(0)) is ramp  # off: the slice itself
    a = reclip_ceiling(ramp, 1.0, np.random.default_rng(5))
    np.testing.assert_array_equal(a, reclip_ceiling(ramp, 1.0, np.random.default_rng(5)))  # seeded
    assert ramp.max() == 1 and ramp[0, 0, 50] == np.float32(0.5)  # input untouched
    for c in range(2):
        row = a[c, 0]
        saturated = np.isclose(row, 1.0)
        ceiling = ramp[c, 0][saturated].min()  # the first input value mapped to 1
        assert 0.6 <= ceiling < 1.0
        # below the ceiling the channel is the input divided by the ceiling: contrast stretched, order kept
        below = ~saturated
        np.testing.assert_allclose(row[below], ramp[c, 0][below] / ramp[c, 0][below].max() * row[below].max(),
                                   rtol=1e-5)
        assert np.all(np.diff(row) >= 0) and row.min() == 0
    ceilings = {float(ramp[0, 0][np.isclose(reclip_ceiling(ramp, 1.0, np.random.default_rng(s))[c, 0], 1.0)].min())
                for s in range(6) for c in range(2)}
    assert len(ceilings) > 6  # a fresh ceiling per channel and draw, not one fixed level
    changed = [not np.array_equal(reclip_ceiling(ramp, 0.5, np.random.default_rng(s))[0], ramp[0]) for s in range(400)]
    assert 0.42 < np.mean(changed) < 0.58  # the probability is honoured (p = 0.5, 400 draws: sd 0.025)


def test_real_slices_keep_image_and_label_aligned_and_are_seeded():
    case = _toy_case()
    a = real_slice(case, np.random.default_rng(1), ("flair", "t1c"), 32, pixel_mm=1.0, tumour_fraction=1.0)
    b = real_slice(case, np.random.default_rng(1), ("flair", "t1c"), 32, pixel_mm=1.0, tumour_fraction=1.0)
    np.testing.assert_array_equal(a[0], b[0])
    image, label = a
    assert image.shape == (2, 32, 32) and set(np.unique(label)) <= {0.0, 1.0}
    assert label.any()  # seed 1 keeps the tumour in view
    assert image[0][label > 0].mean() > image[0][label == 0].mean() + 0.2  # label sits where FLAIR is brightest
    assert image[1][label > 0].mean() < image[1][label == 0].mean() + 0.1


def _model(tmp_path: Path, name: str, channels: int, contrasts: tuple[str, ...],
           min_component_fraction: float | None = None) -> SliceUNetSegmenter:
    torch.manual_seed(0)
    net = build_unet({"in_channels": channels, "channels": (4, 8), "strides": (2,)})
    path = save_checkpoint(net, tmp_path / name, pixel_mm=2.0, roi=32, meta={}, contrasts=contrasts,
                           arch={"in_channels": channels, "channels": (4, 8), "strides": (2,)},
                           min_component_fraction=min_component_fraction)
    return SliceUNetSegmenter(torch.load(path, weights_only=True), source=str(path), device="cpu")


def test_router_sends_flair_t1c_cases_to_the_multi_contrast_model_and_one_contrast_cases_by_contrast(tmp_path):
    multi = _model(tmp_path, "multi.pt", 2, ("flair", "t1c"))
    single = _model(tmp_path, "single.pt", 1, ANY_CONTRAST)
    router = ContrastRouter(multi, single)
    assert router.pick(["t1c", "flair"]) is multi
    assert router.pick(["t1c"]) is single and router.pick(["flair", "t2"]) is single
    t1c, flair = _model(tmp_path, "t1c.pt", 1, ("t1c",)), _model(tmp_path, "flair.pt", 1, ("flair",))
    routed = ContrastRouter(multi, single, {"flair": flair, "t1c": t1c})
    assert routed.pick(["t1c", "flair"]) is multi
    assert routed.pick(["t1c"]) is t1c and routed.pick(["t1", "t1c"]) is t1c and routed.pick(["flair", "t2"]) is flair
    assert routed.pick(["t1"]) is single and routed.pick(["image"]) is single and routed.pick(["t2"]) is single
    case = _toy_case()
    alone = routed.segment_contrasts({"t1": case.contrasts["flair"], "t1c": case.contrasts["t1c"]}, case.spacing_zyx)
    np.testing.assert_array_equal(alone, t1c.segment(case.contrasts["t1c"], case.spacing_zyx))  # its contrast, not t1
    assert not np.array_equal(alone, t1c.segment(case.contrasts["flair"], case.spacing_zyx))
    both = router.segment_contrasts(case.contrasts, case.spacing_zyx)
    expected = multi.segment_contrasts(case.contrasts, case.spacing_zyx)
    np.testing.assert_array_equal(both, expected)
    one = router.segment_contrasts({"t1c": case.contrasts["t1c"]}, case.spacing_zyx)
    np.testing.assert_array_equal(one, single.segment(case.contrasts["t1c"], case.spacing_zyx))
    with pytest.raises(InputError, match="lacks flair"):
        multi.segment_contrasts({"t1c": case.contrasts["t1c"]}, case.spacing_zyx)


def test_keep_largest_component_keeps_the_biggest_face_connected_island():
    from GenMedEvalLib.segment.postprocess import keep_largest_component

    mask = np.zeros((6, 12, 12), np.uint8)
    mask[1:4, 1:4, 1:4] = 1  # 27 voxels
    mask[4, 4, 4] = 1  # touches the cube only at a corner: its own component under face connectivity
    mask[0:2, 8:12, 8:12] = 2  # 32 voxels, label value 2 (nonzero is foreground)
    before = mask.copy()
    kept = keep_largest_component(mask)
    assert kept.dtype == np.uint8 and int(kept.sum()) == 32 and kept[0:2, 8:12, 8:12].all()
    np.testing.assert_array_equal(mask, before)  # input untouched
    mask[0:2, 8:12, 8:12] = 0
    assert int(keep_largest_component(mask).sum()) == 27 and keep_largest_component(mask)[4, 4, 4] == 0
    assert not keep_largest_component(np.zeros((3, 4, 4))).any()


def test_keep_large_components_keeps_every_island_of_at_least_the_fraction_of_the_largest():
    from GenMedEvalLib.segment.postprocess import keep_large_components

    mask = np.zeros((6, 12, 12), np.uint8)
    mask[0:2, 8:12, 8:12] = 1  # 32 voxels: the largest
    mask[1:4, 1:4, 1:4] = 1  # 27 voxels (0.84 of the largest)
    mask[5, 0:4, 8:10] = 1  # 8 voxels (0.25)
    mask[5, 10, 0] = 1  # 1 voxel (0.03)
    sizes = {f: int(keep_large_components(mask, f).sum()) for f in (0.02, 0.1, 0.25, 0.5, 0.9, 1.0)}
    assert sizes == {0.02: 68, 0.1: 67, 0.25: 67, 0.5: 59, 0.9: 32, 1.0: 32}
    assert keep_large_components(mask, 0.5)[1:4, 1:4, 1:4].all() and not keep_large_components(mask, 0.5)[5].any()
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="min_fraction"):
            keep_large_components(mask, bad)


def test_an_island_larger_than_the_tumour_no_longer_removes_it():
    """The failure that replaced the largest-component rule: on a BraTS fold a false-positive island
    (24,999 voxels) outgrew the tumour's component (22,944) and the largest-component rule dropped the tumour."""
    from GenMedEvalLib.segment.postprocess import keep_large_components, keep_largest_component

    truth = np.zeros((10, 30, 30), np.uint8)
    truth[2:8, 3:12, 3:12] = 1  # the tumour: 486 voxels
    pred = truth.copy()
    pred[2:8, 18:28, 18:27] = 1  # a false-positive island of 540 voxels
    pred[0, 0, 20:23] = 1  # a speck of 3 voxels
    assert not keep_largest_component(pred)[truth > 0].any()  # the tumour is gone
    kept = keep_large_components(pred, 0.1)
    assert kept[truth > 0].all() and not kept[0].any()
    assert dice_score(kept, truth) == pytest.approx((2 * 486 + 1) / (486 + 486 + 540 + 1))  # smoothed Dice


def test_a_checkpoint_with_a_component_rule_applies_it_to_its_masks(tmp_path, monkeypatch):
    from scipy import ndimage

    plain = _model(tmp_path, "plain.pt", 1, ANY_CONTRAST)
    reduced = _model(tmp_path, "rule.pt", 1, ANY_CONTRAST, min_component_fraction=0.3)
    assert reduced.min_component_fraction == 0.3 and plain.min_component_fraction is None
    assert "min_component_fraction" not in torch.load(tmp_path / "plain.pt", weights_only=True)
    legacy = torch.load(tmp_path / "plain.pt", weights_only=True)
    legacy["largest_component"] = True  # the earlier format's key reads as the largest component alone
    assert SliceUNetSegmenter(legacy, source="legacy.pt", device="cpu").min_component_fraction == 1.0
    legacy["min_component_fraction"] = 0.0
    with pytest.raises(InputError, match="min_component_fraction must be in"):
        SliceUNetSegmenter(legacy, source="legacy.pt", device="cpu")
    prob = np.zeros((4, 16, 16), np.float32)
    prob[1:3, 2:8, 2:8] = 0.9  # 72 voxels
    prob[1:3, 11:14, 11:14] = 0.8  # 18 voxels (0.25 of the largest): dropped at 0.3
    prob[3, 11:16, 0:5] = 0.7  # 25 voxels (0.35): kept
    for seg in (plain, reduced):
        monkeypatch.setattr(seg, "probabilities", lambda image, spacing: prob)
    image = np.ones((4, 16, 16), np.float32)
    both, some = plain.segment(image, (1.0, 1.0, 1.0)), reduced.segment(image, (1.0, 1.0, 1.0))
    assert ndimage.label(both)[1] == 3 and int(both.sum()) == 115
    assert ndimage.label(some)[1] == 2 and int(some.sum()) == 97 and not some[1:3, 11:14, 11:14].any()


def test_single_contrast_model_reads_the_preferred_contrast(tmp_path):
    single = _model(tmp_path, "single.pt", 1, ANY_CONTRAST)
    case = _toy_case()
    both = single.segment_contrasts({"t1c": case.contrasts["t1c"], "flair": case.contrasts["flair"]}, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(both, single.segment(case.contrasts["flair"], (1.0, 1.0, 1.0)))


def test_pool_training_cli_path_is_seeded_and_respects_holdout(tmp_path):
    from GenMedEvalLib.segment.train import PoolSampler, SlicePool, pool_sampler, train_segmenter

    rng = np.random.default_rng(0)
    images = {k: rng.random((6, 2, 32, 32)).astype(np.float16) for k in ("real:a", "real:b", "synth", "cohort")}
    masks = {k: (rng.random((6, 32, 32)) > 0.7).astype(np.uint8) for k in images}
    pool = SlicePool(images, masks, ("flair", "t1c"))
    pool = SlicePool.load(pool.save(tmp_path / "pool.npz"))
    sampler = pool_sampler(pool, channels=2, holdout=("b",))
    assert isinstance(sampler, PoolSampler) and "real:b" not in sampler.weights and "cohort" not in sampler.weights
    single = pool_sampler(pool, channels=1)
    assert {"real:a", "real:b", "synth", "cohort"} == set(single.weights)
    x, y = single.batch(4, 32, np.random.default_rng(0))
    assert x.shape == (4, 1, 32, 32) and y.shape == (4, 1, 32, 32)
    paths = [train_segmenter(tmp_path / f"{n}.pt", mixture=sampler, steps=2, batch=2, roi=32, seed=4, threshold=0.5,
                             min_component_fraction=0.1 if n == "b" else None)[0] for n in ("a", "b")]
    a, b = (torch.load(p, weights_only=True) for p in paths)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["contrasts"] == ["flair", "t1c"] and a["arch"]["in_channels"] == 2
    assert b["min_component_fraction"] == 0.1 and "min_component_fraction" not in a
    assert a["meta"]["cases"]["reclip"] == 0.0
    reclipped = pool_sampler(pool, channels=2, holdout=("b",), reclip=1.0)
    x0, _ = sampler.batch(64, 32, np.random.default_rng(2))
    x1, _ = reclipped.batch(64, 32, np.random.default_rng(2))
    assert reclipped.describe()["reclip"] == 1.0
    assert np.isclose(x1, 1.0).mean() > 5 * np.isclose(x0, 1.0).mean()  # every channel saturated at a ceiling


def test_a_named_contrast_sampler_feeds_that_channel_alone_without_cohort_slices(tmp_path):
    from GenMedEvalLib.segment.train import SlicePool, pool_sampler, train_segmenter

    rng = np.random.default_rng(0)
    images = {k: np.stack([np.zeros((6, 32, 32)), np.ones((6, 32, 32))], axis=1).astype(np.float16)
              for k in ("real:a", "synth", "cohort")}
    masks = {k: np.zeros((6, 32, 32), np.uint8) for k in images}
    pool = SlicePool(images, masks, ("flair", "t1c"))
    t1c = pool_sampler(pool, channels=1, contrast="t1c")
    assert "cohort" not in t1c.weights and t1c.contrasts == ("t1c",)
    t1c.fov_cut = 0.0  # no blanked part: every pixel shows the channel read
    x, _ = t1c.batch(32, 32, rng)
    assert x.shape == (32, 1, 32, 32) and x.min() > 0.0  # channel 1 (ones) every time, never channel 0 (zeros)
    flair = pool_sampler(pool, channels=1, contrast="flair")
    assert np.abs(flair.batch(32, 32, rng)[0]).max() == 0.0
    path = train_segmenter(tmp_path / "t1c.pt", mixture=t1c, steps=1, batch=2, roi=32, seed=0, threshold=0.5)[0]
    assert torch.load(path, weights_only=True)["contrasts"] == ["t1c"]
    with pytest.raises(ValueError, match="t2"):
        pool_sampler(pool, channels=1, contrast="t2")


BRATS = SHARED / "brats" / "pat0005"


@pytest.mark.skipif(not BRATS.is_dir(), reason="../shared/data/real/brats/ is absent")
def test_shipped_pair_routes_a_brats_case_to_the_flair_t1c_model_and_finds_its_tumour():
    """pat0005 is a training case of the FLAIR + T1c model (its held-out Dice is in Resources/Models/README.md:
    the leave-one-case-out study); the demo cohort's one-contrast model, trained on synthetic brains only, misses
    it."""
    from GenMedEvalLib.segment import load_segmenter
    from GenMedEvalLib.segment.loader import MULTI_SEGMENTER, default_segmenter_path
    from GenMedEvalLib.segment.realdata import load_real_case

    case = load_real_case(BRATS)
    router = load_segmenter()
    assert router.pick(list(case.contrasts)) is router.multi
    assert router.multi.min_component_fraction == 0.1 and router.single.min_component_fraction is None
    shipped = torch.load(default_segmenter_path().parent / MULTI_SEGMENTER, weights_only=True)["meta"]
    assert shipped["cases"]["reclip"] == 0.5 and "--reclip 0.5" in shipped["command"]  # the README's recipe
    both = dice_score(router.segment_contrasts(case.contrasts, case.spacing_zyx), case.mask)
    alone = dice_score(router.single.segment(case.contrasts["t1c"], case.spacing_zyx), case.mask)
    assert both >= 0.7 and alone < 0.3


@pytest.mark.skipif(not BRATS.is_dir(), reason="../shared/data/real/brats/ is absent")
@pytest.mark.parametrize("contrast, floor", [("t1c", 0.7), ("flair", 0.7)])
def test_shipped_one_contrast_models_take_a_brats_case_without_its_other_contrast(contrast, floor):
    """pat0004 with T1c alone or FLAIR alone goes to that contrast's real-scan model (trained on it: the held-out
    figures are the leave-one-case-out table of Resources/Models/README.md), not to the demo cohort's model,
    which misses it."""
    from GenMedEvalLib.segment import load_segmenter
    from GenMedEvalLib.segment.realdata import load_real_case

    case = load_real_case(BRATS.parent / "pat0004")
    router = load_segmenter()
    model = router.pick([contrast])
    assert model is router.real[contrast] and model.contrasts == (contrast,) and model.min_component_fraction == 0.1
    assert "--reclip 0.5" in model.meta["command"] and f"--contrasts {contrast}" in model.meta["command"]
    alone = dice_score(router.segment_contrasts({contrast: case.contrasts[contrast]}, case.spacing_zyx), case.mask)
    cohort = dice_score(router.single.segment(case.contrasts[contrast], case.spacing_zyx), case.mask)
    assert alone >= floor and cohort < 0.3


def test_shipped_flair_t1c_model_is_verified_by_sha256(tmp_path, monkeypatch):
    from GenMedEvalLib.features.weights import WeightsUnavailable
    from GenMedEvalLib.segment import load_segmenter
    from GenMedEvalLib.segment.loader import default_segmenter_path

    models = tmp_path / "Models"
    models.mkdir()
    for name in ("segmenter.pt", "segmenter_flair_t1c.pt", "segmenter_t1c.pt", "segmenter_flair.pt"):
        data = bytearray((default_segmenter_path().parent / name).read_bytes())
        if name == "segmenter_flair_t1c.pt":
            data[-100] ^= 0xFF
        (models / name).write_bytes(bytes(data))
    monkeypatch.setenv("GENMEDEVAL_RESOURCES", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="SHA-256"):
        load_segmenter()


def _write_case_folder(folder: Path) -> None:
    from GenMedEvalLib.io import Volume, write_volume

    case = _toy_case()
    write_volume(Volume(case.contrasts["flair"] * 100), folder / "Flair.nii.gz")
    write_volume(Volume(case.contrasts["t1c"] * 100), folder / "T1c.nii.gz")
    write_volume(Volume(case.mask.astype(np.float32) * 2), folder / "seg.nii.gz")


def test_pool_from_case_folders_is_cached_and_seeded(tmp_path):
    from GenMedEvalLib.segment.train import PoolRecipe, pool_for

    for name in ("c1", "c2"):
        _write_case_folder(tmp_path / "data" / name)
    recipe = PoolRecipe(per_case=3, synth=2, cohort_cases=1, cohort_slices=2, roi=32)
    a = pool_for(tmp_path / "data", recipe, cache=tmp_path / "pool.npz", show_progress=False)
    b = pool_for(tmp_path / "data", recipe, show_progress=False)  # drawn again, not read from the cache
    assert set(a.images) == {"real:c1", "real:c2", "synth", "cohort"} and a.images["real:c1"].shape == (3, 2, 32, 32)
    for key in a.images:
        np.testing.assert_array_equal(a.images[key], b.images[key])
    cached = pool_for(tmp_path / "data", recipe, cache=tmp_path / "pool.npz", show_progress=False)
    np.testing.assert_array_equal(cached.masks["real:c2"], a.masks["real:c2"])


def test_train_segmenter_cli_rejects_an_unknown_holdout(tmp_path, capsys):
    from GenMedEvalLib.cli import main

    _write_case_folder(tmp_path / "data" / "c1")
    code = main(["train-segmenter", "--data", str(tmp_path / "data"), "--holdout", "nope", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "nope" in err and err.count("\n") == 1 and not (tmp_path / "m.pt").exists()
