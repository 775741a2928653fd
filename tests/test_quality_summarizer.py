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


def test_the_pointer_extractor_rebuilds_the_text_better_than_lead_n(tmp_path):
    """``recipes/summarizer_austen.toml`` with ``--set model.emit=extract --set model.copy_target=spread --set
    model.copy_weight=1 --set model.readability=none --set model.pointer=true`` (7.5 min on two idle cores):
    three seeds rebuilt the 338 held-out sentences from their summaries at 0.147, 0.087 and 0.064 nats a token
    below the twin's Lead-N and at 0.048, 0.034 and 0.052 below Lead-N read by the summary's own
    reconstructor, each paired 95 % interval under 0. Claimed: both differences below 0 beyond chance (the
    intervals' upper ends under 0), the summary a subsequence of the text, and token accuracy within a
    hundredth of Lead-N's (it is not better: dropped punctuation costs exact copies)."""
    sets = {"model.emit": "extract", "model.copy_target": "spread", "model.copy_weight": 1.0,
            "model.readability": "none", "model.pointer": True}
    run = seqae.train(ROOT / "recipes" / "summarizer_austen.toml", out=tmp_path / "run", overrides=sets)
    result = seqae.evaluate(run)
    print(f"\npointer extractor: { {k: v for k, v in result.items() if 'reconstruction' in k or 'alike' in k} }")
    assert result["summary_minus_lead_reconstruction_nats_high"] < 0.0
    assert result["summary_minus_lead_read_alike_nats_high"] < 0.0
    assert result["summary_copy_share"] == 1.0
    assert result["summary_minus_lead_read_alike_accuracy"] > -0.01
