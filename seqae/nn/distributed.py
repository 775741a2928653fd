"""Collectives for data-parallel training (torch.distributed); each is the identity in one process."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def distributed() -> bool:
    """True under torch.distributed with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def ddp_active() -> bool:
    """True while training data-parallel: more than one process, gradients enabled (not in evaluation)."""
    return torch.is_grad_enabled() and distributed()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if distributed():
        dist.all_reduce(tensor)
    return tensor


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    if distributed():
        dist.broadcast(tensor, src)
    return tensor


def gather_rows(tensor: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
    """Every process's rows ``(n_r, ...)`` concatenated in rank order: the global batch. The row counts
    may differ between processes. ``differentiable``: gradients flow back to each process's own rows."""
    if not distributed():
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(n) for n in sizes]
    padded = F.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, max(sizes) - tensor.shape[0])).contiguous()
    if differentiable:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def distributed_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``total / count`` over the *global* batch when the count differs between processes (tokens,
    frames, neighbour pairs).

    Under DDP each process returns ``world * local_total / global_count``; DDP averages the gradients
    over the processes, which then equal those of one process with the whole batch, and the Trainer's
    rank-averaged loss equals that process's loss. Elsewhere: ``total / count``.
    """
    if not ddp_active():
        return total / count
    global_count = all_reduce_sum(count.detach().clone().to(torch.float64))
    return total * dist.get_world_size() / global_count.to(total.dtype)
