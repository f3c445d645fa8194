"""Cases: one volume file, or a folder holding several contrasts of one patient on one grid.

A *case folder* holds one file per contrast, recognised by name (case-insensitive, on the name's
alphanumeric words): ``flair`` (also ``t2f``), ``t1c`` / ``t1ce`` / ``t1gd`` (also ``t1_gd``,
``t1post``), ``t1`` (also ``t1n``, ``t1w``), ``t2`` (also ``t2w``). ``t1c`` never matches ``t1``
and ``t1`` never matches ``t1c``. A label file (``seg``, ``label``, ``mask``, ``OTMultiClass``,
``*_seg*``, ``*_label``, ``*_mask``) is never read as a contrast; a brain mask (``brainmask``,
``brain_mask``) and DeepMedic's ``weightMap*`` files are ignored, as are other unrecognised files.
The BraTS layout (``T1c_subtrMeanDivStd.nii.gz``, ``Flair_subtrMeanDivStd.nii.gz``,
``OTMultiClass.nii.gz``, ``brainmask.nii.gz``) and the BraTS 2021/2023 names
(``*_t1ce``/``*_flair``/``*_seg``, ``*-t1c``/``*-t2f``/``*-seg``) read as they are.

Contrasts are kept in the canonical order flair, t1c, t1, t2; the encoders see one of them, the
*primary* contrast (``--contrast NAME``, default the first of that order the case has). Bad input
(contrasts on different grids, no recognisable contrast, two files of one contrast, an all-zero
contrast, a 4D file, a label outside its convention) raises ``InputError`` naming the file.

Tumour targets (``target_mask``): whole tumour = label > 0 in every convention; tumour core and
enhancing tumour need the label convention, ``brats2013`` (BraTS 2013-2015: 1 necrosis, 2 oedema,
3 non-enhancing, 4 enhancing; core = {1, 3, 4}, enhancing = {4}), ``brats2017`` (2017-2021: 1
necrosis / non-enhancing core, 2 oedema, 4 enhancing; core = {1, 4}, enhancing = {4}) or
``brats2023`` (2023 on: 1 necrosis, 2 oedema, 3 enhancing; core = {1, 3}, enhancing = {3}).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError, ParameterError
from .io import (
    CohortItem,
    Volume,
    _find_mask,
    _is_mask_name,
    is_volume_file,
    normalize_intensity,
    read_cohort_csv,
    read_mask,
    read_volume,
    strip_volume_suffix,
    write_volume,
)

CONTRASTS = ("flair", "t1c", "t1", "t2")
SINGLE = "image"  # the contrast name of a single volume file whose name says no contrast
TARGETS = ("whole", "core", "enhancing")

_WORDS = {
    "flair": ("flair", "t2f", "t2flair"),
    "t1c": ("t1c", "t1ce", "t1gd", "t1post", "t1km", "t1contrast"),
    "t1": ("t1", "t1n", "t1w", "t1native"),
    "t2": ("t2", "t2w"),
}
_BY_WORD = {word: contrast for contrast, words in _WORDS.items() for word in words}
_LABEL_STEMS = ("seg", "label", "labels", "mask", "otmulticlass", "truth")
_IGNORED = ("brainmask", "brain_mask", "brain-mask", "weightmap")


@dataclass(frozen=True)
class LabelConvention:
    """A BraTS label convention: the values a label file may hold and which make core and enhancing tumour."""

    name: str
    years: str
    labels: tuple[int, ...]
    core: tuple[int, ...]
    enhancing: tuple[int, ...]


LABEL_CONVENTIONS = {
    "brats2013": LabelConvention("brats2013", "BraTS 2013-2015", (0, 1, 2, 3, 4), (1, 3, 4), (4,)),
    "brats2017": LabelConvention("brats2017", "BraTS 2017-2021", (0, 1, 2, 4), (1, 4), (4,)),
    "brats2023": LabelConvention("brats2023", "BraTS 2023 on", (0, 1, 2, 3), (1, 3), (3,)),
}


def target_mask(label: np.ndarray, target: str = "whole", convention: str | None = None, *,
                source: str | Path | None = None) -> np.ndarray:
    """The uint8 {0, 1} mask of ``target`` (whole, core, enhancing) in a label array.

    Whole tumour is label > 0 and needs no convention; core and enhancing need one. With a
    convention, a label value outside it is an ``InputError`` naming ``source``.
    """
    if target not in TARGETS:
        raise ParameterError(f"unknown target '{target}'; choose one of: {', '.join(TARGETS)}")
    label = np.asarray(label)
    if convention is None:
        if target != "whole":
            raise ParameterError(f"--target {target} needs --label-convention ({', '.join(LABEL_CONVENTIONS)})")
        return (label > 0).astype(np.uint8)
    if convention not in LABEL_CONVENTIONS:
        raise ParameterError(f"unknown label convention '{convention}'; choose one of: {', '.join(LABEL_CONVENTIONS)}")
    conv = LABEL_CONVENTIONS[convention]
    outside = np.setdiff1d(np.unique(label), conv.labels)
    if outside.size:
        raise InputError(f"label values {outside.tolist()} are outside the {conv.name} convention ({conv.years}: "
                         f"{', '.join(map(str, conv.labels))})", source)
    if target == "whole":
        return (label > 0).astype(np.uint8)
    return np.isin(label, conv.core if target == "core" else conv.enhancing).astype(np.uint8)


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", strip_volume_suffix(name).lower()) if w]


def is_ignored_name(name: str) -> bool:
    """True for a brain mask or a DeepMedic weight map: files a case folder holds that are neither contrast nor label."""
    stem = strip_volume_suffix(name).lower()
    return any(part in stem for part in _IGNORED)


def is_label_name(name: str) -> bool:
    """True for a tumour label file name (``seg``, ``label``, ``OTMultiClass``, ``*_seg*``, ``*_label``, ``*_mask``)."""
    if is_ignored_name(name):
        return False
    stem = strip_volume_suffix(name).lower()
    return (stem in _LABEL_STEMS or "_seg" in stem or "-seg" in stem
            or stem.endswith(("_label", "-label", "_labels", "_mask", "-mask")))


def contrast_of(name: str) -> str | None:
    """The contrast a file name says (flair, t1c, t1, t2), None when it says none; ambiguous names raise."""
    if is_ignored_name(name) or is_label_name(name):
        return None
    words = _words(name)
    found: set[str] = set()
    used: set[int] = set()
    for i in range(len(words) - 1):  # "t1_gd", "t1-c": two words that together name a contrast
        joined = _BY_WORD.get(words[i] + words[i + 1])
        if joined is not None and words[i] in ("t1", "t2"):
            found.add(joined)
            used |= {i, i + 1}
    for i, word in enumerate(words):
        if i in used:
            continue
        if word in _BY_WORD:
            found.add(_BY_WORD[word])
        elif "flair" in word:
            found.add("flair")
    if len(found) > 1:
        raise InputError(f"name matches several contrasts ({', '.join(c for c in CONTRASTS if c in found)})", name)
    return next(iter(found), None)


@dataclass(frozen=True)
class CaseFiles:
    """What a case folder holds, by file name alone: one file per contrast (canonical order) and the label."""

    contrasts: dict[str, Path]
    label: Path | None


def case_files(folder: str | Path) -> CaseFiles:
    """Classify a case folder's files by name (no reading); no recognisable contrast or a duplicate raises."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_volume_file(p.name))
    found: dict[str, Path] = {}
    labels: list[Path] = []
    for path in files:
        if is_label_name(path.name):
            labels.append(path)
            continue
        try:
            contrast = contrast_of(path.name)
        except InputError as exc:
            raise InputError(exc.problem, path) from None
        if contrast is None:
            continue
        if contrast in found:
            raise InputError(f"two files of contrast {contrast}: {found[contrast].name} and {path.name}", folder)
        found[contrast] = path
    if not found:
        raise InputError("no recognisable contrast (file names containing flair, t1c/t1ce/t1gd, t1 or t2)", folder)
    if len(labels) > 1:
        raise InputError(f"several label files ({', '.join(p.name for p in labels)}); keep one", folder)
    return CaseFiles({c: found[c] for c in CONTRASTS if c in found}, labels[0] if labels else None)


@dataclass(frozen=True)
class Case:
    """One patient: its contrasts (canonical order, one grid) and optional label, read from a file or a folder."""

    name: str
    path: Path
    contrasts: dict[str, Volume]
    label: Volume | None = None
    folder: bool = False
    file_names: dict[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Volume:
        """The volume whose geometry every contrast (and the label) shares."""
        return next(iter(self.contrasts.values()))

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return self.grid.spacing_zyx

    def primary_name(self, contrast: str | None = None) -> str:
        """The contrast the encoders see: ``contrast`` when given, else the first of flair, t1c, t1, t2."""
        if not self.folder or contrast is None:  # a single file: its only volume, whatever was asked
            return next(iter(self.contrasts))
        if contrast not in self.contrasts:
            raise InputError(f"has no {contrast} contrast (it has {', '.join(self.contrasts)})", self.path)
        return contrast

    def primary(self, contrast: str | None = None) -> Volume:
        """The primary Volume (``--contrast NAME``, default the first of flair, t1c, t1, t2 the case has)."""
        return self.contrasts[self.primary_name(contrast)]

    def arrays(self) -> dict[str, np.ndarray]:
        """``{contrast: (z, y, x) array}``, the input of ``Segmenter.segment_contrasts``."""
        return {name: volume.array for name, volume in self.contrasts.items()}

    def with_arrays(self, arrays: Mapping[str, np.ndarray]) -> Case:
        """The same case (geometry, label, file names) around other contrast arrays of the same shape."""
        if set(arrays) != set(self.contrasts):
            raise ValueError(f"contrasts {sorted(arrays)} differ from the case's {list(self.contrasts)}")
        new = {name: replace(self.contrasts[name].with_array(np.asarray(arrays[name])), path=self.contrasts[name].path)
               for name in self.contrasts}
        return replace(self, contrasts=new)

    def normalized(self) -> Case:
        """Every contrast intensity-normalised to [0, 1] (``io.normalize_intensity``), once."""
        return self.with_arrays({name: normalize_intensity(v.array) for name, v in self.contrasts.items()})

    def tumour(self, target: str = "whole", convention: str | None = None) -> np.ndarray | None:
        """The tumour mask of ``target`` from the label (None when the case has no label)."""
        if self.label is None:
            target_mask(np.zeros(1, np.uint8), target, convention)  # an unknown target still fails
            return None
        return target_mask(self.label.array, target, convention, source=self.label.path)

    @property
    def mask_name(self) -> str:
        """File name of an output mask for this case: ``X.nii.gz`` for a folder ``X/``, the file's own name otherwise."""
        return f"{self.name}.nii.gz" if self.folder else self.path.name


def _check_grid(reference: Volume, other: Volume, tol: float = 1e-4) -> None:
    """Raise ``InputError`` naming ``other``'s file when its grid differs from ``reference``'s."""
    ref_name = reference.path.name if reference.path is not None else "the first contrast"
    if other.array.shape != reference.array.shape:
        raise InputError(f"size {other.array.shape[::-1]} differs from {ref_name}'s {reference.array.shape[::-1]} "
                         "(x, y, z): contrasts of a case must share one grid", other.path)
    for label, a, b in (("spacing", reference.spacing, other.spacing), ("origin", reference.origin, other.origin),
                        ("direction", reference.direction, other.direction)):
        if not np.allclose(a, b, atol=tol, rtol=tol):
            raise InputError(f"{label} {tuple(round(v, 4) for v in b)} differs from {ref_name}'s "
                             f"{tuple(round(v, 4) for v in a)}: contrasts of a case must share one grid", other.path)


def _read_contrast(path: Path) -> Volume:
    volume = read_volume(path)
    if not volume.array.any():
        raise InputError("is all zero: an empty image", path)
    return volume


def read_case(path: str | Path, *, label: str | Path | None = None) -> Case:
    """Read a case: a volume file (with ``label`` when given) or a case folder (its own label file unless ``label``)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file or folder not found", path)
    if path.is_dir():
        files = case_files(path)
        contrasts = {name: _read_contrast(file) for name, file in files.contrasts.items()}
        grid = next(iter(contrasts.values()))
        for volume in list(contrasts.values())[1:]:
            _check_grid(grid, volume)
        label_path = Path(label) if label is not None else files.label
        label_volume = read_mask(label_path, like=grid) if label_path is not None else None
        return Case(path.name, path, contrasts, label_volume, folder=True,
                    file_names={name: file.name for name, file in files.contrasts.items()})
    volume = _read_contrast(path)
    label_volume = read_mask(label, like=volume) if label is not None else None
    name = contrast_of(path.name) or SINGLE
    return Case(strip_volume_suffix(path.name), path, {name: volume}, label_volume, folder=False,
                file_names={name: path.name})


def _holds_volumes(folder: Path) -> bool:
    return any(p.is_file() and is_volume_file(p.name) for p in folder.iterdir())


def list_cases(folder: str | Path, csv_path: str | Path | None = None,
               mask_dir: str | Path | None = None) -> list[CohortItem]:
    """The cases of a folder, sorted by name: its volume files and its case folders (checked by name, not read).

    Each item's ``image`` is the file or the case folder; ``mask`` is the label (the case folder's
    label file, else as ``io.read_cohort`` finds masks: in ``mask_dir`` under the case's name, or
    beside it as ``NAME_mask``). ``cohort.csv`` (in ``folder`` or its parent) gives classes,
    groups and splits by name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("is not a folder", folder)
    mask_folder = Path(mask_dir) if mask_dir else None
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file() and is_volume_file(p.name) and not _is_mask_name(p.name)
             and not is_label_name(p.name) and not is_ignored_name(p.name)]
    dirs = [p for p in entries if p.is_dir() and _holds_volumes(p)]
    if not files and not dirs:
        raise InputError("holds no volumes (.nii.gz, .nii, .nrrd, .mha) and no case folders", folder)
    if csv_path is None:
        csv_path = next((c for c in (folder / "cohort.csv", folder.parent / "cohort.csv") if c.exists()), None)
    table = read_cohort_csv(csv_path) if csv_path is not None else {}
    return _items(sorted(files + dirs, key=lambda p: strip_volume_suffix(p.name)), mask_folder, table)


def list_files(paths: Sequence[str | Path], mask_dir: str | Path | None = None,
               csv_path: str | Path | None = None) -> list[CohortItem]:
    """The cases of an explicit list of volume files and case folders, in the order given (a job's file list).

    Masks are found as ``list_cases`` finds them; ``csv_path`` (default: a ``cohort.csv`` beside the
    first file or in its parent) gives classes, groups and splits by name.
    """
    resolved = [Path(p) for p in paths]
    for path in resolved:
        if path.is_dir():
            if not _holds_volumes(path):
                raise InputError("is a folder without volumes, not a case folder", path)
        elif not path.is_file():
            raise InputError("file not found", path)
        elif not is_volume_file(path.name):
            raise InputError("is not a volume file (.nii.gz, .nii, .nrrd, .mha)", path)
    names = [strip_volume_suffix(p.name) for p in resolved]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"two entries share the case name {twice[0]}", resolved[names.index(twice[0])])
    if csv_path is None:
        csv_path = next((c for p in resolved[:1] for c in (p.parent / "cohort.csv", p.parent.parent / "cohort.csv")
                         if c.exists()), None)
    table = read_cohort_csv(csv_path) if csv_path is not None else {}
    return _items(resolved, Path(mask_dir) if mask_dir else None, table)


def _items(paths: Sequence[Path], mask_folder: Path | None, table: Mapping) -> list[CohortItem]:
    """One ``CohortItem`` per volume file or case folder, with its mask and its cohort.csv row."""
    items = []
    for path in paths:
        name = strip_volume_suffix(path.name)
        if path.is_dir():
            own = case_files(path).label
            mask = (_find_mask(path, mask_folder) if mask_folder is not None else None) or own or _find_mask(path, None)
        else:
            mask = _find_mask(path, mask_folder)
        row = table.get(name, {})
        items.append(CohortItem(name=name, image=path, mask=mask, label=row.get("label") or None,
                                group=row.get("group") or None, split=row.get("split") or None))
    return items


def read_item(item: CohortItem) -> Case:
    """The case of a listed item, with its mask as the label."""
    return read_case(item.image, label=item.mask)


def _contrast_names(case: Case | CohortItem) -> tuple[bool, Path, tuple[str, ...]]:
    """(is a case folder, its path, its contrasts), from a read case or, by file names alone, from a listed item."""
    if isinstance(case, Case):
        return case.folder, case.path, tuple(case.contrasts)
    if case.image.is_dir():
        return True, case.image, tuple(case_files(case.image).contrasts)
    return False, case.image, ()


def resolve_contrast(cases: Sequence[Case | CohortItem], requested: str | None = None) -> str | None:
    """One primary contrast for several sets of cases (read, or listed by ``list_cases``), so every set's
    encoders see the same contrast.

    ``requested`` must be in every case folder; otherwise the first of flair, t1c, t1, t2 that
    every case folder has. None when no case is a folder (single files: their only volume).
    """
    if requested is not None and requested not in CONTRASTS:
        raise ParameterError(f"unknown contrast '{requested}'; choose one of: {', '.join(CONTRASTS)}")
    folders = [(path, names) for is_folder, path, names in map(_contrast_names, cases) if is_folder]
    if requested is not None:
        for path, names in folders:
            if requested not in names:
                raise InputError(f"has no {requested} contrast (it has {', '.join(names)})", path)
        return requested
    if not folders:
        return None
    common = [c for c in CONTRASTS if all(c in names for _, names in folders)]
    if not common:
        first_path, first = folders[0]
        other_path, other = next(((p, n) for p, n in folders if not set(n) & set(first)), folders[-1])
        raise InputError(f"no contrast common to every case ({', '.join(other)} here, {', '.join(first)} in "
                         f"{first_path}): give --contrast or cases that share one", other_path)
    return common[0]


def contrast_seeds(seed: int, n: int) -> list[int]:
    """One seed per contrast from ``seed``: the seed itself for one contrast, else numpy SeedSequence children."""
    if n == 1:
        return [int(seed)]
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(int(seed)).spawn(n)]


def perturb_case(case: Case, kind: str, params: Mapping, *, seed: int = 0, mask: np.ndarray | None = None) -> Case:
    """A per-volume perturbation applied to every contrast (independent seeds, the one tumour mask)."""
    from .perturb import apply_perturbation

    seeds = contrast_seeds(seed, len(case.contrasts))
    arrays = {name: apply_perturbation(kind, volume.array, mask=mask, spacing=volume.spacing_zyx, seed=s, **params)
              for (name, volume), s in zip(case.contrasts.items(), seeds, strict=True)}
    return case.with_arrays(arrays)


def case_output(case: Case, folder: str | Path) -> Path:
    """Where ``write_case`` puts ``case`` in ``folder``: ``folder/X/`` for a case folder, ``folder/FILE`` otherwise."""
    folder = Path(folder)
    if case.folder:
        return folder / case.name
    name = case.path.name if is_volume_file(case.path.name) else f"{case.name}.nii.gz"
    return folder / name


def write_case(case: Case, folder: str | Path, *, with_label: bool = True) -> Path:
    """Write ``case`` into ``folder`` as it was read: a case folder (same file names, label too) or one file."""
    target = case_output(case, folder)
    if not case.folder:
        return write_volume(case.grid, target)
    for name, volume in case.contrasts.items():
        write_volume(volume, target / case.file_names.get(name, f"{name}.nii.gz"))
    if with_label and case.label is not None:
        own = case.label.path.name if case.label.path is not None else ""
        label_name = own if is_label_name(own) else "seg.nii.gz"
        write_volume(case.label, target / label_name)
    return target


@dataclass(frozen=True)
class CaseOptions:
    """How cases become encoder inputs and tumour masks: the primary contrast and the tumour target."""

    contrast: str | None = None
    target: str = "whole"
    convention: str | None = None

    def __post_init__(self) -> None:
        if self.contrast is not None and self.contrast not in CONTRASTS:
            raise ParameterError(f"unknown contrast '{self.contrast}'; choose one of: {', '.join(CONTRASTS)}")
        target_mask(np.zeros(1, np.uint8), self.target, self.convention)  # unknown target or convention fails here


DEFAULT_CASE_OPTIONS = CaseOptions()



def add_case_arguments(parser, *, contrast: bool = True, target: bool = True) -> None:
    """``--contrast``, ``--target`` and ``--label-convention`` for commands that read folders of cases."""
    if contrast:
        parser.add_argument("--contrast", default=None, choices=CONTRASTS,
                            help="contrast of case folders the encoders and quality predictor see "
                            "(default: the first of flair, t1c, t1, t2 every case has)")
    if target:
        parser.add_argument("--target", default="whole", choices=TARGETS,
                            help="tumour target of the labels: whole (label > 0, default), core, enhancing")
        parser.add_argument("--label-convention", default=None, choices=tuple(LABEL_CONVENTIONS),
                            help="label values of core/enhancing: brats2013 (2013-2015), brats2017 (2017-2021), "
                            "brats2023 (2023 on); labels outside it are an error")


def options_from_args(args) -> CaseOptions:
    """The ``CaseOptions`` of parsed ``add_case_arguments`` options."""
    return CaseOptions(contrast=getattr(args, "contrast", None), target=getattr(args, "target", "whole"),
                       convention=getattr(args, "label_convention", None))
