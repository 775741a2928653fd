"""End-to-end quality runs of the sentence encoders on the bundled Austen corpus (slow: about 40 CPU
minutes; ``python -m pytest -m slow -s tests/test_quality_sentences.py``).

The goal: every trained encoder beats its untrained self on every built-in task (held-out chapters;
the retrieval figures are exact expectations over the distractor draw, over all 917 held-out pairs).
"""

import pytest

import seqae

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache = {}

    def get(recipe):
        if recipe not in cache:
            run = seqae.train(ROOT / "recipes" / f"{recipe}.toml", out=tmp_path_factory.mktemp(recipe) / "run")
            cache[recipe] = seqae.evaluate(run)
            print(f"\n{recipe}: " + ", ".join(f"{k}={v:.4g}" for k, v in cache[recipe].items() if isinstance(v, float)))
        return cache[recipe]

    return get


@pytest.mark.parametrize("recipe", ["quick_thought_austen", "skip_thought_austen"])
@pytest.mark.parametrize("task", ["book_accuracy", "next_recall_at_1", "next_mrr"])
def test_trained_encoder_beats_its_untrained_self(results, recipe, task):
    result = results(recipe)
    assert result[f"{task}_trained"] > result[f"{task}_untrained"], task


def test_quick_thought_mean_readout_has_the_best_figures_of_the_trained_encoders(results):
    qt, st = results("quick_thought_austen"), results("skip_thought_austen")
    for task in ("book_accuracy", "next_recall_at_1", "next_mrr"):
        assert qt[f"{task}_trained"] > st[f"{task}_trained"], task
    assert qt["book_accuracy_trained"] > 0.773 + 0.03  # well above the majority class


def test_quick_thought_ranks_next_sentences_better_than_the_bag_of_words(results):
    qt = results("quick_thought_austen")
    assert qt["next_mrr_trained"] > qt["next_mrr_bow_trained"] + 0.005  # 0.111 vs 0.100 (README)
