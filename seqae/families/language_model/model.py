"""The ``language_model`` family's model: :class:`~seqae.nn.language_model.RecurrentLM` trained by next-token
cross-entropy (every token of a sentence and the EOS after it, given BOS and the tokens before)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from seqae.config import ConfigError
from seqae.models.base import ModelOutput
from seqae.nn.language_model import RecurrentLM


@dataclass
class LanguageModelConfig:
    """``[model]`` for ``family = "language_model"``."""

    family: str = "language_model"
    vocab_size: int = 0  # 0: the tokenizer's
    embed_dim: int = 128
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.1

    def validate(self, where: str) -> None:
        if self.embed_dim <= 0 or self.hidden <= 0 or self.layers <= 0:
            raise ConfigError(f"{where}: model.embed_dim, model.hidden and model.layers must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}: model.dropout must be in [0, 1), got {self.dropout}")


class LanguageModel(nn.Module):
    """``forward({"tokens": (B, T), "lengths": (B,)})``: the mean NLL per target token (tokens and EOS),
    with the next-token accuracy as a metric."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        if config.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (it is taken from the tokenizer when 0 in the recipe)")
        self.config = config
        self.lm = RecurrentLM(config.vocab_size, config.embed_dim, config.hidden, config.layers, config.dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        nll, right = self.lm.sequence_nll(batch["tokens"], batch["lengths"])
        targets = (batch["lengths"] + 1).sum().to(nll.device)
        loss = nll.sum() / targets
        metrics = {"nll": loss.detach(), "accuracy": (right.sum() / targets).detach(), "chance_loss": math.log(self.config.vocab_size)}
        return ModelOutput(loss, metrics)  # chance_loss: a uniform guess over the vocabulary
