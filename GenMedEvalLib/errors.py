"""User-facing errors: one line that names the file and the problem, never a traceback."""

from __future__ import annotations

from pathlib import Path

#: the longest message the CLI prints: a pathological value (a YAML anchor bomb) never floods the terminal
MAX_MESSAGE = 400


def short(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that quote user input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (newlines folded) and at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type name when the message is empty), cut to ``limit``."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def display_path(path: str | Path) -> str:
    """A path as printable text, undecodable bytes shown as ``\\xNN`` escapes instead of crashing a print."""
    text = str(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class GenMedEvalError(Exception):
    """An error the user can act on; the CLI prints its message on one line and exits with 2."""


class InputError(GenMedEvalError, ValueError):
    """Bad input: a missing or unreadable file, wrong dimensionality, bad geometry or values."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{display_path(self.path)}: {problem}" if self.path is not None else problem)


class ParameterError(GenMedEvalError, ValueError):
    """An unknown name or a parameter value outside its documented range."""


class OutputError(GenMedEvalError):
    """An output that would destroy an input or replace a file GenMedEval did not write."""


class GenMedEvalWarning(UserWarning):
    """A problem GenMedEval recovered from (a corrupt cache entry); the CLI prints it as one line."""
