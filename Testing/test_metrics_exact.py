"""Exactness of the fast metric paths: PRDC identical to the ``prdc`` package, FD equal to scipy.

PRDC uses float32 products and recomputes exactly only the entries near a decision threshold, so
these tests aim at the cases where that could go wrong: exact ties, duplicates, points far from
the origin, many equidistant neighbours, set sizes that are not a multiple of the tile.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from GenMedEvalLib import metrics as M
from GenMedEvalLib.metrics import distance as D
from GenMedEvalLib.metrics import manifold as MF


def package_prdc(x: np.ndarray, y: np.ndarray, k: int) -> dict[str, float]:
    """The reference: the ``prdc`` package (scikit-learn pairwise distances)."""
    from prdc import compute_prdc

    return compute_prdc(real_features=x, fake_features=y, nearest_k=k)


def assert_identical(x: np.ndarray, y: np.ndarray, k: int = 5, tile: int | None = None) -> dict[str, float]:
    """Our PRDC (public API, or the tiled core with a small tile) equals the package's bit for bit."""
    ref = package_prdc(x, y, k)
    if tile is None:
        ours = M.prdc(x, y, k=k, max_samples=10**9)
    else:
        precision = np.float32 if x.dtype == np.float32 and y.dtype == np.float32 else np.float64
        ours = MF._prdc_fast(x, y, k, precision, tile=tile)
    assert set(ours) == set(ref)
    for name in ref:
        assert ours[name] == float(ref[name]), (name, ours[name], ref[name])
    return ours


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) + shift).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_sets_identical_public_api(dtype):
    # sizes above one tile (1024) and not a multiple of it
    assert_identical(gaussian(1100, 48, 1, dtype=dtype), gaussian(1037, 48, 2, 0.1, dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_random_sets_identical_small_tiles(dtype, k):
    # many tiles (symmetric pairs, ragged last tile) with a 64-row tile
    assert_identical(gaussian(333, 20, 3, dtype=dtype), gaussian(290, 20, 4, 0.2, dtype=dtype), k=k, tile=64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_duplicates_within_and_across_sets(dtype):
    x = gaussian(300, 16, 5, dtype=dtype)
    y = gaussian(300, 16, 6, 0.1, dtype=dtype)
    xd = np.concatenate([x[:150], x[:150], x[:40]])  # every row has a twin, some have two
    yd = np.concatenate([y[:120], x[:100], y[:120], x[:30]])  # generated copies of reference rows
    ours = assert_identical(xd, yd, tile=64)
    assert ours["precision"] > 0 and ours["coverage"] > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lattice_exact_ties(dtype):
    # integer points: many pairwise distances are exactly equal, and equal to the radii
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (400, 6)).astype(dtype)
    y = rng.integers(-2, 3, (380, 6)).astype(dtype)
    assert_identical(x, y, tile=64)
    assert_identical(x, y, k=2, tile=100)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_far_from_origin_and_two_far_clusters(dtype):
    # large norms: centring removes the common offset, the two clusters keep it
    rng = np.random.default_rng(8)
    x = (1e3 + rng.standard_normal((260, 24)) * 1e-2).astype(dtype)
    y = (1e3 + rng.standard_normal((240, 24)) * 1e-2).astype(dtype)
    assert_identical(x, y, tile=64)
    sign_x = np.where(rng.random((300, 1)) < 0.5, -1.0, 1.0)
    sign_y = np.where(rng.random((280, 1)) < 0.5, -1.0, 1.0)
    x2 = (sign_x * 3e3 + rng.standard_normal((300, 24)) * 0.05).astype(dtype)
    y2 = (sign_y * 3e3 + rng.standard_normal((280, 24)) * 0.05).astype(dtype)
    assert_identical(x2, y2, tile=64)


def test_many_equidistant_neighbours_force_full_row_recompute(monkeypatch):
    # the origin has 32 neighbours at distance exactly 1, more than the kept candidates (k + 8)
    d = 16
    star = np.concatenate([np.zeros((1, d)), np.eye(d), -np.eye(d)])
    rng = np.random.default_rng(9)
    x = np.concatenate([star, 5.0 + rng.standard_normal((120, d))]).astype(np.float32)
    y = np.concatenate([star * 0.999, 5.0 + rng.standard_normal((100, d))]).astype(np.float32)
    calls = []
    real = MF._exact_dist
    monkeypatch.setattr(MF, "_exact_dist", lambda *a: calls.append(len(a[1])) or real(*a))
    assert_identical(x, y, tile=32)
    assert max(calls) >= len(x) - 1  # a whole row was recomputed exactly


def test_near_ties_use_the_exact_path(monkeypatch):
    # lattice ties sit exactly on the thresholds, so some entries must be recomputed
    rng = np.random.default_rng(10)
    x = rng.integers(0, 3, (200, 5)).astype(np.float32)
    y = rng.integers(0, 3, (210, 5)).astype(np.float32)
    calls = []
    real = MF._exact_dist
    monkeypatch.setattr(MF, "_exact_dist", lambda *a: calls.append(len(a[1])) or real(*a))
    assert_identical(x, y, tile=64)
    assert sum(calls) > 0


def test_error_bound_holds_on_random_tiles():
    # |float32 estimate - float64 formula| stays within the bound used to decide what to recompute
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((300, 512)) * rng.uniform(0.1, 50, (300, 1)) + 20).astype(np.float32)
    y = (rng.standard_normal((200, 512)) * rng.uniform(0.1, 50, (200, 1)) + 20).astype(np.float32)
    centre = (x.mean(0, dtype=np.float64) + y.mean(0, dtype=np.float64)) / 2
    a, b = MF._Side(x, centre), MF._Side(y, centre)
    approx = MF._approx_sq(a, slice(0, 300), b, slice(0, 200)).astype(np.float64)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    exact = -2.0 * x64 @ y64.T + (x64**2).sum(1)[:, None] + (y64**2).sum(1)[None, :]
    c = MF._error_scale(512)
    bound = a.bound(*c)[:, None] + b.bound(*c)[None, :]
    err = np.abs(approx - exact)
    assert np.all(err <= bound)
    assert err.max() > 0  # the estimate really is approximate


def test_prdc_keeps_inputs_and_checks_them():
    x, y = gaussian(100, 8, 12), gaussian(90, 8, 13)
    x0, y0 = x.copy(), y.copy()
    M.prdc(x, y, k=3)
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(M.MetricInputError, match="NaN"):
        M.prdc(bad, y)
    with pytest.raises(M.MetricInputError, match="dimensions"):
        M.prdc(x, y[:, :5])
    with pytest.raises(M.MetricInputError, match="at least 6"):
        M.prdc(x[:5], y)


def test_prdc_subsampling_matches_package_on_the_same_subsample():
    x, y = gaussian(700, 12, 14), gaussian(650, 12, 15, 0.1)
    rng = np.random.default_rng(0)
    xs, ys = MF._subsample(x, 500, rng), MF._subsample(y, 500, rng)
    ours = M.prdc(x, y, k=5, max_samples=500, seed=0)
    ref = package_prdc(xs, ys, 5)
    assert all(ours[n] == float(ref[n]) for n in ref)


def fd_scipy(x: np.ndarray, y: np.ndarray) -> float:
    """Direct FD with scipy's matrix square root (the pytorch-fid formula)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize(("n", "d"), [(600, 64), (1500, 200)])
def test_fd_equals_scipy_sqrtm(n, d):
    rng = np.random.default_rng(n)
    mix = np.eye(d) + rng.standard_normal((d, d)) / np.sqrt(d) * 0.5
    x = (rng.standard_normal((n, d)) @ mix).astype(np.float32)
    y = (rng.standard_normal((n, d)) @ mix * 1.1 + 0.05).astype(np.float32)
    ours = M.frechet_distance(x, y)
    ref = fd_scipy(x.astype(np.float64), y.astype(np.float64))
    assert abs(ours - ref) <= 1e-9 * abs(ref)


def test_congruence_matches_general_products():
    rng = np.random.default_rng(16)
    a = rng.standard_normal((80, 40))
    s1, s2 = a.T @ a / 79 + np.eye(40), np.cov(rng.standard_normal((90, 40)), rowvar=False)
    chol = linalg.cholesky(s1, lower=True)
    before = s2.copy()
    middle = D._congruence(chol, s2)  # its lower triangle is defined
    np.testing.assert_allclose(np.tril(middle), np.tril(chol.T @ s2 @ chol), rtol=1e-12, atol=1e-12)
    assert np.array_equal(s2, before)


@pytest.mark.parametrize("two_stage", [True, False])
def test_symmetric_eigenvalues_two_stage_and_fallback_agree_with_eigvalsh(two_stage, monkeypatch):
    """The two-stage LAPACK routine (when scipy's OpenBLAS exports it) and the fallback read the lower triangle."""
    from GenMedEvalLib.metrics import _eigen

    a = np.random.default_rng(3).standard_normal((300, 300))
    sym = a @ a.T
    lower_only = np.tril(sym) + np.triu(np.full_like(sym, 7.0), 1)  # garbage above the diagonal is ignored
    if two_stage and _eigen.two_stage_routine() is None:
        pytest.skip("this scipy build's OpenBLAS does not export LAPACKE_dsyevd_2stage")
    if not two_stage:
        monkeypatch.setattr(_eigen, "two_stage_routine", lambda: None)
    before = lower_only.copy()
    values = _eigen.symmetric_eigvals(lower_only)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(sym), rtol=1e-10, atol=1e-9 * np.abs(values).max())
    assert np.array_equal(lower_only, before)  # the input is never used as workspace


@pytest.mark.parametrize(("d", "tile"), [(600, 256), (37, 7), (5, 256)])
def test_mirror_lower_copies_the_lower_triangle_upwards(d, tile):
    lower = np.tril(np.random.default_rng(d).random((d, d))) + np.triu(np.full((d, d), -1.0), 1)
    out = D.mirror_lower(np.asfortranarray(lower.copy()), tile)
    expected = np.tril(lower) + np.tril(lower, -1).T
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "rows"), [(250, 4096), (250, 7), (1000, 256)])
def test_centred_gram_in_blocks_matches_the_float64_product(n, rows, dtype):
    x = (np.random.default_rng(n).standard_normal((n, 60)) + 3).astype(dtype)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=0)
    gram = D.centred_gram(x, mu, rows)
    np.testing.assert_allclose(gram, (x64 - mu).T @ (x64 - mu), rtol=1e-12, atol=1e-9)
    assert gram.dtype == np.float64 and np.array_equal(gram, gram.T)
    mu_cov, cov = D.mean_cov(x)
    np.testing.assert_allclose(cov, np.cov(x64, rowvar=False), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mu_cov, mu, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [3, 5])
def test_radii_identical_with_near_equal_neighbours(dtype, k):
    # 10 neighbours of one point at distances equal to 1e-9 (float64; 1e-6 float32), in a set kept far from its centre
    # (two clusters), so the float32 estimates cannot order them: the radii must still be the package's.
    # (Offsets of 10, not thousands: with norms 1e7 times the distances even the float64 formula's
    # last bits depend on the BLAS summation order, which no recomputation can reproduce.)
    from prdc.prdc import compute_nearest_neighbour_distances

    rng = np.random.default_rng(17 + k)
    d = 24
    centre = np.where(rng.random((1, d)) < 0.5, -10.0, 10.0)
    dirs = rng.standard_normal((10, d))  # fewer than the k + 8 kept candidates
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    star = centre + dirs * (1.0 + rng.uniform(0, 1e-9 if dtype == np.float64 else 1e-6, (10, 1)))
    x = np.concatenate([centre, star, -centre + rng.standard_normal((60, d))]).astype(dtype)
    precision = np.float32 if dtype == np.float32 else np.float64
    side = MF._Side(x, x.mean(axis=0, dtype=np.float64))
    ours = MF.fast_knn_radii(side, k, precision, tile=32)
    ref = compute_nearest_neighbour_distances(x, k)
    assert ours.dtype == ref.dtype
    if dtype == np.float32:
        assert np.array_equal(ours, ref)
    else:  # float64: last bits follow the summation order (GEMM there, a dot here); the 1e-9 gaps must not
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)
