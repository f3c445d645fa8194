"""The batch job's journal: one JSON line per unit of work when it is done, so a killed run resumes.

A unit is a volume's features, a case's segmentation, a stage's metric table, a sweep condition or
the scene. Its line records the work it took (network passes, metric tables and segmentations
computed rather than served by a cache). The first line names the job's digest: a journal written
for a different job is never resumed. Each line is written with one ``write`` and flushed to disk
before the next unit starts, so a SIGKILL loses at most the unit under way; a torn last line (the
process killed mid-write) is ignored on reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InputError

JOURNAL = "journal.jsonl"


class Journal:
    """Units done by earlier runs of this job (``done``) and by this run (appended as they finish)."""

    def __init__(self, folder: Path, digest: str, *, restart: bool = False):
        self.path = Path(folder) / JOURNAL
        self.digest = digest
        self.done: dict[str, dict[str, Any]] = {}
        self.this_run: list[dict[str, Any]] = []
        if self.path.exists() and not restart:
            self._read()
        else:
            self._start()

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"job": self.digest}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except ValueError:
            header = {}
        if header.get("job") != self.digest:
            raise InputError("holds the journal of a different job (its sets, stages or settings changed); "
                             "run with --restart to start again, or choose another outputs.folder", self.path)
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill
            if isinstance(entry, dict) and isinstance(entry.get("unit"), str):
                self.done.setdefault(entry["unit"], entry)

    def record(self, unit: str, work: dict[str, int]) -> dict[str, Any]:
        """Append a finished unit: ``reused`` when an earlier run did it, else ``done``."""
        status = "reused" if unit in self.done else "done"
        entry = {"unit": unit, "status": status, **{k: int(v) for k, v in work.items()}}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.this_run.append(entry)
        self.done.setdefault(unit, entry)
        return entry

    def recomputed(self) -> list[str]:
        """Units an earlier run finished that this run had to compute again (a cache entry was lost)."""
        return [e["unit"] for e in self.this_run
                if e["status"] == "reused" and any(v for k, v in e.items() if k not in ("unit", "status"))]
