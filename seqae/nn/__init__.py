"""Shared, GPU-capable building blocks. Nothing in here reads files."""

from seqae.nn.encoders import MLP, activation
from seqae.nn.losses import gaussian_kl, kl_sparsity_penalty, l1_penalty

__all__ = ["MLP", "activation", "gaussian_kl", "kl_sparsity_penalty", "l1_penalty"]
