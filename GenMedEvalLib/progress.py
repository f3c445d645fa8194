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


class StepBar:
    """A progress bar advanced by calls (for loops inside library code that report each step).

    ``with StepBar(total, desc) as tick: train(..., report=lambda *_: tick())``; the bar is closed
    (drained to its total) on leaving the block.
    """

    def __init__(self, total: int, desc: str = "", enable: bool | None = None):
        self._steps = iter(progress(range(total), total=total, desc=desc, enable=enable))

    def __call__(self, *_: object) -> None:
        next(self._steps, None)

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *_: object) -> None:
        for _ in self._steps:
            pass
