"""The autoencoder core: vanilla, stacked (optionally tied), denoising, sparse, and greedy layer-wise
pre-training followed by supervised fine-tuning.

Hinton & Salakhutdinov 2006 (deep autoencoders, layer-wise pre-training); Vincent et al. 2008
(denoising); Ng's sparse-autoencoder notes (KL sparsity penalty).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.config import ConfigError, choice
from seqae.models.base import ModelOutput, Phase, Stage
from seqae.nn.encoders import ACTIVATIONS, activation
from seqae.nn.losses import kl_sparsity_penalty, l1_penalty
from seqae.nn.noise import corrupt


@dataclass
class AutoencoderConfig:
    """``[model]`` for ``family = "autoencoder"``."""

    family: str = "autoencoder"
    input_dim: int = 0  # 0: taken from the data
    hidden: list[int] = field(default_factory=lambda: [256, 128, 8])  # encoder widths; the last is the code
    activation: str = choice("sigmoid", *ACTIVATIONS)  # hidden layers
    code_activation: str = choice("linear", *ACTIVATIONS)  # linear code units, as in Hinton & Salakhutdinov
    output_activation: str = choice("sigmoid", "sigmoid", "linear")  # sigmoid for data in [0, 1]
    tied: bool = False  # decoder uses the encoder's transposed weights
    noise: str = choice("none", "none", "gaussian", "masking")  # denoising: corrupt the input, clean target
    noise_level: float = 0.0  # Gaussian sigma, or the share of input features dropped
    sparsity: str = choice("none", "none", "kl", "l1")  # penalty on the code activations
    sparsity_target: float = 0.05  # rho, for the KL penalty
    sparsity_weight: float = 0.0
    num_classes: int = 0  # > 0: a linear classifier on the code, trained with cross-entropy
    reconstruction_weight: float = 1.0  # weight of the reconstruction term when a classifier is trained
    pretrain_steps: int = 0  # greedy layer-wise pre-training: steps per layer (0: none)

    def validate(self, where: str) -> None:
        if not self.hidden or any(w <= 0 for w in self.hidden):
            raise ConfigError(f"{where}: model.hidden must be a non-empty list of positive widths, got {self.hidden}")
        if self.input_dim < 0:
            raise ConfigError(f"{where}: model.input_dim must be >= 0 (0 takes it from the data)")
        if self.noise == "masking" and not 0.0 <= self.noise_level < 1.0:
            raise ConfigError(f"{where}: model.noise_level is the share of inputs masked; it must be in [0, 1)")
        if self.noise_level < 0:
            raise ConfigError(f"{where}: model.noise_level must be >= 0")
        if self.sparsity == "kl" and not 0.0 < self.sparsity_target < 1.0:
            raise ConfigError(f"{where}: model.sparsity_target must be in (0, 1) for the KL penalty")
        if self.sparsity == "kl" and self.code_activation != "sigmoid":
            raise ConfigError(
                f"{where}: the KL sparsity penalty needs activations in (0, 1): set model.code_activation = \"sigmoid\""
            )
        if self.num_classes < 0 or self.pretrain_steps < 0:
            raise ConfigError(f"{where}: model.num_classes and model.pretrain_steps must be >= 0")


class Autoencoder(nn.Module):
    """A symmetric fully connected autoencoder ``input_dim -> hidden... -> code -> ... -> input_dim``.

    ``encode``: ``(batch, input_dim) -> (batch, code_dim)``; ``decode``: the inverse shapes.
    ``forward(batch)`` takes ``{"x": (batch, input_dim), "y": (batch,)}`` (``y`` only with a classifier).
    """

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if config.input_dim <= 0:
            raise ValueError("AutoencoderConfig.input_dim must be set (the data's feature count)")
        self.config = config
        widths = [config.input_dim, *config.hidden]
        self.widths = widths
        depth = len(config.hidden)
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.encoder_activations = nn.ModuleList(
            activation(config.code_activation if k == depth - 1 else config.activation) for k in range(depth)
        )
        if config.tied:
            # Tied: decoder layer k computes F.linear(h, W_k.t()) inside forward (a transposed copy made
            # here would not share gradients, and breaks backward on CUDA).
            self.decoder_bias = nn.ParameterList(nn.Parameter(torch.zeros(w)) for w in widths[:-1])
        else:
            self.decoder = nn.ModuleList(nn.Linear(b, a) for a, b in zip(widths[:-1], widths[1:]))
        self.decoder_activations = nn.ModuleList(
            activation(config.output_activation if k == 0 else config.activation) for k in range(depth)
        )
        self.classifier = nn.Linear(widths[-1], config.num_classes) if config.num_classes else None
        self.stage = "main"

    # -- the training-plan hook (seqae.models.base) ------------------------------------------------

    def training_stages(self, steps: int) -> list[Stage]:
        stages = []
        if self.config.pretrain_steps:
            for k in range(len(self.encoder)):
                params = list(self.encoder[k].parameters())
                params += [self.decoder_bias[k]] if self.config.tied else list(self.decoder[k].parameters())
                stages.append(Stage(f"pretrain_layer{k + 1}", self.config.pretrain_steps, [Phase("main", params)]))
        final = "finetune" if self.config.pretrain_steps else "main"
        # with a classifier the last stage trains on labels: only the labelled subset (data.labelled_per_class)
        stages.append(Stage(final, steps, [Phase("main", list(self.parameters()))], "labelled" if self.classifier else "all"))
        return stages

    def set_phase(self, stage: str, phase: str) -> None:
        self.stage = stage

    # -- building blocks ---------------------------------------------------------------------------

    @property
    def code_dim(self) -> int:
        return self.widths[-1]

    def encode_layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        return self.encoder_activations[k](self.encoder[k](h))

    def decode_layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        if self.config.tied:
            out = F.linear(h, self.encoder[k].weight.t(), self.decoder_bias[k])
        else:
            out = self.decoder[k](h)
        return self.decoder_activations[k](out)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.widths[0]:
            raise ValueError(
                f"expected input of shape (batch, {self.widths[0]}), got {tuple(x.shape)}; "
                "flatten images to one row per example"
            )

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the configured input noise (denoising autoencoders): Gaussian or masking."""
        return corrupt(x, self.config.noise, self.config.noise_level)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, input_dim) -> (batch, code_dim)``."""
        self.check_input(x)
        h = x
        for k in range(len(self.encoder)):
            h = self.encode_layer(k, h)
        return h

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, code_dim) -> (batch, input_dim)``."""
        h = z
        for k in reversed(range(len(self.encoder))):
            h = self.decode_layer(k, h)
        return h

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example mean squared reconstruction error, the anomaly score. ``(batch, input_dim) -> (batch,)``."""
        return (self.reconstruct(x) - x).pow(2).mean(dim=1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, num_classes)`` from the code."""
        if self.classifier is None:
            raise ValueError("this autoencoder has no classifier (model.num_classes = 0)")
        return self.classifier(self.encode(x))

    # -- training ----------------------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        x = batch["x"]
        self.check_input(x)
        if self.stage.startswith("pretrain_layer"):
            return self.pretrain_layer(int(self.stage[len("pretrain_layer") :]) - 1, x)
        x_in = self.corrupt(x) if self.training else x
        z = self.encode(x_in)
        mse = F.mse_loss(self.decode(z), x)
        metrics: dict[str, float | torch.Tensor] = {"mse": mse.detach()}
        loss = mse
        if self.classifier is not None:
            if "y" not in batch:
                raise ValueError("model.num_classes > 0 needs labelled data (batch['y'])")
            logits = self.classifier(z)
            ce = F.cross_entropy(logits, batch["y"])
            loss = ce + self.config.reconstruction_weight * mse
            metrics["ce"] = ce.detach()
            metrics["accuracy"] = (logits.argmax(dim=1) == batch["y"]).float().mean().detach()
        if self.config.sparsity != "none" and self.config.sparsity_weight > 0:
            if self.config.sparsity == "kl":
                penalty = kl_sparsity_penalty(z, self.config.sparsity_target)
            else:
                penalty = l1_penalty(z)
            loss = loss + self.config.sparsity_weight * penalty
            metrics["sparsity_penalty"] = penalty.detach()
        metrics["mean_activation"] = z.detach().mean()
        return ModelOutput(loss, metrics)

    def pretrain_layer(self, k: int, x: torch.Tensor) -> ModelOutput:
        """Greedy step for layer ``k``: reconstruct the (frozen) code of the layers below it."""
        with torch.no_grad():
            target = x
            for j in range(k):
                target = self.encode_layer(j, target)
        h_in = self.corrupt(target) if self.training and k == 0 else target
        rec = self.decode_layer(k, self.encode_layer(k, h_in))
        mse = F.mse_loss(rec, target)
        return ModelOutput(mse, {"mse": mse.detach()})
