"""Atomic file writes: a temporary created exclusively (``O_EXCL | O_NOFOLLOW``: an existing file or a
symbolic link planted under the name is never written through), written, fsynced and renamed into place,
so no file is ever half-written; a full disk or an unwritable folder is a :class:`CheckpointError`
naming the file. Every output seqae writes goes through :func:`atomic_write`."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from seqae.faults import failpoint

TMP_SUFFIX = ".seqae-tmp"


class CheckpointError(RuntimeError):
    """A run directory that cannot be used; the message names the file."""


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_exclusive(path: Path):
    """Open a new file for writing; never through an existing file or a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, 0o666), "wb")


def write_tmp(path: Path, data: bytes, step: int | None = None, tmp: Path | None = None) -> Path:
    """Write ``data`` completely to a new temporary file beside ``path`` and fsync it; returns its path.

    ``tmp``: the temporary's name (checkpoints use ``path.tmp``, which :func:`recover` knows; a stale
    one, seqae's own, is removed first); default a fresh ``.NAME.RANDOM.seqae-tmp``. Raises
    CheckpointError on a full disk or an unwritable folder. ``step``: the checkpoint's step, for the
    ``checkpoint_writing`` fault point (:mod:`seqae.faults`)."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give a file name to write to (nothing was written)")
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{TMP_SUFFIX}")
    else:
        try:
            tmp.unlink()  # a leftover of seqae's own (a symbolic link is removed, not followed)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise CheckpointError(f"{tmp}: cannot replace ({err.strerror or err})") from None
    try:
        fh = create_exclusive(tmp)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: the folder {path.parent} does not exist") from None
    except OSError as err:
        raise CheckpointError(f"{path}: could not write ({err.strerror or err}); nothing was changed") from None
    try:
        with fh:
            if step is not None:
                fh.write(data[: len(data) // 2])
                fh.flush()
                failpoint("checkpoint_writing", step)
                data = data[len(data) // 2 :]
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise CheckpointError(f"{path}: could not write ({err.strerror or err}); the previous version is intact") from None
    return tmp


def commit(tmp: Path, path: Path) -> None:
    """Rename a complete temporary into place (a symbolic link at ``path`` is replaced, not followed)."""
    try:
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        what = "is a folder" if err.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST) else (err.strerror or str(err))
        raise CheckpointError(f"{path}: could not write ({what}); nothing was changed") from None


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The data go to a new temporary beside ``path`` (created exclusively), which is fsynced and renamed.
    A full disk, a folder at ``path`` or a missing folder is a :class:`CheckpointError` naming ``path``;
    the old file is then intact and no temporary is left behind."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    commit(write_tmp(path, data), path)
    fsync_dir(path.parent)


def keep_if_possible(path: str | os.PathLike, data: bytes | str) -> bool:
    """:func:`atomic_write` for a file that can be computed again (a cache's derived figures): a folder that
    cannot be written (read-only, full) is not an error, the file is simply not kept. Returns whether it was."""
    try:
        atomic_write(path, data)
    except (OSError, CheckpointError):
        return False
    return True


class AppendError(OSError):
    """An append that could not be made; ``opened`` says whether the file itself could be opened."""

    def __init__(self, err: OSError, opened: bool):
        super().__init__(err.errno, err.strerror or str(err))
        self.opened = opened


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` whole or not at all (a short write is cut back, so a log of lines stays
    readable); never through a symbolic link. Failures are an :class:`AppendError`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as err:
        raise AppendError(err, opened=False) from None
    size = os.fstat(fd).st_size
    try:
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as err:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise AppendError(err, opened=True) from None
    finally:
        os.close(fd)
