"""Evaluate a selection of metrics on named sets and return a tidy table, with bootstrap CIs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenMedEvalError, ParameterError
from ..io import write_text
from ..threads import metric_blas
from .registry import DEFAULT_METRICS, METRICS, MetricSpec

SET_NAMES = ("reference", "generated", "train", "test")


@dataclass
class MetricRow:
    """One value of the table: metric output name, value, 95 % CI, direction, needs, set sizes."""

    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    better: str
    needs: str
    n_reference: int
    n_generated: int
    available: bool
    note: str = ""


@dataclass
class SuiteResult:
    """The suite's table; ``to_csv``/``to_json`` write it atomically, ``format`` prints it."""

    rows: list[MetricRow]

    def value(self, metric: str) -> float | None:
        """The value of one output (``"fd"``, ``"precision"``, ...)."""
        return next(r.value for r in self.rows if r.metric == metric)

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]

    def to_csv(self, path: str | Path) -> Path:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(MetricRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(self.to_records())
        return write_text(path, buffer.getvalue())

    def to_json(self, path: str | Path) -> Path:
        return write_text(path, json.dumps(self.to_records(), indent=2))

    def format(self) -> str:
        """An aligned, readable table for the terminal."""
        lines = [f"{'metric':<16}{'value':>12}  {'95% CI':<24}{'better':<8}{'sets':<28}note"]
        for r in self.rows:
            value = f"{r.value:.5g}" if r.value is not None else "n/a"
            ci = f"[{r.ci_low:.4g}, {r.ci_high:.4g}]" if r.ci_low is not None else ""
            lines.append(f"{r.metric:<16}{value:>12}  {ci:<24}{r.better:<8}{r.needs:<28}{r.note}")
        return "\n".join(lines)


def resolve_metrics(metrics: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma list -> registry names; unknown names raise ``ParameterError``."""
    names = list(DEFAULT_METRICS) if metrics == "all" else (metrics.split(",") if isinstance(metrics, str) else list(metrics))
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ParameterError(f"no metric named in {metrics!r}: give 'all' or a comma-separated list")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ParameterError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(METRICS)})")
    return names


def _evaluate(spec: MetricSpec, inputs: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, float]:
    """The metric's outputs as a dict of floats."""
    args = [inputs[name] for name in spec.needs]
    kwargs = {**spec.defaults, **options}
    result = spec.function(*args, **kwargs)
    if isinstance(result, dict):
        return {k: float(v) for k, v in result.items()}
    if isinstance(result, tuple):
        return {name: float(v) for name, v in zip(spec.outputs, result, strict=True)}
    return {spec.outputs[0]: float(result)}


def _inputs_for(spec: MetricSpec, sources: Mapping[str, Mapping[str, Any] | None]) -> tuple[dict[str, Any] | None, str]:
    """The sets ``spec`` takes, from the inputs of its kind, or None and why not."""
    from .registry import INPUTS

    source = sources.get(spec.input) or {}
    missing = [name for name in spec.needs if name not in source or source[name] is None]
    if missing:
        return None, f"needs the {INPUTS[spec.input].replace(' of the set', '')} of the set {', '.join(missing)}"
    return {name: source[name] for name in spec.needs}, ""


def _resample(inputs: Mapping[str, Any], rng: np.random.Generator,
              groups: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Bootstrap replicate: reference and generated resampled with replacement, others unchanged.

    With ``groups`` (a cluster id per row, e.g. the volume of each region crop), whole clusters
    are resampled, so rows that come from one volume move together.
    """
    out = dict(inputs)
    for name in ("reference", "generated"):
        if name not in out:
            continue
        rows = np.asarray(out[name])
        if groups is not None and name in groups:
            ids = np.asarray(groups[name])
            clusters = np.unique(ids)
            chosen = rng.choice(clusters, size=len(clusters), replace=True)
            out[name] = rows[np.concatenate([np.flatnonzero(ids == c) for c in chosen])]
        else:
            out[name] = rows[rng.integers(0, len(rows), len(rows))]
    return out


_BOOTSTRAP_OPTIONS = {"kd": {"num_subsets": 10}, "fd_inf": {"num_points": 5},
                      **{name: {"package_distance": False} for name in ("frd", "frd_roi", "frd_v1", "frd_v1_roi")}}
_BOOTSTRAP_OPTIONS.update({f"{base}_{region}": _BOOTSTRAP_OPTIONS[base] for base in ("kd", "fd_inf")
                           for region in ("roi", "band")})


def compute_suite(features: Mapping[str, np.ndarray], metrics: str | Sequence[str] = "all", *,
                  images: Mapping[str, np.ndarray] | None = None, logits: Mapping[str, np.ndarray] | None = None,
                  spatial: Mapping[str, np.ndarray] | None = None, bootstrap: int = 0, seed: int = 0,
                  options: Mapping[str, dict] | None = None,
                  local: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                  groups: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> SuiteResult:
    """Evaluate ``metrics`` on named sets ("reference", "generated", "train", "test").

    ``features`` are the main embeddings; ``spatial`` the Inception Mixed_6e features for sFID,
    ``logits`` classifier outputs for the Inception Score, ``images`` the slices for image metrics,
    ``local`` the inputs of the local metrics per kind (``registry.LOCAL_INPUTS``: region-crop
    features "roi"/"band", region descriptors "boundary"/"interior", radiomic features
    "radiomics"/"radiomics_roi"), each a mapping of set name to matrix. ``groups``: per input kind
    and set, a cluster id per row (the volume a region crop comes from); the bootstrap then
    resamples clusters, since a volume's many crops are not independent samples.

    A metric whose sets are absent, or whose weights are unavailable, gives a row with
    ``available=False`` and the reason. ``bootstrap=B`` adds percentile 95 % intervals from ``B``
    resamples of the reference and generated sets (KD then uses 10 subsets, FD-infinity 5
    points and FRD an exact Fréchet step instead of ``sqrtm`` per replicate, to keep the cost bounded).
    """
    options = options or {}
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int | np.integer) or bootstrap < 0:
        raise ParameterError(f"bootstrap: {bootstrap!r} is not a whole number >= 0")
    n_ref = len(features.get("reference", [])) if features.get("reference") is not None else 0
    n_gen = len(features.get("generated", [])) if features.get("generated") is not None else 0
    sources = {"features": features, "images": images, "logits": logits, "spatial": spatial, **(local or {})}
    rows: list[MetricRow] = []
    for name in resolve_metrics(metrics):
        spec = METRICS[name]
        inputs, reason = _inputs_for(spec, sources)
        sizes = {k: len(v) for k, v in (inputs or {}).items()}  # a local metric's own sample: its region crops
        base = dict(better=spec.better, needs="+".join(spec.needs), n_reference=sizes.get("reference", n_ref),
                    n_generated=sizes.get("generated", n_gen))
        if inputs is None:
            rows += [MetricRow(o, None, None, None, available=False, note=reason, **base) for o in spec.outputs]
            continue
        try:
            with metric_blas():
                values = _evaluate(spec, inputs, {"seed": seed, **options.get(name, {})} if "seed" in _params(spec) else
                                   options.get(name, {}))
        except GenMedEvalError as exc:
            rows += [MetricRow(o, None, None, None, available=False, note=str(exc), **base) for o in spec.outputs]
            continue
        with metric_blas():
            intervals = _bootstrap(spec, inputs, options.get(name, {}), bootstrap, seed,
                                   (groups or {}).get(spec.input)) if bootstrap else {}
        for output, value in values.items():
            low, high = intervals.get(output, (None, None))
            finite = np.isfinite(value)
            rows.append(MetricRow(output, float(value) if finite else None, low, high, available=bool(finite),
                                  note="" if finite else "undefined for these sets", **base))
    return SuiteResult(rows)


def _params(spec: MetricSpec) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(spec.function).parameters)


def _bootstrap(spec: MetricSpec, inputs, options, replicates: int, seed: int,
               groups: Mapping[str, np.ndarray] | None = None) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng([seed, 7919])
    extra = {**_BOOTSTRAP_OPTIONS.get(spec.name, {}), **options}
    if "seed" in _params(spec):
        extra.setdefault("seed", seed)
    samples: dict[str, list[float]] = {}
    for _ in range(replicates):
        for key, value in _evaluate(spec, _resample(inputs, rng, groups), extra).items():
            samples.setdefault(key, []).append(value)
    finite = {key: np.asarray(v, dtype=float)[np.isfinite(v)] for key, v in samples.items()}
    return {key: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for key, v in finite.items()
            if len(v) >= 2}  # an output undefined on (almost) every replicate gets no interval
