"""GenMedEval: is a synthetic medical image fit for purpose?

The library behind the GenMedEval 3D Slicer extension and the ``genmedeval`` command. It
implements the evaluation framework of "Metrics that matter" (Deo et al. 2025,
arXiv:2505.07175): controlled perturbations of real volumes, upstream no-reference metrics on
cached deep features, and a downstream ground-truth-free segmentation-quality score.

Data flows one way: read (``io``) -> perturb (``perturb``) -> slice and encode (``features``)
-> measure (``metrics``, ``quality``) -> report (``experiments``, ``report``).
This package never imports ``slicer``; ``mrml`` is the one bridge to a Slicer scene.
"""

import os as _os

# torch's CPU BLAS (MKL) in strict reproducibility mode, before torch loads: otherwise a convolution's
# last bits depend on the thread count (AVX-512 machines), so features and every metric on them would
# differ between --threads 1 and 2, a loaded and an idle machine, a Dask worker and the main process
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
