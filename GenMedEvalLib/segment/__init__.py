"""Downstream segmentation: one ``Segmenter`` interface (a volume in, a binary tumour mask out).

Built in: MONAI 2D U-Nets applied slice by slice (``builtin``), trained by ``genmedeval train-segmenter``
and shipped in ``Resources/Models/``: FLAIR + T1c, T1c alone and FLAIR alone (BraTS + synthetic slices) and
the demo cohort's model, picked by the contrasts a case has (``builtin.ContrastRouter``). Plug-ins: a
TorchScript file or a MONAI bundle directory (``plugins``), selected by path in ``load_segmenter``.
"""

from .base import Segmenter, check_output, segment_many, segment_volume
from .loader import DEFAULT_SEGMENTER, load_segmenter

__all__ = ["DEFAULT_SEGMENTER", "Segmenter", "check_output", "load_segmenter", "segment_many", "segment_volume"]
