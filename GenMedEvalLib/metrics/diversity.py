"""Diversity of a set: Vendi score and Inception Score."""

from __future__ import annotations

import numpy as np

from ._checks import MetricInputError, as_features


def vendi_score(generated) -> float:
    """Vendi score (Friedman and Dieng 2023): exp(entropy of the eigenvalues of K = X X^T / n).

    Rows are L2-normalised (cosine kernel). The non-zero eigenvalues of X X^T / n equal those of
    the d x d matrix X^T X / n, whichever is smaller is used. Higher is more diverse.
    """
    x = as_features(generated, "generated", min_samples=1)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = x.shape[0]
    gram = (x.T @ x) / n if x.shape[1] < n else (x @ x.T) / n
    eig = np.clip(np.linalg.eigvalsh(gram), 0, None)
    eig = eig[eig > 0]
    return float(np.exp(-(eig * np.log(eig)).sum()))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(logits, *, splits: int = 10, probabilities: bool = False) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): exp(mean KL(p(y|x) || p(y))) over ``splits`` splits.

    ``logits`` (N x C) are soft-maxed unless ``probabilities``; returns (mean, std). Higher is better.
    """
    x = as_features(logits, "logits", min_samples=splits)
    p = x if probabilities else _softmax(x)
    if probabilities and (np.any(p < 0) or not np.allclose(p.sum(1), 1, atol=1e-4)):
        raise MetricInputError("probabilities must be non-negative and sum to 1 per row")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(py, 1e-12, None)))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
