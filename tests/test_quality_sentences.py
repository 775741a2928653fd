"""End-to-end quality runs of the sentence encoders (slow; ``python -m pytest -m slow -s
tests/test_quality_sentences.py``).

The goal for the default recipe (``quick_thought_books``, the seven bundled novels): on every built-in
task the trained encoder is above the same encoder untrained and above the bag of its own trained token
embeddings by at least two standard errors of the difference. The errors are paired (the same held-out
sentences, pairs and queries for both encoders) and computed by ``seqae.evaluate`` in this run. The
sentence-order task is the exception, measured and reported but not claimed: quick-thought's objective
is symmetric in time and its encoders do not learn which of two sentences comes first (docs/RESULTS.md).
"""

import pytest

import seqae

from conftest import ROOT

pytestmark = pytest.mark.slow

CLAIMED = ["book_accuracy", "author_accuracy", "next_recall_at_1", "next_mrr"]


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


@pytest.mark.parametrize("other", ["untrained", "bow_trained"])
@pytest.mark.parametrize("task", CLAIMED)
def test_default_recipe_beats_its_untrained_self_and_its_bag_of_words_by_two_standard_errors(results, task, other):
    result = results("quick_thought_books")
    gain, se = result[f"{task}_gain_over_{other}"], result[f"{task}_gain_over_{other}_se"]
    assert gain == pytest.approx(result[f"{task}_trained"] - result[f"{task}_{other}"], abs=1e-9)
    assert 0 < se < 0.05
    assert gain > 2 * se, f"{task}: trained - {other} = {gain:.4f}, two standard errors = {2 * se:.4f}"


# skip-thought's recall@1 gain is not claimed: +0.0023 with a paired standard error of 0.0017 in the run
# of 2026-12-03 (docs/RESULTS.md); its book and MRR gains were 2.4 and 3.9 standard errors
@pytest.mark.parametrize("task", ["book_accuracy", "next_mrr"])
def test_skip_thought_beats_its_untrained_self_by_two_standard_errors(results, task):
    result = results("skip_thought_austen")
    gain, se = result[f"{task}_gain_over_untrained"], result[f"{task}_gain_over_untrained_se"]
    assert gain > 2 * se, f"{task}: trained - untrained = {gain:.4f}, two standard errors = {2 * se:.4f}"


def test_the_default_recipe_covers_all_seven_books_and_both_authors(results):
    result = results("quick_thought_books")
    assert result["book_accuracy_trained"] > 1 / 7 + 0.2  # 7-way, chapter-grouped folds
    assert "author_accuracy_trained" in result and result["order_pairs_trained"] > 1000
