"""Skip-thought (Kiros et al. 2015, arXiv 1506.06726): a GRU encoder; two GRU decoders conditioned on
the sentence vector regenerate the previous and the next sentence with teacher forcing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqae.families.sentence_encoder import SentenceEmbedder, SentenceEncoderConfig, build_encoder
from seqae.models.base import ModelOutput
from seqae.nn.distributed import distributed_mean
from seqae.nn.encoders import length_groups


@dataclass
class SkipThoughtConfig(SentenceEncoderConfig):
    """``[model]`` for ``family = "skip_thought"``."""

    family: str = "skip_thought"
    decoder_hidden: int = 0  # 0: the encoder's hidden size
    tie_embeddings: bool = True  # output word embeddings tied to the input embeddings


class ConditionalDecoder(nn.Module):
    """A GRU language model conditioned on a sentence vector: the vector sets the initial state and is
    fed beside each input word (the paper's conditioning of the gates on h_i)."""

    def __init__(self, embedding: nn.Embedding, condition_dim: int, hidden: int, tie: bool):
        super().__init__()
        # shared with the encoder, not registered here: the weights are saved once, under the encoder
        self.__dict__["embedding"] = embedding
        vocab, embed_dim = embedding.weight.shape
        self.init = nn.Linear(condition_dim, hidden)
        self.rnn = nn.GRU(embed_dim + condition_dim, hidden, batch_first=True)
        self.tie = tie
        if tie:
            self.to_embed = nn.Linear(hidden, embed_dim)
        else:
            self.out = nn.Linear(hidden, vocab)

    def forward(self, sentence: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negative log-likelihood summed over the target tokens, and their count.

        ``tokens`` ``(B, T)`` are the target sentence; inputs are BOS + tokens, targets tokens + EOS.
        """
        from seqae.datasets.text import BOS_ID, EOS_ID, PAD_ID

        b, t = tokens.shape
        bos = torch.full((b, 1), BOS_ID, dtype=tokens.dtype, device=tokens.device)
        inputs = torch.cat([bos, tokens], dim=1)
        targets = torch.cat([tokens, torch.full_like(bos, PAD_ID)], dim=1)
        targets[torch.arange(b, device=tokens.device), lengths.to(tokens.device)] = EOS_ID
        embedded = self.embedding(inputs)
        condition = sentence[:, None, :].expand(b, t + 1, sentence.shape[-1])
        h0 = torch.tanh(self.init(sentence))[None]
        steps = (lengths + 1).to(tokens.device)
        mask = targets != PAD_ID
        nll = embedded.new_zeros(())
        # padded, in groups of similar lengths: a state at a real position never depends on the padding
        # after it, and only real positions reach the vocabulary projection
        for rows in length_groups(steps, t + 1):
            width = int(steps[rows].max())
            states = self.rnn(torch.cat([embedded[rows, :width], condition[rows, :width]], dim=-1), h0[:, rows])[0]
            keep = mask[rows, :width]
            valid = states[keep]
            logits = self.to_embed(valid) @ self.embedding.weight.t() if self.tie else self.out(valid)
            nll = nll + F.cross_entropy(logits, targets[rows, :width][keep], reduction="sum")
        return nll, mask.sum()


class SkipThought(SentenceEmbedder):
    """``forward(batch)`` takes (previous, current, next) triples; ``encode_tokens``: ``(B, encoder dim)``."""

    def __init__(self, config: SkipThoughtConfig):
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        hidden = config.decoder_hidden or config.hidden
        self.decode_prev = ConditionalDecoder(self.encoder.embedding, self.encoder.out_dim, hidden, config.tie_embeddings)
        self.decode_next = ConditionalDecoder(self.encoder.embedding, self.encoder.out_dim, hidden, config.tie_embeddings)
        self.embedding_dim = self.encoder.out_dim

    def encode_tokens(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder(tokens, lengths)

    def token_embeddings(self) -> torch.Tensor:
        return self.encoder.embedding.weight

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        sentence = self.encoder(batch["tokens"], batch["lengths"])
        nll_prev, n_prev = self.decode_prev(sentence, batch["prev_tokens"], batch["prev_lengths"])
        nll_next, n_next = self.decode_next(sentence, batch["next_tokens"], batch["next_lengths"])
        loss = distributed_mean(nll_prev + nll_next, n_prev + n_next)  # per token over the global batch
        return ModelOutput(loss, {"nll_prev": (nll_prev / n_prev).detach(), "nll_next": (nll_next / n_next).detach()})
