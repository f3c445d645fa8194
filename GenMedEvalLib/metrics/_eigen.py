"""Eigenvalues of a symmetric matrix, with LAPACK's two-stage tridiagonal reduction when it is reachable.

FD's last step is the eigenvalues (no vectors) of a dense symmetric d x d matrix. The classic
reduction to tridiagonal form (``dsytrd``, used by every ``scipy.linalg.eigvalsh`` driver) is half
matrix-vector work and memory bound; LAPACK 3.7's two-stage reduction (dense to band with matrix
products, then band to tridiagonal) is markedly faster for values only. scipy does not wrap it, but
the OpenBLAS that scipy's wheels bundle exports ``LAPACKE_dsyevd_2stage``; it is called through
ctypes when found, and ``scipy.linalg.eigvalsh`` is used otherwise (other builds, other platforms).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
from scipy import linalg

COL_MAJOR = 102  # LAPACK_COL_MAJOR
SYMBOLS = ("scipy_LAPACKE_dsyevd_2stage", "LAPACKE_dsyevd_2stage")


@functools.lru_cache(maxsize=1)
def two_stage_routine():
    """``LAPACKE_dsyevd_2stage`` from the OpenBLAS bundled with scipy, or None when it is not there."""
    import scipy

    folder = Path(scipy.__file__).resolve().parent.parent / "scipy.libs"
    for path in sorted(folder.glob("*openblas*")) if folder.is_dir() else []:
        if "64_" in path.name:  # an ILP64 build takes 64-bit integers: not the signature below
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for name in SYMBOLS:
            routine = getattr(lib, name, None)
            if routine is not None:
                routine.restype = ctypes.c_int
                routine.argtypes = [ctypes.c_int, ctypes.c_char, ctypes.c_char, ctypes.c_int, ctypes.c_void_p,
                                    ctypes.c_int, ctypes.c_void_p]
                return routine
    return None


def symmetric_eigvals(matrix: np.ndarray) -> np.ndarray:
    """All eigenvalues (ascending, float64) of the symmetric ``matrix`` (its lower triangle is read)."""
    routine = two_stage_routine()
    n = matrix.shape[0]
    if routine is not None and n >= 2:
        work = np.array(matrix, dtype=np.float64, order="F")  # LAPACK's workspace: the input is never touched
        values = np.empty(n)
        if routine(COL_MAJOR, b"N", b"L", n, work.ctypes.data, n, values.ctypes.data) == 0:
            return values
        # no convergence or a rejected argument: the classic reduction decides
    return linalg.eigvalsh(matrix, check_finite=False, driver="evd")
