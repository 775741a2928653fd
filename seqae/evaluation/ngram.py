"""An n-gram reference for language-model perplexities: a smoothed bigram model of token ids."""

from __future__ import annotations

import math

import numpy as np


class BigramLM:
    """A bigram language model of token ids with Witten-Bell interpolation to an add-one unigram model,
    fitted on the readable sentences (BOS and EOS around each): ``perplexity(sequences)`` per token."""

    def __init__(self, sequences: list[np.ndarray], vocab: int, bos: int = 2, eos: int = 3):
        self.vocab, self.bos, self.eos = vocab, bos, eos
        pairs = np.concatenate([self.pairs(s) for s in sequences]) if sequences else np.zeros(0, np.int64)
        self.unigram = (np.bincount(pairs % vocab, minlength=vocab) + 1.0) / (len(pairs) + vocab)
        keys, counts = np.unique(pairs, return_counts=True)
        self.pair_counts = dict(zip(keys.tolist(), counts.tolist()))
        history = keys // vocab
        self.history_counts = np.bincount(history, weights=counts, minlength=vocab)
        self.followers = np.bincount(history, minlength=vocab).astype(np.float64)

    def pairs(self, ids: np.ndarray) -> np.ndarray:
        seq = np.concatenate([[self.bos], np.asarray(ids, np.int64), [self.eos]])
        return seq[:-1] * self.vocab + seq[1:]

    def log_prob(self, pair: int) -> float:
        v, w = divmod(pair, self.vocab)
        seen, kinds = self.history_counts[v], self.followers[v]
        if seen == 0:
            return math.log(self.unigram[w])
        return math.log((self.pair_counts.get(pair, 0) + kinds * self.unigram[w]) / (seen + kinds))

    def perplexity(self, sequences: list[np.ndarray]) -> float:
        pairs = [p for s in sequences for p in self.pairs(s).tolist()]
        return math.exp(-sum(self.log_prob(p) for p in pairs) / max(len(pairs), 1))
