"""Feature likelihood score (FLS, Jiralerspong et al. 2023): generalisation measured as likelihood.

All sets are z-scored jointly. A Gaussian KDE with one isotropic bandwidth per kernel is centred
on the generated points; the bandwidths are fitted on the training points by maximum likelihood
(Adam). As a baseline the same is done with kernels on held-out training points. Both models are
scored by their negative log-likelihood on the test points:
FLS = 100 * exp(-2 (NLL_gen - NLL_base) / d). Higher is better (about 100: as good as real data).
"""

from __future__ import annotations

import numpy as np

from ._checks import as_features


def kde_log_likelihood(points, centres, log_sigma):
    """log p(points) under an equal-weight mixture of N(centre_j, sigma_j^2 I) (torch tensors)."""
    import math

    import torch

    d = points.shape[1]
    sq = torch.cdist(points, centres) ** 2
    log_k = -sq / (2 * torch.exp(2 * log_sigma))[None, :] - d * log_sigma[None, :] - 0.5 * d * math.log(2 * math.pi)
    return torch.logsumexp(log_k, dim=1) - math.log(centres.shape[0])


def fit_bandwidths(centres: np.ndarray, fit_points: np.ndarray, *, steps: int = 100, lr: float = 0.05,
                   seed: int = 0) -> np.ndarray:
    """Per-kernel log-bandwidths maximising the likelihood of ``fit_points`` (Adam, float64, seeded)."""
    import torch

    torch.manual_seed(seed)
    c = torch.as_tensor(centres, dtype=torch.float64)
    x = torch.as_tensor(fit_points, dtype=torch.float64)
    start = float(np.log(np.median(np.linalg.norm(fit_points[:, None] - centres[None], axis=2)) / np.sqrt(centres.shape[1]) + 1e-6))
    log_sigma = torch.full((len(c),), start, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([log_sigma], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = -kde_log_likelihood(x, c, log_sigma).mean()
        loss.backward()
        optimiser.step()
    return log_sigma.detach().numpy()


def _nll(centres, log_sigma, test) -> float:
    import torch

    return float(-kde_log_likelihood(torch.as_tensor(test, dtype=torch.float64), torch.as_tensor(centres, dtype=torch.float64),
                                     torch.as_tensor(log_sigma)).mean())


def fls(train, test, generated, *, steps: int = 100, seed: int = 0) -> float:
    """Feature likelihood score; the training set is split in two (fit / baseline kernels), seeded."""
    tr = as_features(train, "train", min_samples=4)
    te = as_features(test, "test")
    gen = as_features(generated, "generated")
    joint = np.concatenate([tr, te, gen])
    mean, std = joint.mean(0), joint.std(0)
    std[std == 0] = 1.0
    tr, te, gen = ((a - mean) / std for a in (tr, te, gen))
    order = np.random.default_rng(seed).permutation(len(tr))
    fit, held = tr[order[: len(tr) // 2]], tr[order[len(tr) // 2:]]
    nll_gen = _nll(gen, fit_bandwidths(gen, fit, steps=steps, seed=seed), te)
    nll_base = _nll(held, fit_bandwidths(held, fit, steps=steps, seed=seed), te)
    return float(100.0 * np.exp(-2.0 * (nll_gen - nll_base) / tr.shape[1]))
