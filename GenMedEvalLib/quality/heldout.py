"""The fixed held-out sets on which the shipped predictor's accuracy is measured (and tested).

Cohort: tumour cases of the demo cohort's (seed 0) *eval* and *test* splits, never seen in training
(training cases use seed 2), with perturbed masks and the segmenter's predictions. Real: the clinical
MRI in ``../shared/data/real/`` with perturbed copies of its tumour label.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..segment.slices import slice_axis
from .dataset import QualityData, build_quality_data
from .masks import random_masks


def cohort_heldout_cases(n_cases: int, *, seed: int = 0, spacing: float = 2.0) -> list[tuple[np.ndarray, np.ndarray, tuple]]:
    """The first ``n_cases`` tumour cases of the demo cohort's eval/test splits: (image01, mask, spacing)."""
    from ..cohort.build import case_design, make_case
    from ..io import normalize_intensity

    cases, i = [], 0
    while len(cases) < n_cases:
        if i % 4 in (2, 3) and case_design(i)[0] != "none":
            image, mask, _, _ = make_case(i, seed, spacing)
            cases.append((normalize_intensity(image).astype(np.float32), mask, (spacing,) * 3))
        i += 1
    return cases


def cohort_heldout(n_cases: int = 4, masks_per_case: int = 6, *, seed: int = 0, segmenter=None,
                   **crop) -> QualityData:
    """Held-out cohort pairs: perturbed masks (Dice spread over 0..1) plus segmenter predictions."""
    return build_quality_data(cohort_heldout_cases(n_cases, seed=seed), n_masks=masks_per_case, seed=seed + 101,
                              segmenter=segmenter, show_progress=False, **crop)


def real_heldout(n_masks: int = 16, *, seed: int = 0, **crop) -> QualityData:
    """The real MRI with ``n_masks`` perturbed copies of its tumour label."""
    from ..data import shared_real_dir
    from ..io import normalize_intensity, read_mask, read_volume

    folder = shared_real_dir()
    if folder is None:
        raise InputError("the real MRI (../shared/data/real/) is not available on this machine")
    volume = read_volume(folder / "brain1_image.nrrd")
    truth = read_mask(folder / "brain1_label.nrrd", like=volume).array.astype(np.uint8)
    image = normalize_intensity(volume.array).astype(np.float32)
    rng = np.random.default_rng(seed)
    data = QualityData()
    for mask, _ in random_masks(truth, slice_axis(volume.spacing_zyx), n_masks, rng, foreground=image > 0.05):
        data.add(image, mask, truth, volume.spacing_zyx, "real-perturbed", **crop)
    return data
