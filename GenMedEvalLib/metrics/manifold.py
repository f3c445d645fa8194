"""k-NN manifold metrics: precision, recall, density, coverage (PRDC), realism, AuthPct, CT score.

Distances are Euclidean in float64 and streamed in row blocks, so memory stays bounded (a block
of ``block x N`` distances) however large the sets are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ._checks import as_features, pair

BLOCK = 2048


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


def prdc(reference, generated, *, k: int = 5, max_samples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020), as the ``prdc`` package computes them.

    Radii are k-th nearest-neighbour distances excluding self; comparisons are strict ('<').
    Both sets are subsampled (seeded) to ``max_samples``. Float32 features are compared at float32
    precision, as the reference package does. Higher is better for all four.
    """
    precision = np.float32 if np.asarray(reference).dtype == np.float32 and np.asarray(generated).dtype == np.float32 \
        else np.float64
    x, y = pair(reference, generated, min_samples=k + 1)
    rng = np.random.default_rng(seed)
    x, y = _subsample(x, max_samples, rng), _subsample(y, max_samples, rng)
    ref_radii, gen_radii = knn_radii(x, k, precision), knn_radii(y, k, precision)
    inside_any = np.zeros(len(y), bool)
    inside_count = np.zeros(len(y))
    recalled = np.zeros(len(x), bool)
    covered = np.zeros(len(x), bool)

    def visit(rows: slice, dist: np.ndarray) -> None:  # rows of reference, columns generated
        within = dist < ref_radii[rows, None]
        inside_any[:] |= within.any(axis=0)
        inside_count[:] += within.sum(axis=0)
        recalled[rows] = (dist < gen_radii[None, :]).any(axis=1)
        covered[rows] = dist.min(axis=1) < ref_radii[rows]

    _reduce(x, y, visit, precision)
    return {"precision": float(inside_any.mean()), "recall": float(recalled.mean()),
            "density": float((1.0 / k) * inside_count.mean()), "coverage": float(covered.mean())}


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
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    tr = as_features(train, "train")
    te = as_features(test, "test")
    gen = as_features(generated, "generated")
    if tr.shape[1] > pca_dims:
        pca = PCA(n_components=min(pca_dims, tr.shape[0]), random_state=seed).fit(tr)
        tr, te, gen = pca.transform(tr), pca.transform(te), pca.transform(gen)
    km = KMeans(n_clusters=cells, n_init=10, random_state=seed).fit(tr)
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


def mann_whitney_z(generated: np.ndarray, test: np.ndarray) -> float:
    """z-score of the Mann-Whitney U statistic of ``generated`` against ``test`` (no tie correction)."""
    from scipy.stats import mannwhitneyu

    m, n = len(generated), len(test)
    u = mannwhitneyu(generated, test, alternative="less").statistic
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))
