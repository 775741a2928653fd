"""What the sentence-encoder families share: the encoder settings and ``embed(list_of_str)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, choice
from seqae.nn.encoders import READOUTS, RecurrentEncoder


@dataclass
class SentenceEncoderConfig:
    """Encoder fields shared by ``[model]`` of skip_thought and quick_thought."""

    vocab_size: int = 0  # 0: the tokenizer's
    embed_dim: int = 256
    hidden: int = 512
    bidirectional: bool = False
    readout: str = choice("last", *READOUTS)  # last hidden state (the papers), or mean/max over states
    cell: str = choice("gru", "gru", "lstm")
    dropout: float = 0.0  # share of the encoder's word-embedding units zeroed in training

    def validate(self, where: str) -> None:
        if self.embed_dim <= 0 or self.hidden <= 0 or self.vocab_size < 0:
            raise ConfigError(f"{where}: model.embed_dim and model.hidden must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}: model.dropout must be in [0, 1), got {self.dropout}")


def build_encoder(config: SentenceEncoderConfig) -> RecurrentEncoder:
    if config.vocab_size <= 0:
        raise ValueError("vocab_size must be set (from the tokenizer)")
    return RecurrentEncoder(config.vocab_size, config.embed_dim, config.hidden, config.bidirectional, config.readout, config.cell,
                            dropout=config.dropout)


class SentenceEmbedder(nn.Module):
    """Mixin: ``embed(sentences)`` for a model with ``encode(tokens, lengths)`` and a tokenizer attached
    by :func:`seqae.load` (or :meth:`attach_tokenizer`)."""

    tokenizer = None
    max_tokens = 48

    def attach_tokenizer(self, tokenizer, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def token_embeddings(self) -> torch.Tensor:
        """The input word embeddings ``(vocab, embed_dim)`` (for the bag-of-words baseline)."""
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, sentences: list[str], batch_size: int = 256) -> np.ndarray:
        """Sentence embeddings ``(len(sentences), dim)`` as float32, in the input order.

        Sentences are tokenised with the run's ``tokenizer.json`` (truncated to ``max_tokens``) and
        encoded in batches of similar length.
        """
        from seqae.datasets.text import encode_batch, pad_batch

        if self.tokenizer is None:
            raise ValueError("no tokenizer attached; load the model with seqae.load(run_dir)")
        if isinstance(sentences, str):
            raise TypeError("embed takes a list of sentences, not one string")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        ids = encode_batch(self.tokenizer, list(sentences), self.max_tokens)
        order = np.argsort([len(s) for s in ids], kind="stable")
        out = np.zeros((len(ids), self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():  # no autograd graph: faster, and nothing kept for a backward pass
            for start in range(0, len(ids), batch_size):
                rows = order[start : start + batch_size]
                tokens, lengths = pad_batch([np.asarray(ids[i]) for i in rows])
                out[rows] = self.encode(tokens.to(device), lengths).float().cpu().numpy()
        self.train(was_training)
        return out
