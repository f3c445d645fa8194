"""The TorchIO MRI artefacts (beyond the paper): seeded, pure, spacing-aware, and stronger at each level."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from GenMedEvalLib import perturb
from GenMedEvalLib.cli import main
from GenMedEvalLib.errors import ParameterError
from GenMedEvalLib.io import Volume, normalize_intensity, read_volume, write_volume
from GenMedEvalLib.perturb import artefacts

ARTEFACTS = ["motion", "ghosting", "spike", "bias_field", "anisotropy"]
RANDOM = {"motion", "spike", "bias_field"}  # ghosting and anisotropy have no random parameter
SHAPE = (32, 48, 48)


def phantom(shape=SHAPE) -> np.ndarray:
    """A head-like ellipsoid in [0, 1] with a textured interior and a brighter core (zero background)."""
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    r = np.sqrt(sum(((g - m) / (0.4 * s)) ** 2 for g, m, s in zip((z, y, x), c, shape, strict=True)))
    # additive texture: the detail along each axis is independent of the others
    image = np.where(r < 1, 0.55 + 0.1 * (np.sin(x / 2.0) + np.cos(y / 3.0) + np.sin(z / 1.5)), 0.0)
    image += np.where(r < 0.4, 0.1, 0.0)
    return np.clip(image, 0, 1).astype(np.float32)


def texture(shape=SHAPE) -> np.ndarray:
    """A sum of one sinusoid per axis: smoothing along one axis leaves the others' detail exactly."""
    z, y, x = np.indices(shape, dtype=np.float32)
    return (0.5 + 0.15 * (np.sin(x / 2.0) + np.cos(y / 3.0) + np.sin(z / 1.5))).astype(np.float32)


@pytest.fixture(scope="module")
def image():
    return phantom()


def level(name: str, key: str, img: np.ndarray, seed: int = 0, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    spec = perturb.PERTURBATIONS[name]
    return perturb.apply_perturbation(name, img, spacing=spacing, seed=seed, **spec.preset(key))


def rel_diff(out: np.ndarray, img: np.ndarray) -> float:
    return float(np.linalg.norm(out - img) / np.linalg.norm(img))


def axis_detail(img: np.ndarray, axis: int) -> float:
    """Energy of the finite differences along ``axis``: the image's high frequencies along it."""
    return float(np.sum(np.diff(img.astype(np.float64), axis=axis) ** 2))


@pytest.mark.parametrize("name", ARTEFACTS)
def test_seeded_pure_and_shape_preserving(name, image):
    before = image.copy()
    torch_state = torch.get_rng_state()
    first, second = level(name, "2", image, seed=5), level(name, "2", image, seed=5)
    assert np.array_equal(first, second)  # byte-identical for the same seed
    assert np.array_equal(image, before)  # input untouched
    assert torch.equal(torch.get_rng_state(), torch_state)  # torch's global RNG is never drawn from
    assert first.dtype == np.float32 and first.shape == image.shape and first.flags.c_contiguous
    assert np.all(np.isfinite(first))
    assert not np.array_equal(first, image)
    assert -1.0 < first.min() and first.max() < 3.0  # artefacts, not garbage (not clipped, as the noise family)
    other = level(name, "2", image, seed=6)
    if name in RANDOM:
        assert not np.array_equal(first, other)
    else:
        assert np.array_equal(first, other)  # deterministic: the seed is unused


def test_motion_mean_difference_grows_with_level(image):
    mad = [np.mean([np.abs(level("motion", k, image, seed=s) - image).mean() for s in range(4)]) for k in "123"]
    assert 0.005 < mad[0] < mad[1] < mad[2], mad


def test_motion_translation_is_in_millimetres(image):
    """The same mm shift is fewer voxels on a coarser grid: at 2 mm voxels the image changes less."""
    fine = perturb.apply_perturbation("motion", image, spacing=(1.0, 1.0, 1.0), seed=0, degrees=0.0,
                                      translation=4.0, num_transforms=2)
    coarse = perturb.apply_perturbation("motion", image, spacing=(2.0, 2.0, 2.0), seed=0, degrees=0.0,
                                        translation=4.0, num_transforms=2)
    assert np.abs(coarse - image).mean() < 0.8 * np.abs(fine - image).mean()


def test_ghosting_replicas_along_the_phase_encode_axis_grow_with_level(image):
    outs = [level("ghosting", k, image) for k in "123"]
    diffs = [rel_diff(o, image) for o in outs]
    assert 0.01 < diffs[0] < diffs[1] < diffs[2], diffs
    assert all(abs(o.mean() - image.mean()) < 0.01 * image.mean() for o in outs)  # the k-space centre is kept
    # every 4th k-space plane along the phase-encode axis is scaled: the change lives on those planes only
    assert plane_share(outs[2] - image, axis=1) > 0.999 > plane_share(outs[2] - image, axis=2)
    along_x = perturb.apply_perturbation("ghosting", image, intensity=0.9, axis="x") - image
    assert plane_share(along_x, axis=2) > 0.999 > plane_share(along_x, axis=1)


def plane_share(delta: np.ndarray, axis: int, every: int = 4) -> float:
    """Share of the k-space magnitude of ``delta`` on every ``every``-th plane along ``axis``."""
    spectrum = np.abs(np.fft.fftn(delta.astype(np.float64)))
    per_plane = spectrum.sum(axis=tuple(a for a in range(3) if a != axis))
    return float(per_plane[::every].sum() / per_plane.sum())


def test_spike_high_frequency_energy_grows_with_level(image):
    def outer_fraction(volume: np.ndarray) -> float:
        spectrum = np.abs(np.fft.fftshift(np.fft.fftn(volume))) ** 2
        inner = tuple(slice(s // 2 - s // 8, s // 2 + s // 8) for s in volume.shape)
        return float(1 - spectrum[inner].sum() / spectrum.sum())

    base = outer_fraction(image)
    fractions = [outer_fraction(level("spike", k, image)) for k in "123"]
    assert base < fractions[0] < fractions[1] < fractions[2], (base, fractions)
    diffs = [rel_diff(level("spike", k, image), image) for k in "123"]
    assert diffs[0] < diffs[1] < diffs[2], diffs


def test_bias_field_is_a_smooth_multiplicative_field_growing_with_level(image):
    tissue = image > 0.2
    spans = []
    for k in "123":
        out = level("bias_field", k, image)
        assert np.all(out[image == 0] == 0)  # multiplicative: the background stays zero
        field = np.ones_like(image)
        field[tissue] = out[tissue] / image[tissue]
        spans.append(float(field[tissue].max() / field[tissue].min()))
        # low frequency: the field varies slowly (a few % per voxel), unlike the texture it multiplies
        assert np.abs(np.diff(np.log(field), axis=2))[tissue[:, :, 1:] & tissue[:, :, :-1]].max() < 0.1
    assert 1.1 < spans[0] < spans[1] < spans[2] < 10, spans


def test_anisotropy_removes_detail_along_the_slice_axis_with_the_factor():
    image = texture()
    base = [axis_detail(image, a) for a in range(3)]
    kept = []
    for k in "123":
        out = level("anisotropy", k, image)
        ratio = [axis_detail(out, a) / base[a] for a in range(3)]
        kept.append(ratio[0])
        assert ratio[1] > 0.99 and ratio[2] > 0.99  # in-plane detail stays
    assert kept[0] > kept[1] > kept[2] and kept[0] < 0.8, kept


def test_anisotropy_acts_along_the_thick_axis_in_millimetres():
    img = texture((48, 48, 24))
    spacing = (1.0, 1.0, 3.0)  # (z, y, x): x is the thick axis
    assert artefacts.anisotropy_axis(spacing) == 2 and artefacts.anisotropy_axis((1.0, 1.0, 1.0)) == 0
    out = perturb.apply_perturbation("anisotropy", img, spacing=spacing, factor=2.0)
    ratio = [axis_detail(out, a) / axis_detail(img, a) for a in range(3)]
    assert ratio[2] < 0.8 and ratio[0] > 0.99 and ratio[1] > 0.99, ratio
    named = perturb.apply_perturbation("anisotropy", img, spacing=spacing, factor=2.0, axis="z")
    ratio_z = [axis_detail(named, a) / axis_detail(img, a) for a in range(3)]
    assert ratio_z[0] < 0.8 and ratio_z[2] > 0.99, ratio_z
    assert np.array_equal(perturb.apply_perturbation("anisotropy", img, spacing=spacing, factor=1.0), img)


def test_registry_entries_levels_and_bad_parameters(image):
    for name in ARTEFACTS:
        spec = perturb.PERTURBATIONS[name]
        assert spec.kind == "volume" and spec.family == "artefact" and spec.beyond_paper and not spec.needs_mask
        assert list(spec.presets) == ["1", "2", "3"]
        for params in spec.presets.values():
            spec.validate(params)
    assert not any(s.beyond_paper for n, s in perturb.PERTURBATIONS.items() if n not in ARTEFACTS)
    bad = [("motion", {"degrees": -1}, "outside"), ("motion", {"num_transforms": 0}, "outside"),
           ("ghosting", {"intensity": 1.5}, "outside"), ("ghosting", {"axis": "w"}, "not one of"),
           ("spike", {"num_spikes": "two"}, "not a int"), ("bias_field", {"order": 7}, "outside"),
           ("anisotropy", {"factor": 0.5}, "outside"), ("anisotropy", {"axis": "t"}, "not one of"),
           ("spike", {"spikes": 2}, "no parameter")]
    for name, params, message in bad:
        with pytest.raises(ParameterError, match=message):
            perturb.apply_perturbation(name, image, **params)
    with pytest.raises(ParameterError, match="no level"):
        perturb.PERTURBATIONS["motion"].preset("4")


def test_paper_sweep_is_unchanged_and_configs_can_name_the_artefacts(tmp_path):
    from GenMedEvalLib.experiments.config import default_config_text, load_config, paper_conditions

    names = {c.perturbation for c in paper_conditions()}
    assert names.isdisjoint(ARTEFACTS) and "gaussian_noise" in names
    assert not any(a in default_config_text() for a in ARTEFACTS)
    path = tmp_path / "sweep.yaml"
    path.write_text("data:\n  base: {folder: images, split: eval}\n  reference: {folder: images, split: reference}\n"
                    "perturbations:\n  motion: ['1', '3']\n  anisotropy: [{factor: 4}]\n")
    config = load_config(path)
    assert [c.name for c in config.conditions] == ["motion@1", "motion@3", "anisotropy@factor=4"]
    assert config.conditions[1].params == {"degrees": 8.0, "translation": 8.0, "num_transforms": 4}


def test_cli_round_trip_list_and_bad_parameter(tmp_path, capsys):
    rng = np.random.default_rng(0)
    array = (phantom((16, 32, 32)) * 800 + rng.random((16, 32, 32)) * 5).astype(np.float32)
    volume = Volume(array, spacing=(0.9, 0.9, 2.5))  # SimpleITK (x, y, z): 2.5 mm slices
    source = write_volume(volume, tmp_path / "in" / "case.nii.gz")
    out = tmp_path / "motion.nii.gz"
    argv = ["perturb", str(source), str(out), "--kind", "motion", "--level", "2", "--seed", "0"]
    assert main(argv) == 0
    written, read = read_volume(out), read_volume(source)
    np.testing.assert_allclose(written.spacing, read.spacing, atol=1e-6)
    expected = perturb.apply_perturbation("motion", normalize_intensity(read.array), spacing=read.spacing_zyx,
                                          seed=0, **perturb.PERTURBATIONS["motion"].preset("2"))
    np.testing.assert_allclose(written.array, expected, atol=1e-6)
    capsys.readouterr()

    assert main(["perturb", "--list"]) == 0
    listing = capsys.readouterr().out
    for name in ARTEFACTS:
        line = next(line for line in listing.splitlines() if line.startswith(f"{name} "))
        assert "beyond the paper" in line
    assert "beyond the paper" not in next(line for line in listing.splitlines() if line.startswith("gaussian_noise"))

    bad = tmp_path / "bad.nii.gz"
    for extra, message in ((["--level", "2", "--degrees", "99"], "outside"), (["--level", "4"], "no level")):
        code = main(["perturb", str(source), str(bad), "--kind", "motion", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
        assert not bad.exists()
