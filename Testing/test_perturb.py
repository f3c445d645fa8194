"""Properties of every perturbation, on the real MRI, the MNI template and synthetic volumes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from GenMedEvalLib import perturb
from GenMedEvalLib.errors import InputError, ParameterError
from GenMedEvalLib.perturb.tumour import boundary_distance

VOLUME_KINDS = ["gaussian_noise", "rician_noise", "poisson_noise", "boundary_blur", "radial_gradient", "contrast_invention"]


def sphere_case(shape=(40, 64, 64), radius=10.0, value=0.6):
    """A textured volume with a spherical 'tumour' in the middle."""
    rng = np.random.default_rng(1)
    image = ndimage.gaussian_filter(rng.random(shape), 2).astype(np.float32)
    image = (image - image.min()) / (image.max() - image.min())
    zz, yy, xx = np.indices(shape)
    mask = ((zz - shape[0] / 2) ** 2 + (yy - shape[1] / 2) ** 2 + (xx - shape[2] / 2) ** 2) < radius**2
    image[mask] = value + 0.3 * image[mask]
    return image, mask.astype(np.uint8)


@pytest.mark.parametrize("mode", ["slice", "3d"])
def test_boundary_blur_changes_only_the_band_on_real_mri(real_case, mode):
    image, mask = real_case
    spacing = image.spacing_zyx
    band = 3.0
    out = perturb.boundary_blur(image.array, mask=mask.array, spacing=spacing, sigma=2.0, band=band, mode=mode)
    dist = boundary_distance(mask.array > 0, spacing, mode)
    outside_band = dist > band
    assert np.array_equal(out[outside_band], image.array[outside_band])  # bit-identical
    changed = out != image.array
    assert changed.sum() > 100
    assert np.all(dist[changed] <= band)


def test_boundary_blur_slice_mode_is_in_plane(real_case):
    image, mask = real_case
    out = perturb.boundary_blur(image.array, mask=mask.array, spacing=image.spacing_zyx, sigma=2.0, mode="slice")
    tumour_slices = np.nonzero(mask.array.any(axis=(1, 2)))[0]
    others = np.setdiff1d(np.arange(image.array.shape[0]), tumour_slices)
    assert np.array_equal(out[others], image.array[others])


@pytest.mark.parametrize("mode", ["slice", "3d"])
def test_radial_gradient_changes_only_mask_voxels(real_case, mode):
    image, mask = real_case
    out = perturb.radial_gradient(image.array, mask=mask.array, spacing=image.spacing_zyx, amplitude=0.3, mode=mode)
    inside = mask.array > 0
    assert np.array_equal(out[~inside], image.array[~inside])
    assert np.abs(out[inside] - image.array[inside]).max() > 0.01


def test_radial_gradient_follows_the_formula_in_3d():
    image, mask = sphere_case()
    out = perturb.radial_gradient(image, mask=mask, spacing=(2.0, 1.0, 1.0), amplitude=0.25, frequency=1.0, mode="3d")
    inside = mask > 0
    centre = ndimage.center_of_mass(inside)
    grid = np.indices(image.shape).astype(float)
    r = np.sqrt(((grid[0] - centre[0]) * 2.0) ** 2 + (grid[1] - centre[1]) ** 2 + (grid[2] - centre[2]) ** 2)
    expected = image[inside] * (1 + 0.25 * np.sin(2 * np.pi * r[inside] / r[inside].max()))
    np.testing.assert_allclose(out[inside], expected, rtol=1e-5)


def test_gaussian_noise_residual_std_within_5_percent(mni_t1):
    for sigma in (0.01, 0.05, 0.1):
        out = perturb.gaussian_noise(mni_t1.array, sigma=sigma, seed=3)
        assert abs((out - mni_t1.array).std() / sigma - 1) < 0.05


def test_rician_noise_raises_dark_regions_as_theory_says():
    dark = np.zeros((32, 64, 64), dtype=np.float32)
    sigma = 0.1
    out = perturb.rician_noise(dark, sigma=sigma, seed=0)
    # zero signal -> Rayleigh distribution with mean sigma * sqrt(pi / 2)
    assert abs(out.mean() / (sigma * np.sqrt(np.pi / 2)) - 1) < 0.01
    bright = np.full_like(dark, 0.8)
    biased = perturb.rician_noise(bright, sigma=sigma, seed=0).mean()
    assert abs(biased - np.sqrt(0.8**2 + sigma**2)) < 0.005  # bias ~ sigma^2 / (2 A) at high SNR


def test_poisson_noise_grows_with_intensity_and_hits_level_at_mean():
    image = np.concatenate([np.full((8, 64, 64), v, np.float32) for v in (0.2, 0.5, 1.0)])
    level = 0.05
    out = perturb.poisson_noise(image, level=level, seed=0)
    stds = [(out[i * 8:(i + 1) * 8] - v).std() for i, v in enumerate((0.2, 0.5, 1.0))]
    assert stds[0] < stds[1] < stds[2]
    mean = image.mean()
    np.testing.assert_allclose(stds, [level * np.sqrt(v / mean) for v in (0.2, 0.5, 1.0)], rtol=0.05)


def test_contrast_invention_inverts_grey_white_contrast(mni_t1):
    image = mni_t1.array
    out = perturb.contrast_invention(image, strength=0.1)
    brain = image > 0.05
    gm_lo, gm_hi, wm_lo, wm_hi = np.percentile(image[brain], [20, 50, 65, 95])
    gm = brain & (image >= gm_lo) & (image <= gm_hi)
    wm = brain & (image >= wm_lo) & (image <= wm_hi)
    assert image[wm].mean() > image[gm].mean()
    assert out[wm].mean() < out[gm].mean()  # inverted at the strongest level
    mild = perturb.contrast_invention(image, strength=0.05)
    assert 0 < mild[wm].mean() - mild[gm].mean() < image[wm].mean() - image[gm].mean()


@pytest.mark.parametrize("name", VOLUME_KINDS)
def test_same_seed_same_output_input_untouched(name):
    image, mask = sphere_case()
    before = image.copy()
    spec = perturb.PERTURBATIONS[name]
    first = perturb.apply_perturbation(name, image, mask=mask, spacing=(2.0, 1.0, 1.0), seed=7)
    second = perturb.apply_perturbation(name, image, mask=mask, spacing=(2.0, 1.0, 1.0), seed=7)
    assert np.array_equal(first, second)
    assert np.array_equal(image, before)
    assert first.dtype == np.float32 and first.shape == image.shape
    if spec.family == "noise":
        other = perturb.apply_perturbation(name, image, mask=mask, seed=8)
        assert not np.array_equal(first, other)
    else:
        assert not np.array_equal(first, image)


@pytest.mark.parametrize("name", ["boundary_blur", "radial_gradient"])
def test_mask_perturbations_reject_missing_or_empty_mask(name):
    image, mask = sphere_case()
    with pytest.raises(InputError, match="mask"):
        perturb.apply_perturbation(name, image)
    with pytest.raises(InputError, match="empty"):
        perturb.apply_perturbation(name, image, mask=np.zeros_like(mask))


def test_registry_rejects_unknown_and_out_of_range():
    image, _ = sphere_case()
    with pytest.raises(ParameterError, match="unknown perturbation"):
        perturb.apply_perturbation("salt", image)
    with pytest.raises(ParameterError, match="no parameter"):
        perturb.apply_perturbation("gaussian_noise", image, sigmaa=0.1)
    with pytest.raises(ParameterError, match="outside"):
        perturb.apply_perturbation("gaussian_noise", image, sigma=-1)
    with pytest.raises(ParameterError, match="mode"):
        perturb.apply_perturbation("boundary_blur", image, mask=image > 0.5, mode="4d")


def test_registry_presets_are_the_papers_levels():
    levels = {name: list(spec.presets) for name, spec in perturb.PERTURBATIONS.items()}
    assert levels["gaussian_noise"] == ["0.01", "0.05", "0.1"]
    assert levels["boundary_blur"] == ["1", "2", "3"]
    assert levels["external_duplication"] == ["5%", "15%", "30%", "45%"]
    assert levels["contrast_invention"] == ["0.05", "0.07", "0.1"]
    assert perturb.PERTURBATIONS["boundary_blur"].needs_mask
    assert perturb.PERTURBATIONS["density_shift"].kind == "set"
    for spec in perturb.PERTURBATIONS.values():
        for params in spec.presets.values():
            spec.validate(params)


@pytest.mark.parametrize("rate", [0.05, 0.15, 0.30, 0.45])
def test_duplication_rates_are_exact(rate):
    items = [f"eval{i}" for i in range(40)]
    train = [f"train{i}" for i in range(20)]
    out, prov = perturb.external_duplication(items, rate=rate, train_set=train, seed=0)
    expected = int(np.floor(rate * 40 + 0.5))
    assert len(out) == 40 and sum(name == "train" for name, _ in prov) == expected
    assert all(o == (train if s == "train" else items)[i] for o, (s, i) in zip(out, prov, strict=True))
    out2, prov2 = perturb.internal_duplication(items, rate=rate, seed=0)
    copies = [i for i, (s, j) in enumerate(prov2) if j != i]
    assert len(copies) == expected
    kept = {i for i, (s, j) in enumerate(prov2) if j == i}
    assert all(prov2[i][1] in kept for i in copies)  # copies of members that stay unchanged
    assert perturb.external_duplication(items, rate=rate, train_set=train, seed=0)[1] == prov


def test_mode_collapse_drops_rarest_and_rebalances():
    labels = ["none"] * 8 + ["left"] * 16 + ["right"] * 16
    items = list(range(40))
    out, _ = perturb.mode_collapse(items, labels=labels, seed=0)
    assert len(out) == 32 and all(labels[i] != "none" for i in out)
    out, prov = perturb.mode_collapse(items, labels=labels, ratio=[1, 5], seed=0)
    counts = Counter(labels[i] for i in out)
    assert "none" not in counts and sorted(counts.values()) == [3, 16]


@pytest.mark.parametrize("proportions", [(10, 90), (25, 75), (50, 50), (75, 25), (90, 10)])
def test_density_shift_gives_the_proportions(proportions):
    groups = ["A"] * 20 + ["B"] * 20
    out, prov = perturb.density_shift(list(range(40)), groups=groups, proportions=proportions, seed=0)
    counts = Counter(groups[i] for i in out)
    assert len(out) == 40
    assert counts["A"] == int(np.floor(proportions[0] / 100 * 40 + 0.5))


def test_boundary_blur_reaches_the_boundary_voxels_of_coarse_volumes():
    """On 4 mm voxels no voxel centre lies within the 3 mm band: the band widens to one voxel each side."""
    image = np.random.default_rng(0).random((20, 30, 30)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[8:12, 10:20, 10:20] = True
    out = perturb.boundary_blur(image, mask=mask, spacing=(4.0, 4.0, 4.0), sigma=3.0, band=3.0)
    changed = out != image
    dist = boundary_distance(mask, (4.0, 4.0, 4.0), "slice")
    assert changed.sum() > 0 and np.all(dist[changed] <= 4.0)
