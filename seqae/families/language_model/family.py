"""The ``language_model`` family's registry entry: sentences of a corpus (or one per line) between word
counts, held-out perplexity beside n-gram references, sampled sentences, and per-line scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe, choice, path_field
from seqae.datasets.base import BatchSource, DataError, read_text_lines
from seqae.datasets.base import fingerprint as data_fingerprint
from seqae.datasets.text import TextDataConfig
from seqae.families.base import Family, Inferred, Prepared
from seqae.families.language_model.model import LanguageModel, LanguageModelConfig
from seqae.families.text import attach_run_tokenizer, decode_ids, encode_lines, tokenised


@dataclass
class LanguageModelDataConfig(TextDataConfig):
    """``[data]`` for ``family = "language_model"``: the sentence pipeline's settings (WordPiece and 64
    tokens by default, as the summariser's, so one tokenised cache serves both) and which sentences."""

    tokenizer: str = choice("wordpiece", "bpe", "wordpiece")
    unit: str = choice("sentence", "sentence", "line", doc="sentence: the corpus's sentences; line: one sentence per line")
    # the sentences to model, one per line, tokenised with data.corpus's tokenizer (so a prior shares a
    # summariser's tokenizer when the summariser's texts and its readable sentences are separate files)
    sentences: str = path_field("", doc="sentences to model, one per line ('': data.corpus's own)")
    min_words: int = 1  # sentences of at least this many words ...
    max_words: int = 0  # ... and at most this many (0: no limit)
    max_tokens: int = 64

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.min_words < 1 or self.max_words < 0 or (self.max_words and self.max_words < self.min_words):
            raise ConfigError(f"{where}: data.min_words must be >= 1 and data.max_words 0 (no limit) or >= data.min_words")


@dataclass
class LanguageModelEvalConfig:
    """``[eval]`` for the language model."""

    max_sentences: int = 5000  # held-out sentences evaluated (the first ones)
    samples: int = 8  # sentences drawn from the model for the result and the figure
    seed: int = 0

    def validate(self, where: str) -> None:
        if self.max_sentences < 1 or self.samples < 0:
            raise ConfigError(f"{where}: eval.max_sentences must be >= 1 and eval.samples >= 0")


class Sentences(BatchSource):
    """Sentences as ``{"tokens": (B, T), "lengths": (B,)}``: ``source`` is a tokenised corpus (items at
    ``indices``) or a list of id arrays."""

    def __init__(self, source, indices: np.ndarray, name: str):
        self.source, self.indices, self.name = source, np.asarray(indices), name

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        return self.name

    def item(self, i: int) -> np.ndarray:
        return self.source[i] if isinstance(self.source, list) else self.source.ids(i)

    def collate(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        from seqae.datasets.text import pad_batch

        tokens, lengths = pad_batch([self.item(int(i)) for i in self.indices[positions]])
        return {"tokens": tokens, "lengths": lengths}

    def ids(self, count: int) -> list[np.ndarray]:
        return [self.item(int(i)) for i in self.indices[:count]]


def sentence_file(path: str, tokenizer, config: LanguageModelDataConfig):
    """``data.sentences``: the lines' ids (empty lines dropped), their word counts, which are held out
    (every ``test_every``-th line), and the lines."""
    from seqae.datasets.text import encode_batch

    lines = [line.strip() for line in read_text_lines(path, "sentences to model (one per line)") if line.strip()]
    if not lines:
        raise DataError(f"{path}: no sentences; give one sentence per line (data.sentences)")
    ids = [np.asarray(row, dtype=np.int32) for row in encode_batch(tokenizer, lines, config.max_tokens)]
    words = np.asarray([len(line.split()) for line in lines])
    return ids, words, np.arange(len(lines)) % config.test_every == config.test_every - 1, lines


def prepare(recipe: Recipe) -> Prepared:
    from seqae.datasets.text import held_out, word_counts

    data = recipe.data
    corpus, tokenizer, vocab = tokenised(recipe)
    if data.sentences:
        source, words, mask, lines = sentence_file(data.sentences, tokenizer, data)
        fingerprint = data_fingerprint(corpus.content_fingerprint, lines)  # the lines modelled, read once
    else:
        source, words, mask = corpus, word_counts(corpus.folder), held_out(corpus, data.test_every)
        fingerprint = corpus.content_fingerprint
    chosen = (words >= data.min_words) & ((words <= data.max_words) if data.max_words else True)
    train, test = np.flatnonzero(chosen & ~mask), np.flatnonzero(chosen & mask)
    where = data.sentences or data.corpus
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{where}: {int(chosen.sum())} sentences of {data.min_words} to {data.max_words or 'any'} words, "
                        f"{len(test)} of them held out; widen data.min_words / data.max_words, lower data.test_every, or bring more text")
    name = Path(where).name
    return Prepared(Sentences(source, train, f"{name} (training sentences)"), Sentences(source, test, f"{name} (held-out sentences)"),
                    corpus, Inferred(vocab_size=vocab), run_files={"tokenizer.json": corpus.folder / "tokenizer.json"},
                    fingerprint=fingerprint, data_name=str(where))


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    """Held-out perplexity beside a smoothed bigram and an add-one unigram model of the training sentences,
    and the model's perplexity of the same sentences with their words shuffled (word order's share)."""
    from seqae.evaluation.ngram import BigramLM

    model.eval()
    config = recipe.eval
    test = prepared.test.ids(config.max_sentences)
    train = prepared.train.ids(200_000)
    rng = np.random.default_rng(config.seed)
    bigram = BigramLM(train, model.config.vocab_size)
    result: dict[str, Any] = {
        "test_sentences": len(test), "test_tokens": int(sum(len(s) for s in test)),
        "perplexity": model.lm.perplexity(test),
        "shuffled_perplexity": model.lm.perplexity([rng.permutation(s) for s in test]),
        "bigram_perplexity": bigram.perplexity(test),
        "unigram_perplexity": unigram_perplexity(train, test, model.config.vocab_size),
    }
    generator = torch.Generator().manual_seed(config.seed)
    result["samples"] = [decode_ids(model.tokenizer, s) for s in model.lm.sample(config.samples, recipe.data.max_tokens, generator)]
    return result


def unigram_perplexity(train: list[np.ndarray], test: list[np.ndarray], vocab: int) -> float:
    """An add-one unigram model of the training tokens and EOS, on the test tokens and EOS."""
    eos = 3
    counts = np.bincount(np.concatenate([*train, np.full(len(train), eos)]), minlength=vocab) + 1.0
    logp = np.log(counts / counts.sum())
    tokens = np.concatenate([*test, np.full(len(test), eos)])
    return float(np.exp(-logp[tokens].mean()))


def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """Sentences drawn from the model beside held-out real ones."""
    from seqae import plots

    model.eval()
    n = max(recipe.eval.samples, 1)
    drawn = model.lm.sample(n, recipe.data.max_tokens, torch.Generator().manual_seed(recipe.eval.seed))
    real = prepared.test.ids(n)
    rows = [[decode_ids(model.tokenizer, d), decode_ids(model.tokenizer, r)] for d, r in zip(drawn, real)]
    return [plots.text_table(rows, ["drawn from the model", "held-out sentence"], out_dir / "samples.png",
                             title="sentences drawn from the language model")]


def encode_file(model: nn.Module, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    lines = read_text_lines(path, "sentences (one per line)")
    if not lines:
        raise DataError(f"{path}: empty file; give one sentence per line")
    return encode_lines(model.tokenizer, lines, model.max_tokens, str(path), "no tokens in this line; remove empty lines")


@torch.no_grad()
def codes(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """The top layer's state after each line's last token ``(lines, hidden)``."""
    model.eval()
    tokens, lengths = encode_file(model, path)
    return model.lm.final_states(tokens, lengths).cpu().numpy()


@torch.no_grad()
def scores(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Each line's perplexity per token (its tokens and EOS) ``(lines,)``: higher reads less like the corpus."""
    model.eval()
    tokens, lengths = encode_file(model, path)
    nll, _ = model.lm.sequence_nll(tokens, lengths)
    return np.exp((nll / (lengths + 1)).cpu().numpy())


FAMILY = Family(
    "language_model", LanguageModelConfig, LanguageModelDataConfig, LanguageModelEvalConfig,
    prepare, lambda r: LanguageModel(r.model), evaluate, figures, codes, scores=scores, on_load=attach_run_tokenizer,
)
