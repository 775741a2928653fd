"""The one interface between data sets and the Trainer."""

from __future__ import annotations

import numpy as np
import torch


class DataError(ValueError):
    """Input data that cannot be used; the message names the file (and line or key)."""


class BatchSource:
    """A finite data set that the Trainer turns into global batches.

    Subclasses implement ``__len__`` and ``collate``; they override ``epoch_batches`` when batches must be
    shaped (length buckets, contiguous sentences). The order of batches is a pure function of
    ``(seed, epoch)``, so a resumed run sees exactly the batches it would have seen.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """The examples at ``indices`` as one batch: a dict of tensors whose first dimension is ``len(indices)``."""
        raise NotImplementedError

    def check_batch_size(self, batch_size: int, unit: str = "examples") -> int:
        """The number of examples; fewer than one batch is a DataError naming the source."""
        n = len(self)
        if n < batch_size:
            raise DataError(
                f"{self.describe()}: {n} {unit}, fewer than one batch of {batch_size}; "
                "use a smaller train.batch_size or more data"
            )
        return n

    def epoch_batches(self, epoch: int, seed: int, batch_size: int) -> list[np.ndarray]:
        """Index arrays of the global batches of one epoch (a shuffled pass; the remainder is dropped)."""
        n = self.check_batch_size(batch_size)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]

    def describe(self) -> str:
        return type(self).__name__

    def eval_batches(self, batch_size: int) -> list[np.ndarray]:
        """Index arrays covering every example once, in order (for evaluation)."""
        n = len(self)
        return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
