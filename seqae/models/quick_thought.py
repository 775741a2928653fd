"""Quick-thought (Logeswaran & Lee 2018, arXiv 1803.02893): two encoders f and g; for each sentence a
classifier over the other sentences of the batch, with scores f(s) . g(c), picks its true neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seqae.config import ConfigError
from seqae.models.base import ModelOutput
from seqae.models.sentence import SentenceEmbedder, SentenceEncoderConfig, build_encoder


@dataclass
class QuickThoughtConfig(SentenceEncoderConfig):
    """``[model]`` for ``family = "quick_thought"``."""

    family: str = "quick_thought"
    context: int = 1  # neighbours within this distance are the targets (1: the previous and the next)

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.context < 1:
            raise ConfigError(f"{where}: model.context must be at least 1")


class QuickThought(SentenceEmbedder):
    """``forward(batch)`` takes contiguous sentences ``{"tokens": (B, T), "lengths": (B,), "segment": (B,)}``.

    Loss (paper eq. 2, with the batch as the candidate set): for each sentence i, a softmax over
    f(s_i) . g(s_j), j != i (self excluded with -inf), and the negative log-probability of each true
    neighbour j (0 < |i - j| <= context, same segment), averaged over the neighbour pairs.
    ``encode``: ``[f(s); g(s)]``, ``(B, 2 * encoder dim)``.
    """

    def __init__(self, config: QuickThoughtConfig):
        super().__init__()
        self.config = config
        self.f = build_encoder(config)
        self.g = build_encoder(config)
        self.embedding_dim = 2 * self.f.out_dim

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.f(tokens, lengths), self.g(tokens, lengths)], dim=-1)

    def token_embeddings(self) -> torch.Tensor:
        return torch.cat([self.f.embedding.weight, self.g.embedding.weight], dim=-1)

    def targets(self, segment: torch.Tensor) -> torch.Tensor:
        """Boolean ``(B, B)``: j is a true neighbour of i."""
        b = segment.shape[0]
        idx = torch.arange(b, device=segment.device)
        distance = (idx[:, None] - idx[None, :]).abs()
        return (distance > 0) & (distance <= self.config.context) & (segment[:, None] == segment[None, :])

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        tokens, lengths = batch["tokens"], batch["lengths"]
        scores = self.f(tokens, lengths) @ self.g(tokens, lengths).t()  # (B, B)
        eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
        log_probs = F.log_softmax(scores.masked_fill(eye, float("-inf")), dim=1)
        target = self.targets(batch["segment"])
        n_pairs = target.sum()
        if n_pairs == 0:  # a lone sentence (the last evaluation batch, say): nothing to predict
            return ModelOutput(scores.sum() * 0.0, {"accuracy": 0.0})
        loss = -(log_probs.masked_fill(~target, 0.0)).sum() / n_pairs
        has_target = target.any(dim=1)
        hits = target.gather(1, log_probs.argmax(dim=1, keepdim=True)).squeeze(1)
        accuracy = hits[has_target].float().mean()
        return ModelOutput(loss, {"accuracy": accuracy.detach()})
