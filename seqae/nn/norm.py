"""Instance normalisation with padding masks, and adaptive instance normalisation (AdaIN).

Both work on sequences ``(batch, channels, frames)``. ``mask`` ``(batch, frames)`` (True on real frames)
keeps padding out of the statistics; padded frames come out as zeros, so they stay zero through the
next convolution's centre tap.
"""

from __future__ import annotations

import torch
from torch import nn


def instance_norm(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Remove each channel's mean and divide by its standard deviation over the (real) frames.

    No affine parameters. The variance is clamped at ``eps`` rather than offset by it, so a normalised
    channel has unit spread exactly (up to rounding) whatever its scale before: the spread left behind
    carries nothing of the input's per-utterance statistics.
    """
    if mask is None:
        mean = x.mean(dim=2, keepdim=True)
        var = (x - mean).pow(2).mean(dim=2, keepdim=True)
        return (x - mean) * var.clamp_min(eps).rsqrt()
    m = mask[:, None, :].to(x.dtype)
    count = m.sum(dim=2, keepdim=True).clamp_min(1.0)
    mean = (x * m).sum(dim=2, keepdim=True) / count
    var = ((x - mean) * m).pow(2).sum(dim=2, keepdim=True) / count
    return (x - mean) * var.clamp_min(eps).rsqrt() * m


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(batch, channels, frames)`` -> ``(batch, channels)``: the mean over the real frames."""
    if mask is None:
        return x.mean(dim=2)
    m = mask[:, None, :].to(x.dtype)
    return (x * m).sum(dim=2) / m.sum(dim=2).clamp_min(1.0)


class AdaIN(nn.Module):
    """Adaptive instance normalisation: ``instance_norm(x) * (1 + scale(s)) + shift(s)``, with scale and
    shift ``(batch, channels)`` projected from a condition vector ``s`` ``(batch, condition_dim)``."""

    def __init__(self, channels: int, condition_dim: int):
        super().__init__()
        self.project = nn.Linear(condition_dim, 2 * channels)
        nn.init.zeros_(self.project.weight)  # starts as plain instance normalisation
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scale, shift = self.project(condition).unsqueeze(2).chunk(2, dim=1)
        out = instance_norm(x, mask) * (1 + scale) + shift
        return out if mask is None else out * mask[:, None, :].to(out.dtype)
