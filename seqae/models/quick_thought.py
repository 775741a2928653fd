"""Quick-thought (Logeswaran & Lee 2018, arXiv 1803.02893): two encoders f and g; for each sentence a
classifier over the other sentences of the batch, with scores f(s) . g(c), picks its true neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seqae.config import ConfigError
from seqae.models.base import ModelOutput
from seqae.nn.losses import ddp_active, distributed_mean
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

    def gather_candidates(self, g: torch.Tensor, segment: torch.Tensor):
        """Under DDP, every process's g(s) and segments (the global batch's candidates, differentiable),
        with the positions of this process's sentences and of the candidates in the global batch."""
        import torch.distributed as dist
        from torch.distributed.nn.functional import all_gather

        world, rank = dist.get_world_size(), dist.get_rank()
        size = torch.tensor([g.shape[0]], device=g.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        sizes = [int(s) for s in sizes]
        most = max(sizes)
        padded = F.pad(g, (0, 0, 0, most - g.shape[0]))
        seg = F.pad(segment, (0, most - segment.shape[0]), value=-1)
        segs = [torch.empty_like(seg) for _ in range(world)]
        dist.all_gather(segs, seg)
        keep = torch.cat([torch.arange(most, device=g.device) < s for s in sizes])
        candidates = torch.cat(all_gather(padded))[keep]
        starts = [sum(sizes[:r]) for r in range(world)]
        rows = starts[rank] + torch.arange(g.shape[0], device=g.device)
        columns = torch.arange(sum(sizes), device=g.device)
        return candidates, torch.cat(segs)[keep], rows, columns

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        tokens, lengths, segment = batch["tokens"], batch["lengths"], batch["segment"]
        f, g = self.f(tokens, lengths), self.g(tokens, lengths)
        if ddp_active():  # the candidates are the whole global batch, as in one process
            g, candidates, rows, columns = self.gather_candidates(g, segment)
        else:
            candidates, rows, columns = segment, None, None
        scores = f @ g.t()  # (B, C)
        rows_ = torch.arange(scores.shape[0], device=scores.device) if rows is None else rows
        cols_ = torch.arange(scores.shape[1], device=scores.device) if columns is None else columns
        self_mask = rows_[:, None] == cols_[None, :]
        log_probs = F.log_softmax(scores.masked_fill(self_mask, float("-inf")), dim=1)
        target = self.targets(segment, candidates, rows, columns)
        n_pairs = target.sum()
        if not ddp_active() and n_pairs == 0:  # a lone sentence (the last evaluation batch, say): nothing to predict
            return ModelOutput(scores.sum() * 0.0, {"accuracy": 0.0})
        loss = distributed_mean(-(log_probs.masked_fill(~target, 0.0)).sum(), n_pairs)
        has_target = target.any(dim=1)
        hits = target.gather(1, log_probs.argmax(dim=1, keepdim=True)).squeeze(1)
        accuracy = hits[has_target].float().mean() if has_target.any() else scores.new_zeros(())
        return ModelOutput(loss, {"accuracy": accuracy.detach()})
