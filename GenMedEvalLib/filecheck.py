"""Image files are checked before they are trusted: size, geometry, values, memory.

SimpleITK's NIfTI reader zero-fills a truncated file, turns NaN and Inf voxels into 0, replaces a
NaN or zero pixel spacing by 1 mm and quietly orthogonalises a sheared orientation; a gzip file
that inflates to gigabytes is read in full. So before SimpleITK sees a file:

- its name must be valid UTF-8 (an undecodable name aborts SimpleITK);
- a NIfTI file's header is parsed here (NIfTI-1 and -2, either byte order) and its voxel data
  streamed through once, in bounded chunks: a file shorter than its header promises is refused,
  NaN/Inf voxels are counted, complex voxels, zero dimensions, NaN/zero spacings, NaN offsets and
  non-orthogonal orientations are refused;
- for every format, SimpleITK's header-only read gives size, pixel type and geometry, checked the
  same way, and the voxel data must fit the memory limit (:func:`max_image_bytes`, 512 MiB by
  default; ``$GENMEDEVAL_MAX_IMAGE_MB`` or ``genmedeval --max-image-mb`` raise it), so a header
  that claims a huge image, or a gzip bomb, is refused at once, before anything is inflated.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, ParameterError

DEFAULT_MAX_IMAGE_MB = 512.0
#: voxel sizes and physical extents outside these bounds are not brain images (and would make resampling explode)
SPACING_RANGE_MM = (1e-3, 100.0)
MAX_EXTENT_MM = 2000.0
ORTHOGONAL_TOLERANCE = 1e-3
CHUNK_BYTES = 8 << 20

_limit_mb: float | None = None
_quiet_native = False
# geometry fields of MetaImage and NRRD text headers (SimpleITK reads a NaN there as 0)
_GEOMETRY_KEYS = re.compile(r"^\s*(offset|origin|position|elementspacing|transformmatrix|rotation|orientation|"
                            r"centerofrotation|space origin|space directions|spacings|thicknesses)\s*[:=]", re.I)
_NOT_FINITE = re.compile(r"(?<![a-z])(nan|[+-]?inf(inity)?)(?![a-z])", re.I)

# NIfTI datatype code -> (numpy kind char + size, or a reason it is refused)
_NIFTI_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}
_NIFTI_REFUSED = {32: "complex voxels (complex64)", 1792: "complex voxels (complex128)", 2048: "complex voxels (complex256)",
                  1536: "128-bit float voxels", 128: "RGB voxels", 2304: "RGBA voxels"}


def set_max_image_mb(megabytes: float | None) -> None:
    """Raise or lower the largest image any reader accepts (MiB of decompressed voxel data); None: the default."""
    global _limit_mb
    if megabytes is not None and (not np.isfinite(megabytes) or megabytes <= 0):
        _limit_mb = None
        raise ParameterError(f"--max-image-mb: {megabytes} is not a positive size in MiB")
    _limit_mb = None if megabytes is None else float(megabytes)


def max_image_bytes() -> int:
    """The current limit in bytes: ``set_max_image_mb``, else ``$GENMEDEVAL_MAX_IMAGE_MB``, else 512 MiB."""
    if _limit_mb is not None:
        return int(_limit_mb * (1 << 20))
    env = os.environ.get("GENMEDEVAL_MAX_IMAGE_MB")
    try:
        value = float(env) if env else DEFAULT_MAX_IMAGE_MB
    except ValueError:
        value = DEFAULT_MAX_IMAGE_MB
    return int((value if np.isfinite(value) and value > 0 else DEFAULT_MAX_IMAGE_MB) * (1 << 20))


def quiet_native_output(quiet: bool) -> None:
    """Whether the C++ readers' own prints (MetaImage's 'data not read completely') are swallowed (the CLI)."""
    global _quiet_native
    _quiet_native = bool(quiet)


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while a C++ reader runs, when :func:`quiet_native_output` asked."""
    if not _quiet_native:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def itk_reason(exc: BaseException) -> str:
    """The informative line of an ITK exception, without its source location and object address."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            text = line.split("ERROR:", 1)[1].strip()
            return re.sub(r"^\w+\(0x[0-9a-f]+\):\s*", "", text)[:160]
    return (lines[-1] if lines else "unknown reason")[:160]


def check_text_header(path: Path) -> None:
    """NaN or Inf in the geometry fields of a MetaImage or NRRD header (SimpleITK reads them as 0) is refused."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    text = head.split(b"\n\n", 1)[0] if path.name.lower().endswith((".nrrd", ".nhdr")) else head
    for line in text.decode("latin-1").splitlines():
        if line.strip().lower().startswith("elementdatafile"):
            break
        if _GEOMETRY_KEYS.match(line) and _NOT_FINITE.search(line.split("=", 1)[-1].split(":", 1)[-1]):
            raise InputError(f"header field '{line.strip()[:60]}' has NaN or infinite values", path)


def check_name(path: str | Path) -> str:
    """The path as a str SimpleITK can take; ``InputError`` for a name that is not valid UTF-8."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("file name is not valid UTF-8; rename the file", path) from None
    return text


def check_memory(voxels: int, bytes_per_voxel: int, path: str | Path) -> None:
    """Refuse an image whose voxels (read as at least float32) exceed the memory limit."""
    need = int(voxels) * max(int(bytes_per_voxel), 4)
    limit = max_image_bytes()
    if need > limit:
        raise InputError(f"image of {voxels} voxels needs {need / (1 << 20):.0f} MiB, more than the limit of "
                         f"{limit / (1 << 20):.0f} MiB (raise it with --max-image-mb or $GENMEDEVAL_MAX_IMAGE_MB)", path)


def check_geometry(spacing, origin, direction, size, path: str | Path) -> None:
    """Refuse NaN or implausible spacing, NaN origin, non-orthogonal or NaN direction, a huge extent."""
    spacing = np.asarray(spacing, dtype=np.float64)
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"pixel spacing {tuple(spacing.tolist())} is not positive and finite", path)
    if np.any(spacing < low) or np.any(spacing > high):
        raise InputError(f"pixel spacing {tuple(spacing.tolist())} mm is outside [{low}, {high}] mm", path)
    extent = spacing * np.asarray(size, dtype=np.float64)
    if np.any(extent > MAX_EXTENT_MM):
        raise InputError(f"physical extent {tuple(np.round(extent, 1).tolist())} mm exceeds {MAX_EXTENT_MM:.0f} mm", path)
    if not np.all(np.isfinite(np.asarray(origin, dtype=np.float64))):
        raise InputError(f"origin {tuple(origin)} is not finite", path)
    check_direction(direction, path)


def check_direction(direction, path: str | Path) -> None:
    """Refuse a direction matrix with NaN entries or columns that are not orthonormal."""
    values = np.asarray(direction, dtype=np.float64)
    n = int(round(np.sqrt(values.size)))
    matrix = values.reshape(n, n)
    if not np.all(np.isfinite(matrix)):
        raise InputError("direction (orientation) matrix has NaN or infinite entries", path)
    if np.abs(matrix.T @ matrix - np.eye(n)).max() > ORTHOGONAL_TOLERANCE:
        raise InputError("direction (orientation) matrix is not orthonormal (sheared or scaled axes)", path)


@dataclass(frozen=True)
class NiftiHeader:
    """What the checks need from a NIfTI-1/2 header."""

    version: int
    endian: str
    shape: tuple[int, ...]
    datatype: int
    pixdim: tuple[float, ...]
    vox_offset: int
    scl_slope: float
    scl_inter: float
    qform_code: int
    sform_code: int
    quatern: tuple[float, ...]
    srow: tuple[float, ...]


def _parse_nifti1(raw: bytes, e: str) -> NiftiHeader:
    dim = struct.unpack_from(f"{e}8h", raw, 40)
    datatype = struct.unpack_from(f"{e}h", raw, 70)[0]
    pixdim = struct.unpack_from(f"{e}8f", raw, 76)
    vox_offset, slope, inter = struct.unpack_from(f"{e}3f", raw, 108)
    qcode, scode = struct.unpack_from(f"{e}2h", raw, 252)
    quatern = struct.unpack_from(f"{e}6f", raw, 256)
    srow = struct.unpack_from(f"{e}12f", raw, 280)
    if not np.isfinite(vox_offset) or vox_offset < 0 or vox_offset > 1 << 30:
        raise ValueError(f"voxel offset {vox_offset} is invalid")
    return NiftiHeader(1, e, _shape(dim), datatype, pixdim, int(vox_offset), slope, inter, qcode, scode, quatern, srow)


def _parse_nifti2(raw: bytes, e: str) -> NiftiHeader:
    datatype = struct.unpack_from(f"{e}h", raw, 12)[0]
    dim = struct.unpack_from(f"{e}8q", raw, 16)
    pixdim = struct.unpack_from(f"{e}8d", raw, 104)
    vox_offset = struct.unpack_from(f"{e}q", raw, 168)[0]
    slope, inter = struct.unpack_from(f"{e}2d", raw, 176)
    qcode, scode = struct.unpack_from(f"{e}2i", raw, 344)
    quatern = struct.unpack_from(f"{e}6d", raw, 352)
    srow = struct.unpack_from(f"{e}12d", raw, 400)
    if vox_offset < 0 or vox_offset > 1 << 30:
        raise ValueError(f"voxel offset {vox_offset} is invalid")
    return NiftiHeader(2, e, _shape(dim), datatype, pixdim, int(vox_offset), slope, inter, qcode, scode, quatern, srow)


def _shape(dim) -> tuple[int, ...]:
    ndim = int(dim[0])
    if not 1 <= ndim <= 7:
        raise ValueError(f"dimension count {ndim} is not 1..7")
    shape = tuple(int(d) for d in dim[1:ndim + 1])
    if any(d < 1 for d in shape):
        raise ValueError(f"has a zero or negative dimension {shape}")
    return shape


def read_nifti_header(raw: bytes) -> NiftiHeader:
    """Parse the first bytes of a NIfTI file; ``ValueError`` with the reason when they are not one."""
    for e in ("<", ">"):
        if len(raw) >= 4 and struct.unpack_from(f"{e}i", raw, 0)[0] == 348:
            if len(raw) < 348:
                raise ValueError("is shorter than a NIfTI-1 header")
            return _parse_nifti1(raw, e)
        if len(raw) >= 4 and struct.unpack_from(f"{e}i", raw, 0)[0] == 540:
            if len(raw) < 540:
                raise ValueError("is shorter than a NIfTI-2 header")
            return _parse_nifti2(raw, e)
    raise ValueError("does not start with a NIfTI header")


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _check_nifti_header(header: NiftiHeader, path: Path) -> np.dtype:
    if header.datatype in _NIFTI_REFUSED:
        raise InputError(f"has {_NIFTI_REFUSED[header.datatype]}; a real-valued scalar image is needed", path)
    if header.datatype not in _NIFTI_TYPES:
        raise InputError(f"has an unknown NIfTI datatype code {header.datatype}", path)
    dtype = np.dtype(header.endian + _NIFTI_TYPES[header.datatype])
    check_memory(int(np.prod(header.shape, dtype=np.float64)), dtype.itemsize, path)
    spatial = (tuple(header.shape) + (1, 1, 1))[:3]
    spacing = [abs(p) for p in header.pixdim[1:4]]
    if header.qform_code > 0 and not np.all(np.isfinite(header.quatern)):
        raise InputError("qform orientation has NaN or infinite entries", path)
    if header.qform_code > 0 and sum(q * q for q in header.quatern[:3]) > 1.0 + 1e-3:
        raise InputError("qform quaternion is not a rotation (b^2 + c^2 + d^2 > 1)", path)
    if header.sform_code > 0:
        rows = np.asarray(header.srow, dtype=np.float64).reshape(3, 4)
        if not np.all(np.isfinite(rows)):
            raise InputError("sform orientation has NaN or infinite entries", path)
        columns = rows[:, :3]
        norms = np.linalg.norm(columns, axis=0)
        if np.any(norms == 0):
            raise InputError("sform orientation has a zero axis", path)
        check_direction((columns / norms).ravel(), path)
        if header.qform_code <= 0:
            spacing = norms.tolist()
    check_geometry(spacing, (0.0, 0.0, 0.0), np.eye(3).ravel(), spatial, path)
    if header.scl_slope != 0 and not (np.isfinite(header.scl_slope) and np.isfinite(header.scl_inter)):
        raise InputError(f"intensity scaling (slope {header.scl_slope}, intercept {header.scl_inter}) is not finite", path)
    return dtype


def _scan_nifti_data(handle, header: NiftiHeader, dtype: np.dtype, path: Path) -> None:
    """Read exactly the voxel bytes the header promises (never more); refuse short files, count NaN/Inf."""
    skip = header.vox_offset - (348 if header.version == 1 else 540)
    if skip > 0 and len(handle.read(skip)) < skip:
        raise InputError("is truncated: it ends before its voxel data starts", path)
    need = int(np.prod(header.shape, dtype=np.int64)) * dtype.itemsize
    step = max(dtype.itemsize, CHUNK_BYTES - CHUNK_BYTES % dtype.itemsize)
    done, bad = 0, 0
    while done < need:
        block = handle.read(min(step, need - done))
        if not block:
            break
        done += len(block)
        if dtype.kind == "f":
            values = np.frombuffer(block[: len(block) - len(block) % dtype.itemsize], dtype=dtype)
            bad += int(values.size - np.count_nonzero(np.isfinite(values)))
    if done < need:
        raise InputError(f"is truncated: {done} of the {need} voxel bytes its header promises", path)
    if bad:
        raise InputError(f"contains {bad} NaN or infinite voxels", path)


def check_nifti(path: Path) -> None:
    """Validate a NIfTI file's header and stream its data once (see the module docstring)."""
    try:
        with _open(path) as handle:
            raw = handle.read(540)
            try:
                header = read_nifti_header(raw)
            except (ValueError, struct.error) as exc:
                raise InputError(f"cannot read as an image (not a valid NIfTI file: header {exc})", path) from None
            dtype = _check_nifti_header(header, path)
            handle.seek(348 if header.version == 1 else 540)
            _scan_nifti_data(handle, header, dtype, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"cannot read as an image (truncated or not valid gzip: {exc})", path) from None


_COMPLEX_PIXEL_NAMES = ("complex",)


def check_image_information(path: Path, text: str) -> None:
    """SimpleITK's header-only read: dimension, pixel type, geometry and memory, before the data is read."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(text)
    try:
        with native_output_silenced():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"cannot read as an image ({itk_reason(exc)})", path) from None
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID()).lower()
    if any(word in pixel for word in _COMPLEX_PIXEL_NAMES):
        raise InputError(f"has {pixel} voxels; a real-valued scalar image is needed", path)
    size = reader.GetSize()
    if any(s < 1 for s in size):
        raise InputError(f"has a zero dimension {tuple(size)}", path)
    components = max(1, reader.GetNumberOfComponents())
    bytes_per = components * np.dtype(_sitk_numpy_type(reader.GetPixelID())).itemsize
    check_memory(int(np.prod(size, dtype=np.float64)), bytes_per, path)
    if reader.GetDimension() == 3:
        check_geometry(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(), size, path)


def _sitk_numpy_type(pixel_id: int):
    """The numpy scalar type of a SimpleITK pixel ID (float64 when unknown: the conservative size)."""
    import SimpleITK as sitk

    table = {sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16, sitk.sitkInt16: np.int16,
             sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32, sitk.sitkUInt64: np.uint64, sitk.sitkInt64: np.int64,
             sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64}
    return table.get(pixel_id, np.float64)


def is_nifti(path: str | Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` names."""
    return str(path).lower().endswith((".nii", ".nii.gz"))


def check_image_file(path: str | Path) -> str:
    """Every check before SimpleITK reads ``path``; returns the name as a str SimpleITK can take."""
    path = Path(path)
    text = check_name(path)
    if not path.exists():
        raise InputError("file not found", path)
    if not path.is_file():
        raise InputError("not a file", path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied (not readable)", path)
    if is_nifti(path):
        check_nifti(path)
    elif path.name.lower().endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
        check_text_header(path)
    check_image_information(path, text)
    return text
