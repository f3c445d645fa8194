"""Content digests of arrays: the identity under which computed results are cached and reused."""

from __future__ import annotations

import hashlib

import numpy as np


def array_digest(*arrays: np.ndarray, extra: str = "") -> str:
    """Hex SHA-256 of the arrays' dtypes, shapes and bytes (and ``extra``)."""
    digest = hashlib.sha256(extra.encode())
    for array in arrays:
        data = np.ascontiguousarray(array)
        digest.update(f"{data.dtype.str}{data.shape}".encode())
        digest.update(data.tobytes())
    return digest.hexdigest()
