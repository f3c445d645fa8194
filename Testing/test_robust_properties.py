"""Hypothesis property tests of the perturbation and metric APIs: random shapes, dtypes, spacings, seeds, NaN placement.

Properties (each checked against its definition, not against the code's own output):
- a per-volume perturbation returns a finite array of the input's shape, leaves the input untouched,
  is a pure function of (image, mask, spacing, parameters, seed), and refuses NaN/Inf voxels wherever they sit;
- NaN or infinite parameters are refused by the registry;
- FD is >= 0, symmetric, 0 for a set against itself and equal to ||mu1 - mu2||^2 for a shifted copy;
  PRDC values lie in their ranges and a set matches itself perfectly; every metric refuses NaN features.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from GenMedEvalLib.errors import GenMedEvalError, ParameterError
from GenMedEvalLib.metrics import frechet_distance, kernel_distance, prdc, sw_approx, vendi_score
from GenMedEvalLib.perturb import PERTURBATIONS, apply_perturbation

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VOLUME_KINDS = sorted(name for name, spec in PERTURBATIONS.items() if spec.kind == "volume")

shapes = st.tuples(st.integers(2, 9), st.integers(4, 14), st.integers(4, 14))
dtypes = st.sampled_from([np.float32, np.float64, np.uint8, np.int16, np.uint16])
spacings = st.tuples(*(st.floats(0.3, 6.0) for _ in range(3)))


@st.composite
def volumes(draw):
    """(image in [0, 1] of a random dtype range, a non-empty box mask, spacing, seed)."""
    shape = draw(shapes)
    dtype = draw(dtypes)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        image = rng.integers(0, min(np.iinfo(dtype).max, 1000), shape).astype(dtype)
    else:
        image = rng.random(shape).astype(dtype)
    mask = np.zeros(shape, np.uint8)
    lo = [draw(st.integers(0, s - 2)) for s in shape]
    mask[lo[0]:lo[0] + 2, lo[1]:lo[1] + 3, lo[2]:lo[2] + 3] = 1
    return image, mask, draw(spacings), seed


@SETTINGS
@given(volumes(), st.sampled_from(VOLUME_KINDS))
def test_volume_perturbations_are_pure_finite_and_shape_preserving(volume, kind):
    image, mask, spacing, seed = volume
    image01 = (image.astype(np.float32) / max(float(image.max()), 1.0))
    before = image01.copy()
    out1 = apply_perturbation(kind, image01, mask=mask, spacing=spacing, seed=seed)
    out2 = apply_perturbation(kind, image01, mask=mask, spacing=spacing, seed=seed)
    assert out1.shape == image01.shape
    assert np.all(np.isfinite(out1))
    np.testing.assert_array_equal(out1, out2)  # a pure function of its arguments and the seed
    np.testing.assert_array_equal(image01, before)  # the input is never modified


@SETTINGS
@given(volumes(), st.sampled_from(VOLUME_KINDS), st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_non_finite_voxels_are_refused_wherever_they_are(volume, kind, value, data):
    image, mask, spacing, seed = volume
    image01 = image.astype(np.float32) / max(float(image.max()), 1.0)
    where = tuple(data.draw(st.integers(0, s - 1)) for s in image01.shape)
    image01[where] = value
    with pytest.raises(ParameterError, match="NaN or infinite"):
        apply_perturbation(kind, image01, mask=mask, spacing=spacing, seed=seed)


@SETTINGS
@given(st.sampled_from(VOLUME_KINDS), st.sampled_from([float("nan"), float("inf"), float("-inf")]))
def test_non_finite_parameters_are_refused(kind, value):
    spec = PERTURBATIONS[kind]
    name = next(n for n, p in spec.params.items() if p.type is float)
    with pytest.raises(ParameterError, match=name):
        spec.validate({name: value})


@st.composite
def feature_sets(draw, min_rows: int = 8, unique: bool = False):
    n1, n2 = draw(st.integers(min_rows, 40)), draw(st.integers(min_rows, 40))
    d = draw(st.integers(2, 6))
    elements = st.floats(-5, 5, allow_nan=False, width=32)
    x = draw(hnp.arrays(np.float64, (n1, d), elements=elements, unique=unique))
    y = draw(hnp.arrays(np.float64, (n2, d), elements=elements, unique=unique))
    return x, y


@SETTINGS
@given(feature_sets())
def test_fd_is_a_symmetric_non_negative_distance(sets):
    x, y = sets
    forward, backward = frechet_distance(x, y), frechet_distance(y, x)
    assert forward >= -1e-6 * (1 + np.abs(x).max() ** 2)
    assert forward == pytest.approx(backward, rel=1e-6, abs=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6 * (1 + np.abs(x).max() ** 2))


@SETTINGS
@given(feature_sets(), hnp.arrays(np.float64, 6, elements=st.floats(-3, 3)))
def test_fd_of_a_shifted_copy_is_the_squared_shift(sets, shift):
    x, _ = sets
    shift = shift[: x.shape[1]]
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6, abs=1e-6)


@SETTINGS
@given(feature_sets(min_rows=12, unique=True))
def test_prdc_ranges_and_self_match(sets):
    x, y = sets
    # distinct points (unique values): every k-NN radius is > 0, so each point lies inside its own ball
    values = prdc(x, y, k=5)
    for name in ("precision", "recall", "coverage"):
        assert 0.0 <= values[name] <= 1.0
    assert values["density"] >= 0.0
    same = prdc(x, x, k=5)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0


@SETTINGS
@given(feature_sets(), st.sampled_from([np.nan, np.inf]), st.data(),
       st.sampled_from(["fd", "kd", "prdc", "swd", "vendi"]))
def test_metrics_refuse_non_finite_features(sets, value, data, metric):
    x, y = sets
    y = y.copy()
    y[data.draw(st.integers(0, len(y) - 1)), data.draw(st.integers(0, y.shape[1] - 1))] = value
    call = {"fd": lambda: frechet_distance(x, y), "kd": lambda: kernel_distance(x, y, num_subsets=3),
            "prdc": lambda: prdc(x, y), "swd": lambda: sw_approx(x, y), "vendi": lambda: vendi_score(y)}[metric]
    with pytest.raises(GenMedEvalError, match="NaN or infinite"):
        call()
