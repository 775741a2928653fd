"""One Trainer for every family. It knows a model only through the contract of :mod:`seqae.models.base`:
``model(batch)`` returns a loss and metrics; an optional ``training_stages`` hook splits training into
stages and phases. CUDA when present (bf16 autocast on request), fused AdamW with warm-up and cosine decay,
gradient clipping and accumulation, atomic checkpoints, exact resume, a progress bar (plain lines off a
terminal), ``torchrun`` data parallelism (only rank 0 writes), a clear stop when the loss turns NaN/inf."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from seqae import checkpoint
from seqae.atomic import AppendError, append_whole
from seqae.config import TrainConfig
from seqae.datasets.base import BatchSource
from seqae.faults import failpoint
from seqae.models.base import Stage, stage_at, training_plan
from seqae.prefetch import Prefetch
from seqae.runtime import (
    FiniteWatch,
    LogWindow,
    Progress,
    TrainingError,
    average_across_ranks,
    catch_interrupt,
    compiled,
    init_distributed,
    lr_factor,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    tensorboard_scalars,
    to_float,
)


class Trainer:
    """Train ``model`` on ``train_data`` into ``run_dir``.

    Args:
        model: a family's module (see :mod:`seqae.models.base` for the contract).
        train_data: a :class:`~seqae.datasets.base.BatchSource`.
        config: the recipe's ``[train]`` section.
        run_dir: where checkpoints and metrics go (written by rank 0 only).
        family: the family's name, stored with every checkpoint.
        eval_data: optional source for the evaluation loss every ``config.eval_every`` steps.
        on_evaluation: called with the step after each evaluation (rank 0; TensorBoard's figures).
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: BatchSource,
        config: TrainConfig,
        run_dir: str | os.PathLike,
        family: str,
        eval_data: BatchSource | None = None,
        device: str | None = None,
        on_evaluation=None,
    ):
        self.config = config
        self.run_dir, self.family = Path(run_dir), family
        self.train_data = train_data
        self.eval_data, self.on_evaluation = eval_data, on_evaluation
        device_name = device or config.device
        self.dist = init_distributed(device_name)
        if self.dist.world > 1 and device_name in ("auto", "cuda") and torch.cuda.is_available():
            device_name = f"cuda:{self.dist.local_rank}"
        self.device = resolve_device(device_name)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if config.precision == "bf16" and self.device.type != "cuda":
            raise TrainingError("train.precision = \"bf16\" needs a CUDA device; use fp32 on the CPU")
        self.model = model.to(self.device)
        self.stages = training_plan(self.model, config.steps)
        self.total_steps = sum(s.steps for s in self.stages)
        per_step = self.dist.world * config.grad_accum
        if config.batch_size % per_step:
            raise TrainingError(f"train.batch_size ({config.batch_size}) must be divisible by processes x grad_accum ({per_step})")
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.stop_requested = False
        self.finite = FiniteWatch(self.device)
        self.prefetch, self.epoch_cache = Prefetch(False), (None, {})
        self.ddp: nn.Module | None = None
        if self.dist.world > 1:
            # DDP copies rank 0's weights to every process; from here each draws its own noise
            seed_everything(config.seed + self.dist.rank)
            multi = len(self.stages) > 1 or any(len(s.phases) > 1 for s in self.stages)
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=multi,
            )

    # -- plan bookkeeping ----------------------------------------------------------------------

    def make_optimizers(self, stage: Stage) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        c = self.config
        optimizers, schedulers = {}, {}
        for phase in stage.phases:
            decay = [p for p in phase.parameters if p.dim() >= 2]
            no_decay = [p for p in phase.parameters if p.dim() < 2]  # biases and norms: no weight decay
            groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
            fused = self.device.type in ("cpu", "cuda")  # one kernel for every tensor: 4x-10x faster than the loop on a CPU
            opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=c.lr, betas=tuple(c.betas), fused=fused)
            schedulers[phase.name] = torch.optim.lr_scheduler.LambdaLR(opt, lambda s, t=stage.steps: lr_factor(s, t, c))
            optimizers[phase.name] = opt
        return optimizers, schedulers

    # -- data ------------------------------------------------------------------------------------

    def switch_data(self, stage_index: int) -> None:
        """The data of a stage (``Stage.data``); other data than the stage before starts at its first epoch."""
        data = self.train_data.subset(self.stages[stage_index].data)
        if getattr(self, "active_data", data) is not data:
            self.epoch, self.batch_in_epoch = 0, 0
        self.active_data = data

    def global_batch_at(self, epoch: int, index: int) -> tuple[np.ndarray, tuple[int, int]]:
        """The global batch at ``(epoch, index)`` of the active data and the position after it."""
        while True:
            data, cache = self.epoch_cache  # an epoch's batch order drawn once; kept for it and the next
            if data is not self.active_data:  # the object is held, so its id is never reused
                data, cache = self.epoch_cache = (self.active_data, {})
            if epoch not in cache:
                cache[epoch] = data.epoch_batches(epoch, self.config.seed, self.config.batch_size)
                cache.pop(epoch - 2, None)
            if index < len(cache[epoch]):
                return cache[epoch][index], (epoch, index + 1)
            epoch, index = epoch + 1, 0

    def collate_micro(self, data: BatchSource, global_batch: np.ndarray) -> list[dict[str, torch.Tensor]]:
        # contiguous shards, so a batch of consecutive sentences stays consecutive on each process
        local = np.array_split(global_batch, self.dist.world)[self.dist.rank]
        return [data.collate(chunk) for chunk in np.array_split(local, self.config.grad_accum)]

    def next_micro_batches(self) -> list[dict[str, torch.Tensor]]:
        """The next step's micro-batches on the device (made ahead, the following step's started: ``train.prefetch``)."""
        data, here = self.active_data, (self.epoch, self.batch_in_epoch)
        batch, (self.epoch, self.batch_in_epoch) = self.global_batch_at(*here)
        batches = self.prefetch.take((id(data), here), lambda: self.collate_micro(data, batch))
        if self.prefetch.pool is not None:
            following, _ = self.global_batch_at(self.epoch, self.batch_in_epoch)
            self.prefetch.ahead((id(data), (self.epoch, self.batch_in_epoch)), lambda: self.collate_micro(data, following))
        return [{k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]

    # -- checkpoints -------------------------------------------------------------------------------

    def trainer_state(self, optimizers, schedulers, stage_index: int, rng_per_rank: list) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "stage": stage_index,
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            # RNG states as tensors and lists (checkpoint.rng_to_storable), so the file loads with weights_only=True
            "rng": checkpoint.rng_to_storable(rng_per_rank[0]),
            "rng_per_rank": [checkpoint.rng_to_storable(r) for r in rng_per_rank],  # each process draws its own noise
            "finished": self.step >= self.total_steps,
            "total_steps": self.total_steps,
        }

    def save(self, optimizers, schedulers, stage_index: int) -> None:
        self.check_finite()
        rng = rng_state(self.device)
        gathered = [rng]
        if self.dist.world > 1:
            gathered = [None] * self.dist.world if self.dist.is_main else None
            dist.gather_object(rng, gathered, dst=0)
        if self.dist.is_main:
            checkpoint.save_checkpoint(
                self.run_dir,
                self.model.state_dict(),
                self.trainer_state(optimizers, schedulers, stage_index, gathered),
                self.family,
                self.step,
            )
        if self.dist.world > 1:
            dist.barrier()

    def resume(self) -> dict[str, Any] | None:
        """Load the last checkpoint; returns its trainer state (None if there is none)."""
        if self.dist.is_main:
            checkpoint.recover(self.run_dir)
        if self.dist.world > 1:
            dist.barrier()
        if checkpoint.checkpoint_step(self.run_dir) is None and not (self.run_dir / checkpoint.MODEL_FILE).exists():
            return None
        tensors, state = checkpoint.load_for_resume(self.run_dir, self.family, recover_first=False)
        missing, unexpected = self.model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise checkpoint.CheckpointError(
                f"{self.run_dir / checkpoint.MODEL_FILE}: weights do not match the model "
                f"(missing: {missing[:3]}, unexpected: {unexpected[:3]})"
            )
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        return state

    # -- logging ---------------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` whole or not at all (a full disk is a TrainingError); with
        ``train.tensorboard``, the record's numbers as TensorBoard scalars too."""
        if not self.dist.is_main:
            return
        if self.config.tensorboard:
            tensorboard_scalars(self.run_dir, record)
        path = self.run_dir / checkpoint.METRICS_FILE
        try:
            append_whole(path, (json.dumps(record) + "\n").encode("utf-8"))
        except AppendError as err:
            if not err.opened:
                raise TrainingError(f"{path}: cannot open the metrics log ({err.strerror})") from None
            last = checkpoint.checkpoint_step(self.run_dir)
            kept = f"the checkpoint of step {last} is kept" if last else "no checkpoint was written yet"
            raise TrainingError(f"{path}: could not append ({err.strerror}); training stopped, {kept}; "
                                "free some space and continue with --resume") from None

    @torch.no_grad()
    def evaluation_loss(self) -> dict[str, float]:
        assert self.eval_data is not None
        self.model.eval()
        totals: dict[str, float] = {}
        count = 0
        for indices in self.eval_data.eval_batches(self.config.batch_size):
            batch = {k: v.to(self.device) for k, v in self.eval_data.collate(indices).items()}
            out = self.model(batch)
            n = len(indices)
            totals["eval_loss"] = totals.get("eval_loss", 0.0) + to_float(out.loss) * n
            for k, v in out.metrics.items():
                totals[f"eval_{k}"] = totals.get(f"eval_{k}", 0.0) + to_float(v) * n
            count += n
        self.model.train()
        return {k: v / max(count, 1) for k, v in totals.items()}

    # -- the loop --------------------------------------------------------------------------------

    def request_stop(self, signum, frame) -> None:  # SIGINT handler
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True

    def restore(self, state: dict[str, Any] | None, optimizers, schedulers, stage_index: int) -> None:
        """Optimizer, scheduler and RNG states of a resumed run (metrics past its checkpoint dropped);
        a fresh run starts a new metrics log."""
        metrics = self.run_dir / checkpoint.METRICS_FILE
        if state is None:
            if metrics.exists() and self.dist.is_main:
                metrics.unlink()
            return
        if self.dist.is_main:
            checkpoint.truncate_metrics(self.run_dir, self.step)
        if state.get("stage") == stage_index and self.step < self.total_steps:
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
                schedulers[name].load_state_dict(state["schedulers"][name])
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        if len(per_rank) != self.dist.world:
            raise checkpoint.CheckpointError(
                f"{self.run_dir}: saved by {len(per_rank)} process(es), resumed with {self.dist.world}; "
                "resume with the same number of processes"
            )
        set_rng_state(checkpoint.rng_from_storable(per_rank[self.dist.rank]), self.device)

    def forward_backward(self, module, micro: list, prefix: str, autocast) -> dict[str, float]:
        """One phase's forward and backward over the micro-batches (gradients summed, DDP synchronised on
        the last); the loss and metrics averaged over them, kept on the device (LogWindow reads them at log steps)."""
        metrics: dict[str, float] = {}
        for i, batch in enumerate(micro):
            last = i == len(micro) - 1
            sync = nullcontext() if (last or self.ddp is None) else self.ddp.no_sync()
            with sync:
                with autocast:
                    out = module(batch)
                loss = out.loss
                self.finite.note(loss, self.step + 1, 0)
                (loss / len(micro)).backward()
            metrics[f"{prefix}loss"] = metrics.get(f"{prefix}loss", 0.0) + loss.detach().float() / len(micro)
            for k, v in out.metrics.items():
                v = v.detach().float() if torch.is_tensor(v) else float(v)
                metrics[prefix + k] = metrics.get(prefix + k, 0.0) + v / len(micro)
        return metrics

    def train_step(self, stage: Stage, optimizers, schedulers, module, autocast) -> dict[str, float]:
        """One optimizer step of every phase of ``stage`` on the next global batch; its metrics."""
        micro = self.next_micro_batches()
        step_metrics: dict[str, float] = {}
        for phase in stage.phases:
            if hasattr(self.model, "set_phase"):
                self.model.set_phase(stage.name, phase.name)
            opt = optimizers[phase.name]
            opt.zero_grad(set_to_none=True)
            prefix = "" if len(stage.phases) == 1 else f"{phase.name}_"
            step_metrics.update(self.forward_backward(module, micro, prefix, autocast))
            failpoint("step", self.step + 1)
            params = [p for g in opt.param_groups for p in g["params"]]
            clip = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
            self.finite.note(norm, self.step + 1, 1)
            if self.finite.every_step:
                self.check_finite()
            elif opt.defaults.get("fused"):
                opt.found_inf = self.finite.fired()  # no update after a bad step; the check names it later
            opt.step()
            schedulers[phase.name].step()
        return step_metrics

    def log_window(self, window: LogWindow, stage: Stage, schedulers, bar) -> dict[str, Any]:
        """The averaged metrics of the steps since the last log line, written to metrics.jsonl."""
        self.check_finite()
        averaged = average_across_ranks(window.means(), self.dist.world, self.device)
        record: dict[str, Any] = {"step": self.step, "stage": stage.name}
        if "loss" not in averaged and len(stage.phases) > 1:
            record["loss"] = averaged.get(f"{stage.phases[-1].name}_loss")
        record.update(averaged)
        record["lr"] = schedulers[stage.phases[0].name].get_last_lr()[0]
        record["samples_per_s"] = window.samples_per_second()
        self.log(record)
        bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4g}", samples_s=f"{record['samples_per_s']:.0f}")
        window.reset()
        return record

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to ``config.steps``; returns the last logged record."""
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = self.resume() if resume else None
        stage_index, _ = stage_at(self.stages, self.step)
        optimizers, schedulers = self.make_optimizers(self.stages[stage_index])
        self.restore(state, optimizers, schedulers, stage_index)
        # the data of the stage the checkpoint was written in, then of the stage training continues in
        saved = state.get("stage") if state else None
        self.switch_data(saved if isinstance(saved, int) and 0 <= saved < len(self.stages) else stage_index)
        self.switch_data(stage_index)
        if self.step >= self.total_steps:
            if self.dist.is_main:
                print(f"{self.run_dir}: already at step {self.step} of {self.total_steps}; nothing to train", file=sys.stderr)
            return {"step": self.step, "already_finished": True}
        module = self.ddp if self.ddp is not None else self.model
        module = compiled(module, self.device) if c.compile else module
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if c.precision == "bf16" else nullcontext()
        bar = Progress(self.total_steps, self.step, show=self.dist.is_main, terminal=sys.stdout.isatty())
        previous_handler = catch_interrupt(self.dist.world, self.request_stop)
        self.model.train()
        window, record = LogWindow(), {}
        self.prefetch = Prefetch(c.prefetch == "on" or (c.prefetch == "auto" and self.device.type != "cpu"))
        try:
            while self.step < self.total_steps:
                new_stage, _ = stage_at(self.stages, self.step)
                if new_stage != stage_index:
                    stage_index = new_stage
                    optimizers, schedulers = self.make_optimizers(self.stages[stage_index])
                    self.switch_data(stage_index)
                stage = self.stages[stage_index]
                window.add(self.train_step(stage, optimizers, schedulers, module, autocast), c.batch_size)
                self.step += 1
                bar.update(1)
                if self.step % c.log_every == 0 or self.step == self.total_steps:
                    record = self.log_window(window, stage, schedulers, bar)
                if c.eval_every and self.eval_data is not None and self.step % c.eval_every == 0:
                    self.check_finite()  # in every process
                    self.prefetch.wait()  # the evaluation may read the same files
                    if self.dist.is_main:
                        self.log({"step": self.step, **self.evaluation_loss()})
                        if self.on_evaluation is not None:
                            self.on_evaluation(self.step)
                if self.step % c.checkpoint_every == 0 or self.step == self.total_steps or self.stop_requested:
                    self.save(optimizers, schedulers, stage_index)
                if self.stop_requested:
                    bar.close()
                    print(f"interrupted at step {self.step}; checkpoint saved in {self.run_dir} (continue with --resume)",
                          file=sys.stderr)
                    return {"step": self.step, "interrupted": True, **record}
        finally:
            self.prefetch.close()
            bar.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        return record

    def check_finite(self) -> None:
        if (bad := self.finite.first_bad(self.dist.world)) is not None:
            self.fail(bad)

    def fail(self, what: str) -> None:
        last = checkpoint.checkpoint_step(self.run_dir) if self.dist.is_main else None
        kept = f"the last good checkpoint (step {last}) is kept in {self.run_dir}" if last else "no checkpoint was written yet"
        raise TrainingError(f"{what}; training stopped, {kept}. Try a lower train.lr, train.grad_clip, or check the data for "
                            "extreme values")
