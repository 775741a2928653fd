"""Quality runs of the language model and the summariser on the bundled Austen novels (slow: ``python -m
pytest -m slow -s tests/test_quality_summarizer.py``); the figures and commands are in docs/RESULTS.md,
"The seq2seq2seq summariser"."""

import pytest

import seqae

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_austen_language_model_learns_word_order_and_nears_the_bigram_model(tmp_path):
    """``recipes/lm_austen.toml`` (about 10 min on one core): held-out perplexity 116.8 against the
    add-one unigram model's 450 and the smoothed bigram model's 110.3 (measured in the same evaluation), and
    1367 on the same sentences with their words shuffled. Claimed: well under the unigram model, within 15 %
    of the bigram model (not below it: on some 7,000 training sentences the GRU does not beat it), and word
    order worth a factor of five."""
    run = seqae.train(ROOT / "recipes" / "lm_austen.toml", out=tmp_path / "run")
    result = seqae.evaluate(run)
    print(f"\nlm_austen: {result}")
    assert result["perplexity"] < 0.35 * result["unigram_perplexity"]
    assert result["perplexity"] < 1.15 * result["bigram_perplexity"]
    assert result["shuffled_perplexity"] > 5 * result["perplexity"]
