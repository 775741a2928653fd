"""Evaluation figures beside their baselines: the rows of ``seqae eval``'s table and of ``seqae report``.

The families name a baseline's figure after the run's own with one more word: ``perplexity`` beside
``bigram_perplexity``, ``summary_rouge1_f`` beside ``lead8_rouge1_f``, ``test_mse`` beside ``pca_mse``.
:func:`figure_rows` groups them back: one row per figure of the run, one column per baseline, so each
number is read beside what it has to beat. Figures without a baseline get a row of their own.
"""

from __future__ import annotations

import math
from typing import Any

# the word that marks a baseline's figure, and the column heading it gets
BASELINES = {
    "untrained": "untrained network", "pca": "PCA", "pixels": "pixels", "bag": "bag of words", "bow": "bag of words",
    "lead": "Lead-N", "lead8": "Lead-8", "random": "Random-N", "random8": "Random-8", "bigram": "bigram LM",
    "unigram": "unigram LM", "shuffled": "shuffled words", "noisy": "noisy input", "readable": "real sentences",
    "chance": "chance", "majority": "majority class", "kmeans": "k-means",
}
# words that mark the run's own figure when a baseline's name drops them (summary_rouge1_f / lead8_rouge1_f)
OWN = ("summary", "test", "codes")
def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def stem_of(key: str) -> tuple[str, list[tuple[str, str]]]:
    """``(own stem, [])`` for the run's own figure, else ``("", [(stem, baseline), ...])``: the readings of a
    baseline's key, the first whose stem the run has wins. ``lead8_rouge1_f`` -> ``("rouge1_f", "lead8")``;
    ``lead_bigram_perplexity`` -> ``("bigram_perplexity", "lead")``, else ``("perplexity", "lead_bigram")``;
    ``book_accuracy_bow_untrained`` -> ``("book_accuracy", "bow_untrained")``; ``book_accuracy_trained`` is
    the run's own ``book_accuracy``."""
    words = key.split("_")
    if words[0] in OWN and len(words) > 1:  # summary_bigram_perplexity: the run's own, under the bigram LM
        return "_".join(words[1:]), []
    marks = [i for i, w in enumerate(words) if w in BASELINES]
    if not marks or "to" in words or "over" in words:  # mse_ratio_to_pca, *_gain_over_untrained: the run's own
        return "_".join(w for w in words if w != "trained") or key, []
    readings = []
    for dropped in (marks[:1], marks):
        stem = "_".join(w for i, w in enumerate(words) if i not in dropped and w != "trained")
        readings.append((stem, "_".join(words[i] for i in dropped)))
    return "", readings


def heading(baseline: str) -> str:
    """A baseline's column heading: ``bow_untrained`` -> "bag of words (untrained network)"."""
    first, *rest = baseline.split("_")
    return BASELINES[first] + (f" ({', '.join(BASELINES[w] for w in rest)})" if rest else "")


def figure_rows(result: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[Any]]]]:
    """``(headings, rows)``: headings ``["figure", "this run", baseline...]`` and one row ``(key, [value,
    baseline value or None...])`` per number in ``result`` that is the run's own (in the result's order), then
    the baselines' numbers that have no figure of the run to sit beside. Non-numbers (lists, text) are left out."""
    own: dict[str, str] = {}
    for key, value in result.items():
        stem, readings = stem_of(key)
        if is_number(value) and not readings:
            own.setdefault(stem, key)
    columns: list[str] = []
    placed: dict[str, dict[str, Any]] = {}
    alone = []
    for key, value in result.items():
        readings = stem_of(key)[1]
        if not is_number(value) or not readings:
            continue
        match = next(((stem, baseline) for stem, baseline in readings if stem in own), None)
        if match is None:
            alone.append(key)
            continue
        columns += [] if match[1] in columns else [match[1]]
        placed.setdefault(own[match[0]], {})[match[1]] = value
    rows = [(key, [result[key]] + [placed.get(key, {}).get(c) for c in columns])
            for key in result if is_number(result[key]) and not stem_of(key)[1]]
    rows += [(key, [result[key]] + [None] * len(columns)) for key in alone]
    return ["figure", "this run"] + [heading(c) for c in columns], rows


def shown(value: Any) -> str:
    """A number as a table shows it: 4 significant digits, integers whole, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def text_table(result: dict[str, Any]) -> str:
    """The figures of ``result`` as a plain-text table (``seqae eval``'s output), then the other entries
    (run, family, lists) one per line."""
    headings, rows = figure_rows(result)
    cells = [headings] + [[key] + [shown(v) for v in values] for key, values in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    others = {k: v for k, v in result.items() if not is_number(v)}
    if others:
        width = max(len(k) for k in others)
        lines += [""] + [f"{k:<{width}}  {brief(v)}" for k, v in others.items()]
    return "\n".join(lines)


def brief(value: Any, limit: int = 100) -> str:
    """A non-number entry on one line: lists by their length and first item."""
    if isinstance(value, list):
        first = f": {str(value[0])[:limit]}" if value else ""
        return f"{len(value)} items{first}{' ...' if len(value) > 1 else ''}"
    text = str(value)
    return text if len(text) <= limit else text[:limit] + " ..."
