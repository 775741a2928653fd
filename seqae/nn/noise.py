"""Input noise for denoising models: the encoder sees a corrupted input, the loss compares with the clean one."""

from __future__ import annotations

import torch

NOISES = ("none", "gaussian", "masking")


def corrupt(x: torch.Tensor, noise: str, level: float) -> torch.Tensor:
    """``x`` with Gaussian noise of standard deviation ``level``, or with a share ``level`` of its entries
    set to 0 (``masking``); unchanged for ``none`` or a zero level. Same shape as ``x``."""
    if noise == "gaussian" and level > 0:
        return x + level * torch.randn_like(x)
    if noise == "masking" and level > 0:
        return x * (torch.rand_like(x) >= level).to(x.dtype)
    return x
