"""The next step's batch, collated in a background thread while the current step computes.

Every ``collate`` in seqae is a pure function of the example indices it is given (augmentations and
reference choices draw their randomness from the indices), and the order of batches a pure function of
``(seed, epoch)``; so a batch made ahead is the batch that would have been made on time: training stays
exact and resumes exactly, with or without ``train.prefetch``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Prefetch:
    """One batch ahead, in one background thread.

    ``ahead(key, make)`` starts ``make()`` in the thread; ``take(key, make)`` returns the result made
    ahead when ``key`` matches the last ``ahead``'s (its error, if it failed, is raised here, where it
    would have been raised without the thread), and ``make()`` called now otherwise. Disabled, both call
    ``make`` only when taken. Only one ``make`` runs at a time: a stale one is waited for and dropped.
    """

    def __init__(self, enabled: bool):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="seqae-prefetch") if enabled else None
        self.key: Hashable | None = None
        self.future: Future | None = None

    def ahead(self, key: Hashable, make: Callable[[], Any]) -> None:
        if self.pool is not None:
            self.wait()
            self.key, self.future = key, self.pool.submit(make)

    def take(self, key: Hashable, make: Callable[[], Any]) -> Any:
        future, self.future = self.future, None
        if future is not None:
            if key == self.key:
                return future.result()
            future.exception()  # a stale batch: wait for it, drop it and any error it met
        return make()

    def wait(self) -> None:
        """Block until the batch in the making (if any) is made: before other work reads the same data."""
        if self.future is not None:
            self.future.exception()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool, self.future = None, None
