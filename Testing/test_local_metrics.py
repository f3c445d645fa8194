"""Local metrics (issue #16): region crops, boundary sharpness, interior profile, their twins and FRD."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from GenMedEvalLib.errors import ParameterError
from GenMedEvalLib.features.regions import (
    RegionSettings,
    boundary_band,
    crop_window,
    region_label,
    region_set,
    volume_regions,
)
from GenMedEvalLib.io import Volume
from GenMedEvalLib.metrics import compute_suite
from GenMedEvalLib.metrics.distance import frechet_distance
from GenMedEvalLib.metrics.local import (
    boundary_sharpness,
    column_wasserstein,
    edge_width,
    interior_profile,
    region_scores,
)
from GenMedEvalLib.metrics.registry import LOCAL_REGIONS, METRICS, TWIN_BASES
from GenMedEvalLib.perturb.tumour import boundary_blur, radial_gradient


def disc_volume(rng, *, noise: float = 0.03, spacing=(2.0, 1.0, 1.0), radius: float = 12.0, slices: int = 9):
    """A noisy brain-like slab with a bright disc-shaped tumour on ``slices`` axial slices (z, y, x)."""
    shape = (slices + 4, 96, 96)
    grid = np.indices(shape[1:])
    disc = np.hypot(grid[0] - 50, grid[1] - 44) <= radius
    mask = np.zeros(shape, np.uint8)
    mask[2:2 + slices] = disc
    image = np.full(shape, 0.4, np.float32)
    image[mask > 0] = 0.8
    image += rng.normal(0, noise, shape).astype(np.float32)
    return Volume(array=np.clip(image, 0, 1), spacing=tuple(reversed(spacing))), mask


def test_crop_is_centred_on_the_region_with_context_and_the_band_sits_on_its_boundary(rng):
    volume, mask = disc_volume(rng)
    settings = RegionSettings(slices=4)
    crops = volume_regions(volume, mask, settings)
    assert len(crops) == 4 and len({c.index for c in crops}) == 4
    for crop in crops:
        r0, r1, c0, c1 = crop.window
        assert (r0 + r1) / 2 == pytest.approx(50.5, abs=1) and (c0 + c1) / 2 == pytest.approx(44.5, abs=1)
        assert r1 - r0 >= 25 + 2 * settings.context_mm  # the region (25 px at 1 mm) plus 10 mm either side
        assert crop.mask.sum() == pytest.approx(np.pi * 12 ** 2, rel=0.1)
        band = crop.band != 0
        distance = np.where(crop.mask, ndimage.distance_transform_edt(crop.mask),
                            ndimage.distance_transform_edt(~crop.mask))
        assert band.any() and distance[band].max() <= settings.band_mm + 1e-6  # nothing beyond 4 mm kept
        assert np.array_equal(crop.band[band], crop.roi[band])


def test_crop_window_reaches_outside_the_slice_with_zeros():
    mask = np.zeros((40, 40), bool)
    mask[0:6, 30:40] = True
    window = crop_window(mask, (1.0, 1.0), RegionSettings())
    assert window[0] < 0 and window[3] > 40


def test_region_label_marks_the_crop_and_band_of_the_used_slices_only(rng):
    volume, mask = disc_volume(rng)
    settings = RegionSettings(slices=3)
    label = region_label(volume, mask, settings)
    used = [c.index for c in volume_regions(volume, mask, settings)]
    assert sorted(np.flatnonzero(label.any(axis=(1, 2)))) == sorted(used)
    for z in used:
        band = boundary_band(mask[z] > 0, (1.0, 1.0), settings.band_mm)
        assert np.array_equal(label[z] == 2, band & (label[z] > 0))
        assert (label[z] == 1).sum() > (label[z] == 2).sum()
    assert not region_label(volume, None).any() and not region_label(volume, np.zeros_like(mask)).any()


def test_volumes_without_region_give_no_crops_and_are_counted(rng):
    volume, mask = disc_volume(rng)
    found = region_set([volume, volume], [mask, None])
    assert found.volumes_without == 1 and set(found.volume_index) == {0}
    with pytest.raises(ParameterError):
        RegionSettings(band_mm=0)


def test_boundary_sharpness_falls_under_blur_and_ignores_the_contrast_scale(rng):
    sharp, mask = disc_volume(rng, noise=0.03)
    score = [boundary_sharpness(c.roi, c.mask, c.pixel_mm) for c in volume_regions(sharp, mask)]
    blurred = sharp.with_array(boundary_blur(sharp.array, mask=mask, spacing=sharp.spacing_zyx, sigma=1.0))
    soft = [boundary_sharpness(c.roi, c.mask, c.pixel_mm) for c in volume_regions(blurred, mask)]
    assert np.mean(soft) < 0.8 * np.mean(score)  # a 1 mm blur of the boundary removes its detail
    dimmer = [boundary_sharpness(0.7 * c.roi, c.mask, c.pixel_mm) for c in volume_regions(sharp, mask)]
    assert np.allclose(dimmer, score, rtol=1e-6)  # a scanner's overall contrast scale cancels
    # the raw gradient near the boundary, by contrast, scales with it
    crop = volume_regions(sharp, mask)[0]
    near = np.hypot(*np.gradient(crop.roi.astype(float)))[boundary_band(crop.mask, (1.0, 1.0), 2.0)].mean()
    dim = np.hypot(*np.gradient(0.7 * crop.roi.astype(float)))[boundary_band(crop.mask, (1.0, 1.0), 2.0)].mean()
    assert dim == pytest.approx(0.7 * near)


def blurred_disc(width_mm: float, noise: float, rng, pixel: float = 1.0, radius: float = 14.0) -> tuple:
    """A disc whose edge is a Gaussian-blurred step of ``width_mm`` (independently: erfc of the distance to the circle)."""
    from scipy.special import erfc

    grid = np.indices((72, 72)) * pixel
    r = np.hypot(grid[0] - 36 * pixel, grid[1] - 36 * pixel)
    image = 0.3 + 0.5 * 0.5 * erfc((r - radius) / (np.sqrt(2) * width_mm)) + rng.normal(0, noise, r.shape)
    return image, r <= radius


def test_edge_width_recovers_a_known_width_and_its_growth_under_blur(rng):
    # On a pixel grid the fit reads a curved edge about 10 % narrow (pixel-centre distances), the same at every width
    scale = []
    for width in (2.0, 3.0, 4.0):
        image, mask = blurred_disc(width, 0.0, rng)
        scale.append(edge_width(image, mask, 1.0) / width)
    assert all(0.85 <= k <= 1.0 for k in scale) and max(scale) - min(scale) < 0.04
    image, mask = blurred_disc(2.0, 0.0, rng)
    blurred = edge_width(ndimage.gaussian_filter(image, 1.5), mask, 1.0)
    assert blurred == pytest.approx(np.hypot(2.0, 1.5) * np.mean(scale), rel=0.06)  # widths add in quadrature
    clean = edge_width(image, mask, 1.0)
    noisy = [edge_width(*blurred_disc(2.0, 0.05, np.random.default_rng(s)), 1.0) for s in range(5)]
    assert np.mean(noisy) == pytest.approx(clean, rel=0.1)  # noise averages out over the profile's bins
    dim, mask = blurred_disc(2.0, 0.0, rng)
    assert edge_width(0.5 * dim, mask, 1.0) == pytest.approx(edge_width(dim, mask, 1.0), rel=1e-6)
    assert np.isnan(edge_width(image, np.zeros_like(mask), 1.0))


def test_interior_profile_follows_a_radial_gain():
    """Independent check: a gain 1 + a sin(2 pi r / r_max) on a flat disc gives the equal-area rings' medians of that gain."""
    grid = np.indices((81, 81))
    r = np.hypot(grid[0] - 40, grid[1] - 40)
    mask = r <= 30
    image = np.where(mask, 0.6, 0.2)
    assert np.allclose(interior_profile(image, mask), 0, atol=1e-12)
    gained = image * np.where(mask, 1 + 0.2 * np.sin(2 * np.pi * r / r[mask].max()), 1)
    profile = interior_profile(gained, mask)
    order = np.sort(r[mask])  # rings of equal area: quartiles of the pixels' distance to the centre
    ring = np.searchsorted(order[[len(order) // 4, len(order) // 2, 3 * len(order) // 4]], r, side="right")
    gain = 1 + 0.2 * np.sin(2 * np.pi * r / r[mask].max())
    expected = np.array([np.median(gain[mask & (ring == b)]) for b in range(4)])
    assert np.allclose(profile, expected / np.median(gain[mask]) - 1, atol=0.01)
    counts = np.bincount(ring[mask], minlength=4)
    assert counts.min() > 0.9 * counts.max()  # equal areas: every ring holds about as many pixels
    assert profile[0] > 0 > profile[2]
    assert region_scores(gained, mask, 1.0)["interior_contrast"] == pytest.approx(profile.max() - profile.min())


def test_column_wasserstein_equals_the_sorted_difference_for_equal_sizes(rng):
    x, y = rng.normal(size=(40, 3)), rng.normal(1.0, 2.0, size=(40, 3))
    expected = np.mean([np.abs(np.sort(x[:, j]) - np.sort(y[:, j])).mean() for j in range(3)])
    assert column_wasserstein(x, y) == pytest.approx(expected, rel=1e-12)
    assert column_wasserstein(x, x) == 0.0


def test_every_feature_metric_has_a_roi_and_a_band_twin():
    for base in TWIN_BASES:
        for region in LOCAL_REGIONS:
            twin = METRICS[f"{base}_{region}"]
            assert twin.better == METRICS[base].better and twin.needs == METRICS[base].needs
            assert twin.input == region and twin.outputs == tuple(f"{o}_{region}" for o in METRICS[base].outputs)
    for name in ("boundary", "edge_width", "interior", "frd", "frd_roi", "frd_v1", "frd_v1_roi"):
        assert METRICS[name].better == "lower"


def test_twins_compute_the_base_metric_on_the_region_features(rng):
    roi = {"reference": rng.normal(size=(60, 6)), "generated": rng.normal(0.3, 1.0, size=(60, 6))}
    whole = {"reference": rng.normal(size=(60, 6)), "generated": rng.normal(size=(60, 6))}
    result = compute_suite(whole, ["fd", "fd_roi", "prdc_roi"], local={"roi": roi})
    assert result.value("fd_roi") == pytest.approx(frechet_distance(roi["reference"], roi["generated"]), rel=1e-9)
    assert result.value("fd") == pytest.approx(frechet_distance(whole["reference"], whole["generated"]), rel=1e-9)
    assert {"precision_roi", "coverage_roi"} <= {r.metric for r in result.rows}
    missing = compute_suite(whole, ["kd_band", "boundary"])
    assert all(not r.available and "tumour" in r.note for r in missing.rows)


def test_sharpness_detects_blur_and_the_interior_detects_a_gradient_in_a_set(rng):
    """Set level: 6 volumes against 6 others; blur moves `boundary`, the radial gradient moves `interior`."""
    from GenMedEvalLib.features.localfeatures import local_inputs, stack_local

    def make(seed):
        return [disc_volume(np.random.default_rng(seed + i), radius=9 + i % 4) for i in range(6)]

    ref, base = make(100), make(200)
    kinds = ["boundary", "edge_width", "interior"]

    def inputs(pairs):
        return stack_local(local_inputs([v for v, _ in pairs], [m for _, m in pairs], kinds)).data

    blur = [(v.with_array(boundary_blur(v.array, mask=m, spacing=v.spacing_zyx, sigma=1.0)), m) for v, m in base]
    radial = [(v.with_array(radial_gradient(v.array, mask=m, spacing=v.spacing_zyx, amplitude=0.1)), m)
              for v, m in base]
    r, b, bl, ra = inputs(ref), inputs(base), inputs(blur), inputs(radial)
    dist = {name: {kind: column_wasserstein(r[kind], x[kind]) for kind in kinds}
            for name, x in (("base", b), ("blur", bl), ("radial", ra))}
    assert dist["blur"]["boundary"] > 3 * dist["base"]["boundary"]
    assert dist["blur"]["edge_width"] > 3 * dist["base"]["edge_width"]
    assert dist["radial"]["interior"] > 3 * dist["base"]["interior"]


frd_score = pytest.importorskip("frd_score", reason="FRD needs frd-score and pyradiomics-bhklab (make install)")


def _slices(rng, n: int, smooth: float):
    images, masks = [], []
    for _ in range(n):
        image = ndimage.gaussian_filter(rng.random((48, 48)), smooth + rng.random()).astype(np.float32)
        mask = np.zeros((48, 48), np.uint8)
        cy, cx = rng.integers(16, 32, 2)
        mask[cy - 7:cy + 7, cx - 5:cx + 6] = 1
        images.append(image)
        masks.append(mask)
    return images, masks


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_frd_equals_the_packages_own_command_line(tmp_path, rng, version):
    """GenMedEval's FRD and FRD-ROI against `python -m frd_score` on the same image (and mask) files."""
    from GenMedEvalLib.features.cache import FeatureCache
    from GenMedEvalLib.features.radiomics import radiomic_features, write_slice
    from GenMedEvalLib.metrics.frd import frechet_radiomic_distance

    sets = {"a": _slices(rng, 8, 1.0), "b": _slices(rng, 8, 3.0)}
    for name, (images, masks) in sets.items():
        for kind in ("img", "msk"):
            (tmp_path / f"{name}{kind}").mkdir()
        for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
            write_slice(str(tmp_path / f"{name}img" / f"{i:03d}.nii.gz"), image, 1.5)
            write_slice(str(tmp_path / f"{name}msk" / f"{i:03d}.nii.gz"), mask, 1.5, mask=True)
    cache = FeatureCache(tmp_path / "cache")
    for with_masks in (False, True):
        features = {name: radiomic_features(images, masks if with_masks else None, [1.5] * len(images),
                                            version=version, cache=cache, workers=2)
                    for name, (images, masks) in sets.items()}
        ours = frechet_radiomic_distance(features["a"], features["b"], version=version)
        command = [sys.executable, "-m", "frd_score", str(tmp_path / "aimg"), str(tmp_path / "bimg"),
                   "--frd_version", version]
        if with_masks:
            command += ["--paths_masks", str(tmp_path / "amsk"), str(tmp_path / "bmsk")]
        one_thread = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # as ours: metric_blas
        printed = subprocess.run(command, capture_output=True, text=True, check=True, env=one_thread).stdout
        theirs = float(printed.strip().splitlines()[-1].split(":")[-1])
        # 1e-8: the cache keeps ~14 digits, and the package's sqrtm of a near-singular covariance moves by ~1e-9
        # relative between BLAS kernels (measured on an AVX-512 machine: 1.4e-9)
        assert ours == pytest.approx(theirs, rel=1e-8), (with_masks, printed)


def test_radiomic_features_are_cached_and_a_second_call_extracts_none(tmp_path, rng, monkeypatch):
    from GenMedEvalLib.features import radiomics
    from GenMedEvalLib.features.cache import FeatureCache

    images, masks = _slices(rng, 4, 1.0)
    cache = FeatureCache(tmp_path / "cache")
    first = radiomics.radiomic_features(images + images[:1], masks + masks[:1], [1.0] * 5, cache=cache, workers=1)
    assert first.shape[0] == 5 and np.array_equal(first[0], first[4])  # a repeated slice is extracted once
    calls = []
    monkeypatch.setattr(radiomics, "extract_one", lambda task: calls.append(task))
    again = radiomics.radiomic_features(images, masks, [1.0] * 4, cache=cache, workers=1)
    assert not calls and np.array_equal(again, first[:4])


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_frd_bootstrap_distance_matches_the_packages(rng, version):
    """The replicates' exact Fréchet step agrees with the package's sqrtm-based distance on the same features."""
    from GenMedEvalLib.metrics.frd import frechet_radiomic_distance

    a = rng.normal(size=(50, 30)) @ rng.normal(size=(30, 30))
    b = rng.normal(0.2, 1.0, size=(50, 30)) @ rng.normal(size=(30, 30))
    assert frechet_radiomic_distance(a, b, version=version, package_distance=False) == pytest.approx(
        frechet_radiomic_distance(a, b, version=version), rel=1e-6, abs=1e-6)
