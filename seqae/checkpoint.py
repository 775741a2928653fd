"""Run directories: checkpoints, ownership, locking and validation.

A run directory holds ``run.json`` (what marks the folder as a seqae run: format, family, the data's
fingerprint), ``config.toml`` (the resolved recipe), ``model.safetensors`` (weights, with the family
and step in its metadata), ``trainer_state.pt`` (optimizers, schedulers, step, epoch and RNG states)
and ``metrics.jsonl``. While ``seqae train`` writes it, the process holds an exclusive lock on
``.seqae.lock`` inside it, so a second process is refused instead of interleaving its files.

Every file is written to a temporary name, fsynced, and renamed into place, so no file is ever
half-written. Temporaries are created exclusively (``O_EXCL | O_NOFOLLOW``: an existing file or a
symbolic link planted under the name is never written through). A checkpoint is two files; both are
first written completely as ``model.safetensors.tmp`` and ``trainer_state.pt.tmp``, then
``trainer_state.pt`` is renamed, then ``model.safetensors``. A crash between the two renames leaves a
complete ``model.safetensors.tmp`` whose step matches ``trainer_state.pt``: :func:`recover` finishes
the rename, so the pair on disk always describes one step. :func:`recover` deletes only seqae's own
temporaries (those two names and ``.NAME.*.seqae-tmp``), never another ``*.tmp`` of the user's.

Nothing read from a run directory is ever executed: weights are safetensors, the trainer state is
read with ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists, tuples and dicts; the
RNG states are stored as tensors and lists), and config files are TOML.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from seqae.atomic import TMP_SUFFIX, CheckpointError, atomic_write, fsync_dir, write_tmp
from seqae.faults import failpoint

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = ".seqae.lock"
FORMAT = "seqae-1"  # the weights file's format tag (unchanged since the first release)
STATE_FORMAT = "seqae-2"  # trainer state readable with weights_only=True (RNG states as tensors and lists)
OLD_STATE_FORMATS = ("seqae-1",)  # numpy RNG state pickled as an ndarray: read with numpy's array constructors allowed
CHECKPOINT_TMP = (MODEL_FILE + ".tmp", STATE_FILE + ".tmp")


def model_bytes(state_dict: dict[str, torch.Tensor], family: str, step: int) -> bytes:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    metadata = {"format": FORMAT, "family": family, "step": str(step)}
    return save_safetensors_bytes(tensors, metadata=metadata)


def state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def rng_to_storable(state: dict[str, Any]) -> dict[str, Any]:
    """RNG states (``python``: ``random.getstate()``, ``numpy``: ``np.random.get_state()``, ``torch``,
    ``cuda``) as tensors, numbers and lists only, so they load with ``weights_only=True``."""
    out = dict(state)
    if "python" in state:
        version, internal, gauss = state["python"]
        out["python"] = {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss}
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        out["numpy"] = {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return out


def rng_from_storable(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`rng_to_storable` (states of the earlier format pass through unchanged)."""
    out = dict(state)
    python = state.get("python")
    if isinstance(python, dict):
        out["python"] = (python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss_next"])
    numpy_state = state.get("numpy")
    if isinstance(numpy_state, dict):
        out["numpy"] = (numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                        numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    return out


def save_checkpoint(
    run_dir: str | os.PathLike,
    model_state: dict[str, torch.Tensor],
    trainer_state: dict[str, Any],
    family: str,
    step: int,
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Write ``model.safetensors`` and ``trainer_state.pt`` for ``step`` (see the module docstring)."""
    run_dir = Path(run_dir)
    trainer_state = dict(trainer_state, step=step, family=family, format=STATE_FORMAT)
    model_tmp = write_tmp(run_dir / MODEL_FILE, model_bytes(model_state, family, step), step=step,
                          tmp=run_dir / CHECKPOINT_TMP[0])
    try:
        state_tmp = write_tmp(run_dir / STATE_FILE, state_bytes(trainer_state), tmp=run_dir / CHECKPOINT_TMP[1])
    except CheckpointError:
        model_tmp.unlink(missing_ok=True)
        raise
    failpoint("checkpoint_written", step)
    if before_commit is not None:
        before_commit()
    os.replace(state_tmp, run_dir / STATE_FILE)
    fsync_dir(run_dir)  # the state's rename reaches the disk before the model's
    failpoint("checkpoint_commit", step)
    os.replace(model_tmp, run_dir / MODEL_FILE)
    fsync_dir(run_dir)


def read_model_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file; a truncated or corrupt one is a CheckpointError naming it."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; this run directory has no trained weights")
    data = path.read_bytes()
    try:
        tensors = load_safetensors_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated weights file ({err})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seqae weights file (no '{FORMAT}' metadata)")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor '{name}' holds NaN or infinite values")
    return tensors, metadata


def numpy_array_globals() -> list:
    """The constructors numpy's pickled arrays name (the RNG state of trainer states written before
    :data:`STATE_FORMAT`): data constructors only, the allowance PyTorch documents for numpy arrays."""
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            allowed.append(__import__(module, fromlist=["_reconstruct"])._reconstruct)
        except (ImportError, AttributeError):
            pass
    return allowed


def read_trainer_state(path: Path) -> dict[str, Any]:
    """Read ``trainer_state.pt`` with ``torch.load(weights_only=True)``: nothing in the file can run code.

    A file that names anything beyond tensors, numbers, strings and containers (a planted pickle, say)
    is refused as a :class:`CheckpointError`; trainer states of the earlier format hold the numpy RNG
    state as an array, and load with numpy's array constructors allowed and nothing more."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; cannot resume without the trainer state")
    try:
        with torch.serialization.safe_globals(numpy_array_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for a damaged or hostile pickle
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Unsupported global" in str(err) or "Weights only load failed" in str(err):
            unsafe = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line][:1]
            raise CheckpointError(
                f"{path}: refused: the file asks to run code or build objects that a trainer state never holds "
                f"({unsafe[0] if unsafe else detail}); it was not written by seqae. Nothing from it was executed"
            ) from None
        raise CheckpointError(f"{path}: corrupt or truncated trainer state ({type(err).__name__}: {detail})") from None
    if not isinstance(state, dict) or state.get("format") not in (STATE_FORMAT, *OLD_STATE_FORMATS):
        raise CheckpointError(f"{path}: not a seqae trainer state")
    return state


def own_temporaries(folder: Path) -> list[Path]:
    """seqae's own temporary files in ``folder``: the two checkpoint temporaries and ``.NAME.*.seqae-tmp``."""
    found = [folder / name for name in CHECKPOINT_TMP if os.path.lexists(folder / name)]
    return found + sorted(p for p in folder.glob(f".*{TMP_SUFFIX}"))


def recover(run_dir: str | os.PathLike) -> None:
    """Finish a checkpoint whose commit was interrupted, and drop seqae's own incomplete temporaries
    (never any other file; a symbolic link is removed, not followed)."""
    run_dir = Path(run_dir)
    model_tmp = run_dir / CHECKPOINT_TMP[0]
    state_path = run_dir / STATE_FILE
    if model_tmp.is_file() and not model_tmp.is_symlink() and state_path.exists() and not os.path.lexists(run_dir / CHECKPOINT_TMP[1]):
        try:
            _, tmp_meta = read_model_file(model_tmp)
            state = read_trainer_state(state_path)
        except CheckpointError:
            tmp_meta, state = {}, {}
        if tmp_meta.get("step") == str(state.get("step")):
            current = {}
            try:
                _, current = read_model_file(run_dir / MODEL_FILE)
            except CheckpointError:
                pass
            if current.get("step") != tmp_meta["step"]:
                os.replace(model_tmp, run_dir / MODEL_FILE)
                fsync_dir(run_dir)
    for leftover in own_temporaries(run_dir):
        try:
            leftover.unlink()
        except OSError:
            pass


def checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The step of the checkpoint in ``run_dir``, or None if there is none."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return None
    return int(read_trainer_state(path)["step"])


def load_for_resume(
    run_dir: str | os.PathLike, family: str, recover_first: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and trainer state of the last complete checkpoint, checked to belong together.

    ``recover_first``: finish an interrupted commit first (one process only, under DDP).
    """
    run_dir = Path(run_dir)
    if recover_first:
        recover(run_dir)
    tensors, meta = read_model_file(run_dir / MODEL_FILE)
    state = read_trainer_state(run_dir / STATE_FILE)
    if meta.get("family") != family or state.get("family") != family:
        raise CheckpointError(
            f"{run_dir}: a run of family '{meta.get('family')}', not '{family}'; choose another --out"
        )
    if meta.get("step") != str(state["step"]):
        raise CheckpointError(
            f"{run_dir}: {MODEL_FILE} is from step {meta.get('step')} but {STATE_FILE} from step "
            f"{state['step']}; the pair does not belong together"
        )
    return tensors, state


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (an unreadable last line, from a crash mid-append, is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise CheckpointError(f"{path}: line {i + 1} is not JSON") from None
    return records


def truncate_metrics(run_dir: str | os.PathLike, step: int) -> None:
    """Drop metric records after ``step`` (they belong to work a resumed run will redo)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept))


# -- ownership and locking -------------------------------------------------------------------------

RUN_FORMAT = "seqae-run-1"


def weights_metadata(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file read from its header alone ({} when it is not one)."""
    try:
        with open(path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            if not 2 <= header_len <= 100_000_000:
                return {}
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError):
        return {}
    return (header.get("__metadata__") or {}) if isinstance(header, dict) else {}


def read_run_file(run_dir: Path) -> dict[str, Any] | None:
    """``run.json`` of a run directory (None when absent); a damaged one is a CheckpointError naming it."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not readable as JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path}: not a seqae run record (no format '{RUN_FORMAT}')")
    return record


def write_run_file(run_dir: Path, **fields: Any) -> None:
    """Create or update ``run.json`` (the mark of a seqae run directory) with ``fields``."""
    record = read_run_file(run_dir) or {"format": RUN_FORMAT}
    record.update(fields)
    atomic_write(run_dir / RUN_FILE, json.dumps(record, indent=2) + "\n")


def is_seqae_run(run_dir: Path) -> bool:
    """``run.json``, or (runs written before it existed) seqae's weights file, marks a seqae run."""
    if (run_dir / RUN_FILE).is_file():
        return True
    return weights_metadata(run_dir / MODEL_FILE).get("format") == FORMAT


def check_run_dir(run_dir: str | os.PathLike, resume: bool) -> bool:
    """Whether ``run_dir`` may be trained into (``resume``: continued); True when it holds a checkpoint.

    A seqae run directory belongs to seqae: a path that is a file, a non-empty folder that is not a
    seqae run, a run that is already trained (without ``resume``) and ``resume`` of a folder that
    does not exist or is empty are :class:`CheckpointError`\\ s; nothing on disk is touched."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: is a file, not a run directory; choose another --out (nothing was changed)")
    entries = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE) if run_dir.is_dir() else []
    if not entries:
        if resume:
            what = "does not exist" if not run_dir.exists() else "is empty"
            raise CheckpointError(f"{run_dir}: {what}; there is no run to resume (check the path, or train without "
                                  "--resume, resume=True in Python, to start a new run)")
        return False
    if not is_seqae_run(run_dir):
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise CheckpointError(f"{run_dir}: not empty and not a seqae run directory (it holds {shown}); choose a new or "
                              "empty folder for --out (nothing in it was changed)")
    has_run = (run_dir / STATE_FILE).exists() or (run_dir / MODEL_FILE).exists()
    if has_run and not resume:
        raise CheckpointError(f"{run_dir}: already holds a trained run; pass --resume (in Python: resume=True) to continue it, or choose "
                              "another --out (out=)")
    return has_run


class RunLock:
    """An exclusive lock on a run directory (``flock`` on ``RUN_DIR/.seqae.lock``), held while one
    process writes it; the kernel releases it when the process ends, however it ends.

    A second process is refused with a :class:`CheckpointError` that names the holder's process id.
    The folder is created if needed (the caller has checked it with :func:`check_run_dir`)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(self.run_dir / LOCK_FILE, flags, 0o666)
        except OSError as err:
            raise CheckpointError(f"{self.run_dir}: cannot create the run directory or its lock ({err.strerror or err})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CheckpointError(f"{self.run_dir / LOCK_FILE}: not a regular file; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(f"{self.run_dir} is in use by process {holder} (it is training into it); wait for it to "
                                  "finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def check_weights_match(run_dir: Path, expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> None:
    """The tensor names and shapes of the weights file must be the model's (built from config.toml)."""
    model_path = run_dir / MODEL_FILE
    problems = [f"'{k}' missing from the weights" for k in expected if k not in tensors]
    problems += [f"unexpected tensor '{k}'" for k in tensors if k not in expected]
    problems += [
        f"'{k}' has shape {tuple(tensors[k].shape)} in the weights but {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{run_dir / CONFIG_FILE} does not match {model_path}: {'; '.join(problems[:3])}"
            + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        )
