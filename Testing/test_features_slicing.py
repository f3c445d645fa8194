"""Slicing rules on the real anisotropic MRI and on oriented synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest

from GenMedEvalLib.errors import ParameterError
from GenMedEvalLib.features.slicing import SliceSettings, plane_axes, square_slice, volume_slices
from GenMedEvalLib.io import Volume


def test_axial_slices_of_real_case_are_whole_axial_planes(real_case):
    image, _ = real_case
    sliced = volume_slices(image, SliceSettings(max_slices=None, tumour_slices=0, plane="axial", min_foreground=0.0))
    assert len(sliced) == image.array.shape[0] == 25
    assert sliced.images[7].shape == (256, 256)
    np.testing.assert_array_equal(sliced.images[7], image.array[7])
    assert [s.index for s in sliced.info] == list(range(25))


def test_foreground_rule_matches_direct_count(real_case):
    image, _ = real_case
    settings = SliceSettings(max_slices=None, tumour_slices=0, plane="sagittal", min_foreground=0.2, foreground_threshold=0.1)
    expected = [x for x in range(image.array.shape[2]) if (image.array[:, :, x] > 0.1).mean() >= 0.2]
    got = [s.index for s in volume_slices(image, settings).info]
    assert got == expected
    assert 0 < len(got) < image.array.shape[2]  # empty border slices really are skipped


def test_mask_restriction_keeps_only_lesion_slices(real_case):
    image, mask = real_case
    got = [s.index for s in volume_slices(image, SliceSettings(max_slices=None, tumour_slices=0, mask_only=True, min_foreground=0.0), mask=mask).info]
    assert got == list(np.flatnonzero(mask.array.any(axis=(1, 2))))
    assert 0 < len(got) < 25


def test_coronal_slice_keeps_physical_aspect_of_thick_slices(real_case):
    image, _ = real_case
    sliced = volume_slices(image, SliceSettings(plane="coronal", min_foreground=0.0, max_slices=3))
    assert len(sliced) == 3
    cut = sliced.images[1]
    assert cut.shape == (256, 256)
    # 25 slices x 6.5 mm = 162.5 mm of 200 mm -> about 208 of 256 rows hold data, centred.
    rows = np.flatnonzero(np.abs(cut).sum(axis=1) > 0)
    height = rows[-1] - rows[0] + 1
    assert abs(height - round(25 * 6.5 / 0.78125)) <= 2
    assert abs((rows[0] + rows[-1]) / 2 - 127.5) <= 1.5
    flat = volume_slices(image, SliceSettings(plane="coronal", min_foreground=0.0, max_slices=3, isotropic=False))
    rows = np.flatnonzero(np.abs(flat.images[1]).sum(axis=1) > 0)
    assert rows[-1] - rows[0] + 1 <= 25


def test_planes_follow_direction_matrix():
    assert plane_axes(None) == {"axial": 0, "coronal": 1, "sagittal": 2}
    # index x along physical S, index z along physical R: axial must cut array axis 2 (x).
    direction = (0, 0, 1, 0, 1, 0, 1, 0, 0)
    assert plane_axes(direction) == {"axial": 2, "coronal": 1, "sagittal": 0}
    array = np.zeros((4, 5, 6), dtype=np.float32)
    array[:, :, 2] = 1.0
    sliced = volume_slices(Volume(array, direction=direction), SliceSettings(max_slices=None, tumour_slices=0, plane="axial", min_foreground=0.5))
    assert [s.index for s in sliced.info] == [2]


def test_step_max_slices_and_all_planes():
    array = np.ones((10, 8, 6), dtype=np.float32)
    assert [s.index for s in volume_slices(array, SliceSettings(max_slices=None, tumour_slices=0, step=3)).info] == [0, 3, 6, 9]
    assert [s.index for s in volume_slices(array, SliceSettings(max_slices=4)).info] == [0, 3, 6, 9]
    sliced = volume_slices(array, SliceSettings(max_slices=None, tumour_slices=0, plane="all"))
    assert [sum(s.plane == p for s in sliced.info) for p in ("axial", "coronal", "sagittal")] == [10, 8, 6]
    assert all(img.shape[0] == img.shape[1] for img in sliced.images)


def test_square_padding_centres_the_slice():
    out = square_slice(np.ones((2, 6), dtype=np.float32))
    assert out.shape == (6, 6)
    np.testing.assert_array_equal(out.sum(axis=1), [0, 0, 6, 6, 0, 0])


def test_bad_settings_raise():
    with pytest.raises(ParameterError, match="plane"):
        SliceSettings(plane="oblique")
    with pytest.raises(ParameterError, match="mask"):
        volume_slices(np.ones((3, 3, 3)), SliceSettings(mask_only=True))


def test_tumour_slices_never_repeat_an_evenly_spaced_slice():
    """The extra tumour slices are taken among tumour slices not already kept (a one-slice volume gives one)."""
    from GenMedEvalLib.features.slicing import SliceSettings, volume_slices

    volume = np.ones((9, 16, 16), np.float32)
    mask = np.zeros_like(volume, dtype=np.uint8)
    mask[4, 6:9, 6:9] = 1  # the tumour lies on the middle slice, which the even spacing keeps
    got = volume_slices(volume, SliceSettings(max_slices=3, tumour_slices=2), mask)
    assert [i.index for i in got.info] == [0, 4, 8]  # no second copy of slice 4
    mask[3:6, 6:9, 6:9] = 1
    got = volume_slices(volume, SliceSettings(max_slices=3, tumour_slices=2), mask)
    assert [i.index for i in got.info] == [0, 4, 8, 3, 5]  # the other tumour slices
    one = volume_slices(volume[:1], SliceSettings(max_slices=6, tumour_slices=2), mask[4:5])
    assert len(one) == 1
