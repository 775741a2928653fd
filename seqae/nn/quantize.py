"""Discrete bottlenecks: a vector quantiser (VQ-VAE) and a Gumbel-softmax / binary quantiser.

Both return a :class:`QuantizerOutput` and have ``decode_codes(codes)``, the exact inverse from codes to
the quantised vectors. Quantisation runs in float32 even under autocast.

van den Oord et al. 2017 (arXiv 1711.00937): nearest-code lookup, straight-through gradients,
codebook + commitment losses, EMA codebook updates (appendix A.1). Jang et al. 2016 (arXiv 1611.01144):
Gumbel-softmax and straight-through Gumbel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.nn.codebook import CodebookUsage, kmeans, usage_metrics
from seqae.nn.distributed import all_reduce_sum, broadcast, gather_rows

__all__ = ["QuantizerOutput", "VectorQuantizer", "GumbelQuantizer", "CodebookUsage", "kmeans"]


@dataclass
class QuantizerOutput:
    """``quantized``: ``(..., dim)``, the input's shape; ``codes``: ``(...)`` integer codes (binary
    quantiser: ``(..., bits)`` of 0/1); ``loss``: scalar; ``metrics``: 0-d tensors."""

    quantized: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def check_input(x: torch.Tensor, dim: int) -> None:
    """A quantiser's input must be ``(..., dim)`` and non-empty."""
    if x.shape[-1] != dim:
        raise ValueError(f"expected input (..., {dim}), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError("empty input: nothing to quantise")


class VectorQuantizer(nn.Module):
    """Nearest-code vector quantisation with a learned codebook.

    Args:
        dim: width of the input vectors (the last dimension).
        codebook_size: number of codes K (at least 2).
        codebook_dim: lower-dimensional codebook; the input is projected in and out (Yu et al. 2021,
            "factorized codes", arXiv 2110.04627). Default: ``dim``.
        distance: ``"euclidean"`` (squared distance) or ``"cosine"`` (codes and inputs l2-normalised).
        beta: commitment weight (the paper's 0.25).
        ema: update the codebook with exponential moving averages instead of the codebook loss
            (VQ-VAE appendix A.1); ``decay`` is gamma, ``eps`` the Laplace smoothing.
        kmeans_init: initialise the codebook by k-means on the first training batch
            (``kmeans_iters`` Lloyd iterations).
        dead_code_threshold: a code whose moving-average count per batch falls below this is
            restarted from a random current input vector, and its EMA statistics are reset (0: off).

    ``forward(x)``: ``x`` ``(..., dim)`` -> :class:`QuantizerOutput` with ``quantized`` ``(..., dim)`` and
    ``codes`` ``(...)``. Gradients pass straight through the quantisation to ``x``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        distance: str = "euclidean",
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
        usage_decay: float = 0.99,
    ):
        super().__init__()
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be at least 2, got {codebook_size}: one code carries no information")
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be 'euclidean' or 'cosine', got {distance!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.distance = distance
        self.beta = beta
        self.ema = ema
        self.decay = decay
        self.eps = eps
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay
        needs_projection = self.codebook_dim != dim
        self.project_in = nn.Linear(dim, self.codebook_dim) if needs_projection else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, dim) if needs_projection else nn.Identity()
        embed = torch.randn(codebook_size, self.codebook_dim)
        if distance == "cosine":
            embed = F.normalize(embed, dim=-1)
        if ema:
            self.register_buffer("codebook", embed)
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", embed.clone())
        else:
            self.codebook = nn.Parameter(embed)
        # moving-average count of each code per batch; drives dead-code restarts
        self.register_buffer("usage", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    # -- lookup ------------------------------------------------------------------------------------

    def embeddings(self) -> torch.Tensor:
        """The codebook ``(codebook_size, codebook_dim)`` as used for lookup."""
        embed = self.codebook
        return F.normalize(embed, dim=-1) if self.distance == "cosine" else embed

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` ``(n, codebook_dim)``."""
        embed = self.embeddings()
        if self.distance == "cosine":
            return (flat @ embed.t()).argmax(dim=1)
        # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 is the same for every code
        scores = torch.addmm(embed.pow(2).sum(1), flat, embed.t(), alpha=-2.0)
        return scores.argmin(dim=1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(...)`` -> quantised vectors ``(..., dim)``: the exact inverse of the lookup."""
        if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must be in [0, {self.codebook_size}), got range [{int(codes.min())}, {int(codes.max())}]")
        return self.project_out(F.embedding(codes.long(), self.embeddings()))

    # -- training-time codebook maintenance ------------------------------------------------------------

    @torch.no_grad()
    def initialize(self, flat: torch.Tensor) -> None:
        """k-means on the first (global) batch; rank 0's result is broadcast so every process starts alike,
        and as one process with the whole batch would."""
        flat = gather_rows(flat)
        centroids = kmeans(flat, self.codebook_size, self.kmeans_iters, cosine=self.distance == "cosine")
        centroids = broadcast(centroids.contiguous())
        self.codebook.data.copy_(centroids)
        if self.ema:
            self.cluster_size.fill_(1.0)
            self.embed_sum.copy_(centroids)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        """VQ-VAE appendix A.1, eqs. 6-8; ``counts`` are already summed over every process."""
        # per-code sums by scatter-add: O(n * dim) instead of a one-hot (n, K) matrix product
        sums = all_reduce_sum(torch.zeros_like(self.embed_sum).index_add_(0, codes, flat))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n  # Laplace
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead_codes(self, flat: torch.Tensor) -> torch.Tensor:
        """Move codes used less than ``dead_code_threshold`` per batch onto random current inputs."""
        dead = self.usage < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return dead
        # rank 0 picks the replacement vectors from the global batch and every process takes the same ones
        flat = gather_rows(flat)
        picks = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
        replacement = broadcast(flat[picks].contiguous())
        self.codebook.data[dead] = replacement
        self.usage[dead] = self.dead_code_threshold  # a fresh code gets a grace period
        if self.ema:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = replacement
        return dead

    # -- forward ---------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_input(x, self.dim)
        shape = x.shape[:-1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self.project_in(x.float())
            flat = h.reshape(-1, self.codebook_dim)
            if self.distance == "cosine":
                flat = F.normalize(flat, dim=-1)
            if not torch.isfinite(flat).all():
                raise ValueError("the input to the quantiser holds NaN or infinite values")
            if self.training and not bool(self.initialized):
                self.initialize(flat.detach())
            codes = self.nearest(flat.detach())
            counts = torch.bincount(codes, minlength=self.codebook_size).float()
            metrics = usage_metrics(counts)
            quantized = F.embedding(codes, self.embeddings())  # the codes' vectors before this step's update
            if self.training:
                with torch.no_grad():
                    global_counts = all_reduce_sum(counts.clone())
                    self.usage.mul_(self.usage_decay).add_(global_counts, alpha=1 - self.usage_decay)
                    if self.ema:
                        self.ema_update(flat.detach(), codes, global_counts)
            commitment = F.mse_loss(flat, quantized.detach())
            if self.ema:
                loss = self.beta * commitment
            else:
                loss = F.mse_loss(quantized, flat.detach()) + self.beta * commitment
            if self.training and self.dead_code_threshold > 0:
                metrics["restarted_codes"] = self.restart_dead_codes(flat.detach()).sum().float()
            # straight-through: the value is exactly the code vector, the gradient goes to the encoder
            # as the identity; the codebook learns only from its own loss (or the EMA), as in the paper
            quantized = quantized.detach() + (flat - flat.detach())
            out = self.project_out(quantized).reshape(*shape, self.dim)
        metrics["dead_codes"] = (self.usage < max(self.dead_code_threshold, 1e-3)).sum().float()
        metrics["commitment"] = commitment.detach()
        return QuantizerOutput(out, codes.reshape(shape), loss, metrics)


class GumbelQuantizer(nn.Module):
    """Discrete latents by Gumbel-softmax (soft), straight-through Gumbel (hard), or binary codes.

    Args:
        dim: input width; a linear layer turns the input into logits.
        codebook_size: categories K per latent (``mode="binary"``: the number of bits).
        out_dim: width of the output vectors (default ``dim``).
        mode: ``"soft"`` (relaxed one-hot), ``"hard"`` (one-hot forward, relaxed gradient) or
            ``"binary"`` (each bit a Bernoulli, thresholded at 0.5, straight-through gradient).
        tau_min, anneal_rate: temperature schedule tau = max(tau_min, exp(-anneal_rate * t)), t the number
            of training forward passes, kept in a buffer (saved and resumed with the weights).
        kl_weight: weight of KL(q(z|x) || uniform prior) added to the loss (0: off).
        diversity_weight: weight of KL(mean over the batch of q(z|x) || uniform), which keeps the
            batch spread over the codebook while each example may be confident (wav2vec 2.0's
            diversity loss, arXiv 2006.11477 eq. 4); against the collapse of straight-through codes
            onto one code. Binary: the sum over bits of KL(batch-mean p(bit) || Bernoulli(0.5)), against
            bits that saturate to constants (on the digits, without it every bit became constant).

    ``forward(x)``: ``(..., dim)`` -> ``quantized`` ``(..., out_dim)``, ``codes`` ``(...)`` (binary:
    ``(..., bits)``). In eval mode no noise is drawn: codes are the argmax (or the bits with p > 0.5).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        out_dim: int | None = None,
        mode: str = "hard",
        tau_min: float = 0.5,
        anneal_rate: float = 1e-4,
        kl_weight: float = 0.0,
        diversity_weight: float = 0.0,
        noise_eps: float = 1e-10,
    ):
        super().__init__()
        if codebook_size < 2 and mode != "binary":
            raise ValueError(f"codebook_size must be at least 2, got {codebook_size}")
        if codebook_size < 1:
            raise ValueError(f"the binary quantiser needs at least one bit, got {codebook_size}")
        if mode not in ("soft", "hard", "binary"):
            raise ValueError(f"mode must be 'soft', 'hard' or 'binary', got {mode!r}")
        if tau_min <= 0:
            raise ValueError(f"tau_min must be > 0, got {tau_min}: a zero temperature divides by zero")
        self.dim = dim
        self.codebook_size = codebook_size
        self.out_dim = out_dim or dim
        self.mode = mode
        self.tau_min = tau_min
        self.anneal_rate = anneal_rate
        self.kl_weight = kl_weight
        self.diversity_weight = diversity_weight
        self.noise_eps = noise_eps
        self.to_logits = nn.Linear(dim, codebook_size)
        if mode == "binary":
            self.codebook = nn.Linear(codebook_size, self.out_dim)
        else:
            self.codebook = nn.Parameter(torch.randn(codebook_size, self.out_dim) / math.sqrt(self.out_dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def tau(self) -> float:
        return max(self.tau_min, math.exp(-self.anneal_rate * int(self.num_updates)))

    def uniform_noise(self, like: torch.Tensor) -> torch.Tensor:
        # Clamped away from 0 and 1 so that log(u), log(1 - u) and log(-log(u)) are finite: 1 - 1e-10
        # rounds to 1.0 in float32, so the upper bound uses the dtype's own resolution.
        finfo = torch.finfo(like.dtype)
        return torch.rand_like(like).clamp(max(self.noise_eps, finfo.tiny), 1.0 - finfo.eps)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> output vectors: ``(...)`` -> ``(..., out_dim)`` (binary: ``(..., bits)`` -> ``(..., out_dim)``)."""
        if self.mode == "binary":
            if codes.shape[-1] != self.codebook_size:
                raise ValueError(f"binary codes must have {self.codebook_size} bits in the last dimension")
            return self.codebook(codes.float())
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must be in [0, {self.codebook_size})")
        return F.embedding(codes.long(), self.codebook)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_input(x, self.dim)
        tau = self.tau
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.to_logits(x.float())
            if not torch.isfinite(logits).all():
                raise ValueError("the input to the quantiser holds NaN or infinite values")
            if self.mode == "binary":
                return self.binary(logits, tau)
            if self.training:
                u = self.uniform_noise(logits)
                soft = F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)
            else:
                soft = F.softmax(logits, dim=-1)
            codes = soft.argmax(dim=-1)
            if self.mode == "hard" or not self.training:
                hard = F.one_hot(codes, self.codebook_size).to(soft.dtype)
                weights = hard + (soft - soft.detach())
            else:
                weights = soft
            quantized = weights @ self.codebook
            probs = F.softmax(logits, dim=-1)
            kl = (probs * torch.log(probs.clamp_min(1e-12) * self.codebook_size)).sum(-1).mean()
            mean_probs = probs.reshape(-1, self.codebook_size).mean(0)
            diversity = (mean_probs * torch.log(mean_probs.clamp_min(1e-12) * self.codebook_size)).sum()
            loss = self.kl_weight * kl + self.diversity_weight * diversity
            if self.training:
                self.num_updates += 1
            counts = torch.bincount(codes.reshape(-1), minlength=self.codebook_size).float()
            metrics = usage_metrics(counts)
            metrics.update(kl_to_uniform=kl.detach(), batch_kl_to_uniform=diversity.detach(), tau=torch.tensor(tau))
        return QuantizerOutput(quantized, codes, loss, metrics)

    def binary(self, logits: torch.Tensor, tau: float) -> QuantizerOutput:
        probs = torch.sigmoid(logits)
        if self.training:
            u = self.uniform_noise(logits)
            relaxed = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)  # logistic noise
        else:
            relaxed = probs
        bits = (relaxed > 0.5).to(relaxed.dtype)
        weights = bits + (relaxed - relaxed.detach())
        quantized = self.codebook(weights)
        kl = bernoulli_kl_to_half(probs).sum(-1).mean()
        # the batch term: each bit's batch-mean probability towards 0.5, so every bit is on for some inputs
        # and off for others (without it the bits saturate to constants and the code carries nothing)
        diversity = bernoulli_kl_to_half(probs.reshape(-1, self.codebook_size).mean(0)).sum()
        if self.training:
            self.num_updates += 1
        bit_usage = bits.reshape(-1, self.codebook_size).mean(0)
        metrics = {
            "kl_to_uniform": kl.detach(),
            "batch_kl_to_uniform": diversity.detach(),
            "tau": torch.tensor(tau),
            "bits_on": bit_usage.mean().detach(),
            "codebook_usage": ((bit_usage > 0) & (bit_usage < 1)).float().mean().detach(),
        }
        return QuantizerOutput(quantized, bits.long(), self.kl_weight * kl + self.diversity_weight * diversity, metrics)


def bernoulli_kl_to_half(p: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(p) || Bernoulli(0.5)) elementwise, in nats."""
    return p * torch.log(2 * p.clamp_min(1e-12)) + (1 - p) * torch.log(2 * (1 - p).clamp_min(1e-12))
