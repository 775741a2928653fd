"""What the sentence-encoder families share: the encoder settings and ``embed(list_of_str)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, choice
from seqae.nn.encoders import READOUTS, BagOfNgramsEncoder, RecurrentEncoder, TransformerSentenceEncoder
from seqae.runtime import model_device

ENCODERS = ("recurrent", "transformer", "bag")


@dataclass
class SentenceEncoderConfig:
    """Encoder fields shared by ``[model]`` of skip_thought and quick_thought."""

    vocab_size: int = 0  # 0: the tokenizer's
    encoder: str = choice("recurrent", *ENCODERS)  # a GRU/LSTM (cell), a Transformer, or a bag of n-grams
    embed_dim: int = 256
    hidden: int = 512  # recurrent: the state size; transformer: the feed-forward width; bag: unused
    bidirectional: bool = False
    readout: str = choice("last", *READOUTS, "cls")  # recurrent: last (the papers), mean, max; transformer: mean, max, cls
    cell: str = choice("gru", "gru", "lstm")
    dropout: float = 0.0  # share of the encoder's word-embedding units zeroed in training
    embed_init: float = 1.0  # standard deviation of the initial word embeddings (torch's default: 1.0)
    layers: int = 2  # transformer layers
    heads: int = 4  # transformer attention heads (embed_dim must be a multiple)
    ngrams: int = 2  # bag: tokens and their n-grams up to this n
    ngram_buckets: int = 50_000  # bag: rows of the hashed n-gram table

    def validate(self, where: str) -> None:
        if self.embed_dim <= 0 or self.hidden <= 0 or self.vocab_size < 0:
            raise ConfigError(f"{where}: model.embed_dim and model.hidden must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}: model.dropout must be in [0, 1), got {self.dropout}")
        if not self.embed_init > 0.0:
            raise ConfigError(f"{where}: model.embed_init must be positive, got {self.embed_init}")
        if self.encoder == "recurrent" and self.readout == "cls":
            raise ConfigError(f"{where}: model.readout = \"cls\" needs model.encoder = \"transformer\"; a recurrent "
                              "encoder reads out last, mean or max")
        if self.encoder == "transformer":
            if self.readout == "last":
                raise ConfigError(f"{where}: a Transformer encoder reads out mean, max or cls (model.readout), not last")
            if self.layers < 1 or self.heads < 1 or self.embed_dim % self.heads:
                raise ConfigError(f"{where}: model.layers and model.heads must be positive and model.embed_dim "
                                  f"({self.embed_dim}) a multiple of model.heads ({self.heads})")
        if self.encoder == "bag" and (self.ngrams < 1 or self.ngram_buckets < 1):
            raise ConfigError(f"{where}: model.ngrams and model.ngram_buckets must be positive")


def build_encoder(config: SentenceEncoderConfig, max_tokens: int = 512) -> nn.Module:
    """The sentence encoder the config names: token ids ``(batch, time)`` and ``lengths`` ``(batch,)`` ->
    ``(batch, out_dim)``, with its word embeddings at ``.embedding`` drawn from N(0, ``embed_init``²)
    (the padding row stays zero)."""
    if config.vocab_size <= 0:
        raise ValueError("vocab_size must be set (from the tokenizer)")
    if config.encoder == "transformer":
        encoder = TransformerSentenceEncoder(config.vocab_size, config.embed_dim, config.hidden, config.layers, config.heads,
                                             config.readout, max_len=max_tokens, dropout=config.dropout)
    elif config.encoder == "bag":
        encoder = BagOfNgramsEncoder(config.vocab_size, config.embed_dim, config.ngrams, config.ngram_buckets)
    else:
        encoder = RecurrentEncoder(config.vocab_size, config.embed_dim, config.hidden, config.bidirectional, config.readout,
                                   config.cell, dropout=config.dropout)
    if config.embed_init != 1.0:  # torch's own draw is N(0, 1): the same numbers as before when unchanged
        with torch.no_grad():
            encoder.embedding.weight.mul_(config.embed_init)
            if getattr(encoder, "ngram_embedding", None) is not None:
                encoder.ngram_embedding.weight.mul_(config.embed_init)
    return encoder


class SentenceEmbedder(nn.Module):
    """Mixin: ``encode(sentences)`` (sentence-transformers' API) and ``embed(sentences)`` for a model with
    ``encode_tokens(tokens, lengths)`` and a tokenizer attached by :func:`seqae.load` (or
    :meth:`attach_tokenizer`)."""

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
        """Sentence embeddings ``(len(sentences), dim)`` as float32, in the input order: the short form of
        :meth:`encode`.

        Sentences are tokenised with the run's ``tokenizer.json`` (truncated to ``max_tokens``) and
        encoded in batches of similar length.
        """
        if isinstance(sentences, str):
            raise TypeError("embed takes a list of sentences, not one string")
        return self.encode_sentences(list(sentences), batch_size, show_progress_bar=False)

    def encode(self, sentences, batch_size: int = 32, normalize_embeddings: bool = False,
               show_progress_bar: bool | None = None, convert_to_tensor: bool = False, device=None,
               convert_to_numpy: bool = True, **kwargs):
        """Sentence embeddings, with sentence-transformers' ``SentenceTransformer.encode`` meaning for each
        argument (and MTEB's encoder protocol: ``task_name``, ``prompt_type``, ``prompt_name`` and
        ``prompt`` are accepted and have no effect, since the model takes no prompts).

        - ``sentences``: a list of strings -> ``(n, dim)``; one string -> ``(dim,)``. An empty list gives
          an array of shape ``(0, dim)``.
        - ``batch_size``: sentences per forward pass (sorted by length first; the output keeps the input
          order).
        - ``normalize_embeddings``: scale each row to unit L2 norm (a zero row stays zero).
        - ``show_progress_bar``: None shows a bar when stderr is a terminal and there is more than one batch.
        - ``convert_to_tensor``: a ``torch.Tensor`` on the model's device instead of a numpy array.
        - ``device``: move the model there first (it stays there, as in sentence-transformers).

        Token ids go through :meth:`encode_tokens` (``tokens`` ``(batch, time)``, ``lengths`` ``(batch,)``
        -> ``(batch, dim)``).
        """
        if isinstance(sentences, torch.Tensor):
            raise TypeError("encode takes sentences (strings); for token ids call encode_tokens(tokens, lengths)")
        unknown = set(kwargs) - {"task_name", "prompt_type", "prompt_name", "prompt"}
        if unknown:
            raise TypeError(f"encode() got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
        single = isinstance(sentences, str)
        if device is not None:
            self.to(device)
        rows = self.encode_sentences([sentences] if single else list(sentences), batch_size, show_progress_bar)
        if normalize_embeddings:
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            rows = rows / np.maximum(norms, 1e-12)
        out = rows[0] if single else rows
        if convert_to_tensor or not convert_to_numpy:
            return torch.from_numpy(np.ascontiguousarray(out)).to(model_device(self))
        return out

    def encode_sentences(self, sentences: list[str], batch_size: int, show_progress_bar: bool | None) -> np.ndarray:
        """``(len(sentences), dim)`` float32 embeddings in the input order."""
        import sys

        from tqdm import tqdm

        from seqae.datasets.text import encode_batch, pad_batch

        if self.tokenizer is None:
            raise ValueError("no tokenizer attached; load the model with seqae.load(run_dir)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        bad = next((i for i, s in enumerate(sentences) if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"sentence {bad} is a {type(sentences[bad]).__name__}, not a string")
        was_training = self.training
        self.eval()
        device = model_device(self)
        ids = encode_batch(self.tokenizer, sentences, self.max_tokens)
        order = np.argsort([len(s) for s in ids], kind="stable")
        out = np.zeros((len(ids), self.embedding_dim), dtype=np.float32)
        starts = range(0, len(ids), batch_size)
        show = sys.stderr.isatty() and len(starts) > 1 if show_progress_bar is None else show_progress_bar
        with torch.inference_mode():  # no autograd graph: faster, and nothing kept for a backward pass
            for start in tqdm(starts, desc="encoding", unit=" batches", disable=not show):
                rows = order[start : start + batch_size]
                tokens, lengths = pad_batch([np.asarray(ids[i]) for i in rows])
                out[rows] = self.encode_tokens(tokens.to(device), lengths).float().cpu().numpy()
        self.train(was_training)
        return out
