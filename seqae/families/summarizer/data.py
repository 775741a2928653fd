"""The summariser's data: the texts to summarise (long sentences of a book corpus, or one text per line)
and the readable side (short real sentences of the same corpus, or a file of them), tokenised once by
the sentence pipeline's memory-mapped cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqae.config import ConfigError, choice, path_field
from seqae.datasets.base import BatchSource, DataError, read_text_lines
from seqae.datasets.text import TextDataConfig, encode_batch, pad_batch, word_counts

MAX_READABLE = 200_000  # sentences of a separate readable file held in memory


@dataclass
class SummaryDataConfig(TextDataConfig):
    """``[data]`` for ``family = "summarizer"``: the sentence pipeline's settings, and what the texts and
    the readable sentences are."""

    tokenizer: str = choice("wordpiece", "bpe", "wordpiece")  # WordPiece keeps word boundaries, so summaries decode to words
    unit: str = choice("sentence", "sentence", "line", doc="sentence: the corpus's sentences; line: one text per line")
    min_words: int = 20  # texts to summarise: items of at least this many words
    readable: str = path_field("", doc="real sentences, one per line ('': short sentences of the corpus)")
    readable_min_words: int = 4  # readable sentences of the corpus: between these word counts
    readable_max_words: int = 12
    max_tokens: int = 64

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.min_words < 1 or not 1 <= self.readable_min_words <= self.readable_max_words:
            raise ConfigError(f"{where}: data.min_words must be >= 1 and 1 <= data.readable_min_words <= data.readable_max_words")


def readable_from_file(path: str, tokenizer, max_tokens: int) -> list[np.ndarray]:
    lines = read_text_lines(path, "readable sentences (one per line)")
    lines = [line.strip() for line in lines if line.strip()][:MAX_READABLE]
    if not lines:
        raise DataError(f"{path}: no sentences; give real sentences, one per line (data.readable)")
    return [np.asarray(ids, dtype=np.int32) for ids in encode_batch(tokenizer, lines, max_tokens)]


class SummaryBatches(BatchSource):
    """Batches of texts ``{"tokens": (B, T), "lengths": (B,)}`` with as many readable sentences
    ``{"readable": (B, T'), "readable_lengths": (B,)}``, those picked by a fixed function of the texts'
    positions (so a resumed run sees the same pairs)."""

    def __init__(self, corpus, indices: np.ndarray, readable, name: str):
        self.corpus = corpus
        self.indices = np.asarray(indices)
        self.readable = readable  # a list of id arrays, or indices into the corpus
        self.name = name

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        return self.name

    def readable_ids(self, i: int) -> np.ndarray:
        item = self.readable[i]
        return self.corpus.ids(int(item)) if np.isscalar(item) or np.ndim(item) == 0 else item

    def collate(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        tokens, lengths = pad_batch([self.corpus.ids(int(i)) for i in self.indices[positions]])
        picks = (np.asarray(positions, dtype=np.int64) * 7919 + 13) % len(self.readable)
        readable, readable_lengths = pad_batch([self.readable_ids(int(i)) for i in picks])
        return {"tokens": tokens, "lengths": lengths, "readable": readable, "readable_lengths": readable_lengths}

    def texts(self, positions: np.ndarray) -> list[str]:
        return self.corpus.texts(self.indices[np.asarray(positions)])


def split_items(corpus, config: SummaryDataConfig, source: str):
    """``(train texts, test texts, readable)``: texts of at least ``min_words`` words split by the held-out
    chapters (or blocks of lines); readable sentences from the training part of the corpus."""
    from seqae.datasets.text import held_out

    words = word_counts(corpus.folder)
    mask = held_out(corpus, config.test_every)
    texts = words >= config.min_words
    train, test = np.flatnonzero(texts & ~mask), np.flatnonzero(texts & mask)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{config.corpus}: {int(texts.sum())} texts of {config.min_words} words or more, {len(test)} of them "
                        f"held out; lower data.min_words or data.test_every, or bring a larger corpus")
    readable = np.flatnonzero((words >= config.readable_min_words) & (words <= config.readable_max_words) & ~mask)
    if not config.readable and len(readable) == 0:
        raise DataError(f"{config.corpus}: no sentences of {config.readable_min_words} to {config.readable_max_words} words "
                        f"for the readable side; set data.readable to a file of real sentences ({source})")
    return train, test, readable


def inverse_document_frequency(corpus, indices: np.ndarray, vocab: int, limit: int = 100_000) -> np.ndarray:
    """Smoothed IDF ``log((1 + N) / (1 + df))`` of every token id over the texts at ``indices`` (the first
    ``limit`` of them) ``(vocab,)``: SEQ^3's topic-loss weights."""
    df = np.zeros(vocab, dtype=np.float64)
    chosen = np.asarray(indices)[:limit]
    for i in chosen:
        df[np.unique(corpus.ids(int(i)))] += 1
    return np.log((1.0 + len(chosen)) / (1.0 + df)).astype(np.float32)


def continuation_mask(tokenizer, vocab: int) -> np.ndarray:
    """``(vocab,)`` bool: the WordPiece tokens that continue a word (``##...``), for whole-word picks."""
    return np.array([(tokenizer.id_to_token(i) or "").startswith("##") for i in range(vocab)], dtype=bool)


def salient_positions(idf: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, summary_lengths: torch.Tensor,
                      position_weight: float, continues: torch.Tensor | None = None) -> torch.Tensor:
    """The ``L_b`` positions of each text ``(B, L)`` (``L = max L_b``; increasing, within the text) with the highest
    ``idf(x_i) - position_weight * i / |x|``: the text's rarest words, early ones first (ties: the earlier). With
    ``continues`` (:func:`continuation_mask`) every piece of a word takes its word's best score, so whole words
    are picked (the last one cut when ``L_b`` ends inside it)."""
    positions = torch.arange(tokens.shape[1], device=tokens.device)[None]
    score = idf[tokens] - position_weight * positions / lengths[:, None].float()
    if continues is not None:
        word = ((~continues[tokens]).long().cumsum(1) - 1).clamp_min(0)  # (B, T): each token's word
        best = torch.full_like(score, float("-inf")).scatter_reduce(1, word, score, "amax")
        score = best.gather(1, word)
    rank = score.masked_fill(positions >= lengths[:, None], float("-inf")).argsort(dim=1, descending=True, stable=True)
    chosen = torch.zeros_like(tokens, dtype=torch.bool).scatter_(1, rank, positions < summary_lengths[:, None])
    picked = torch.where(chosen, positions, tokens.shape[1]).sort(1).values[:, : int(summary_lengths.max())]
    return torch.minimum(picked, (lengths - 1)[:, None])
