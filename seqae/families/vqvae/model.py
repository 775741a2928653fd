"""VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937) with a vector or Gumbel quantiser between a
convolutional encoder and decoder, for images (any array of images) and log-mel spectrograms.

Image latents are either a grid (one code per position of the down-sampled image, as in the paper) or
global (one code per example, for clustering); log-mel latents are one code per (down-sampled) frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.config import ConfigError, choice
from seqae.models.base import ModelOutput
from seqae.nn.encoders import ConvDecoder, ConvEncoder
from seqae.nn.quantize import GumbelQuantizer, QuantizerOutput, VectorQuantizer


@dataclass
class VQVAEConfig:
    """``[model]`` for ``family = "vqvae"``."""

    family: str = "vqvae"
    input: str = choice("image", "image", "mel")  # mel: [data] is a manifest or folder of audio files
    input_dim: int = 0  # image features, or mel bands; 0: taken from the data
    image_shape: list[int] = field(default_factory=list)  # (height, width); [] takes it from the data
    channels: int = 64  # convolution width
    downsample: int = 1  # stride-2 stages: each halves height and width
    latent: str = choice("grid", "grid", "global")  # a code per grid position, or one per example
    code_dim: int = 32  # width of the vectors that are quantised
    quantizer: str = choice("vq", "vq", "gumbel_hard", "gumbel_soft", "binary")
    codebook_size: int = 64
    codebook_dim: int = 0  # > 0: a low-dimensional codebook with projections in and out
    distance: str = choice("euclidean", "euclidean", "cosine")
    beta: float = 0.25  # commitment weight
    ema: bool = True  # EMA codebook updates instead of the codebook loss
    decay: float = 0.99
    kmeans_init: bool = True
    dead_code_threshold: float = 0.0  # restart codes whose moving-average count per batch falls below this
    tau_min: float = 0.5  # Gumbel temperature floor
    anneal_rate: float = 1e-4  # Gumbel temperature: tau = max(tau_min, exp(-anneal_rate * step))
    kl_weight: float = 0.0  # Gumbel: weight of KL(q || uniform)
    diversity_weight: float = 0.0  # Gumbel and binary: weight of KL(batch-mean q || uniform), against code collapse
    reconstruction: str = choice("mse", "mse", "bernoulli")  # bernoulli: -log p(x|z) in nats, for an ELBO

    def validate(self, where: str) -> None:
        if self.quantizer != "binary" and self.codebook_size < 2:
            raise ConfigError(
                f"{where}: model.codebook_size = {self.codebook_size}; a codebook needs at least 2 codes"
            )
        if self.codebook_size < 1:
            raise ConfigError(f"{where}: model.codebook_size must be positive")
        if self.channels <= 0 or self.code_dim <= 0 or self.downsample < 0:
            raise ConfigError(f"{where}: model.channels and model.code_dim must be positive, model.downsample >= 0")
        if not 0.0 < self.decay < 1.0:
            raise ConfigError(f"{where}: model.decay must be in (0, 1)")
        if self.tau_min <= 0:
            raise ConfigError(f"{where}: model.tau_min must be > 0 (a zero temperature divides by zero)")
        if self.image_shape and len(self.image_shape) != 2:
            raise ConfigError(f"{where}: model.image_shape must be [height, width]")
        if self.input == "mel" and self.latent == "global":
            raise ConfigError(f"{where}: log-mel input has one code per frame: set model.latent = \"grid\"")


def build_quantizer(config: VQVAEConfig) -> nn.Module:
    if config.quantizer == "vq":
        return VectorQuantizer(
            config.code_dim,
            config.codebook_size,
            codebook_dim=config.codebook_dim or None,
            distance=config.distance,
            beta=config.beta,
            ema=config.ema,
            decay=config.decay,
            kmeans_init=config.kmeans_init,
            dead_code_threshold=config.dead_code_threshold,
        )
    mode = {"gumbel_hard": "hard", "gumbel_soft": "soft", "binary": "binary"}[config.quantizer]
    return GumbelQuantizer(
        config.code_dim, config.codebook_size, mode=mode, tau_min=config.tau_min,
        anneal_rate=config.anneal_rate, kl_weight=config.kl_weight, diversity_weight=config.diversity_weight,
    )


class VQVAE(nn.Module):
    """Encoder -> quantiser -> decoder on images.

    ``forward(batch)`` takes ``{"x": (batch, height * width)}`` in [0, 1].
    ``encode(x)`` returns the :class:`QuantizerOutput`; ``codes(x)``: ``(batch,)`` (global) or
    ``(batch, h, w)`` (grid); ``decode_codes(codes)``: the reconstructions ``(batch, height * width)``.
    """

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        self.factor = 2**config.downsample
        if config.input == "mel":
            if config.input_dim <= 0:
                raise ValueError("VQVAEConfig.input_dim (mel bands) must be set (from the data)")
            self.encoder = ConvEncoder(config.input_dim, config.channels, config.code_dim, config.downsample, dims=1)
            self.decoder = ConvDecoder(config.code_dim, config.channels, config.input_dim, config.downsample, dims=1)
        else:
            if config.input_dim <= 0 or len(config.image_shape) != 2:
                raise ValueError("VQVAEConfig.input_dim and image_shape must be set (from the data)")
            height, width = config.image_shape
            if height * width != config.input_dim:
                raise ValueError(f"image_shape {config.image_shape} does not hold {config.input_dim} features")
            if height % self.factor or width % self.factor:
                raise ValueError(f"image {height}x{width} cannot be down-sampled {config.downsample} times by 2")
            self.grid = (height // self.factor, width // self.factor)
            self.encoder = ConvEncoder(1, config.channels, config.code_dim, config.downsample, dims=2)
            self.decoder = ConvDecoder(config.code_dim, config.channels, 1, config.downsample, dims=2)
            if config.latent == "global":
                flat = config.code_dim * self.grid[0] * self.grid[1]
                self.to_code = nn.Linear(flat, config.code_dim)
                self.from_code = nn.Linear(config.code_dim, flat)
        self.quantizer = build_quantizer(config)

    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one example's codes: ``()`` (global), ``(h, w)`` (image grid) or ``(-1,)`` (mel: one
        per frame, any length); binary adds the bits."""
        if self.config.input == "mel":
            shape = (-1,)
        else:
            shape = () if self.config.latent == "global" else self.grid
        return shape + ((self.config.codebook_size,) if self.config.quantizer == "binary" else ())

    def check_input(self, x: torch.Tensor) -> None:
        if self.config.input == "mel":
            if x.dim() != 3 or x.shape[1] != self.config.input_dim:
                raise ValueError(f"expected log-mels of shape (batch, {self.config.input_dim}, frames), got {tuple(x.shape)}")
        elif x.dim() != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(f"expected input of shape (batch, {self.config.input_dim}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("empty input: no examples to encode")
        if not torch.isfinite(x).all():
            raise ValueError("the input holds NaN or infinite values")

    def encode(self, x: torch.Tensor) -> QuantizerOutput:
        self.check_input(x)
        if self.config.input == "mel":
            pad = -x.shape[2] % self.factor  # frames to a multiple of the down-sampling
            h = self.encoder(F.pad(x, (0, pad)))  # (B, code_dim, frames / factor)
            return self.quantizer(h.transpose(1, 2))  # (B, t, code_dim)
        h = self.encoder(x.view(x.shape[0], 1, *self.config.image_shape))  # (B, code_dim, h, w)
        if self.config.latent == "global":
            return self.quantizer(self.to_code(h.flatten(1)))  # (B, code_dim)
        return self.quantizer(h.permute(0, 2, 3, 1))  # (B, h, w, code_dim)

    def decoder_logits(self, q: torch.Tensor) -> torch.Tensor:
        """Quantised latents -> pre-sigmoid outputs ``(batch, input_dim)`` (mel: ``(batch, n_mels, frames)``)."""
        if self.config.input == "mel":
            return self.decoder(q.transpose(1, 2))
        if self.config.latent == "global":
            h = self.from_code(q).view(q.shape[0], self.config.code_dim, *self.grid)
        else:
            h = q.permute(0, 3, 1, 2)
        return self.decoder(h).flatten(1)

    def decode_latents(self, q: torch.Tensor) -> torch.Tensor:
        out = self.decoder_logits(q)
        return out if self.config.input == "mel" else torch.sigmoid(out)

    def negative_log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Bernoulli -log p(x|z) summed over pixels: ``(batch,)``."""
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)

    @torch.no_grad()
    def exact_elbo(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For one categorical latent (global Gumbel codes): E_q[log p(x|z)] summed over all K codes, and
        KL(q(z|x) || uniform), each ``(batch,)``. ELBO = -(nll + kl)."""
        if self.config.latent != "global" or self.config.quantizer not in ("gumbel_hard", "gumbel_soft"):
            raise ValueError("the exact ELBO needs one categorical latent (latent = global, a gumbel quantizer)")
        h = self.encoder(x.view(x.shape[0], 1, *self.config.image_shape))
        probs = F.softmax(self.quantizer.to_logits(self.to_code(h.flatten(1))), dim=-1)  # (B, K)
        k = self.config.codebook_size
        all_codes = self.decoder_logits(self.quantizer.codebook)  # (K, input_dim): every code decoded once
        nll = torch.stack([self.negative_log_likelihood(all_codes[c].expand_as(x), x) for c in range(k)], dim=1)
        kl = (probs * torch.log(probs.clamp_min(1e-12) * k)).sum(dim=1)
        return (probs * nll).sum(dim=1), kl

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes of shape ``(batch, *code_shape)`` -> reconstructions ``(batch, input_dim)`` (mel:
        ``(batch, n_mels, frames)``)."""
        expected = self.code_shape
        shape = tuple(codes.shape[1:])
        matches = len(shape) == len(expected) and all(e == -1 or e == s for e, s in zip(expected, shape))
        if not matches or codes.dim() != 1 + len(expected):
            raise ValueError(
                f"codes must have shape (batch, {', '.join('frames' if e == -1 else str(e) for e in expected)}) for this model, "
                f"got {tuple(codes.shape)}"
            )
        return self.decode_latents(self.quantizer.decode_codes(codes))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decode_latents(self.encode(x).quantized)
        return out[..., : x.shape[-1]] if self.config.input == "mel" else out

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example mean squared error ``(batch,)``."""
        return (self.reconstruct(x) - x).pow(2).flatten(1).mean(dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        x = batch["x"]
        q = self.encode(x)
        logits = self.decoder_logits(q.quantized)
        if self.config.input == "mel":
            error = (logits[..., : x.shape[-1]] - x).pow(2).mean(dim=1)  # (B, frames)
            mask = batch.get("mask")
            mse = error.mean() if mask is None else (error * mask).sum() / mask.sum().clamp_min(1)
            return ModelOutput(mse + q.loss, {"mse": mse.detach(), **q.metrics})
        mse = F.mse_loss(torch.sigmoid(logits), x)
        metrics = {"mse": mse.detach(), **q.metrics}
        if self.config.reconstruction == "bernoulli":
            nll = self.negative_log_likelihood(logits, x).mean()
            metrics["nll"] = nll.detach()
            return ModelOutput(nll + q.loss, metrics)
        return ModelOutput(mse + q.loss, metrics)
