"""Progress of long work outside training (evaluations, conversions, index building), on stderr: a tqdm bar
on a terminal; off one (``nohup``, a batch job, a log file) a plain line as each part ends, with the time
so far, so a log never sits silent for minutes. stdout is left alone (``--json`` stays one object)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def each(items: Iterable[T], what: str, total: int | None = None, name: Callable[[T], Any] | None = None,
         stream: Any = None, every: float = 10.0) -> Iterator[T]:
    """Yield ``items``, showing ``what`` and how many are done; ``name(item)`` labels each part in the plain
    lines, which come at most every ``every`` seconds and after the last item. A bar only when the stream is
    a terminal."""
    stream = stream or sys.stderr
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if stream.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=what, total=total, file=stream, leave=False)
        return
    start = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= every or done == total:
            last = now
            label = f" ({name(item)})" if name else ""
            of = f"/{total}" if total else ""
            print(f"seqae: {what}: {done}{of} done{label}, {now - start:.0f} s", file=stream, flush=True)
