"""Run directories: atomic writes, checkpoints, and validation.

A run directory holds ``config.toml`` (the resolved recipe), ``model.safetensors`` (weights, with the
family and step in its metadata), ``trainer_state.pt`` (optimizers, schedulers, step, epoch and RNG
states) and ``metrics.jsonl``.

Every file is written to a temporary name, fsynced, and renamed into place, so no file is ever
half-written. A checkpoint is two files; both are first written completely as ``*.tmp``, then
``trainer_state.pt`` is renamed, then ``model.safetensors``. A crash between the two renames leaves a
complete ``model.safetensors.tmp`` whose step matches ``trainer_state.pt``: :func:`recover` finishes
the rename, so the pair on disk always describes one step.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from seqae.faults import failpoint

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
FORMAT = "seqae-1"


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


def write_tmp(path: Path, data: bytes, step: int | None = None) -> Path:
    """Write ``data`` completely to ``path.tmp`` and fsync it. Raises CheckpointError on a full disk.
    ``step``: the checkpoint's step, for the ``checkpoint_writing`` fault point (:mod:`seqae.faults`)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
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


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = write_tmp(path, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def model_bytes(state_dict: dict[str, torch.Tensor], family: str, step: int) -> bytes:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    metadata = {"format": FORMAT, "family": family, "step": str(step)}
    return save_safetensors_bytes(tensors, metadata=metadata)


def state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


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
    trainer_state = dict(trainer_state, step=step, family=family, format=FORMAT)
    model_tmp = write_tmp(run_dir / MODEL_FILE, model_bytes(model_state, family, step), step=step)
    try:
        state_tmp = write_tmp(run_dir / STATE_FILE, state_bytes(trainer_state))
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


def read_trainer_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; cannot resume without the trainer state")
    try:
        # Our own file (RNG states include numpy arrays and Python tuples), so weights_only=False.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises many types for a damaged pickle
        raise CheckpointError(f"{path}: corrupt or truncated trainer state ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seqae trainer state")
    return state


def recover(run_dir: str | os.PathLike) -> None:
    """Finish a checkpoint whose commit was interrupted, and drop incomplete temporary files."""
    run_dir = Path(run_dir)
    model_tmp = run_dir / (MODEL_FILE + ".tmp")
    state_path = run_dir / STATE_FILE
    if model_tmp.exists() and state_path.exists() and not (run_dir / (STATE_FILE + ".tmp")).exists():
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
    for leftover in run_dir.glob("*.tmp"):
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
