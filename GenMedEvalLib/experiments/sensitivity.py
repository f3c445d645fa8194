"""The sensitivity table: every metric output, global and local, against every perturbation and level, as z-scores.

Rows are metric outputs (``fd``, ``precision_roi``, ``boundary``, ...) with their scope (global or
local: a crop, a band or the region itself), columns the sweep's conditions; a cell is the z of
the change from the baseline (``tables.zscore``). Per family, ``max |z|`` over its levels says
whether the metric detects it (|z| >= ``DETECTS``) or stays quiet (|z| < ``QUIET`` at every level).
"""

from __future__ import annotations

from typing import Any

from .tables import is_spread

DETECTS = 3.0
QUIET = 2.0


def output_scopes() -> dict[str, str]:
    """Scope of every metric output: "global", or the local region it sees ("roi", "band", "region")."""
    from ..metrics.registry import METRICS

    return {output: spec.local or "global" for spec in METRICS.values() for output in spec.outputs}


def sensitivity_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric output: its scope, direction, the z of every condition and ``max |z|`` per family."""
    scopes = output_scopes()
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    family = {r["condition"]: r["family"] for r in rows}
    by = {(r["metric"], r["condition"]): r.get("z") for r in rows}
    out = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        if is_spread(str(metric)):
            continue  # the spread of KID's estimates, not a metric
        row: dict[str, Any] = {"metric": metric, "scope": scopes.get(metric, "global"),
                               "better": next((r.get("better", "") for r in rows if r["metric"] == metric), "")}
        row.update({c: by.get((metric, c)) for c in conditions})
        for fam in dict.fromkeys(family.values()):
            values = [abs(by[(metric, c)]) for c in conditions if family[c] == fam and by.get((metric, c)) is not None]
            row[f"max|z| {fam}"] = round(max(values), 2) if values else None
        out.append(row)
    return out


def verdict(max_abs_z: float | None) -> str:
    """``detects`` (|z| >= 3 at some level), ``quiet`` (|z| < 2 at every level), ``weak`` between, ``n/a``."""
    if max_abs_z is None:
        return "n/a"
    return "detects" if max_abs_z >= DETECTS else "quiet" if max_abs_z < QUIET else "weak"


def key_rows(rows: list[dict[str, Any]], conditions: list[str]) -> list[dict[str, Any]]:
    """FD, FRD, FRD-ROI and the local metric with the largest |z| at the first of ``conditions`` present."""
    table = {r["metric"]: r for r in sensitivity_rows(rows)}
    present = [c for c in conditions if any(c in r for r in table.values())]
    local = [r for r in table.values() if r["scope"] != "global" and r["metric"] != "frd_roi"]
    best = max(local, key=lambda r: abs(r.get(present[0]) or 0.0), default=None) if present else None
    chosen = [table.get("fd"), best, table.get("frd"), table.get("frd_roi")]
    return [{"metric": r["metric"], "scope": r["scope"], **{c: r.get(c) for c in present}} for r in chosen if r]
