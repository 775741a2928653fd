"""The one interface between data sets and the Trainer."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from seqae.errors import DataError


def check_input_file(path, what: str = "file") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a regular file; else a DataError naming it. A FIFO,
    a device such as ``/dev/zero`` or a socket could block or never end, so only regular files are read."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such {what}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a {what}")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file (a FIFO, device or socket); give a {what} on disk")
    return path


def split_lines(text: str) -> list[str]:
    """``text`` split at ``\n`` only (a ``\r`` before it is dropped): one line per row, whatever other
    characters (U+2028, form feed, U+0085, U+001E) a line holds. A final newline ends the last line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_text_lines(path, what: str = "text file") -> list[str]:
    """The lines of a UTF-8 text file (:func:`split_lines`; a byte-order mark is dropped). A missing or
    irregular file, or bytes that are not UTF-8, are a DataError naming the file (and the line)."""
    path = check_input_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (invalid byte at byte offset {err.start}); "
                        "convert it with e.g. iconv -f latin1 -t utf-8") from None
    return split_lines(text.removeprefix("\ufeff"))


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

    def subset(self, name: str) -> BatchSource:
        """The data a training stage sees (:class:`~seqae.models.base.Stage` ``data``): ``"all"`` is the
        source itself; a source that offers no subset ``name`` gives itself too (the same object each call)."""
        return self

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


def fingerprint(*parts) -> str:
    """A short content hash of byte strings, arrays and plain values (the data a run was trained on)."""
    import hashlib
    import json

    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype.str, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


def utterances_fingerprint(utterances) -> str:
    """The fingerprint of an audio file list: each file's name, folder, size, speaker and text."""
    rows = []
    for u in utterances:
        try:
            size = u.audio.stat().st_size
        except OSError:
            size = -1
        rows.append([u.audio.parent.name, u.audio.name, size, u.speaker, u.text, len(u.phones)])
    return fingerprint(rows)


def default_cache_dir(config) -> Path:
    """Where caches go: the section's ``cache_dir`` when set, else $SEQAE_CACHE, else ~/.cache/seqae."""
    if getattr(config, "cache_dir", ""):
        return Path(config.cache_dir)
    return Path(os.environ.get("SEQAE_CACHE", Path.home() / ".cache" / "seqae"))


def build_once(folder: Path, write: Callable[[Path], None], what: str) -> None:
    """Build a cache folder: ``write(work)`` fills a temporary folder beside ``folder``, which is then
    renamed to it, so a reader never sees half a cache; when another process finished the same cache
    first, its copy is kept (it may be in use). A full or read-only disk is a DataError naming the folder."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    except OSError as err:
        raise cache_error(folder, err, what) from None
    try:
        write(work)
        (work / "done").touch()
        if (folder / "done").exists():
            return
        if folder.exists():
            shutil.rmtree(folder)  # an unfinished build
        try:
            os.replace(work, folder)
        except OSError:
            if not (folder / "done").exists():
                raise
    except OSError as err:
        raise cache_error(folder, err, what) from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def cache_error(folder: Path, err: OSError, what: str) -> DataError:
    return DataError(f"{folder}: could not write the {what} ({err.strerror or err}); free some space, or "
                     "point $SEQAE_CACHE (or data.cache_dir) at another disk")
