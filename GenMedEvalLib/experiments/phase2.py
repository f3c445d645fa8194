"""Phase 2 beyond the tables: what each model's samples look like, how close they come to training images,
how well the segmenter agrees with the masks generated with the images, and the paper's Phase 2 finding.

- ``agreement_dice``: Dice between the segmenter's output and the generated mask, per sample with a
  generated tumour (generated masks are the only ground truth a generated image has);
- ``nearest_training``: for each model, the generated slices closest to a training slice in the
  encoder's feature space (the space AuthPct and the CT score work in), with their distance beside
  the real held-out data's typical distance to the training set;
- ``ranking_finding``: "FD's ranking of the models disagrees with the downstream ranking", decided by
  Kendall's tau and its p-value, and "not testable" when the number of models cannot reach p < 0.05;
- ``sample_grid`` / ``nearest_figure``: the report's pictures, on the generators' grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .stats import ALPHA


@dataclass(frozen=True)
class Neighbour:
    """A generated slice and its nearest training slice in feature space."""

    model: str
    sample: str
    sample_slice: int
    train: str
    train_slice: int
    distance: float


def agreement_dice(segmentations: Sequence[np.ndarray], generated: Sequence[np.ndarray]) -> dict[str, Any]:
    """Mean Dice (segmenter output vs generated mask) over samples whose generated mask is not empty.

    Also the share of tumour-free samples on which the segmenter, too, finds nothing. ``dice`` is
    None when no sample carries a generated tumour (a folder without masks).
    """
    from ..quality.dice import dice_score

    with_tumour = [(s, g) for s, g in zip(segmentations, generated, strict=True) if np.any(g)]
    without = [s for s, g in zip(segmentations, generated, strict=True) if not np.any(g)]
    values = [dice_score(np.asarray(s) > 0, np.asarray(g) > 0) for s, g in with_tumour]
    return {"agreement_dice": float(np.mean(values)) if values else None, "agreement_values": values,
            "n_with_tumour": len(with_tumour),
            "empty_agreement": float(np.mean([not np.any(s) for s in without])) if without else None,
            "n_without_tumour": len(without)}


def nearest_pairs(generated: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest training row, Euclidean distance) for every generated feature row, in blocks
    (``metrics.manifold.distance_blocks``, the distances PRDC and AuthPct use)."""
    from ..metrics.manifold import distance_blocks

    g, t = np.asarray(generated, np.float64), np.asarray(train, np.float64)
    index, distance = np.zeros(len(g), np.int64), np.zeros(len(g))
    for rows, d in distance_blocks(g, t):
        index[rows] = d.argmin(axis=1)
        distance[rows] = d[np.arange(len(d)), index[rows]]
    return index, distance


def nearest_training(model: str, generated: np.ndarray, generated_rows: Sequence[tuple[str, int]],
                     train: np.ndarray, train_rows: Sequence[tuple[str, int]], k: int = 3) -> list[Neighbour]:
    """The ``k`` generated slices closest to any training slice (``*_rows``: (volume name, slice index) per row)."""
    index, distance = nearest_pairs(generated, train)
    order = np.argsort(distance, kind="stable")[:k]
    return [Neighbour(model, generated_rows[i][0], generated_rows[i][1], train_rows[index[i]][0],
                      train_rows[index[i]][1], float(distance[i])) for i in order]


def median_nearest(generated: np.ndarray, train: np.ndarray) -> float:
    """Median distance from a generated (or held-out real) slice to its nearest training slice."""
    return float(np.median(nearest_pairs(generated, train)[1]))


def min_kendall_p(n: int) -> float:
    """The smallest two-sided p-value Kendall's tau can reach with ``n`` untied items (perfect (dis)agreement)."""
    return 1.0 if n < 2 else min(1.0, 2.0 / math.factorial(n))


def ranking_finding(agreement: Sequence[dict[str, Any]], downstream: str, metric: str = "fd") -> dict[str, Any]:
    """The paper's Phase 2 claim for ``metric``: its ranking of the models disagrees with the downstream ranking.

    Holds when tau < 0 with p < 0.05, fails when tau > 0 with p < 0.05, not testable otherwise (the
    text says whether the number of models could have reached significance at all).
    """
    claim = f"{metric.upper()}'s ranking of the models disagrees with the downstream ranking ({downstream})"
    row = next((a for a in agreement if a["metric"] == metric), None)
    if row is None or row.get("tau") is None:
        n = 0 if row is None else row.get("n_models", 0)
        return {"claim": claim, "holds": None, "verdict": "not testable",
                "detail": f"{metric} is undefined for fewer than 3 models with {downstream} (here {n})"}
    n, tau, p = int(row["n_models"]), float(row["tau"]), float(row["p_value"])
    floor = min_kendall_p(n)
    if p < ALPHA:
        holds = tau < 0
    else:
        holds = None
    reach = (f"with {n} models the smallest reachable p is {floor:.3g}"
             + ("" if floor < ALPHA else ", so no ranking can be significant at this size"))
    summary = "; ".join(f"{a['metric']} tau {a['tau']:+.2f} (p {a['p_value']:.2f})" for a in agreement
                        if a.get("tau") is not None)
    detail = (f"Kendall tau {tau:+.2f}, p {p:.3f}, n {n} models ({reach}); holds when tau < 0 with p < {ALPHA:g}, "
              f"fails when tau > 0 with p < {ALPHA:g}. All metrics: {summary}")
    verdict = {True: "holds", False: "fails", None: "not testable"}[holds]
    return {"claim": claim, "holds": holds, "verdict": verdict, "detail": detail, "n": n, "tau": tau, "p": p}


# -- pictures ---------------------------------------------------------------------------------

def preview_slice(member) -> tuple[np.ndarray, np.ndarray]:
    """One (image, mask) picture of a case on the generators' grid: its slice with the largest mask, else the middle."""
    from ..generate.slices import SIZE, volume_training_slices

    images, masks, _ = volume_training_slices(member.volume, member.mask, min_brain=0.0)
    if not len(images):
        return np.zeros((SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), np.uint8)
    areas = masks.reshape(len(masks), -1).sum(1)
    pick = int(areas.argmax()) if areas.max() > 0 else len(images) // 2
    return images[pick], masks[pick]


def _save(fig, path: Path, title: str) -> Path:
    """Title, lay out and write a figure atomically as PNG; close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def _outline(ax, mask: np.ndarray, colour: str) -> None:
    if np.any(mask) and not np.all(mask):
        ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=0.8)


def sample_grid(rows: dict[str, Sequence[tuple[np.ndarray, np.ndarray]]], path: Path, *, columns: int = 8) -> Path:
    """One row of pictures per set (real reference first), tumour masks outlined in yellow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(len(names), columns, figsize=(1.35 * columns, 1.45 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j in range(columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows[name]):
                image, mask = rows[name][j]
                ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                _outline(ax, mask, "yellow")
            else:
                ax.axis("off")
        axes[i, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    return _save(fig, path, "Samples per model beside real reference slices (tumour mask outlined in yellow)")


def nearest_figure(pairs: Sequence[tuple[str, np.ndarray, np.ndarray, float, float]], path: Path) -> Path:
    """Per model (one row): its generated slice closest to a training slice, that training slice, their distance.

    ``pairs``: (model, generated picture, training picture, distance, real held-out median distance).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 2, figsize=(4.2, 2.0 * len(pairs)), squeeze=False)
    for i, (model, generated, train, distance, yardstick) in enumerate(pairs):
        for j, (picture, label) in enumerate(((generated, f"{model}: generated"), (train, "nearest training slice"))):
            ax = axes[i, j]
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=7)
        ratio = distance / yardstick if yardstick > 0 else float("nan")
        axes[i, 0].set_xlabel(f"distance {distance:.3g} = {ratio:.2f} x real held-out median", fontsize=7)
    return _save(fig, path, "Closest to a training image (encoder feature space)")
