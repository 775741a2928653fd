"""Quick-thought (Logeswaran & Lee 2018, arXiv 1803.02893): two encoders f and g; for each sentence a
classifier over the other sentences of the batch, with scores f(s) . g(c), picks its true neighbours."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seqae.config import ConfigError
from seqae.families.sentence_encoder import SentenceEmbedder, SentenceEncoderConfig, build_encoder
from seqae.models.base import ModelOutput
from seqae.nn.distributed import ddp_active, distributed_mean, gather_rows


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
    ``encode_tokens``: ``[f(s); g(s)]``, ``(B, 2 * encoder dim)``; ``encode(sentences)``: the same from strings.
    """

    def __init__(self, config: QuickThoughtConfig):
        super().__init__()
        self.config = config
        self.f = build_encoder(config)
        self.g = build_encoder(config)
        self.embedding_dim = 2 * self.f.out_dim

    def encode_tokens(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.f(tokens, lengths), self.g(tokens, lengths)], dim=-1)

    def token_embeddings(self) -> torch.Tensor:
        return torch.cat([self.f.embedding.weight, self.g.embedding.weight], dim=-1)

    def targets(self, segment: torch.Tensor, candidates: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                columns: torch.Tensor | None = None) -> torch.Tensor:
        """Boolean ``(B, C)``: candidate j is a true neighbour of sentence i (0 < |i - j| <= context, same
        segment). Without ``candidates``, the batch's own sentences are the candidates; ``rows`` and
        ``columns`` are the positions of sentences and candidates in the global batch."""
        candidates = segment if candidates is None else candidates
        rows = torch.arange(segment.shape[0], device=segment.device) if rows is None else rows
        columns = torch.arange(candidates.shape[0], device=segment.device) if columns is None else columns
        distance = (rows[:, None] - columns[None, :]).abs()
        return (distance > 0) & (distance <= self.config.context) & (segment[:, None] == candidates[None, :])

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        tokens, lengths, segment = batch["tokens"], batch["lengths"], batch["segment"]
        f, g = self.f(tokens, lengths), self.g(tokens, lengths)
        rows = torch.arange(len(segment), device=segment.device)  # positions in the global batch
        candidates = segment
        if ddp_active():  # the candidates are the whole global batch, as in one process
            import torch.distributed as dist

            g, candidates = gather_rows(g, differentiable=True), gather_rows(segment)
            owner = gather_rows(torch.full_like(segment, dist.get_rank()))
            rows = torch.nonzero(owner == dist.get_rank()).squeeze(1)
        columns = torch.arange(len(candidates), device=segment.device)
        scores = f @ g.t()  # (B, C)
        self_mask = rows[:, None] == columns[None, :]
        log_probs = F.log_softmax(scores.masked_fill(self_mask, float("-inf")), dim=1)
        target = self.targets(segment, candidates, rows, columns)
        n_pairs = target.sum()
        if not ddp_active() and n_pairs == 0:  # a lone sentence (the last evaluation batch, say): nothing to predict
            return ModelOutput(scores.sum() * 0.0, {"accuracy": 0.0})
        loss = distributed_mean(-(log_probs.masked_fill(~target, 0.0)).sum(), n_pairs)
        has_target = target.any(dim=1)
        # a hit: a true neighbour scores strictly above every other candidate (ties, as from a collapsed
        # encoder that scores everything alike, are misses rather than whatever argmax picks first)
        best_target = log_probs.masked_fill(~target, float("-inf")).max(dim=1).values
        best_other = log_probs.masked_fill(target | self_mask, float("-inf")).max(dim=1).values
        hits = best_target > best_other
        accuracy = hits[has_target].float().mean() if has_target.any() else scores.new_zeros(())
        # the loss of a uniform guess among the other candidates: where training starts, what it must go below
        return ModelOutput(loss, {"accuracy": accuracy.detach(), "chance_loss": math.log(max(len(candidates) - 1, 1))})
