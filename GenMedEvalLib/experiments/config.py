"""The sweep configuration (YAML): data sets, features, metrics, downstream, perturbations and their levels.

```yaml
name: my-study
data:                                   # a folder, or {folder: PATH, split: NAME} to use one cohort.csv split
  base: {folder: cohort/images, split: eval}        # the set that is perturbed
  reference: {folder: cohort/images, split: reference}
  train: {folder: cohort/images, split: train}      # optional: external duplication, AuthPct, CT
  test: {folder: cohort/images, split: test}        # optional: CT score
features: {encoder: domain, max_slices: 6, tumour_slices: 2, plane: axial}
cases: {contrast: null, target: whole, label_convention: null}   # case folders: contrast the encoders see, tumour target
metrics: all                            # or a list of metric names
bootstrap: 20
seed: 0
downstream: {enabled: true, segmenter: null, max_volumes: null}
perturbations:                          # omitted = every perturbation at the paper's levels
  gaussian_noise: ["0.01", "0.05", "0.1"]          # preset level names (`genmedeval perturb --list`)
  boundary_blur: [{sigma: 1.5}, "3"]               # or explicit parameters
```
Relative paths are resolved against the config file's folder. Every problem is reported as one
line naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ParameterError, one_line, short
from ..features.slicing import DEFAULT_SLICES

SET_NAMES = ("base", "reference", "train", "test")


@dataclass(frozen=True)
class DataSet:
    """A folder of volumes (or an explicit list of volume files and case folders), optionally restricted to
    one split of its cohort.csv, with an optional folder of masks."""

    folder: Path | None
    split: str | None = None
    files: tuple[Path, ...] | None = None
    masks: Path | None = None
    labels: Path | None = None  # a cohort.csv (name, label, group, split) other than the one beside the volumes

    def describe(self) -> str:
        where = f"{len(self.files)} listed files" if self.files is not None else f"{self.folder}"
        return where + (f" (split {self.split})" if self.split else "") + (f", masks {self.masks}" if self.masks else "")

    def paths(self) -> list[Path]:
        """Every input path of the set (to keep outputs out of them)."""
        return [p for p in (self.folder, self.masks, self.labels, *(self.files or ())) if p is not None]


@dataclass(frozen=True)
class Condition:
    """One perturbation at one level, with the exact parameters and seed that regenerate it."""

    perturbation: str
    level: str
    params: dict[str, Any]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.perturbation}@{self.level}"


@dataclass
class SweepConfig:
    """A validated sweep: where the data is, how to encode it, what to compute, which conditions."""

    name: str
    data: dict[str, DataSet]
    conditions: list[Condition]
    encoder: str = "domain"
    max_slices: int | None = DEFAULT_SLICES.max_slices
    tumour_slices: int = DEFAULT_SLICES.tumour_slices
    metrics: list[str] | str = "all"
    bootstrap: int = 20
    seed: int = 0
    downstream: bool = True
    segmenter: str | None = None
    downstream_max_volumes: int | None = None
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    plane: str = DEFAULT_SLICES.plane
    cases: Any = None

    def __post_init__(self) -> None:
        if self.cases is None:
            from ..cases import DEFAULT_CASE_OPTIONS

            self.cases = DEFAULT_CASE_OPTIONS

    @property
    def slice_settings(self):
        """The slice rules of this sweep: the shared defaults with the config's counts and plane."""
        from dataclasses import replace

        return replace(DEFAULT_SLICES, max_slices=self.max_slices, tumour_slices=self.tumour_slices, plane=self.plane)


def paper_conditions(seed: int = 0) -> list[Condition]:
    """Every perturbation of the study at each of the paper's levels (50:50 density is the baseline).

    Perturbations beyond the paper (``beyond_paper``, the TorchIO artefacts) are not part of the
    study's sweep; a config names them explicitly under ``perturbations``.
    """
    from ..perturb import PERTURBATIONS

    return [Condition(spec.name, level, spec.validate(params), seed)
            for spec in PERTURBATIONS.values() if not spec.beyond_paper for level, params in spec.presets.items()
            if not (spec.name == "density_shift" and level == "50:50")]


def default_config_text() -> str:
    """The default config as YAML: the paper's conditions on the demo cohort's splits."""
    import yaml

    levels: dict[str, list[str]] = {}
    for condition in paper_conditions():
        levels.setdefault(condition.perturbation, []).append(condition.level)
    body = yaml.safe_dump({"perturbations": levels}, sort_keys=False, default_flow_style=None)
    return f"""# GenMedEval Phase 1 sweep: the conditions of Deo et al. 2025 (Metrics that matter).
name: paper-default
data:
  base: {{folder: cohort/images, split: eval}}
  reference: {{folder: cohort/images, split: reference}}
  train: {{folder: cohort/images, split: train}}
  test: {{folder: cohort/images, split: test}}
features: {{encoder: domain, max_slices: 6, tumour_slices: 2}}
metrics: all
bootstrap: 20
seed: 0
downstream: {{enabled: true, segmenter: null, max_volumes: null}}
{body}"""


MAX_CONFIG_NODES = 100_000
MAX_CONFIG_BYTES = 1 << 20


def _fail(path: Path | None, key: str, problem: str) -> InputError:
    return InputError(one_line(f"{key}: {problem}", 300), path)


def _check_size(raw: Any, path: Path | None) -> None:
    """Refuse a document that expands to more than ``MAX_CONFIG_NODES`` values (a YAML alias bomb, a recursive alias)."""
    stack, seen = [raw], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            raise _fail(path, "(document)", f"expands to more than {MAX_CONFIG_NODES} values (YAML aliases?); "
                        "a sweep config is a few dozen lines")
        if isinstance(node, Mapping):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


def _downstream_values(downstream: Mapping, path: Path | None) -> tuple[bool, str | None]:
    """``enabled`` must be true/false (``"no"`` is a string, not false) and ``segmenter`` a path or null."""
    enabled, segmenter = downstream.get("enabled", True), downstream.get("segmenter")
    if not isinstance(enabled, bool):
        raise _fail(path, "downstream.enabled", f"expected true or false, got {short(enabled)}")
    if segmenter is not None and not isinstance(segmenter, str):
        raise _fail(path, "downstream.segmenter", f"expected a path or null, got {short(segmenter)}")
    return enabled, segmenter


def _resolve(value: Any, key: str, base_dir: Path, path: Path | None) -> Path:
    """A path from the file, relative to its folder."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, key, f"expected a path, got {short(value)}")
    return Path(value) if Path(value).is_absolute() else base_dir / value


def _dataset(value: Any, key: str, base_dir: Path, path: Path | None) -> DataSet:
    """``FOLDER``, ``{folder, split, masks, labels}`` or ``{files: [PATH, ...], split, masks, labels}``."""
    if isinstance(value, str):
        return DataSet(_resolve(value, key, base_dir, path))
    if not isinstance(value, Mapping) or ("folder" in value) == ("files" in value):
        raise _fail(path, key, "expected a folder path, {folder: PATH, split: NAME, masks: FOLDER, labels: CSV} "
                    "or {files: [PATH, ...], masks: FOLDER, labels: CSV}")
    unknown = set(value) - {"folder", "files", "split", "masks", "labels"}
    if unknown:
        raise _fail(path, key, f"unknown key(s) {', '.join(sorted(unknown))} (use folder or files, split, masks, "
                    "labels)")
    split = value.get("split")
    masks = _resolve(value["masks"], f"{key}.masks", base_dir, path) if value.get("masks") is not None else None
    labels = _resolve(value["labels"], f"{key}.labels", base_dir, path) if value.get("labels") is not None else None
    if "folder" in value:
        return DataSet(_resolve(value["folder"], f"{key}.folder", base_dir, path),
                       None if split is None else str(split), masks=masks, labels=labels)
    files = value["files"]
    if not isinstance(files, list) or not files:
        raise _fail(path, f"{key}.files", "expected a non-empty list of volume files or case folders")
    listed = tuple(_resolve(f, f"{key}.files[{i}]", base_dir, path) for i, f in enumerate(files))
    return DataSet(None, None if split is None else str(split), files=listed, masks=masks, labels=labels)


def _conditions(value: Any, seed: int, path: Path | None, key: str = "perturbations") -> list[Condition]:
    from ..perturb import PERTURBATIONS

    if value is None:
        return paper_conditions(seed)
    if not isinstance(value, Mapping) or not value:
        raise _fail(path, key, "expected a mapping of perturbation name -> list of levels")
    out = []
    for name, levels in value.items():
        if name not in PERTURBATIONS:
            raise _fail(path, f"{key}.{name}", f"unknown perturbation (choose from {', '.join(PERTURBATIONS)})")
        spec = PERTURBATIONS[name]
        if not isinstance(levels, list) or not levels:
            raise _fail(path, f"{key}.{name}", "expected a non-empty list of levels")
        for i, level in enumerate(levels):
            item = f"{key}.{name}[{i}]"
            try:
                if isinstance(level, Mapping):
                    params = spec.validate(dict(level))
                    label = ",".join(f"{k}={v}" for k, v in sorted(dict(level).items())) or "default"
                else:
                    label = str(level)
                    if label not in spec.presets:
                        raise ParameterError(f"unknown level '{label}' (levels: {', '.join(spec.presets)})")
                    params = spec.validate(spec.presets[label])
            except ParameterError as exc:
                raise _fail(path, item, str(exc)) from None
            out.append(Condition(name, label, params, seed))
    names = [c.name for c in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(path, key, f"duplicate condition(s) {', '.join(duplicates)}")
    return out


def _int(value: Any, key: str, path: Path | None, low: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(path, key, f"expected an integer >= {low}, got {value!r}")
    return value


def _case_options(value: Any, path: Path | None):
    """``cases: {contrast, target, label_convention}`` as ``cases.CaseOptions``."""
    from ..cases import CaseOptions

    if not isinstance(value, Mapping) or set(value) - {"contrast", "target", "label_convention"}:
        raise _fail(path, "cases", "expected {contrast, target, label_convention}")
    try:
        return CaseOptions(contrast=value.get("contrast"), target=str(value.get("target", "whole")),
                           convention=value.get("label_convention"))
    except ParameterError as exc:
        raise _fail(path, "cases", str(exc)) from None


def parse_config(raw: Any, *, path: Path | None = None, base_dir: Path | None = None) -> SweepConfig:
    """A validated ``SweepConfig`` from the parsed YAML mapping ``raw``."""
    from ..metrics.suite import resolve_metrics

    if not isinstance(raw, Mapping):
        raise _fail(path, "(top level)", "expected a mapping")
    _check_size(raw, path)
    known = {"name", "data", "features", "metrics", "bootstrap", "seed", "downstream", "perturbations", "cases"}
    unknown = set(raw) - known
    if unknown:
        raise _fail(path, ", ".join(sorted(unknown)), f"unknown key(s); known keys: {', '.join(sorted(known))}")
    base_dir = base_dir or (path.parent if path else Path.cwd())
    data_raw = raw.get("data")
    if not isinstance(data_raw, Mapping):
        raise _fail(path, "data", "expected a mapping with at least base and reference")
    for needed in ("base", "reference"):
        if needed not in data_raw:
            raise _fail(path, f"data.{needed}", "missing")
    extra = set(data_raw) - set(SET_NAMES)
    if extra:
        raise _fail(path, "data", f"unknown set(s) {', '.join(sorted(extra))} (use {', '.join(SET_NAMES)})")
    data = {name: _dataset(value, f"data.{name}", base_dir, path) for name, value in data_raw.items()}
    seed = _int(raw.get("seed", 0), "seed", path)
    features = raw.get("features") or {}
    if not isinstance(features, Mapping) or set(features) - {"encoder", "max_slices", "tumour_slices", "plane"}:
        raise _fail(path, "features", "expected {encoder, max_slices, tumour_slices, plane}")
    from ..features.slicing import PLANES

    plane = str(features.get("plane", DEFAULT_SLICES.plane))
    if plane not in (*PLANES, "all"):
        raise _fail(path, "features.plane", f"unknown plane '{plane}' (choose from {', '.join(PLANES)}, all)")
    cases = _case_options(raw.get("cases") or {}, path)
    metrics = raw.get("metrics", "all")
    if not (isinstance(metrics, str) or isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        raise _fail(path, "metrics", f"expected 'all' or a list of metric names, got {short(metrics)}")
    try:
        resolve_metrics(metrics if isinstance(metrics, str) else list(metrics))
    except (ParameterError, TypeError) as exc:
        raise _fail(path, "metrics", str(exc)) from None
    downstream = raw.get("downstream", {"enabled": True})
    if isinstance(downstream, bool):
        downstream = {"enabled": downstream}
    if not isinstance(downstream, Mapping) or set(downstream) - {"enabled", "segmenter", "max_volumes"}:
        raise _fail(path, "downstream", "expected true/false or {enabled, segmenter, max_volumes}")
    enabled, segmenter = _downstream_values(downstream, path)
    encoder = str(features.get("encoder", "domain"))
    from ..features.registry import ENCODERS

    if encoder not in ENCODERS:
        raise _fail(path, "features.encoder", f"unknown encoder '{encoder}' (choose from {', '.join(ENCODERS)})")
    return SweepConfig(
        name=str(raw.get("name", path.stem if path else "sweep")), data=data,
        conditions=_conditions(raw.get("perturbations"), seed, path), encoder=encoder,
        max_slices=_int(features.get("max_slices", DEFAULT_SLICES.max_slices), "features.max_slices", path, 1,
                        allow_none=True),
        tumour_slices=_int(features.get("tumour_slices", DEFAULT_SLICES.tumour_slices), "features.tumour_slices",
                           path), plane=plane, cases=cases,
        metrics=metrics if isinstance(metrics, str) else list(metrics),
        bootstrap=_int(raw.get("bootstrap", 20), "bootstrap", path), seed=seed,
        downstream=enabled, segmenter=segmenter,
        downstream_max_volumes=_int(downstream.get("max_volumes"), "downstream.max_volumes", path, 1, allow_none=True),
        source=path, raw=dict(raw))


def read_yaml_file(path: str | Path, what: str = "sweep config") -> Any:
    """The parsed YAML document of ``path``; one line naming the file for a missing, huge or invalid one."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"is larger than {MAX_CONFIG_BYTES >> 10} KiB: not a {what}", path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(one_line(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", 200), path) from None
    except RecursionError:
        raise InputError("is nested too deeply", path) from None


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a YAML sweep config."""
    path = Path(path)
    return parse_config(read_yaml_file(path, "config"), path=path)
