"""Distribution distances on features: FD (FID, sFID), FD-infinity, KD (KID), RBF MMD, ASW.

Reference definitions: dgm-eval (Stein et al., NeurIPS 2023) and SPEC section 4. All statistics
are float64.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.linalg import blas, lapack

from ._checks import MetricInputError, pair
from ._eigen import symmetric_eigvals

GRAM_ROWS = 4096


def centred_gram(x: np.ndarray, mu: np.ndarray, rows: int = GRAM_ROWS) -> np.ndarray:
    """(x - mu)^T (x - mu) in float64, accumulated over blocks of ``rows`` samples.

    Each block is centred in float64 (exact for float32 input) and added into the lower triangle
    of one Fortran-ordered result by BLAS ``syrk`` (half the flops of a general product, no
    temporary per block); the upper triangle is mirrored once at the end. Only one block is ever
    converted: no float64 copy of the whole feature matrix, no page-fault storm.
    """
    d = x.shape[1]
    out = np.zeros((d, d), order="F")
    for start in range(0, x.shape[0], rows):
        block = np.subtract(x[start:start + rows], mu, dtype=np.float64)
        out = blas.dsyrk(1.0, block.T, beta=1.0, c=out, trans=0, lower=1, overwrite_c=1)
    return mirror_lower(out)


def mirror_lower(matrix: np.ndarray, tile: int = 256) -> np.ndarray:
    """Copy the strict lower triangle onto the upper one in place, tile by tile (cache-friendly)."""
    d = matrix.shape[0]
    for j in range(0, d, tile):
        matrix[j:j + tile, j + tile:] = matrix[j + tile:, j:j + tile].T
        diagonal = matrix[j:j + tile, j:j + tile]
        upper = np.triu_indices(diagonal.shape[0], 1)
        diagonal[upper] = diagonal.T[upper]
    return matrix


def mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and unbiased (N - 1) covariance of float32 or float64 features."""
    mu = x.mean(axis=0, dtype=np.float64)
    cov = centred_gram(x, mu)
    cov /= x.shape[0] - 1
    return mu, cov


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float | None:
    """Tr sqrt(S1 S2) via Cholesky S1 = L L^T and the eigenvalues of L^T S2 L (symmetric PSD).

    S1 S2 is similar to L^T S2 L, so their eigenvalues agree and the trace of the square root is
    the sum of the square roots of those (clipped at 0) eigenvalues. None when S1 is singular.
    """
    try:
        chol = linalg.cholesky(s1, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    eig = symmetric_eigvals(_congruence(chol, s2))
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def _congruence(chol: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """The lower triangle of L^T S2 L (upper triangle: undefined), by LAPACK ``sygst``.

    ``sygst`` uses the symmetry of S2: about d^3 flops against 2 d^3 for two triangular products.
    """
    middle, info = lapack.dsygst(s2, chol, itype=2, lower=1)
    if info != 0:
        raise MetricInputError(f"LAPACK dsygst rejected argument {-info}")
    return middle


def _trace_sqrt_data_space(x: np.ndarray, y: np.ndarray) -> float:
    """Tr sqrt(S1 S2) exactly from the data when N < d: the nuclear norm of Xc Yc^T / sqrt((n-1)(m-1)).

    With S1 = A^T A and S2 = B^T B, the non-zero eigenvalues of S1 S2 are the squared singular
    values of A B^T, a small (n x m) matrix.
    """
    a = np.subtract(x, x.mean(axis=0, dtype=np.float64), dtype=np.float64) / np.sqrt(x.shape[0] - 1)
    b = np.subtract(y, y.mean(axis=0, dtype=np.float64), dtype=np.float64) / np.sqrt(y.shape[0] - 1)
    return float(linalg.svdvals(a @ b.T, check_finite=False).sum())


def frechet_distance(reference, generated) -> float:
    """Fréchet distance ||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2) (Heusel et al. 2017).

    FID on Inception pool features, sFID on the Mixed_6e spatial features. Exact without
    ``sqrtm``: Cholesky plus symmetric eigenvalues when the covariance is non-singular, the
    data-space singular values when N <= d or it is singular. Lower is better.
    """
    x, y = pair(reference, generated, keep_float32=True)
    return _fd_against(x, mean_cov(x), y)


def _fd_against(x: np.ndarray, stats1: tuple[np.ndarray, np.ndarray], y: np.ndarray) -> float:
    """FD of checked features ``y`` against ``x`` whose mean and covariance ``stats1`` are known."""
    mu1, s1 = stats1
    mu2, s2 = mean_cov(y)
    diff = mu1 - mu2
    traces = float(np.trace(s1) + np.trace(s2))
    small = min(x.shape[0], y.shape[0]) <= x.shape[1]
    tr_sqrt = None if small else _trace_sqrt_product(s1, s2)
    if tr_sqrt is None:
        tr_sqrt = _trace_sqrt_data_space(x, y)
    value = float(diff @ diff + traces - 2.0 * tr_sqrt)
    if not np.isfinite(value):  # as dgm-eval: regularise both covariances and retry
        eps = 1e-6 * np.eye(s1.shape[0])
        tr_sqrt = _trace_sqrt_product(s1 + eps, s2 + eps)
        value = float(diff @ diff + traces - 2.0 * (tr_sqrt if tr_sqrt is not None else np.nan))
    return max(value, 0.0)


def fd_infinity(reference, generated, *, num_points: int = 15, seed: int = 0) -> float:
    """FD extrapolated to infinitely many generated samples (Chong and Forsyth 2020).

    FD of the full reference against generated subsets of ``num_points`` sizes evenly spaced from
    ``min(5000, max(N // 10, 2))`` to ``N``; least-squares fit FD = a + b / N; returns ``a``.
    Lower is better.
    """
    x, y = pair(reference, generated, keep_float32=True)
    n = y.shape[0]
    sizes = np.linspace(min(5000, max(n // 10, 2)), n, num_points).astype(int)
    rng = np.random.default_rng(seed)
    stats1 = mean_cov(x)  # the reference statistics, once for all subsets
    values = [_fd_against(x, stats1, y[rng.choice(n, size=size, replace=False)]) for size in sizes]
    design = np.stack([np.ones_like(sizes, dtype=float), 1.0 / sizes], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.asarray(values), rcond=None)
    return float(coef[0])


def cubic_kernel_sum(a, b, *, off_diagonal: bool = False) -> float:
    """Sum of the cubic polynomial kernel (a b^T / d + 1)^3 over all pairs (a, b float64 numpy or torch).

    ``off_diagonal``: a is b, and the pairs of a sample with itself are left out (unbiased MMD^2).
    Computed as sum((a b^T + d)^3) / d^3, the sum of cubes as one dot product of k * k with k: one
    matrix product, two passes over the kernel matrix and a BLAS dot, so a subset costs about its
    matrix product (``Testing/benchmarks/bench_metrics.py``).
    """
    d = a.shape[1]
    k = a @ b.T
    k += d
    square = k * k
    if isinstance(k, np.ndarray):
        total = float(np.vdot(square, k))
    else:
        total = float(square.reshape(-1).dot(k.reshape(-1)))
    if off_diagonal:
        diag = k.diagonal()
        total -= float((diag * diag * diag).sum())
    return total / float(d) ** 3


def kid_subsets(n_ref: int, n_gen: int, *, num_subsets: int = 100, subset_size: int = 1000,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (reference, generated) index subsets KD draws, without replacement, reproducibly."""
    m = min(subset_size, n_ref, n_gen)
    rng = np.random.default_rng(seed)
    return [(rng.choice(n_ref, m, replace=False), rng.choice(n_gen, m, replace=False)) for _ in range(num_subsets)]


def kernel_distance(reference, generated, *, num_subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0, device: str | None = None) -> tuple[float, float]:
    """KD / KID (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel, over subsets.

    Returns (mean, std) over ``num_subsets`` subsets of size ``min(subset_size, N_ref, N_gen)``.
    Kernels in float64: with numpy on the CPU (its BLAS; the suite runs every metric inside
    ``threads.metric_blas``, one BLAS thread, so the bits do not depend on ``--threads``), with
    torch on a GPU (``device``, default CUDA when present). Lower is better.
    """
    from ..features.base import pick_device

    x, y = pair(reference, generated, keep_float32=True)
    dev = pick_device(device)
    if not str(dev).startswith("cpu"):
        import torch

        x, y = (torch.from_numpy(f).to(dev, torch.float64) for f in (x, y))
    if len(x) == len(y) <= subset_size:
        # Every subset would be a permutation of both whole sets and the unbiased MMD^2 is
        # permutation invariant: all subsets give the same value, so compute it once (std 0).
        return poly_mmd2(_rows(x), _rows(y)), 0.0
    subsets = kid_subsets(len(x), len(y), num_subsets=num_subsets, subset_size=subset_size, seed=seed)
    values = [poly_mmd2(_rows(x, ix), _rows(y, iy)) for ix, iy in subsets]
    return float(np.mean(values)), float(np.std(values))


def _rows(features, index: np.ndarray | None = None):
    """The rows ``index`` (None: all) of a numpy array, as float64 (converting a subset is cheaper than
    a whole set's fresh float64 copy), or of a float64 torch tensor, indexed on its device."""
    if index is None:
        return features.astype(np.float64) if isinstance(features, np.ndarray) else features
    if isinstance(features, np.ndarray):
        return features[index].astype(np.float64)
    import torch

    return features[torch.from_numpy(index).to(features.device)]


def poly_mmd2(a, b) -> float:
    """Unbiased MMD^2 of two float64 sets (numpy or torch) under the cubic polynomial kernel."""
    m, n = len(a), len(b)
    within = (cubic_kernel_sum(a, a, off_diagonal=True) / (m * (m - 1))
              + cubic_kernel_sum(b, b, off_diagonal=True) / (n * (n - 1)))
    return within - 2.0 * cubic_kernel_sum(a, b) / (m * n)


def mmd_rbf(reference, generated, *, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """CMMD-style MMD^2 (Jayasumana et al. 2024): Gaussian RBF kernel, features L2-normalised, x1000.

    Uses the unbiased estimator on the full sets. Lower is better.
    """
    x, y = pair(reference, generated)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    gamma = 1.0 / (2.0 * sigma**2)

    def k(a, b):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.exp(-gamma * np.clip(sq, 0, None))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    value = ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean())
    return float(scale * value)


def sw_approx(reference, generated) -> float:
    """Approximate sliced Wasserstein distance (Nadjahi et al. 2021), the closed form of SPEC.

    sqrt(||m_X - m_Y||^2 / d + (sqrt(E||X - m_X||^2 / d) - sqrt(E||Y - m_Y||^2 / d))^2). Lower is better.
    """
    x, y = pair(reference, generated)
    d = x.shape[1]
    mx, my = x.mean(0), y.mean(0)
    sx = np.sqrt(((x - mx) ** 2).sum(1).mean() / d)
    sy = np.sqrt(((y - my) ** 2).sum(1).mean() / d)
    return float(np.sqrt(((mx - my) ** 2).sum() / d + (sx - sy) ** 2))


__all__ = ["MetricInputError", "fd_infinity", "frechet_distance", "kernel_distance", "mmd_rbf", "sw_approx"]
