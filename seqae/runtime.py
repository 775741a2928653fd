"""What a training process needs around the Trainer: the device, seeds and RNG states, the distributed
set-up (torchrun), and the window of metrics between two log lines."""

from __future__ import annotations

import itertools
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from seqae.config import ConfigError, TrainConfig
from seqae.errors import TrainingError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} asked for, but CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name in ("auto",) or device_name.startswith("cuda")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local_rank)


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def to_float(value: Any) -> float:
    return float(value.detach().float().item()) if torch.is_tensor(value) else float(value)


class LogWindow:
    """Metrics summed over the steps since the last log line (tensors stay on their device until
    :meth:`means`), and the samples they took."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, metrics: dict[str, float], samples: int) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        self.samples += samples

    def means(self) -> dict[str, float]:
        """The means as numbers: the one synchronisation with the device per log line."""
        return {k: to_float(v) / self.steps for k, v in self.sums.items()}

    def samples_per_second(self) -> float:
        return self.samples / max(time.perf_counter() - self.started, 1e-9)


def average_across_ranks(values: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    """The mean of each value over the processes of a distributed run (the values themselves on one)."""
    if world <= 1:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: float(v) / world for k, v in zip(keys, tensor.tolist())}


class FiniteWatch:
    """Non-finite losses and gradient norms, noticed on the device without a synchronisation per step.

    :meth:`note` folds a scalar tensor into three device tensors (the first bad step, its kind, its value);
    :meth:`first_bad` reads them, the one synchronisation, which the Trainer makes every step on the CPU
    (where it costs nothing) and on an accelerator only before it logs, evaluates or writes a checkpoint,
    so a checkpoint is never written after a bad step.
    """

    KINDS = ("the loss", "the gradient norm")

    def __init__(self, device: torch.device):
        self.step = torch.full((), -1, dtype=torch.long, device=device)
        self.kind = torch.zeros((), dtype=torch.long, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)
        self.every_step = device.type == "cpu"

    def note(self, value: torch.Tensor, step: int, kind: int) -> None:
        value = value.detach().float().reshape(())
        new = ~torch.isfinite(value) & (self.step < 0)
        self.step = torch.where(new, step, self.step)
        self.kind = torch.where(new, kind, self.kind)
        self.value = torch.where(new, value, self.value)

    def fired(self) -> torch.Tensor:
        """1.0 once a bad value was noted, else 0.0, on the device (a fused optimizer's ``found_inf``:
        it skips its update without a synchronisation, so the weights stay finite until the check)."""
        return (self.step >= 0).float()

    def first_bad(self, world: int = 1) -> str | None:
        """"the loss became nan at step 26", or None while every noted value was finite; with several
        processes, every one learns of a bad value on any (each must call it at the same points)."""
        step = int(self.step.item())
        if world > 1:
            flag = torch.tensor([float(step >= 0)], device=self.step.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if step < 0 and flag.item() > 0:
                return "a loss or gradient norm became non-finite in another process"
        if step < 0:
            return None
        return f"{self.KINDS[int(self.kind.item())]} became {float(self.value.item())} at step {step}"


_writers: dict[str, Any] = {}
TENSORBOARD_MISSING = ("train.tensorboard = true needs the tensorboard package: pip install 'seqae[tensorboard]' "
                       "(or set train.tensorboard = false)")


def tensorboard_writer(run_dir) -> Any:
    """The run directory's one TensorBoard writer (``RUN/tensorboard/``)."""
    key = str(run_dir)
    if key not in _writers:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrainingError(TENSORBOARD_MISSING) from None
        _writers[key] = SummaryWriter(str(Path(run_dir) / "tensorboard"))
    return _writers[key]


def tensorboard_media(run_dir, paths: list[Path], step: int) -> None:
    """The family's figures (PNG, ``seqae plot``'s) as TensorBoard images, its clips (WAV) as audio and its
    vectors (.npz from :func:`seqae.plots.projector`) in the embedding projector with their metadata, at
    ``step``, each under its file name (``figures/conversion``, ``audio/clip_1_converted``, ``embeddings``)."""
    import matplotlib.image
    import soundfile

    writer = tensorboard_writer(run_dir)
    for path in paths:
        if path.suffix.lower() == ".npz":  # plots.projector's vectors and metadata
            with np.load(path, allow_pickle=False) as data:
                columns = [k for k in data.files if k not in ("vectors", "images")]
                thumbnails = torch.from_numpy(data["images"])[:, None] if "images" in data.files else None  # (N, 1, H, W)
                values = [data[k].tolist() for k in columns]  # one column: a list of labels; several: rows under a header
                rows = None if not columns else values[0] if len(columns) == 1 else [list(r) for r in zip(*values)]
                writer.add_embedding(torch.from_numpy(data["vectors"]), metadata=rows, tag=path.stem, global_step=step,
                                     metadata_header=columns if len(columns) > 1 else None, label_img=thumbnails)
        elif path.suffix.lower() == ".png":
            image = matplotlib.image.imread(str(path))[..., :3]  # (H, W, 3) floats in [0, 1]
            writer.add_image(f"figures/{path.stem}", image, step, dataformats="HWC")
        elif path.suffix.lower() == ".wav":
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            writer.add_audio(f"audio/{path.stem}", torch.from_numpy(samples.mean(1)), step, sample_rate=rate)
    writer.flush()


def tensorboard_at_evaluation(run_dir, model: torch.nn.Module, figures) -> Any:
    """A callback for the Trainer's evaluation steps (and the end of training): ``figures(folder) -> paths``
    (the figures of the model as it trains) in TensorBoard at that step, once per step. Its random draws
    come from forked streams, so a run with TensorBoard trains exactly as one without."""
    import tempfile

    drawn: set[int] = set()

    def draw(step: int) -> None:
        if step in drawn:
            return
        drawn.add(step)
        was_training, states = model.training, (random.getstate(), np.random.get_state())
        try:
            with torch.random.fork_rng(), tempfile.TemporaryDirectory() as folder:
                tensorboard_media(run_dir, figures(Path(folder)), step)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            model.train(was_training)

    return draw


def tensorboard_scalars(run_dir, record: dict[str, Any]) -> None:
    """Every number of a ``metrics.jsonl`` record as a TensorBoard scalar at its step, in ``RUN/tensorboard/``
    (one writer per run directory, flushed after each record)."""
    writer = tensorboard_writer(run_dir)
    for name, value in record.items():
        if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            writer.add_scalar(name, value, int(record["step"]))
    writer.flush()


class Progress:
    """Training progress: a tqdm bar on a terminal; off one (a log file, ``nohup``, a batch job) a plain line
    at log steps, at most every ``SEQAE_PROGRESS_SECONDS`` seconds (default 60): step, loss, samples per
    second, time elapsed and an estimate of the time left."""

    def __init__(self, total: int, initial: int, show: bool, terminal: bool, stream=None):
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not (show and terminal), dynamic_ncols=True, unit="step")
        self.plain, self.stream = show and not terminal, stream or sys.stderr
        self.total, self.initial, self.step = total, initial, initial
        self.started = self.last = time.perf_counter()
        self.every = float(os.environ.get("SEQAE_PROGRESS_SECONDS", "60"))

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.step += n

    def set_postfix(self, loss: str = "", samples_s: str = "") -> None:
        self.bar.set_postfix(loss=loss, samples_s=samples_s)
        now = time.perf_counter()
        if not self.plain or now - self.last < self.every:
            return
        self.last, elapsed = now, now - self.started
        left = elapsed / max(self.step - self.initial, 1) * (self.total - self.step)
        print(f"step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f} %)  loss {loss}  {samples_s} samples/s  "
              f"elapsed {clock(elapsed)}  left about {clock(left)}", file=self.stream, flush=True)

    def close(self) -> None:
        self.bar.close()


def clock(seconds: float) -> str:
    """``1:02:03`` or ``2:03``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def lr_factor(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine (or linear) decay to ``min_lr_ratio`` at ``total``."""
    warmup = min(config.warmup_steps, max(total - 1, 0))
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape


def catch_interrupt(world: int, handler):
    """Ctrl-C (single process) calls ``handler`` (a checkpoint and a clean stop); returns the handler it replaced."""
    import signal

    if world != 1 or not hasattr(signal, "SIGINT"):
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        return None


def provenance() -> dict[str, Any]:
    """What produced a run: the versions of seqae and its main libraries (from the installed packages'
    metadata, nothing imported), the git commit when seqae runs from a checkout, Python and the platform."""
    import importlib.metadata
    import platform
    import subprocess
    import sys

    versions = {}
    for name in ("seqae", "torch", "torchaudio", "tokenizers", "numpy", "scikit-learn"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    root = Path(__file__).resolve().parents[1]
    commit = None
    if (root / ".git").exists():
        try:
            done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            commit = done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"versions": versions, "git_commit": commit, "python": sys.version.split()[0], "platform": platform.platform()}


def session_start(device: torch.device, processes: int) -> dict[str, Any]:
    import sys

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"command": sys.argv, "device": str(device), "device_name": name, "processes": processes,
            "threads": torch.get_num_threads(), "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started": time.time()}


def session_end(session: dict[str, Any], device: torch.device, step: int) -> dict[str, Any]:
    """The session's record with its end, wall seconds, the step it reached and the peak memory (resident, and
    on a GPU the most allocated)."""
    import resource

    out = {k: v for k, v in session.items() if k != "started"}
    out.update(end=time.strftime("%Y-%m-%dT%H:%M:%S%z"), wall_s=round(time.time() - session["started"], 1), step=step,
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def quantize_int8(model: torch.nn.Module) -> dict[str, int]:
    """int8 dynamic quantisation of a model for CPU inference, in place: the weights of every
    ``nn.Linear``, ``nn.GRU`` and ``nn.LSTM`` stored as int8 and the activations quantised per batch
    on the fly (``torch.ao.quantization.quantize_dynamic``); convolutions, embeddings, norms and
    everything else stay float32. Returns how many layers of each kind were quantised.

    CPU only (the quantised kernels are FBGEMM's / oneDNN's). The ``torch.ao`` eager API is deprecated in
    favour of torchao, which quantises linear layers only; seqae pins its torch, so the recurrent
    encoders keep their int8 kernels."""
    import warnings

    from torch import nn

    device = model_device(model)
    if device.type != "cpu":
        raise ValueError(f"int8 dynamic quantisation runs on the CPU; the model is on {device}: load it with device='cpu'")
    kinds = (nn.Linear, nn.GRU, nn.LSTM)
    counts = {kind.__name__: sum(type(m) is kind for m in model.modules()) for kind in kinds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.ao.quantization.quantize_dynamic(model, set(kinds), dtype=torch.qint8, inplace=True)
    return {k: v for k, v in counts.items() if v}


def compiled(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``torch.compile(module)`` for the training steps (``train.compile``); its parameters are the module's own,
    so checkpoints and resumes are unchanged. On the CPU, Inductor builds C++ kernels: a compiler must be there."""
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
        raise ConfigError("train.compile = true on the CPU needs a C++ compiler (g++, c++ or clang++, or $CXX) and none was "
                          "found; install one (Debian: apt-get install g++) or leave train.compile off")
    return torch.compile(module)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer; the CPU for a model with neither (an
    int8-quantised network keeps its weights packed, not as parameters)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")
