"""Every metric against an independent computation (reference package or a direct SPEC formula)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from GenMedEvalLib import metrics as M
from GenMedEvalLib.metrics.distance import kid_subsets


def feats(n, d, shift=0.0, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d)) @ (np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d))
    return base * scale + shift


def fd_sqrtm(x, y):
    """pytorch-fid / clean-fid style: scipy.linalg.sqrtm of the covariance product."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d,tol", [(400, 32, 1e-9), (300, 64, 1e-9), (40, 64, 1e-5)])
def test_fd_matches_sqrtm(n, d, tol):
    x, y = feats(n, d, seed=1), feats(n + 7, d, shift=0.2, seed=2, scale=1.1)
    ours, ref = M.frechet_distance(x, y), fd_sqrtm(x, y)
    assert abs(ours - ref) / ref <= tol


def test_fd_of_a_set_with_itself_is_zero_and_grows_with_shift():
    x = feats(300, 16)
    assert M.frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    assert M.frechet_distance(x, x + 0.1) < M.frechet_distance(x, x + 0.5)


def test_kid_matches_direct_unbiased_mmd_on_same_subsets():
    x, y = feats(120, 10, seed=1), feats(90, 10, shift=0.3, seed=2)
    mean, std = M.kernel_distance(x, y, num_subsets=5, subset_size=50, seed=4)
    values = []
    for ix, iy in kid_subsets(120, 90, num_subsets=5, subset_size=50, seed=4):
        a, b = x[ix], y[iy]
        m, d = len(a), a.shape[1]
        k = lambda p, q, d=d: (p @ q.T / d + 1) ** 3  # noqa: E731
        kxx = sum(k(a[i:i + 1], a[j:j + 1])[0, 0] for i in range(m) for j in range(m) if i != j)
        kyy = sum(k(b[i:i + 1], b[j:j + 1])[0, 0] for i in range(m) for j in range(m) if i != j)
        kxy = k(a, b).sum()
        values.append(kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / m**2)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_cubic_kernel_sum_matches_the_kernel_matrix_in_numpy_and_torch():
    """The dot-product form of the kernel sum (KD's whole cost) against the kernel matrix written out,
    on both back ends (numpy on the CPU, torch on a GPU; torch checked here on CPU tensors)."""
    import torch

    from GenMedEvalLib.metrics.distance import cubic_kernel_sum, poly_mmd2

    a, b = feats(70, 12, seed=1).astype(np.float64) * 2, feats(60, 12, shift=0.3, seed=2).astype(np.float64)
    k = lambda p, q: (p @ q.T / 12 + 1) ** 3  # noqa: E731
    full, within = k(a, b).sum(), k(a, a).sum() - np.trace(k(a, a))
    direct = within / (70 * 69) + (k(b, b).sum() - np.trace(k(b, b))) / (60 * 59) - 2 * full / (70 * 60)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for x, y in ((a, b), (ta, tb)):
        assert cubic_kernel_sum(x, y) == pytest.approx(full, rel=1e-13)
        assert cubic_kernel_sum(x, x, off_diagonal=True) == pytest.approx(within, rel=1e-13)
        assert poly_mmd2(x, y) == pytest.approx(direct, rel=1e-11)
    assert poly_mmd2(a, b) == pytest.approx(poly_mmd2(ta, tb), rel=1e-12)


def test_kid_bits_do_not_depend_on_the_thread_counts():
    """Small double products differ in their last bits between thread counts (MKL's, seen on AMD EPYC), and a
    threaded dot product sums in another order: metric arithmetic (``metric_blas``, as the suite runs it) holds
    BLAS and torch to one thread, so 1, 2 or 3 threads outside give the same value, and the pools are restored."""
    import torch
    from threadpoolctl import threadpool_limits

    from GenMedEvalLib.threads import metric_blas

    x, y = feats(320, 64, seed=1) * 3, feats(310, 64, shift=0.2, seed=2) * 3
    before = torch.get_num_threads()
    values = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            with threadpool_limits(threads), metric_blas():
                values.append(M.kernel_distance(x, y, num_subsets=3, subset_size=300, seed=1))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert values[0] == values[1] == values[2]


def test_kid_of_sets_smaller_than_a_subset_is_the_whole_set_mmd():
    """Subsets that are permutations of both whole sets: one value, equal to the direct MMD^2."""
    x, y = feats(40, 6, seed=1), feats(40, 6, shift=0.3, seed=2)
    mean, std = M.kernel_distance(x, y, num_subsets=7, subset_size=1000, seed=3)
    k = lambda p, q: (p @ q.T / 6 + 1) ** 3  # noqa: E731
    m = len(x)
    direct = ((k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1)) + (k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
              - 2 * k(x, y).mean())
    assert mean == pytest.approx(direct, rel=1e-12) and std == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prdc_identical_to_prdc_package(dtype):
    from prdc import compute_prdc

    x = feats(600, 64, seed=1).astype(dtype)
    y = feats(500, 64, shift=0.05, seed=2).astype(dtype)
    ours = M.prdc(x, y, k=5)
    ref = compute_prdc(real_features=x, fake_features=y, nearest_k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == ref[key], key


def test_vendi_matches_vendi_package():
    from vendi_score import vendi

    x = feats(60, 8, seed=3)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    ref = vendi.score_K(xn @ xn.T)
    assert M.vendi_score(x) == pytest.approx(ref, rel=1e-8)
    assert M.vendi_score(feats(200, 40, seed=1)) == pytest.approx(M.vendi_score(feats(200, 40, seed=1)))
    assert M.vendi_score(np.tile(x[:1], (30, 1))) == pytest.approx(1.0)  # identical samples: one mode


def test_authpct_direct():
    train, gen = feats(80, 6, seed=1), feats(50, 6, seed=2)
    gen[:10] = train[:10] + 1e-6  # copies are not authentic
    dist = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=2)  # noqa: E731
    d_gt = dist(gen, train)
    j = d_gt.argmin(1)
    d_tt = dist(train, train)
    np.fill_diagonal(d_tt, np.inf)
    expected = 100 * np.mean(d_tt.min(1)[j] < d_gt[np.arange(len(gen)), j])
    assert M.authpct(train, gen) == pytest.approx(expected)
    assert M.authpct(train, gen) <= 80.0


def test_asw_and_is_direct():
    x, y = feats(100, 5, seed=1), feats(80, 5, shift=0.5, seed=2, scale=2)
    d = 5
    expected = np.sqrt(((x.mean(0) - y.mean(0)) ** 2).sum() / d + (
        np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean() / d) - np.sqrt(((y - y.mean(0)) ** 2).sum(1).mean() / d)) ** 2)
    assert M.sw_approx(x, y) == pytest.approx(expected)
    logits = np.random.default_rng(0).standard_normal((100, 7)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = [np.exp(np.mean([(q * np.log(q / part.mean(0))).sum() for q in part])) for part in np.array_split(p, 10)]
    mean, std = M.inception_score(logits)
    assert mean == pytest.approx(np.mean(scores)) and std == pytest.approx(np.std(scores))


def test_fd_infinity_direct_least_squares():
    x, y = feats(200, 8, seed=1), feats(150, 8, shift=0.3, seed=2)
    rng = np.random.default_rng(0)
    sizes = np.linspace(min(5000, max(150 // 10, 2)), 150, 15).astype(int)
    vals = [fd_sqrtm(x, y[rng.choice(150, s, replace=False)]) for s in sizes]
    b, a = np.polyfit(1 / sizes, vals, 1)
    assert M.fd_infinity(x, y, seed=0) == pytest.approx(a, rel=1e-6)


def test_ct_score_detects_copying():
    train, test = feats(300, 8, seed=1), feats(150, 8, seed=2)
    fresh = feats(150, 8, seed=3)
    copies = train[:150] + 1e-3 * feats(150, 8, seed=4)
    assert M.ct_score(train, test, copies) < -3 < M.ct_score(train, test, fresh)


def test_ct_score_matches_direct_implementation():
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans

    train, test, gen = feats(200, 5, seed=1), feats(100, 5, seed=2), feats(120, 5, seed=3, scale=0.9)
    km = KMeans(3, n_init=10, random_state=0).fit(train)
    lt, le, lg = km.labels_, km.predict(test), km.predict(gen)
    zs, ws = [], []
    for c in range(3):
        tr, te, ge = train[lt == c], test[le == c], gen[lg == c]
        if len(ge) <= 20:
            continue
        dg = np.linalg.norm(ge[:, None] - tr[None], axis=2).min(1)
        dt = np.linalg.norm(te[:, None] - tr[None], axis=2).min(1)
        u = mannwhitneyu(dg, dt, alternative="less").statistic
        m, n = len(dg), len(dt)
        zs.append((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))
        ws.append(len(te) / len(test))
    assert M.ct_score(train, test, gen) == pytest.approx(np.average(zs, weights=ws))
    # the fit on train is remembered: another training set in between does not change the value
    M.ct_score(feats(200, 5, seed=9), test, gen)
    assert M.ct_score(train, test, gen) == pytest.approx(np.average(zs, weights=ws))


def test_mmd_direct():
    x, y = feats(40, 6, seed=1), feats(30, 6, shift=0.5, seed=2)
    xn, yn = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    k = lambda a, b: np.exp(-np.linalg.norm(a[:, None] - b[None], axis=2) ** 2 / (2 * 100.0))  # noqa: E731
    kxx, kyy = k(xn, xn), k(yn, yn)
    expected = 1000 * ((kxx.sum() - 40) / (40 * 39) + (kyy.sum() - 30) / (30 * 29) - 2 * k(xn, yn).mean())
    assert M.mmd_rbf(x, y) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("bad,match", [
    (np.ones((1, 4)), "at least 2"),
    (np.full((5, 4), np.nan), "NaN"),
    (np.ones((5, 3)), "dimensions"),
    (np.ones(5), "2D"),
])
def test_degenerate_input_gives_a_clear_error(bad, match):
    with pytest.raises(M.MetricInputError, match=match):
        M.frechet_distance(np.ones((5, 4)) + np.arange(4), bad)


def test_identical_features_documented_values():
    x = np.ones((10, 4))
    assert M.frechet_distance(x, x) == 0.0
    assert M.vendi_score(x) == pytest.approx(1.0)


def test_suite_rows_unavailable_sets_and_bootstrap():
    ref, gen = feats(120, 8, seed=1), feats(100, 8, shift=0.3, seed=2)
    result = M.compute_suite({"reference": ref, "generated": gen}, ["fd", "prdc", "authpct", "is"], bootstrap=20, seed=0)
    by = {r.metric: r for r in result.rows}
    assert set(by) == {"fd", "precision", "recall", "density", "coverage", "authpct", "is", "is_std"}
    assert by["fd"].value == pytest.approx(M.frechet_distance(ref, gen))
    assert by["fd"].ci_low < by["fd"].value < by["fd"].ci_high
    assert not by["authpct"].available and "train" in by["authpct"].note
    assert not by["is"].available and "logits" in by["is"].note
    again = M.compute_suite({"reference": ref, "generated": gen}, ["fd"], bootstrap=20, seed=0)
    assert again.rows[0].ci_low == by["fd"].ci_low  # seeded
    assert "fd" in result.format()


def test_suite_unknown_metric():
    from GenMedEvalLib.errors import ParameterError

    with pytest.raises(ParameterError, match="unknown metric"):
        M.compute_suite({"reference": feats(10, 2), "generated": feats(10, 2)}, "fid2")


def test_sfid_uses_spatial_features():
    ref, gen = feats(80, 6, seed=1), feats(70, 6, shift=0.2, seed=2)
    sp_ref, sp_gen = feats(80, 12, seed=3), feats(70, 12, shift=0.5, seed=4)
    result = M.compute_suite({"reference": ref, "generated": gen}, ["fd", "sfid"],
                             spatial={"reference": sp_ref, "generated": sp_gen})
    assert result.value("sfid") == pytest.approx(fd_sqrtm(sp_ref, sp_gen), rel=1e-9)
    missing = M.compute_suite({"reference": ref, "generated": gen}, ["sfid"])
    assert not missing.rows[0].available and "spatial" in missing.rows[0].note


def test_sliced_wasserstein_hand_computed_two_point_case():
    from GenMedEvalLib.metrics.pixel import sliced_wasserstein

    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 2.0], [1.0, 2.0]])
    # along x the sorted projections agree (0 vs 0, 1 vs 1); along y every point moves by 2
    dirs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert sliced_wasserstein(a, b, dirs) == pytest.approx((0 + 2) / 2)
    diag = np.array([[1.0], [1.0]]) / np.sqrt(2)
    assert sliced_wasserstein(a, b, diag) == pytest.approx(2 / np.sqrt(2))


def test_pixel_swd_zero_for_identical_sets_and_grows_with_noise():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    images = np.stack([ndimage.gaussian_filter(rng.random((64, 64)), 3) for _ in range(6)])
    assert M.pixel_swd(images, images.copy(), seed=1, descriptors=32, directions=16, repeats=2) == pytest.approx(0, abs=1e-12)
    mild = images + 0.01 * rng.standard_normal(images.shape)
    strong = images + 0.1 * rng.standard_normal(images.shape)
    kw = dict(seed=1, descriptors=64, directions=32, repeats=2)
    assert M.pixel_swd(images, mild, **kw) < M.pixel_swd(images, strong, **kw)
    with pytest.raises(M.MetricInputError, match="sizes differ"):
        M.pixel_swd(images, images[:, :32], **kw)


def test_kde_log_likelihood_matches_scipy_mixture():
    import torch
    from scipy.stats import multivariate_normal

    from GenMedEvalLib.metrics.likelihood import kde_log_likelihood

    rng = np.random.default_rng(0)
    centres, points, log_sigma = rng.standard_normal((5, 3)), rng.standard_normal((7, 3)), rng.normal(0, 0.3, 5)
    ours = kde_log_likelihood(torch.tensor(points), torch.tensor(centres), torch.tensor(log_sigma)).numpy()
    direct = np.log(np.mean([multivariate_normal(c, np.exp(2 * s) * np.eye(3)).pdf(points)
                             for c, s in zip(centres, log_sigma, strict=True)], axis=0))
    np.testing.assert_allclose(ours, direct, rtol=1e-10)


def test_fls_near_100_for_real_like_samples_and_lower_for_bad_ones():
    train, test = feats(120, 4, seed=1), feats(60, 4, seed=2)
    good, bad = feats(60, 4, seed=3), feats(60, 4, seed=3, shift=3.0)
    good_fls, bad_fls = M.fls(train, test, good, steps=60), M.fls(train, test, bad, steps=60)
    assert 50 < good_fls < 200 and bad_fls < 0.5 * good_fls
    assert M.fls(train, test, good, steps=60) == good_fls  # seeded
