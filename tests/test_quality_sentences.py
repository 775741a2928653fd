"""End-to-end quality runs of the sentence encoders on the bundled Austen corpus (slow: about 40 CPU
minutes; ``python -m pytest -m slow -s tests/test_quality_sentences.py``).

The goal: every trained encoder beats its untrained self on every built-in task. Two comparisons do not
hold on this corpus (see the README's table) and are marked as expected failures, not strict: each is
within about one standard error of the evaluation, so either may flip with the hardware's arithmetic.
"""

import pytest

import seqae

from conftest import ROOT

pytestmark = pytest.mark.slow

UNMET = {
    ("quick_thought_austen", "book_accuracy"): "mean read-out: 0.827 vs 0.843 untrained (a random GRU, averaged, is a good bag of words)",
    ("skip_thought_austen", "next_recall_at_1"): "0.014 vs 0.022 untrained",
}


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


@pytest.mark.parametrize("recipe, task", [
    pytest.param(recipe, task, marks=[pytest.mark.xfail(reason=UNMET[(recipe, task)], strict=False)] if (recipe, task) in UNMET else [])
    for recipe in ("quick_thought_austen", "skip_thought_austen")
    for task in ("book_accuracy", "next_recall_at_1", "next_mrr")
])
def test_trained_encoder_beats_its_untrained_self(results, recipe, task):
    result = results(recipe)
    assert result[f"{task}_trained"] > result[f"{task}_untrained"], task


def test_quick_thought_mean_readout_has_the_best_figures_of_the_trained_encoders(results):
    qt, st = results("quick_thought_austen"), results("skip_thought_austen")
    for task in ("book_accuracy", "next_recall_at_1", "next_mrr"):
        assert qt[f"{task}_trained"] > st[f"{task}_trained"], task
    assert qt["book_accuracy_trained"] > 0.773 + 0.03  # well above the majority class
