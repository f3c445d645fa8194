"""Post-processing of a binary tumour mask: keep the largest connected component.

Why: a glioma's whole tumour (oedema, core, enhancing rim) is one connected region in 3D, while a
slice-wise network's false positives (periventricular FLAIR hyperintensity, scalp) are separate
islands. As in nnU-Net (Isensee et al. 2021), the step is switched on for a model only when it
improves the cross-validation Dice: for the FLAIR + T1c model it raised every leave-one-case-out
fold (Resources/Models/README.md). Face connectivity (6 neighbours in 3D), as measured there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """``mask`` (any shape, nonzero = foreground) reduced to its largest face-connected component, uint8.

    An empty mask stays empty; ties go to the component met first in C order. The input is not modified.
    """
    labels, count = ndimage.label(np.asarray(mask) > 0)
    if count <= 1:
        return (labels > 0).astype(np.uint8)
    sizes = np.bincount(labels.ravel())[1:]
    return (labels == int(np.argmax(sizes)) + 1).astype(np.uint8)
