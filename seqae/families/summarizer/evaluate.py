"""The summariser's evaluation: what the summaries carry (the text rebuilt from them, beside the twin
reconstructor's rebuild from the text's first words), how they read (perplexity under a bigram language
model of the readable sentences, beside Lead-N and Random-N of the same length and real sentences), how
much they compress and copy; ROUGE against the user's references when given."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seqae.config import ConfigError, path_field
from seqae.evaluation.ngram import BigramLM

SPECIAL = 4  # ids below this are the pipeline's special tokens


@dataclass
class SummaryEvalConfig:
    """``[eval]`` for the summariser."""

    max_texts: int = 1000  # held-out texts evaluated (the first ones)
    seed: int = 0  # Random-N's draws
    lead_words: int = 8  # ROUGE's Lead-N and Random-N baselines, in words (Lead-8 in the papers' tables)
    examples: int = 8  # example summaries in the result and the figure
    inputs: str = ""  # texts to summarise for ROUGE (one per line; seqae eval --inputs)
    references: str = ""  # their reference summaries (one per line; seqae eval --references)
    rouge_length: int = 0  # tokens per summary of --inputs for ROUGE (0: the run's summary_ratio of each text)
    lm: str = path_field("", doc="a language_model run to judge how the summaries read ('': the run's own prior, if any)")

    def validate(self, where: str) -> None:
        if self.max_texts < 1 or self.lead_words < 1 or self.examples < 0 or self.rouge_length < 0:
            raise ConfigError(f"{where}: eval.max_texts and eval.lead_words must be >= 1, eval.examples and eval.rouge_length >= 0")


def strip(ids: torch.Tensor | np.ndarray, length: int) -> np.ndarray:
    return np.asarray(ids[:length].tolist() if torch.is_tensor(ids) else ids[:length], dtype=np.int64)


def random_words(tokens: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of the text's tokens drawn without replacement, kept in their order (Random-N)."""
    return tokens[np.sort(rng.choice(len(tokens), size=min(n, len(tokens)), replace=False))]


def copy_share(summary: np.ndarray, text: np.ndarray) -> float:
    return float(np.isin(summary, text).mean()) if len(summary) else 0.0


def sequence_figures(name: str, summaries: list[np.ndarray], texts: list[np.ndarray], lm: BigramLM, judge=None) -> dict[str, float]:
    result = {f"{name}_bigram_perplexity": lm.perplexity(summaries),
              f"{name}_copy_share": float(np.mean([copy_share(s, t) for s, t in zip(summaries, texts)])),
              f"{name}_compression": float(np.sum([len(s) for s in summaries]) / np.sum([len(t) for t in texts]))}
    if judge is not None:
        result[f"{name}_lm_perplexity"] = judge.perplexity(summaries)
    return result


def rouge_pairs(predictions: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L F1 and recall of each pair (the ``rouge-score`` package, Porter stemming): ``(pairs,)`` each."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
    keys = ("rouge1", "rouge2", "rougeL")
    return {**{f"{k}_f": np.array([s[k].fmeasure for s in scores]) for k in keys},
            **{f"{k}_recall": np.array([s[k].recall for s in scores]) for k in keys}}


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """ROUGE-1/2/L F1 and recall, averaged over the pairs."""
    return {k: float(v.mean()) if len(v) else 0.0 for k, v in rouge_pairs(predictions, references).items()}


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int, draws: int = 2000) -> tuple[float, float]:
    """The 95 % paired-bootstrap interval of ``mean(a - b)`` (the same pairs resampled for both)."""
    difference = a - b
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), size=(draws, len(difference)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def rouge_table(summaries: list[str], inputs: list[str], references: list[str], lead_words: int, seed: int,
                baselines: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """ROUGE of the summaries, of Lead-N / Random-N (``lead_words`` words of each input) and of any other
    ``baselines`` (name: one prediction per input)."""
    rng = np.random.default_rng(seed)
    lead = [" ".join(text.split()[:lead_words]) for text in inputs]
    randoms = []
    for text in inputs:
        words = text.split()
        picks = np.sort(rng.choice(len(words), size=min(lead_words, len(words)), replace=False))
        randoms.append(" ".join(words[i] for i in picks))
    result: dict[str, Any] = {"rouge_pairs": len(references)}
    rows = {"summary": summaries, f"lead{lead_words}": lead, f"random{lead_words}": randoms, **(baselines or {})}
    per_pair = {}
    for name, predictions in rows.items():
        per_pair[name] = rouge_pairs(predictions, references)
        for key, values in per_pair[name].items():
            result[f"{name}_{key}"] = float(values.mean())
        result[f"{name}_words"] = float(np.mean([len(p.split()) for p in predictions]))
    # the summary against Lead-N, pair by pair: the difference of ROUGE-1 F1 and its 95 % paired-bootstrap interval
    ours, lead_f = per_pair["summary"]["rouge1_f"], per_pair[f"lead{lead_words}"]["rouge1_f"]
    name = f"summary_minus_lead{lead_words}_rouge1_f"
    result[name] = float((ours - lead_f).mean())
    result[f"{name}_low"], result[f"{name}_high"] = paired_interval(ours, lead_f, seed)
    return result


def perplexity(nll_sum: float, tokens: int) -> float:
    return math.exp(nll_sum / max(tokens, 1))
