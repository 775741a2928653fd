"""The language_model family (a short training learns word order: held-out perplexity well under the
unigram model's and the untrained network's, shuffled sentences read worse; score, codes, plot) and the
summariser's LM prior (readability = lm_prior / both: the KL and the reward terms, gradients, a run that
carries its prior, and the errors for a missing, foreign or mismatched prior run)."""

import math
import shutil

import numpy as np
import pytest
import torch

import seqae
from seqae.cli import main
from seqae.families.language_model.model import LanguageModel
from seqae.families.summarizer.model import Summarizer, SummarizerConfig
from seqae.nn.language_model import RecurrentLM

from conftest import expect_error
from tiny import TINY_LM, TINY_SUMMARIZER, book_corpus, grammar_lines, write_recipe


def lm_recipe(tmp_path, corpus, steps: int, unit: str = 'unit = "line"', test_every: int = 5, name: str = "lm.toml"):
    text = TINY_LM.replace("CORPUS", str(corpus)).replace("STEPS", str(steps)).replace("UNIT", unit)
    return write_recipe(tmp_path, text.replace("TEST_EVERY", str(test_every)), name)


def test_a_short_training_learns_word_order(tmp_path, capsys):
    """Catches an LM that stops learning (or never conditions on the words before): its held-out
    perplexity must fall well under the unigram model's and the same network's untrained, and sentences
    with their words shuffled must read clearly worse."""
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(grammar_lines(400)) + "\n")
    run = seqae.train(lm_recipe(tmp_path, corpus, 150), out=tmp_path / "run")
    result = seqae.evaluate(run)
    model = seqae.load(run)
    torch.manual_seed(0)
    untrained = LanguageModel(model.recipe.model).eval()
    test = [model.tokenizer.encode(line).ids for line in grammar_lines(50, seed=1)]
    assert result["test_sentences"] == 80
    assert result["perplexity"] < 0.5 * result["unigram_perplexity"], result
    assert result["perplexity"] < 0.3 * untrained.lm.perplexity(test)
    assert result["shuffled_perplexity"] > 1.5 * result["perplexity"]
    assert result["perplexity"] <= result["bigram_perplexity"] * 1.2  # the bigram model already knows most of this grammar
    assert len(result["samples"]) == 8 and all(isinstance(s, str) for s in result["samples"])
    lines = tmp_path / "score.txt"
    lines.write_text("the red cat sees the old dog\ndog the the old sees red cat\n")
    assert main(["score", str(run), "-i", str(lines), "-o", str(tmp_path / "s.npy")]) == 0
    scores = np.load(tmp_path / "s.npy")
    assert scores.shape == (2,) and scores[0] < scores[1]
    assert main(["codes", str(run), "-i", str(lines), "-o", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (2, 32)
    assert {p.name for p in seqae.plot(run, tmp_path / "plots")} >= {"training_curves.png", "metrics.png", "samples.png"}
    lines.write_text("the red cat\n\n")
    capsys.readouterr()
    expect_error(["score", str(run), "-i", str(lines), "-o", str(tmp_path / "t.npy")], capsys, "score.txt:2", "no tokens")


def test_the_sequence_nll_counts_every_token_and_the_eos():
    torch.manual_seed(0)
    lm = RecurrentLM(12, 4, 6)
    tokens, lengths = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    nll, right = lm.sequence_nll(tokens, lengths)
    logp = lm.next_log_probs(tokens[1:, :2])[0]  # the second sequence alone, unpadded
    expected = -(logp[0, 8] + logp[1, 9] + logp[2, 3])
    assert nll[1].item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0 <= int(right[0]) <= 4 and lm.perplexity([[8, 9]]) == pytest.approx(math.exp(expected.item() / 3), rel=1e-5)


def prior_model(readability: str, path: str) -> Summarizer:
    torch.manual_seed(0)
    return Summarizer(SummarizerConfig(vocab_size=40, embed_dim=8, hidden=12, summary_min=2, summary_max=5, through_words=path,
                                       readability=readability, lm_prior="x", lm_embed_dim=6, lm_hidden=10, lm_layers=1,
                                       pretrain_copy_steps=0, lead_baseline=False))


def batch() -> dict:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9, 8, 6, 9])
    tokens = torch.randint(4, 40, (4, 9), generator=g) * (torch.arange(9)[None] < lengths[:, None])
    return {"tokens": tokens, "lengths": lengths, "readable": torch.randint(4, 40, (4, 4), generator=g),
            "readable_lengths": torch.tensor([4, 3, 2, 4])}


@pytest.mark.parametrize("path", ["gumbel", "reinforce"])
@pytest.mark.parametrize("readability", ["lm_prior", "both"])
def test_the_prior_term_reaches_the_compressor_and_the_prior_stays_fixed(path, readability):
    model = prior_model(readability, path).train()
    assert not model.prior.training and (model.discriminator is not None) == (readability == "both")
    model.set_phase("main", "main")
    out = model(batch())
    out.loss.backward()
    assert model.compressor.cell.weight_ih.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.prior.parameters())
    stages = model.training_stages(10)
    trained = {id(p) for phase in stages[-1].phases for p in phase.parameters}
    assert not trained & {id(p) for p in model.prior.parameters()}
    if path == "gumbel":
        assert float(out.metrics["prior_kl"]) >= 0.0  # a KL divergence
        # the KL's gradient alone reaches the compressor through its distributions and the emitted words
        model.zero_grad()
        lengths = model.summary_lengths(batch()["lengths"])
        words, _, logp = model.compressor(batch()["tokens"], batch()["lengths"], lengths, "gumbel", 0.5, distributions=True)
        model.prior_kl(words, logp, lengths).backward()
        assert model.compressor.out.weight.grad.abs().sum() > 0


def test_the_reward_adds_the_prior_score():
    model = prior_model("lm_prior", "reinforce").eval()
    data = batch()
    lengths = model.summary_lengths(data["lengths"])
    words, _ = model.compressor(data["tokens"], data["lengths"], lengths, "greedy")
    words = words * model.valid(lengths, words.shape[1])
    with torch.no_grad():
        reward, per_word, nll, _ = model.reward(words, lengths, data["tokens"], data["lengths"])
        expected = -nll / data["lengths"] + 0.1 * model.prior_score(words, lengths)
    assert torch.allclose(reward, expected) and not per_word.any()
    one = model.prior.next_log_probs(words[:1, :2])[0]
    assert model.prior_score(words[:1], torch.tensor([2]))[0].item() == pytest.approx(
        ((one[0, words[0, 0]] + one[1, words[0, 1]]) / 2).item(), rel=1e-5)


def test_a_summariser_with_an_lm_prior_trains_carries_its_prior_and_names_bad_priors(tmp_path, capsys):
    corpus = book_corpus(tmp_path / "corpus")
    lm_run = seqae.train(lm_recipe(tmp_path, corpus, 20, unit="", test_every=3), out=tmp_path / "lm")
    base = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel")
    text = base.replace('through_words = "gumbel"', f'through_words = "gumbel"\nreadability = "both"\nlm_prior = "{lm_run}"')
    run = seqae.train(write_recipe(tmp_path, text, "sum.toml"), out=tmp_path / "sum")
    assert seqae.load(run).recipe.model.lm_hidden == 32
    records = [r for r in seqae.checkpoint.read_metrics(run) if "main_prior_kl" in r]
    assert records and all(math.isfinite(r["main_prior_kl"]) and r["main_prior_kl"] >= 0 for r in records)
    prior = seqae.load(lm_run).lm.state_dict()
    carried = seqae.load(run).prior.state_dict()
    assert all(torch.equal(prior[k], carried[k]) for k in prior)  # the prior's weights, fixed through training
    shutil.move(lm_run, tmp_path / "moved")  # the run needs its prior's run no more
    result = seqae.evaluate(run)
    assert result["summary_lm_perplexity"] > 1.0 and result["lead_lm_perplexity"] > 1.0 and result["readable_lm_perplexity"] > 1.0
    assert result["summary_bigram_perplexity"] > 1.0
    shutil.move(tmp_path / "moved", lm_run)
    judged = seqae.evaluate(run, overrides=[f"eval.lm={lm_run}"])
    assert judged["summary_lm_perplexity"] == pytest.approx(result["summary_lm_perplexity"], rel=1e-5)
    expect_error(["eval", str(run), "--set", f"eval.lm={run}"], capsys, "eval.lm", "not a 'language_model' run")

    def train_with(extra: str, name: str):
        recipe = write_recipe(tmp_path, base.replace('through_words = "gumbel"', f'through_words = "gumbel"\n{extra}'), name)
        return ["train", str(recipe), "--out", str(tmp_path / f"out_{name}")]

    expect_error(train_with('readability = "lm_prior"', "a.toml"), capsys, "a.toml", "model.lm_prior", "recipes/lm_austen.toml")
    expect_error(train_with(f'readability = "lm_prior"\nlm_prior = "{run}"', "b.toml"), capsys, "b.toml", "'summarizer' run",
                 "not a 'language_model' run")
    expect_error(train_with(f'readability = "lm_prior"\nlm_prior = "{tmp_path / "nothing"}"', "c.toml"), capsys,
                 "model.lm_prior", "no such file")
    other = seqae.train(lm_recipe(tmp_path, corpus, 2, unit="", test_every=3, name="lm2.toml"), out=tmp_path / "lm_other",
                        overrides=["data.vocab_size=120"])
    expect_error(train_with(f'readability = "lm_prior"\nlm_prior = "{other}"', "d.toml"), capsys, "model.lm_prior", "tokenizer",
                 "same corpus")


def test_an_lm_of_a_separate_sentence_file_keeps_the_corpus_tokenizer(tmp_path, capsys):
    """data.sentences: the lines modelled, tokenised with data.corpus's tokenizer (a summariser of
    texts.txt takes this LM, trained on readable.txt, as its prior)."""
    corpus = book_corpus(tmp_path / "corpus")
    sentences = tmp_path / "readable.txt"
    sentences.write_text("\n".join(grammar_lines(60)) + "\n\n")
    recipe = lm_recipe(tmp_path, corpus, 3, unit=f'sentences = "{sentences}"', test_every=3)
    run = seqae.train(recipe, out=tmp_path / "run")
    plain = seqae.train(lm_recipe(tmp_path, corpus, 1, unit="", test_every=3, name="plain.toml"), out=tmp_path / "plain")
    assert (run / "tokenizer.json").read_bytes() == (plain / "tokenizer.json").read_bytes()
    assert seqae.evaluate(run, write=False)["test_sentences"] == 20  # every third of the 60 lines
    sentences.write_text("\n\n")
    expect_error(["train", str(recipe), "--out", str(tmp_path / "r2")], capsys, "readable.txt", "no sentences")
