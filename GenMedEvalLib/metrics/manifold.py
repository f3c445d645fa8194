"""k-NN manifold metrics: precision, recall, density, coverage (PRDC), realism, AuthPct, CT score.

Distances are Euclidean in float64 and streamed in row blocks, so memory stays bounded (a block
of ``block x N`` distances) however large the sets are. PRDC streams float32 tiles instead (half
the products for the symmetric self-distances) and recomputes with the float64 formula every
entry whose float32 estimate lies within a proven rounding bound of a decision, so its result is
the ``prdc`` package's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..digest import array_digest
from ._checks import MetricInputError, as_features, pair

BLOCK = 1024


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def distance_blocks(a: np.ndarray, b: np.ndarray, block: int = BLOCK,
                    precision: type = np.float64) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, D)`` with D the Euclidean distances of ``a[rows]`` to every row of ``b``.

    Squared distances are computed in float64; with ``precision=np.float32`` they are rounded to
    float32 before the square root, exactly as scikit-learn does for float32 features (and so
    the ``prdc`` package), so strict comparisons agree with it bit for bit.
    """
    nb = _sq_norms(b)
    for start in range(0, len(a), block):
        rows = slice(start, min(start + block, len(a)))
        sq = -2.0 * (a[rows] @ b.T)
        sq += _sq_norms(a[rows])[:, None]
        sq += nb[None, :]
        if precision is np.float32:
            sq = sq.astype(np.float32)
        np.maximum(sq, 0, out=sq)
        yield rows, np.sqrt(sq, out=sq)


def knn_radii(x: np.ndarray, k: int, precision: type = np.float64) -> np.ndarray:
    """Distance of each row to its k-th nearest neighbour, excluding itself (the (k+1)-th smallest)."""
    radii = np.empty(len(x), dtype=precision)
    for rows, dist in distance_blocks(x, x, precision=precision):
        radii[rows] = np.partition(dist, k, axis=1)[:, k]
    return radii


def _reduce(a: np.ndarray, b: np.ndarray, fn: Callable[[slice, np.ndarray], None], precision: type = np.float64) -> None:
    for rows, dist in distance_blocks(a, b, precision=precision):
        fn(rows, dist)


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= limit else x[np.sort(rng.choice(len(x), limit, replace=False))]


TILE = 1024
KEEP_EXTRA = 8
SLACK = 1e-5  # relative margin that covers the final rounding to float32 and the square root


def _as_features_keep_dtype(x, name: str, min_samples: int) -> np.ndarray:
    """Checked ``(N, D)`` features kept in float32 or float64 (no wholesale float64 copy of float32)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MetricInputError(f"{name} features must be a 2D array (N, D), got shape {x.shape}")
    if x.shape[0] < min_samples:
        raise MetricInputError(f"{name} features need at least {min_samples} samples, got {x.shape[0]}")
    for start in range(0, len(x), 4096):
        if not np.all(np.isfinite(x[start:start + 4096])):
            raise MetricInputError(f"{name} features contain NaN or infinite values")
    return x


def _pair_keep_dtype(x, y, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    x = _as_features_keep_dtype(x, "reference", min_samples)
    y = _as_features_keep_dtype(y, "generated", min_samples)
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(f"reference features have {x.shape[1]} dimensions, generated {y.shape[1]}")
    return x, y


class _Side:
    """One feature set: the exact data and its float64 squared norms (for the exact formula), plus a
    float32 copy centred on ``centre`` (and its norms) for the fast products; centring keeps the
    float32 rounding error small for features far from the origin."""

    def __init__(self, x: np.ndarray, centre: np.ndarray):
        self.x = x
        self.x32 = np.empty(x.shape, np.float32)
        self.sq = np.empty(len(x))
        self.sqc = np.empty(len(x))
        for start in range(0, len(x), 4096):
            rows = slice(start, start + 4096)
            chunk = x[rows].astype(np.float64)
            self.sq[rows] = _sq_norms(chunk)
            chunk -= centre
            self.x32[rows] = chunk
            self.sqc[rows] = _sq_norms(chunk)
        self.sq32 = self.sqc.astype(np.float32)

    def bound(self, c32: float, c64: float) -> np.ndarray:
        """Per-row share of the error bound: c32 ||a - centre||^2 + c64 ||a||^2."""
        return c32 * self.sqc + c64 * self.sq


def _error_scale(d: int) -> tuple[float, float]:
    """(c32, c64): |estimate - exact| <= c32 (|a'|^2 + |b'|^2) + c64 (|a|^2 + |b|^2), a' = a - centre.

    c32: float32 dot product (gamma_d), rounding the centred rows to float32 (2u), the float32
    additions of the norms (about 6u); c64: the float64 rounding of the exact formula on the raw
    rows; 2|a.b| <= |a|^2 + |b|^2. A 5% safety factor on top.
    """
    u32, u64 = 2.0**-24, 2.0**-53
    gamma = (d + 16) * u32 / (1.0 - (d + 16) * u32)
    return 1.05 * gamma + 1e-12, 1.05 * (d + 16) * u64 / (1.0 - (d + 16) * u64)


def _approx_sq(a: _Side, ra: slice, b: _Side, rb: slice) -> np.ndarray:
    """Float32 squared distances ||a||^2 + ||b||^2 - 2 a.b for a tile (one float32 GEMM)."""
    tile = a.x32[ra] @ b.x32[rb].T
    tile *= np.float32(-2.0)
    tile += a.sq32[ra, None]
    tile += b.sq32[None, rb]
    return tile


def _exact_dist(a: _Side, ia: np.ndarray, b: _Side, ib: np.ndarray, precision: type) -> np.ndarray:
    """Distances of pairs (a[ia], b[ib]) as scikit-learn computes them (float64 formula, then precision)."""
    out = np.empty(len(ia), dtype=precision)
    for start in range(0, len(ia), 2048):
        s = slice(start, start + 2048)
        sq = -2.0 * np.einsum("ij,ij->i", a.x[ia[s]], b.x[ib[s]], dtype=np.float64)  # float32 upcast on the fly
        sq += a.sq[ia[s]]
        sq += b.sq[ib[s]]
        sq = sq.astype(precision)
        np.maximum(sq, 0, out=sq)
        out[s] = np.sqrt(sq)
    return out


def _smallest(values: np.ndarray, index: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` smallest values per row (unsorted) and their column indices."""
    if values.shape[1] <= m:
        return values, index
    part = np.argpartition(values, m - 1, axis=1)[:, :m]
    return np.take_along_axis(values, part, axis=1), np.take_along_axis(index, part, axis=1)


def _tiles(n: int, tile: int) -> list[slice]:
    return [slice(s, min(s + tile, n)) for s in range(0, n, tile)]


def fast_knn_radii(side: _Side, k: int, precision: type, tile: int = TILE) -> np.ndarray:
    """k-NN radii (self excluded) equal to the ``prdc`` package's, from half the float32 products.

    Distances are symmetric, so each tile pair is multiplied once and feeds the candidates of both
    its rows and its columns. Each row keeps its ``k + KEEP_EXTRA`` smallest float32 estimates; the
    ones within the rounding bound of the k-th are recomputed exactly. A row whose kept candidates
    cannot prove completeness is recomputed exactly in full.
    """
    n = len(side.x)
    m = min(k + KEEP_EXTRA, n - 1)
    cand_v = np.full((n, m), np.inf, dtype=np.float32)
    cand_i = np.full((n, m), -1, dtype=np.int64)
    blocks = _tiles(n, tile)
    for bi, ri in enumerate(blocks):
        for rj in blocks[bi:]:
            sq = _approx_sq(side, ri, side, rj)
            if ri == rj:
                np.fill_diagonal(sq, np.inf)
            cols = np.broadcast_to(np.arange(rj.start, rj.stop), sq.shape)
            v, i = _smallest(sq, cols, m)
            _merge(cand_v, cand_i, ri, v, i, m)
            if ri != rj:
                sqt = np.ascontiguousarray(sq.T)
                rows = np.broadcast_to(np.arange(ri.start, ri.stop), sqt.shape)
                v, i = _smallest(sqt, rows, m)
                _merge(cand_v, cand_i, rj, v, i, m)
    return _resolve_radii(side, cand_v, cand_i, k, precision)


def _merge(cand_v: np.ndarray, cand_i: np.ndarray, rows: slice, v: np.ndarray, i: np.ndarray, m: int) -> None:
    v, i = _smallest(np.concatenate([cand_v[rows], v], axis=1), np.concatenate([cand_i[rows], i], axis=1), m)
    cand_v[rows], cand_i[rows] = v, i


def _resolve_radii(side: _Side, cand_v: np.ndarray, cand_i: np.ndarray, k: int, precision: type) -> np.ndarray:
    """Exact k-th neighbour distances from the float32 candidates (exact recomputation near the k-th)."""
    n = len(side.x)
    order = np.argsort(cand_v, axis=1)
    cand_v, cand_i = np.take_along_axis(cand_v, order, axis=1), np.take_along_axis(cand_i, order, axis=1)
    per_row = side.bound(*_error_scale(side.x.shape[1]))
    bound = per_row + per_row.max()
    approx_k = cand_v[:, k - 1].astype(np.float64)
    limit = approx_k + 2.0 * bound + SLACK * np.abs(approx_k)
    complete = cand_v[:, -1].astype(np.float64) > limit if cand_v.shape[1] < n - 1 else np.ones(n, bool)
    radii = np.empty(n, dtype=precision)
    approx = cand_v.astype(np.float64)
    below = approx < (approx_k - 2.0 * bound)[:, None]  # surely ranked before the k-th: no recomputation
    rank = k - 1 - below.sum(axis=1)  # rank of the k-th among the unsure candidates
    rows, cols = np.nonzero((approx <= limit[:, None]) & ~below & complete[:, None])
    exact_full = np.full(cand_v.shape, np.inf, dtype=precision)
    exact_full[rows, cols] = _exact_dist(side, rows, side, cand_i[rows, cols], precision)
    exact_full.sort(axis=1)
    radii[:] = exact_full[np.arange(n), rank]
    for row in np.flatnonzero(~complete):
        others = np.delete(np.arange(n), row)
        dist = _exact_dist(side, np.full(n - 1, row), side, others, precision)
        radii[row] = np.partition(dist, k - 1)[k - 1]
    return radii


def _thresholds(radii: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 (lo, hi): squared estimate below lo is surely inside the radius, above hi surely not."""
    r2 = radii.astype(np.float64) ** 2
    lo = r2 * (1.0 - SLACK) - bound
    hi = r2 * (1.0 + SLACK) + bound
    lo = np.where(r2 > 1e-30, lo, -np.inf)  # radius 0 (or float32-subnormal): nothing is surely inside
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32.astype(np.float64) > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32.astype(np.float64) < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32, hi32


def _inside(approx: np.ndarray, lo: np.ndarray, hi: np.ndarray, exact_fn: Callable[[np.ndarray, np.ndarray],
            np.ndarray]) -> np.ndarray:
    """``dist < radius`` decided from the float32 estimate, exactly recomputed where it is too close."""
    inside = approx < lo
    unsure = (approx <= hi) ^ inside
    rows, cols = np.nonzero(unsure)
    if len(rows):
        inside[rows, cols] = exact_fn(rows, cols)
    return inside


def _prdc_fast(x: np.ndarray, y: np.ndarray, k: int, precision: type, tile: int = TILE) -> dict[str, float]:
    """PRDC from float32 products with exact recomputation near every decision threshold."""
    centre = (x.mean(axis=0, dtype=np.float64) + y.mean(axis=0, dtype=np.float64)) / 2
    a, b = _Side(x, centre), _Side(y, centre)
    ref_radii, gen_radii = fast_knn_radii(a, k, precision, tile), fast_knn_radii(b, k, precision, tile)
    ea, eb = a.bound(*_error_scale(x.shape[1])), b.bound(*_error_scale(x.shape[1]))
    inside_count = np.zeros(len(y))
    recalled = np.zeros(len(x), bool)
    covered = np.zeros(len(x), bool)
    for ri in _tiles(len(x), tile):
        for rj in _tiles(len(y), tile):
            approx = _approx_sq(a, ri, b, rj)
            ia, ib = np.arange(ri.start, ri.stop), np.arange(rj.start, rj.stop)
            lo, hi = _thresholds(ref_radii[ri], ea[ri] + eb[rj].max())

            def in_ref(r, q, ia=ia, ib=ib, ri=ri):
                return _exact_dist(a, ia[r], b, ib[q], precision) < ref_radii[ri][r]

            within = _inside(approx, lo[:, None], hi[:, None], in_ref)
            inside_count[rj] += within.sum(axis=0)
            covered[ri] |= within.any(axis=1)
            lo, hi = _thresholds(gen_radii[rj], eb[rj] + ea[ri].max())

            def in_gen(r, q, ia=ia, ib=ib, rj=rj):
                return _exact_dist(a, ia[r], b, ib[q], precision) < gen_radii[rj][q]

            recalled[ri] |= _inside(approx, lo[None, :], hi[None, :], in_gen).any(axis=1)
    return {"precision": float((inside_count > 0).mean()), "recall": float(recalled.mean()),
            "density": float((1.0 / k) * inside_count.mean()), "coverage": float(covered.mean())}


def prdc(reference, generated, *, k: int = 5, max_samples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020), identical to the ``prdc`` package.

    Radii are k-th nearest-neighbour distances excluding self; comparisons are strict ('<').
    Both sets are subsampled (seeded) to ``max_samples``. Float32 features are compared at float32
    precision, as the reference package does. Bulk distances are float32 products (self-distances
    once per pair); every entry close enough to a decision to be affected by their rounding is
    recomputed with the package's float64 formula, so the result is the package's. Higher is better.
    """
    x, y = _pair_keep_dtype(reference, generated, k + 1)
    precision = np.float32 if x.dtype == np.float32 and y.dtype == np.float32 else np.float64
    rng = np.random.default_rng(seed)
    x, y = _subsample(x, max_samples, rng), _subsample(y, max_samples, rng)
    return _prdc_fast(x, y, k, precision)


def realism_score(reference, generated, *, k: int = 5, seed: int = 0, max_samples: int = 10_000) -> float:
    """Mean realism score (Kynkäänniemi et al. 2019) of the generated samples.

    Per generated sample: max over reference samples whose k-NN radius is below the median radius
    of radius / distance; the mean over samples is reported. Higher is better.
    """
    x, y = pair(reference, generated, min_samples=k + 1)
    rng = np.random.default_rng(seed)
    x, y = _subsample(x, max_samples, rng), _subsample(y, max_samples, rng)
    radii = knn_radii(x, k)
    keep = radii < np.median(radii)
    x, radii = x[keep], radii[keep]
    scores = np.empty(len(y))
    for rows, dist in distance_blocks(y, x):
        scores[rows] = (radii[None, :] / np.maximum(dist, 1e-12)).max(axis=1)
    return float(scores.mean())


def nearest(a: np.ndarray, b: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of each row of ``a``'s nearest row in ``b`` (excluding the same index)."""
    idx = np.empty(len(a), int)
    dst = np.empty(len(a))
    for rows, dist in distance_blocks(a, b):
        if exclude_self:
            dist[np.arange(dist.shape[0]), np.arange(rows.start, rows.stop)] = np.inf
        idx[rows] = dist.argmin(axis=1)
        dst[rows] = dist[np.arange(dist.shape[0]), idx[rows]]
    return idx, dst


def authpct(train, generated) -> float:
    """AuthPct (Alaa et al. 2022): percentage of generated samples judged authentic, not copies.

    g is authentic when its nearest training sample j lies closer to another training sample than
    to g: d(j, NN_train(j)) < d(g, j). Higher is better; copying training data lowers it.
    """
    tr, gen = pair(train, generated, names=("train", "generated"))
    j, d_gj = nearest(gen, tr)
    _, d_train = nearest(tr, tr, exclude_self=True)
    return float(100.0 * np.mean(d_train[j] < d_gj))


def ct_score(train, test, generated, *, cells: int = 3, pca_dims: int = 64, min_generated: int = 20,
             seed: int = 0) -> float:
    """Data-copying test statistic C_T (Meehan et al. 2020). Closest to 0 is best.

    PCA to ``pca_dims`` (fitted on train) when D is larger, k-means with ``cells`` cells on train;
    per cell, 1-NN distances to the cell's training points for generated and for test points; the
    Mann-Whitney U (generated 'less') becomes a z-score; cells holding more than ``min_generated``
    generated samples are averaged weighted by their test fraction. Far below 0: copying.
    """
    tr = as_features(train, "train")
    te = as_features(test, "test")
    gen = as_features(generated, "generated")
    pca, km = _ct_cells(tr, cells, pca_dims, seed)
    if pca is not None:
        tr, te, gen = pca.transform(tr), pca.transform(te), pca.transform(gen)
    lab_tr, lab_te, lab_gen = km.labels_, km.predict(te), km.predict(gen)
    zs, weights = [], []
    for c in range(cells):
        cell_tr, cell_te, cell_gen = tr[lab_tr == c], te[lab_te == c], gen[lab_gen == c]
        if len(cell_gen) <= min_generated or len(cell_te) == 0 or len(cell_tr) == 0:
            continue
        d_gen = nearest(cell_gen, cell_tr)[1]
        d_te = nearest(cell_te, cell_tr)[1]
        zs.append(mann_whitney_z(d_gen, d_te))
        weights.append(len(cell_te) / len(te))
    if not zs:
        return float("nan")
    return float(np.average(zs, weights=weights))


_CT_FITS: dict[tuple, tuple] = {}


def _ct_cells(train: np.ndarray, cells: int, pca_dims: int, seed: int):
    """The PCA (or None) and k-means fitted on ``train``; remembered for the last few training sets.

    A sweep or bootstrap evaluates many generated sets against one training set: the fit depends
    only on the training features, so it is done once (keyed by their bytes and the settings).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    key = (array_digest(train), cells, pca_dims, seed)
    if key not in _CT_FITS:
        pca = None
        if train.shape[1] > pca_dims:
            pca = PCA(n_components=min(pca_dims, train.shape[0]), random_state=seed).fit(train)
        km = KMeans(n_clusters=cells, n_init=10, random_state=seed).fit(train if pca is None else pca.transform(train))
        if len(_CT_FITS) >= 4:
            _CT_FITS.pop(next(iter(_CT_FITS)))
        _CT_FITS[key] = (pca, km)
    return _CT_FITS[key]


def mann_whitney_z(generated: np.ndarray, test: np.ndarray) -> float:
    """z-score of the Mann-Whitney U statistic of ``generated`` against ``test`` (no tie correction)."""
    from scipy.stats import mannwhitneyu

    m, n = len(generated), len(test)
    u = mannwhitneyu(generated, test, alternative="less").statistic
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))
