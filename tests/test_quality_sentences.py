"""End-to-end quality runs of the sentence encoders on the bundled Austen corpus (slow: about 30 CPU
minutes; ``python -m pytest -m slow -s tests/test_quality_sentences.py``)."""

import pytest

import seqae

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("recipe", ["quick_thought_austen", "skip_thought_austen"])
def test_trained_encoder_beats_its_untrained_self_on_every_builtin_task(tmp_path, recipe):
    run = seqae.train(ROOT / "recipes" / f"{recipe}.toml", out=tmp_path / recipe)
    result = seqae.evaluate(run)
    print(f"\n{recipe}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)))
    for task in ("book_accuracy", "next_recall_at_1", "next_mrr"):
        assert result[f"{task}_trained"] > result[f"{task}_untrained"], task
