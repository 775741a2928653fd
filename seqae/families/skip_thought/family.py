"""The skip_thought family's registry entry."""

from __future__ import annotations

from seqae.config import Recipe
from seqae.datasets.text import TextDataConfig
from seqae.evaluation.sentences import SentenceEvalConfig
from seqae.families.base import Family
from seqae.families.skip_thought.model import SkipThought, SkipThoughtConfig
from seqae.families.text import attach_tokenizer, evaluate_text, prepare_text, text_embed, text_figures, text_items


def batches(corpus, indices, name: str, recipe: Recipe):
    from seqae.datasets.text import SentenceTriples

    return SentenceTriples(corpus, indices, name)


FAMILY = Family(
    "skip_thought", SkipThoughtConfig, TextDataConfig, SentenceEvalConfig,
    lambda r: prepare_text(r, lambda corpus, indices, name: batches(corpus, indices, name, r)), lambda r: SkipThought(r.model),
    evaluate_text, text_figures, text_embed, on_load=attach_tokenizer, eval_options=("tasks", "senteval", "senteval_tasks"),
    embeds=True, search_items=text_items,
)
