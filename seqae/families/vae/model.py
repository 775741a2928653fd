"""The variational autoencoder (Kingma & Welling 2013, arXiv 1312.6114)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.config import ConfigError, choice
from seqae.models.base import ModelOutput
from seqae.nn.encoders import ACTIVATIONS, MLP
from seqae.nn.losses import gaussian_kl
from seqae.nn.noise import NOISES, corrupt


@dataclass
class VAEConfig:
    """``[model]`` for ``family = "vae"``."""

    family: str = "vae"
    input_dim: int = 0  # 0: taken from the data
    hidden: list[int] = field(default_factory=lambda: [256, 128])  # encoder widths; the decoder mirrors them
    latent_dim: int = 8
    activation: str = choice("relu", *ACTIVATIONS)
    # p(x|z): bernoulli for data in [0, 1]; gaussian with unit variance; gaussian_learned with a learned variance per feature
    likelihood: str = choice("bernoulli", "bernoulli", "gaussian", "gaussian_learned")
    beta: float = 1.0  # weight of the KL term (1: the ELBO)
    kl_warmup_steps: int = 0  # the KL weight ramps from 0 to beta over these training forward passes
    # (micro-batches: with train.grad_accum = N, N per optimizer step)
    noise: str = choice("none", *NOISES)  # denoising VAE: the encoder sees a corrupted input, p(x|z) the clean one
    noise_level: float = 0.0  # Gaussian sigma, or the share of input features dropped

    def validate(self, where: str) -> None:
        if self.latent_dim <= 0 or any(w <= 0 for w in self.hidden):
            raise ConfigError(f"{where}: model.latent_dim and model.hidden must be positive")
        if self.beta < 0 or self.kl_warmup_steps < 0:
            raise ConfigError(f"{where}: model.beta and model.kl_warmup_steps must be >= 0")
        if self.noise_level < 0 or (self.noise == "masking" and self.noise_level >= 1):
            raise ConfigError(f"{where}: model.noise_level must be >= 0 (masking: below 1, the share of inputs dropped)")


class VAE(nn.Module):
    """Gaussian encoder q(z|x) = N(mu, diag(sigma^2)), decoder p(x|z), prior N(0, I).

    ``encode``: ``(batch, input_dim) -> (mu, logvar)``, each ``(batch, latent_dim)``;
    ``decode``: ``(batch, latent_dim) -> (batch, input_dim)`` (the mean of p(x|z));
    ``sample(n)``: ``(n, input_dim)``.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.input_dim <= 0:
            raise ValueError("VAEConfig.input_dim must be set (the data's feature count)")
        self.config = config
        widths = [config.input_dim, *config.hidden]
        self.encoder = MLP(widths, config.activation, config.activation)
        self.to_mu = nn.Linear(widths[-1], config.latent_dim)
        self.to_logvar = nn.Linear(widths[-1], config.latent_dim)
        self.decoder = MLP([config.latent_dim, *reversed(widths)], config.activation, "linear")
        # gaussian_learned: log sigma^2 of p(x|z), one per output feature, learned with the rest
        self.output_log_variance = nn.Parameter(torch.zeros(config.input_dim)) if config.likelihood == "gaussian_learned" else None
        # Counts training forward passes; drives the KL warm-up and is saved with the weights.
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def code_dim(self) -> int:
        return self.config.latent_dim

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(f"expected input of shape (batch, {self.config.input_dim}), got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z): sigmoid of the logits (bernoulli) or the output itself (gaussian)."""
        out = self.decoder_logits(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example mean squared error of the reconstruction from the posterior mean. ``(batch,)``."""
        return (self.reconstruct(x) - x).pow(2).mean(dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new examples from the prior: decode(z), z ~ N(0, I). Returns ``(n, input_dim)``."""
        device = self.to_mu.weight.device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device="cpu").to(device)
        return self.decode(z)

    def negative_log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) summed over features: ``(batch,)``."""
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(dim=1)
        if self.output_log_variance is not None:  # N(out, exp(log_variance)) per feature
            log_var = self.output_log_variance
            return 0.5 * ((out - x).pow(2) * torch.exp(-log_var) + log_var + math.log(2 * math.pi)).sum(dim=1)
        # unit-variance Gaussian
        return 0.5 * ((out - x).pow(2) + math.log(2 * math.pi)).sum(dim=1)

    def elbo_terms(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example reconstruction NLL and KL: each ``(batch,)``; ELBO = -(nll + kl). In training with
        ``model.noise``, the encoder sees the corrupted input and the NLL is of the clean ``x``."""
        mu, logvar = self.encode(corrupt(x, self.config.noise, self.config.noise_level) if self.training else x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu  # reparameterisation
        return self.negative_log_likelihood(self.decoder_logits(z), x), gaussian_kl(mu, logvar)

    def kl_weight(self) -> float:
        if self.config.kl_warmup_steps <= 0:
            return self.config.beta
        return self.config.beta * min(1.0, float(self.num_updates) / self.config.kl_warmup_steps)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        x = batch["x"]
        nll, kl = self.elbo_terms(x)
        weight = self.kl_weight()
        if self.training:
            self.num_updates += 1
        loss = (nll + weight * kl).mean()
        elbo = -(nll + kl).mean().detach()
        return ModelOutput(loss, {"elbo": elbo, "nll": nll.mean().detach(), "kl": kl.mean().detach(), "kl_weight": weight})
