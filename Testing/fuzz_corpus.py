"""The bad-input corpus of ``test_fuzz.py``, generated at test time (no binary is committed).

Each builder writes one file into a folder and returns its path; ``IMAGE_CASES`` lists every
image case with its expected outcome: ``"error"`` (one line, exit 2, nothing written) or ``"ok"``
(a valid if unusual input that must be processed).
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (8, 20, 24)  # (z, y, x)


def grey(shape=SHAPE, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A smooth-ish random volume with a bright block (a 'tumour') so every command has something to do."""
    rng = np.random.default_rng(seed)
    array = rng.random(shape) * 50 + 20
    array[2:6, 6:14, 8:16] += 120
    return array.astype(dtype)


def write_sitk(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0),
               direction=None, vector: bool = False) -> Path:
    image = sitk.GetImageFromArray(array, isVector=vector)
    if image.GetDimension() == len(spacing):
        image.SetSpacing(spacing)
    if image.GetDimension() == 3:
        image.SetOrigin(origin)
        if direction is not None:
            image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=str(path).endswith(".gz"))
    return path


def nifti_bytes(array: np.ndarray, *, datatype: int = 16, pixdim=(1.0, 1.0, 2.0), qform=None, sform=None,
                dims: tuple[int, ...] | None = None, slope: float = 0.0, inter: float = 0.0) -> bytes:
    """A NIfTI-1 single file written by hand (so that any header field can be made wrong)."""
    dims = tuple(dims) if dims is not None else tuple(array.shape[::-1])
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    dim = [len(dims), *dims] + [1] * (7 - len(dims))
    struct.pack_into("<8h", header, 40, *dim)
    bitpix = {2: 8, 4: 16, 16: 32, 64: 64, 32: 64, 512: 16}.get(datatype, 32)
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1.0, *pixdim, 0, 0, 0, 0)
    struct.pack_into("<3f", header, 108, 352.0, slope, inter)
    qcode, scode = (1 if qform is not None else 0), (1 if sform is not None else 0)
    struct.pack_into("<2h", header, 252, qcode, scode)
    struct.pack_into("<6f", header, 256, *(qform if qform is not None else (0, 0, 0, 0, 0, 0)))
    rows = sform if sform is not None else (pixdim[0], 0, 0, 0, 0, pixdim[1], 0, 0, 0, 0, pixdim[2], 0)
    struct.pack_into("<12f", header, 280, *rows)
    header[344:348] = b"n+1\0"
    return bytes(header) + b"\0" * 4 + np.ascontiguousarray(array).tobytes()


def write_bytes(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class ImageCase:
    """One image file: how to make it, what must happen, and a word the error line should contain."""

    name: str
    make: Callable[[Path], Path]
    expect: str = "error"
    message: str = ""


def _nan(path: Path, value: float, dtype=np.float32, datatype: int = 16) -> Path:
    array = grey(dtype=dtype)
    array[3, 5, 7] = value
    return write_bytes(path, nifti_bytes(array, datatype=datatype))


def _truncated(path: Path, keep: Callable[[int], int]) -> Path:
    data = nifti_bytes(grey())
    return write_bytes(path, data[: keep(len(data))])


def _gz_cut(path: Path) -> Path:
    data = gzip.compress(nifti_bytes(grey()))
    path.write_bytes(data[: len(data) // 2])
    return path


def _bomb(path: Path) -> Path:
    """A small .nii.gz whose header claims 1 GiB of voxels (all zeros: it compresses ~1000:1)."""
    header = bytearray(nifti_bytes(np.zeros((1, 1, 1), np.uint8), datatype=2, dims=(1024, 1024, 1024)))
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(bytes(header))
        block = b"\0" * (1 << 20)
        for _ in range(64):  # 64 MiB of the promised 1 GiB: enough to be a bomb, cheap to make
            handle.write(block)
    return path


def _nrrd_huge(path: Path) -> Path:
    path.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 100000 100000 100000\nencoding: raw\n"
                     b"endian: little\nspace: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n\n" + b"\0" * 64)
    return path


def _mha_text(path: Path, header: str, data: bytes = b"") -> Path:
    path.write_bytes(header.encode() + data)
    return path


def _mha(path: Path, spacing="1 1 1", origin="0 0 0", matrix="1 0 0 0 1 0 0 0 1", cut: int = 0) -> Path:
    array = grey()
    data = array.tobytes()
    header = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"TransformMatrix = {matrix}\nOffset = {origin}\nElementSpacing = {spacing}\n"
              f"DimSize = {SHAPE[2]} {SHAPE[1]} {SHAPE[0]}\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n")
    return _mha_text(path, header, data[: len(data) - cut])


def _random(path: Path, n: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(len(path.name)).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def _typed(dtype) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        values = grey() if np.dtype(dtype).kind == "f" else np.clip(grey(), 0, 127)
        return write_sitk(path, values.astype(dtype))
    return make


SHEAR = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5, 2.0, 0.0)  # sform with a sheared z axis


IMAGE_CASES: list[ImageCase] = [
    # truncated and malformed NIfTI: SimpleITK zero-fills these
    ImageCase("cut1000.nii", lambda p: _truncated(p, lambda n: 1000), message="truncated"),
    ImageCase("cuthalf.nii", lambda p: _truncated(p, lambda n: n // 2), message="truncated"),
    ImageCase("cut1byte.nii", lambda p: _truncated(p, lambda n: n - 1), message="truncated"),
    ImageCase("headeronly.nii", lambda p: _truncated(p, lambda n: 352), message="truncated"),
    ImageCase("cut1000.nii.gz", lambda p: _truncated(p, lambda n: 1000), message="truncated"),
    ImageCase("cuthalf.nii.gz", lambda p: _truncated(p, lambda n: n // 2), message="truncated"),
    ImageCase("cut1byte.nii.gz", lambda p: _truncated(p, lambda n: n - 1), message="truncated"),
    ImageCase("headeronly.nii.gz", lambda p: _truncated(p, lambda n: 352), message="truncated"),
    ImageCase("gzcut.nii.gz", _gz_cut),
    ImageCase("shortheader.nii", lambda p: _truncated(p, lambda n: 200)),
    ImageCase("zerodim.nii", lambda p: write_bytes(p, nifti_bytes(grey(), dims=(24, 0, 8))), message="zero"),
    ImageCase("zerodim.nii.gz", lambda p: write_bytes(p, nifti_bytes(grey(), dims=(24, 20, 0))), message="zero"),
    ImageCase("badtype.nii", lambda p: write_bytes(p, nifti_bytes(grey(), datatype=999)), message="datatype"),
    ImageCase("empty.nii", lambda p: write_bytes(p, b"")),
    ImageCase("empty.nii.gz", lambda p: (p.write_bytes(b""), p)[1]),
    ImageCase("empty.nrrd", lambda p: write_bytes(p, b"")),
    ImageCase("empty.mha", lambda p: write_bytes(p, b"")),
    ImageCase("random.nii", _random),
    ImageCase("random.nii.gz", _random),
    ImageCase("random.nrrd", _random),
    ImageCase("random.mha", _random),
    ImageCase("random_gz.nii.gz", lambda p: write_bytes(p, _random(p).read_bytes())),
    # NaN / Inf voxels: SimpleITK's NIfTI reader turns them into 0
    ImageCase("nan.nii", lambda p: _nan(p, np.nan), message="NaN"),
    ImageCase("nan.nii.gz", lambda p: _nan(p, np.nan), message="NaN"),
    ImageCase("inf.nii.gz", lambda p: _nan(p, np.inf), message="NaN"),
    ImageCase("neginf.nii.gz", lambda p: _nan(p, -np.inf), message="NaN"),
    ImageCase("nan64.nii.gz", lambda p: _nan(p, np.nan, np.float64, 64), message="NaN"),
    ImageCase("nan.nrrd", lambda p: write_sitk(p, _with(grey(), np.nan)), message="NaN"),
    ImageCase("inf.mha", lambda p: write_sitk(p, _with(grey(), np.inf)), message="NaN"),
    ImageCase("nanslope.nii", lambda p: write_bytes(p, nifti_bytes(grey(), slope=np.nan, inter=0.0))),
    # pixel types and components
    ImageCase("complex64.nii", lambda p: write_bytes(p, nifti_bytes(grey().astype(np.complex64), datatype=32)),
              message="complex"),
    ImageCase("complex.mha", lambda p: write_sitk(p, grey().astype(np.complex64))),
    ImageCase("vector.mha", lambda p: write_sitk(p, np.stack([grey(), grey()], -1), vector=True),
              message="components"),
    ImageCase("rgb.nrrd", lambda p: write_sitk(p, np.stack([grey()] * 3, -1).astype(np.uint8), vector=True),
              message="components"),
    ImageCase("uint8.nii.gz", _typed(np.uint8), expect="ok"),
    ImageCase("int8.nrrd", _typed(np.int8), expect="ok"),
    ImageCase("int16.nii.gz", _typed(np.int16), expect="ok"),
    ImageCase("uint16.mha", _typed(np.uint16), expect="ok"),
    ImageCase("int32.nii.gz", _typed(np.int32), expect="ok"),
    ImageCase("uint32.nrrd", _typed(np.uint32), expect="ok"),
    ImageCase("int64.nrrd", _typed(np.int64), expect="ok"),
    ImageCase("float64.nii.gz", _typed(np.float64), expect="ok"),
    ImageCase("float32.nrrd", _typed(np.float32), expect="ok"),
    ImageCase("float32.mha", _typed(np.float32), expect="ok"),
    # dimensionality
    ImageCase("flat2d.nii.gz", lambda p: write_sitk(p, grey()[0], spacing=(1.0, 1.0)), message="2D"),
    ImageCase("four4d.nii.gz", lambda p: write_sitk(p, np.stack([grey(), grey()]), spacing=(1.0, 1.0, 1.0, 1.0)),
              message="4D"),
    ImageCase("five5d.nii", lambda p: write_bytes(p, nifti_bytes(np.zeros((2, 2, 8, 20, 24), np.float32),
                                                                 dims=(24, 20, 8, 2, 2)))),
    ImageCase("thin.nii.gz", lambda p: write_sitk(p, grey((1, 20, 24))), expect="ok"),
    # geometry: SimpleITK turns NaN/zero spacing into 1 mm and orthogonalises shears
    ImageCase("shear.nii", lambda p: write_bytes(p, nifti_bytes(grey(), sform=SHEAR)), message="orthonormal"),
    ImageCase("nansform.nii", lambda p: write_bytes(p, nifti_bytes(grey(), sform=(np.nan,) * 12)), message="NaN"),
    ImageCase("nanquat.nii", lambda p: write_bytes(p, nifti_bytes(grey(), qform=(np.nan, 0, 0, 0, 0, 0))),
              message="NaN"),
    ImageCase("badquat.nii", lambda p: write_bytes(p, nifti_bytes(grey(), qform=(1.0, 1.0, 1.0, 0, 0, 0))),
              message="quaternion"),
    ImageCase("nanspacing.nii", lambda p: write_bytes(p, nifti_bytes(grey(), pixdim=(1.0, np.nan, 1.0))),
              message="spacing"),
    ImageCase("zerospacing.nii.gz", lambda p: write_bytes(p, nifti_bytes(grey(), pixdim=(1.0, 0.0, 1.0))),
              message="spacing"),
    ImageCase("hugespacing.nii.gz", lambda p: write_bytes(p, nifti_bytes(grey(), pixdim=(1e6, 1.0, 1.0))),
              message="spacing"),
    ImageCase("tinyspacing.nrrd", lambda p: write_sitk(p, grey(), spacing=(1e-6, 1.0, 1.0)), message="spacing"),
    ImageCase("bigextent.mha", lambda p: write_sitk(p, grey(), spacing=(99.0, 99.0, 99.0)), message="extent"),
    ImageCase("nanspacing.mha", lambda p: _mha(p, spacing="nan 1 1")),
    ImageCase("nanorigin.mha", lambda p: _mha(p, origin="nan 0 0"), message="origin"),
    ImageCase("shear.mha", lambda p: _mha(p, matrix="1 0 0 0.5 1 0 0 0 1"), message="orthonormal"),
    ImageCase("cut.mha", lambda p: _mha(p, cut=100)),
    ImageCase("oblique.nrrd", lambda p: write_sitk(p, grey(), direction=(0.8, -0.6, 0, 0.6, 0.8, 0, 0, 0, 1)),
              expect="ok"),
    ImageCase("flipped.nii.gz", lambda p: write_sitk(p, grey(), direction=(-1, 0, 0, 0, 1, 0, 0, 0, -1)),
              expect="ok"),
    ImageCase("aniso.nii.gz", lambda p: write_sitk(p, grey(), spacing=(0.5, 0.7, 6.0)), expect="ok"),
    # resource exhaustion
    ImageCase("bomb.nii.gz", _bomb, message="limit"),
    ImageCase("hugeheader.nrrd", _nrrd_huge, message="limit"),
]


def _with(array: np.ndarray, value: float) -> np.ndarray:
    out = array.copy()
    out[4, 4, 4] = value
    return out


def non_utf8_name(folder: Path) -> Path:
    """A valid volume under a name whose bytes are not UTF-8 (as a POSIX file system allows)."""
    raw = os.fsencode(folder) + b"/caf\xe9\xff.nii.gz"
    data = gzip.compress(nifti_bytes(grey()))
    with open(raw, "wb") as handle:
        handle.write(data)
    return Path(os.fsdecode(raw))
