"""Inputs are sacred: every command resolves its outputs before any work and refuses unsafe ones.

An output is refused (``OutputError``, one line, exit 2) when it is one of the inputs, lies inside
an input folder, contains an input, is of the wrong kind (a folder where a file is written or the
reverse), or already exists: an existing file is replaced only with ``--overwrite``; an existing
folder only when GenMedEval wrote it (it holds the :data:`MARKER` file) and ``--overwrite`` is
given, or, for a run folder that resumes (sweep, compare, demo), when GenMedEval wrote it.

Folder outputs are atomic (:func:`atomic_folder`): the command writes into a temporary sibling
folder that is renamed onto the target only when every file is in place, so a failed or killed
run leaves no half-filled folder that looks complete; a re-run starts clean and removes the
temporaries that dead runs left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError
from .filecheck import check_name

MARKER = ".genmedeval-output"
_TMP_TAG = ".genmedeval-tmp-"
_OLD_TAG = ".genmedeval-old-"


def _resolved(path: str | Path) -> Path:
    """Absolute path with symbolic links of its existing part resolved."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def written_by_genmedeval(folder: Path) -> bool:
    """True when ``folder`` holds GenMedEval's output marker."""
    return (folder / MARKER).is_file()


def _is_legacy_run(folder: Path) -> bool:
    """A run folder written before the marker existed: it holds GenMedEval's run.json or compare.json."""
    return (folder / "run.json").is_file() or (folder / "compare.json").is_file()


def _is_empty_dir(folder: Path) -> bool:
    try:
        return folder.is_dir() and not any(folder.iterdir())
    except OSError:
        return False


def _check_against_inputs(target: Path, option: str, inputs: list[Path]) -> None:
    resolved = _resolved(target)
    for source in inputs:
        src = _resolved(source)
        if resolved == src or _same_file(target, source):
            raise OutputError(f"{option} {target}: is an input ({source}); choose another output")
        if source.is_dir() and _inside(resolved, src):
            raise OutputError(f"{option} {target}: lies inside the input folder {source}; choose another output")
        if _inside(src, resolved) and resolved != src:
            raise OutputError(f"{option} {target}: contains the input {source}; choose another output")


def _check_parent(target: Path, option: str) -> None:
    parent = _resolved(target).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{option} {target}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {target}: folder {parent} is not writable")


def check_output_file(target: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                      option: str = "output") -> Path:
    """``target`` when it is safe to write as a file (see the module docstring), else ``OutputError``."""
    target = Path(target)
    check_name(target)
    sources = [Path(p) for p in inputs if p is not None]
    _check_against_inputs(target, option, sources)
    if target.is_dir():
        raise OutputError(f"{option} {target}: is a folder; a file name is needed")
    if target.exists() and not overwrite:
        raise OutputError(f"{option} {target}: exists; pass --overwrite to replace it")
    _check_parent(target, option)
    return target


def check_output_folder(target: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                        resume: bool = False, option: str = "output folder") -> Path:
    """``target`` when it is safe to write as a folder; ``resume`` lets a run folder GenMedEval wrote be reused."""
    target = Path(target)
    check_name(target)
    sources = [Path(p) for p in inputs if p is not None]
    _check_against_inputs(target, option, sources)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{option} {target}: is a file; a folder is needed")
    if target.is_dir() and not _is_empty_dir(target):
        ours = written_by_genmedeval(target) or resume and _is_legacy_run(target)
        if not ours:
            raise OutputError(f"{option} {target}: holds files GenMedEval did not write; choose a new or empty folder")
        if not (overwrite or resume):
            raise OutputError(f"{option} {target}: exists; pass --overwrite to replace it")
    _check_parent(target, option)
    return target


def write_marker(folder: Path, command: str) -> None:
    """Mark ``folder`` as GenMedEval's output (what a later ``--overwrite`` or resume may replace)."""
    from . import __version__

    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"command": command, "version": __version__,
                                             "written": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Delete the temporary folders and files that killed GenMedEval runs left in ``folder`` (and below)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    entries = folder.rglob(".*") if recursive else folder.iterdir()
    for entry in list(entries):
        pid = _temporary_pid(entry.name)
        if pid is None or _pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _temporary_pid(name: str) -> int | None:
    """The writer's process id in a temporary name (``.NAME.genmedeval-tmp-PID...``), else None."""
    for tag in (_TMP_TAG, _OLD_TAG):
        if name.startswith(".") and tag in name:
            digits = name.split(tag, 1)[1].split(".", 1)[0].split("-", 1)[0]
            if digits.isdigit():
                return int(digits)
    return None


def temporary_name(target: Path) -> str:
    """The name of a temporary sibling of ``target`` that :func:`remove_stale_temporaries` recognises."""
    return f".{target.name}{_TMP_TAG}{os.getpid()}"


def claim_run_folder(target: Path, command: str) -> Path:
    """Prepare a resumable run folder (already checked): marked as GenMedEval's, dead runs' temporaries removed."""
    target.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target, recursive=True)
    if not written_by_genmedeval(target):
        write_marker(target, command)
    return target


@contextmanager
def atomic_folder(target: str | Path, command: str) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success mark it and rename it onto ``target`` (replacing it).

    On any exception the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    parent = _resolved(target).parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent)
    work = parent / temporary_name(target)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        yield work
        write_marker(work, command)
        _swap_in(work, parent / target.name)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _swap_in(work: Path, target: Path) -> None:
    """Rename ``work`` onto ``target``; an existing target is moved aside first and deleted after."""
    if not target.exists():
        os.replace(work, target)
        return
    old = target.parent / f".{target.name}{_OLD_TAG}{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    try:
        os.replace(work, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
