"""GenMedEval: is a synthetic medical image fit for purpose?

The library behind the GenMedEval 3D Slicer extension and the ``genmedeval`` command. It
implements the evaluation framework of "Metrics that matter" (Deo et al. 2025,
arXiv:2505.07175): controlled perturbations of real volumes, upstream no-reference metrics on
cached deep features, and a downstream ground-truth-free segmentation-quality score.

Data flows one way: read (``io``) -> perturb (``perturb``) -> slice and encode (``features``)
-> measure (``metrics``, ``quality``) -> report (``experiments``, ``report``).
This package never imports ``slicer``; ``mrml`` is the one bridge to a Slicer scene.
"""

__version__ = "0.1.0"
