"""Progress bars for long work, silent for a single item or when disabled."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", enable: bool | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a tqdm bar on stderr when there is more than one item.

    ``enable=None`` shows the bar when ``total > 1`` and ``GENMEDEVAL_NO_PROGRESS`` is unset.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if enable is None:
        enable = (total is None or total > 1) and not os.environ.get("GENMEDEVAL_NO_PROGRESS")
    if not enable:
        yield from items
        return
    from tqdm.auto import tqdm

    # In a terminal the bar disappears when done; in a log or a parent process (Slicer's Evaluate) the
    # final 100 % line stays, so the reader always sees the end.
    leave = not sys.stderr.isatty()
    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=leave, dynamic_ncols=True)
