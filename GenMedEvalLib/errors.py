"""User-facing errors: one line that names the file and the problem, never a traceback."""

from __future__ import annotations

from pathlib import Path


class GenMedEvalError(Exception):
    """An error the user can act on; the CLI prints its message on one line and exits with 2."""


class InputError(GenMedEvalError, ValueError):
    """Bad input: a missing or unreadable file, wrong dimensionality, bad geometry or values."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class ParameterError(GenMedEvalError, ValueError):
    """An unknown name or a parameter value outside its documented range."""
