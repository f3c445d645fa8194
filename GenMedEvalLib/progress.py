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

    yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
