"""The seq2seq2seq autoencoder: summary lengths, both gradient paths reach the compressor, the REINFORCE
baseline lowers the gradient's variance (measured), the discriminator's phase, the evaluation's language
model and ROUGE, and a tiny run through train, eval, summarize and plot with its bad-input errors."""

import math

import numpy as np
import pytest
import torch

import seqae
from seqae.cli import main
from seqae.config import ConfigError
from seqae.datasets.base import DataError
from seqae.datasets.sentences import iter_line_items
from seqae.families.summarizer.data import salient_positions
from seqae.families.summarizer.evaluate import BigramLM, paired_interval, rouge
from seqae.families.summarizer.model import Summarizer, SummarizerConfig
from seqae.families.summarizer.texts import salient_texts

from conftest import expect_error, run_cli
from tiny import TINY_SUMMARIZER, book_corpus, write_recipe


def make(**kw) -> Summarizer:
    torch.manual_seed(0)
    kw.setdefault("pretrain_copy_steps", 0)
    return Summarizer(SummarizerConfig(vocab_size=40, embed_dim=8, hidden=12, summary_min=2, summary_max=5, **kw))


def batch(b: int = 6, t: int = 9) -> dict:
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([t, t - 1, t - 3, t, 5, 4][:b])
    tokens = torch.randint(4, 40, (b, t), generator=g) * (torch.arange(t)[None] < lengths[:, None])
    return {"tokens": tokens, "lengths": lengths, "readable": torch.randint(4, 40, (b, 4), generator=g),
            "readable_lengths": torch.tensor([4, 3, 2, 4, 4, 1][:b])}


def test_summary_lengths_follow_the_ratio_within_bounds_and_never_exceed_the_text():
    model = make(summary_ratio=0.5)
    assert model.summary_lengths(torch.tensor([2, 6, 9, 30])).tolist() == [2, 3, 4, 5]
    assert model.summary_lengths(torch.tensor([1, 8]), length=3).tolist() == [1, 3]
    with pytest.raises(ConfigError, match="a summary length of 0"):
        SummarizerConfig(summary_min=0).validate("r.toml")


@pytest.mark.parametrize("path", ["gumbel", "reinforce"])
def test_gradients_reach_the_compressor_through_the_words(path):
    model = make(through_words=path, lead_baseline=False)
    model.set_phase("main", "main")
    out = model(batch())
    out.loss.backward()
    assert model.compressor.cell.weight_ih.grad is not None and model.compressor.cell.weight_ih.grad.abs().sum() > 0
    assert model.compressor.encoder.rnn.weight_ih_l0.grad.abs().sum() > 0
    assert math.isfinite(out.loss.item()) and 0.0 <= float(out.metrics["accuracy"]) <= 1.0


def test_the_discriminator_phase_trains_the_judge_alone():
    model = make()
    model.set_phase("main", "discriminator")
    out = model(batch())
    out.loss.backward()
    assert model.discriminator.score.weight.grad.abs().sum() > 0
    assert model.compressor.cell.weight_ih.grad is None and model.reconstructor.rnn.weight_ih_l0.grad is None
    stages = model.training_stages(10)
    assert [p.name for p in stages[0].phases] == ["discriminator", "main"]
    judge = {id(p) for p in stages[0].phases[0].parameters}
    assert judge == {id(p) for p in model.discriminator.parameters()}
    assert not judge & {id(p) for p in stages[0].phases[1].parameters}


def policy_gradients(model: Summarizer, data: dict, draws: int, with_baseline: bool) -> torch.Tensor:
    """``draws`` single-sample REINFORCE estimates of the compressor's output-layer gradient ``(draws, n)``."""
    tokens, lengths = data["tokens"], data["lengths"]
    summary_lengths = model.summary_lengths(lengths)
    grads = []
    for k in range(draws):
        torch.manual_seed(100 + k)
        model.zero_grad()
        sampled, log_prob = model.compressor(tokens, lengths, summary_lengths, "sample")
        sampled = sampled * model.valid(summary_lengths, sampled.shape[1])
        with torch.no_grad():
            reward, _, _, _ = model.reward(sampled, summary_lengths, tokens, lengths)
            baseline = torch.zeros_like(reward)
            if with_baseline:
                greedy, _ = model.compressor(tokens, lengths, summary_lengths, "greedy")
                baseline, _, _, _ = model.reward(greedy * model.valid(summary_lengths, greedy.shape[1]), summary_lengths, tokens, lengths)
        (-((reward - baseline) * log_prob.sum(1)).mean()).backward()
        grads.append(model.compressor.out.weight.grad.flatten().clone())
    return torch.stack(grads)


def test_the_self_critical_baseline_lowers_the_variance_of_the_policy_gradient():
    model = make(through_words="reinforce", readability="none", lead_baseline=False)
    data = batch()
    plain = policy_gradients(model, data, 24, with_baseline=False).var(0).sum()
    critical = policy_gradients(model, data, 24, with_baseline=True).var(0).sum()
    # the rewards are all negative (minus the reconstruction NLL, about log 40 nats per token): without a
    # baseline every estimate pushes down whatever was sampled, with one only the deviations remain
    assert critical < 0.5 * plain, (float(critical), float(plain))


def test_the_bigram_language_model_matches_a_hand_count():
    lm = BigramLM([np.array([5, 6]), np.array([5, 7])], vocab=8)
    # after BOS (id 2): 5 seen twice, one follower type; Witten-Bell: (2 + 1 * p_uni(5)) / (2 + 1)
    p_uni = (2 + 1) / (6 + 8)  # 6 pairs; id 5 ends two of them
    assert math.exp(lm.log_prob(2 * 8 + 5)) == pytest.approx((2 + p_uni) / 3)
    assert lm.perplexity([np.array([5, 6])]) < lm.perplexity([np.array([7, 7])])


def test_rouge_of_a_copy_is_one_and_of_nothing_in_common_zero():
    same = rouge(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same["rouge1_f"] == pytest.approx(1.0) and same["rougeL_recall"] == pytest.approx(1.0)
    assert rouge(["dogs bark"], ["the cat sat"])["rouge2_f"] == 0.0
    low, high = paired_interval(np.array([0.5, 0.7, 0.9, 0.6]), np.array([0.5, 0.7, 0.9, 0.6]), seed=0)
    assert low == high == 0.0  # the same scores pair by pair: no difference whichever pairs are drawn
    low, high = paired_interval(np.array([0.5, 0.9, 0.7, 0.8]), np.array([0.4, 0.3, 0.7, 0.2]), seed=0)
    assert 0.0 <= low < 0.325 < high <= 0.6 + 1e-9  # the mean difference 0.325; draws range from 0 to 0.6


def test_one_text_per_line_makes_one_item_each_in_blocks(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("".join(f"text number {i} here\n" for i in range(45)) + "\n\n")
    items = list(iter_line_items([path], 1000, block=20))
    assert len(items) == 45 and items[0].text == "text number 0 here" and items[44].line == 45
    assert [it.segment for it in items[::20]] == [1, 2, 3]


@pytest.fixture(scope="module")
def summarizer_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("summarizer")
    corpus = book_corpus(root / "corpus")
    text = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel")
    return seqae.train(write_recipe(root, text), out=root / "run"), root


def test_train_eval_summarize_and_plot(summarizer_run, tmp_path, capsys, monkeypatch):
    run, _ = summarizer_run
    texts = tmp_path / "texts.txt"
    texts.write_text("the ship sails at dawn with the whale and the captain\nsister letter ball dance walk rain garden\n")
    refs = tmp_path / "refs.txt"
    refs.write_text("ship sails\nsister dances\n")
    result = seqae.evaluate(run, inputs=texts, references=refs)
    assert result["test_texts"] == 20 and 0.0 <= result["reconstruction_accuracy"] <= 1.0
    assert result["summary_bigram_perplexity"] > 1.0 and 0.0 <= result["summary_copy_share"] <= 1.0
    assert result["lead_copy_share"] == 1.0 and result["lead_compression"] == pytest.approx(result["summary_compression"])
    assert "lead_reconstruction_perplexity" in result and len(result["examples"]) == 2
    assert result["rouge_pairs"] == 2 and 0.0 <= result["summary_rouge1_f"] <= 1.0 and "lead8_rouge1_f" in result
    difference = result["summary_minus_lead8_rouge1_f"]
    assert difference == pytest.approx(result["summary_rouge1_f"] - result["lead8_rouge1_f"])
    assert result["summary_minus_lead8_rouge1_f_low"] <= difference <= result["summary_minus_lead8_rouge1_f_high"]
    import seqae.families.summarizer.family as summarizer_family

    asked, real = [], summarizer_family.summarize
    monkeypatch.setattr(summarizer_family, "summarize", lambda *a, **k: asked.append(k.get("length")) or real(*a, **k))
    short = seqae.evaluate(run, inputs=texts, references=refs, overrides=["eval.rouge_length=2"], write=False)
    assert asked == [2] and result["lead8_words"] == 7.5  # Lead-8 of an 11- and a 7-word text
    # greedy summaries do not depend on their length: two tokens are a prefix of the longer summary
    assert short["summary_rouge1_recall"] <= result["summary_rouge1_recall"] + 1e-9
    whole = seqae.evaluate(run, inputs=texts, references=refs, overrides=["eval.rouge_length=500"], write=False)
    assert whole["summary_words"] <= 9.0  # longer than every text: each text is its own summary, as its Lead-N is
    out = tmp_path / "summaries.txt"
    assert main(["summarize", str(run), "-i", str(texts), "-o", str(out), "--length", "3"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(1 <= len(line.split()) <= 3 for line in lines)
    model = seqae.load(run)
    two = model.summarize(["the ship sails at dawn with the whale and the captain", "sister letter ball dance"], length=2)
    assert len(two) == 2 and all(isinstance(t, str) and 1 <= len(t.split()) <= 2 for t in two)
    assert two == seqae.load(run).summarize(["the ship sails at dawn with the whale and the captain", "sister letter ball dance"],
                                            length=2)  # greedy: the same words every time
    names = {p.name for p in seqae.plot(run, tmp_path / "plots")}
    assert {"training_curves.png", "summaries.png", "players.png"} <= names
    assert main(["codes", str(run), "-i", str(texts), "-o", str(tmp_path / "ids.npy")]) == 0  # the summaries' word ids
    ids = np.load(tmp_path / "ids.npy")
    assert ids.shape[0] == 2 and ids.dtype.kind == "i" and (ids[:, 0] >= 4).all()


def test_summarizer_bad_input_is_named(summarizer_run, tmp_path, capsys):
    run, root = summarizer_run
    texts = tmp_path / "texts.txt"
    texts.write_text("the ship sails at dawn\nsister letter ball dance walk rain garden\n")
    refs = tmp_path / "refs.txt"
    refs.write_text("one reference only\n")
    expect_error(["eval", str(run), "--inputs", str(texts), "--references", str(refs)], capsys, "refs.txt", "1 reference lines",
                 "2 lines")
    expect_error(["eval", str(run), "--inputs", str(texts)], capsys, "--inputs and --references go together")
    out = tmp_path / "s.txt"
    expect_error(["summarize", str(run), "-i", str(texts), "-o", str(out), "--length", "0"], capsys, "--length 0")
    expect_error(["summarize", str(run), "-i", str(texts), "-o", str(out), "--length", "40"], capsys, "texts.txt:1: ",
                 "shorter than the summary length 40")
    assert not out.exists()
    (tmp_path / "empty.txt").write_text("")
    expect_error(["summarize", str(run), "-i", str(tmp_path / "empty.txt"), "-o", str(out)], capsys, "empty.txt", "empty file")
    corpus = root / "corpus"
    (tmp_path / "none.txt").write_text("\n")
    bad = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel").replace(
        "readable_max_words = 5", f"readable_max_words = 5\nreadable = \"{tmp_path / 'none.txt'}\"")
    expect_error(["train", str(write_recipe(tmp_path, bad)), "--out", str(tmp_path / "r")], capsys, "none.txt", "no sentences")
    long = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel").replace("min_words = 6", "min_words = 60")
    expect_error(["train", str(write_recipe(tmp_path, long, "b.toml")), "--out", str(tmp_path / "r2")], capsys,
                 "texts of 60 words or more", "lower data.min_words")


def test_reinforce_trains_too(tmp_path):
    corpus = book_corpus(tmp_path / "corpus")
    text = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "reinforce")
    run = seqae.train(write_recipe(tmp_path, text), out=tmp_path / "run")
    records = [r for r in seqae.checkpoint.read_metrics(run) if "main_reward" in r]
    assert records and all(math.isfinite(r["main_reward"]) and math.isfinite(r["main_baseline"]) for r in records)


def test_copy_pretraining_teaches_the_compressor_alone_to_emit_the_lead():
    model = make(pretrain_copy_steps=5)
    stages = model.training_stages(10)
    assert [s.name for s in stages] == ["copy", "main"] and stages[0].steps == 5
    copied = {id(p) for p in stages[0].phases[0].parameters}
    assert copied == {id(model.embedding.weight)} | {id(p) for p in model.compressor.parameters()}
    model.set_phase("copy", "main")
    data = batch()
    optimizer = torch.optim.Adam(stages[0].phases[0].parameters, lr=0.05)
    first = model(data).loss.item()
    for _ in range(60):
        optimizer.zero_grad()
        model(data).loss.backward()
        optimizer.step()
    assert model(data).loss.item() < 0.2 * first  # it learns to copy this batch's first words
    words, n = model.summarize_tokens(data["tokens"], data["lengths"])
    assert (words[0, : n[0]] == data["tokens"][0, : n[0]]).float().mean() > 0.8


def test_copy_pretraining_ignores_targets_the_compressor_may_not_emit():
    """An unknown token in the text (and padding past L_b) must not turn the copy loss into NaN."""
    model = make(pretrain_copy_steps=5)
    model.set_phase("copy", "main")
    data = batch()
    data["tokens"][0, 0] = 1  # UNK
    out = model(data)
    out.loss.backward()
    assert math.isfinite(out.loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.compressor.parameters() if p.grad is not None)


def test_the_reconstructor_has_its_own_embedding_unless_shared_and_the_copy_anchor_is_reported():
    separate, shared = make(), make(share_embeddings=True)
    assert separate.reconstructor_embedding is not separate.embedding
    assert shared.reconstructor_embedding is shared.embedding
    anchored = make(copy_weight=1.0, readability="none")
    out = anchored(batch())
    assert float(out.metrics["copy_nll"]) > 0 and math.isfinite(out.loss.item())


@pytest.mark.parametrize("path", ["gumbel", "reinforce"])
def test_an_extracting_compressor_emits_a_subsequence_of_the_text_and_learns(path):
    model = make(emit="extract", through_words=path, lead_baseline=False)
    data = batch()
    lengths = model.summary_lengths(data["lengths"])
    for mode in ("greedy", "sample", "gumbel"):
        torch.manual_seed(3)
        words, _ = model.compressor(data["tokens"], data["lengths"], lengths, mode, 0.5)
        ids = words.argmax(-1) if words.dim() == 3 else words
        for row, text, n, k in zip(ids.tolist(), data["tokens"].tolist(), lengths.tolist(), data["lengths"].tolist()):
            picked, rest = row[:n], iter(text[:k])
            assert all(any(w == x for x in rest) for w in picked), (mode, picked, text[:k])  # in order, each from the text
    _, _, dists = model.compressor(data["tokens"], data["lengths"], lengths, "greedy", distributions=True)
    assert torch.allclose(dists.exp().sum(-1), torch.ones(dists.shape[:2]), atol=1e-4)
    model.set_phase("main", "main")
    model(data).loss.backward()
    assert model.compressor.query.weight.grad.abs().sum() > 0 and model.compressor.cell.weight_ih.grad.abs().sum() > 0
    model.zero_grad()
    model.set_phase("copy", "main")
    model(data).loss.backward()  # copy pre-training teaches it to pick the lead
    assert model.compressor.query.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("path", ["gumbel", "reinforce"])
def test_per_word_discriminator_scores_judge_every_prefix_and_credit_each_word(path):
    model = make(through_words=path, discriminator_scores="word", lead_baseline=False)
    data = batch()
    lengths = model.summary_lengths(data["lengths"])
    words, _ = model.compressor(data["tokens"], data["lengths"], lengths, "greedy")
    words = words * model.valid(lengths, words.shape[1])
    logits = model.readability_logits(words, lengths)
    assert logits.shape == words.shape
    # the prefix of the first k words scores the same whatever follows it (the GRU reads left to right)
    changed = words.clone()
    changed[:, -1] = 7
    assert torch.allclose(model.readability_logits(changed, lengths)[:, :-1], logits[:, :-1])
    with torch.no_grad():
        _, per_word, _, _ = model.reward(words, lengths, data["tokens"], data["lengths"])
    scores = torch.nn.functional.logsigmoid(logits.detach())
    n = int(lengths[0])
    assert per_word[0, 0].item() == pytest.approx(0.3 * scores[0, :n].mean().item(), rel=1e-5)
    assert per_word[0, n - 1].item() == pytest.approx(0.3 * scores[0, n - 1].item(), rel=1e-5)
    assert (per_word[0, n:] == 0).all()
    for phase, part in (("main", model.compressor.cell.weight_ih), ("discriminator", model.discriminator.score.weight)):
        model.zero_grad()
        model.set_phase("main", phase)
        out = model(data)
        out.loss.backward()
        assert math.isfinite(out.loss.item()) and part.grad.abs().sum() > 0


def test_spread_copy_targets_cover_the_text_and_teach_both_compressors():
    model = make(copy_target="spread", summary_ratio=0.5)
    lengths = torch.tensor([9, 4])
    positions = model.copy_positions(torch.ones(2, 9, dtype=torch.long), lengths, model.summary_lengths(lengths))
    assert positions[0].tolist() == [1, 3, 5, 7] and positions[1, :2].tolist() == [1, 3]
    for emit in ("vocabulary", "extract"):
        model = make(copy_target="spread", emit=emit, lead_baseline=False)
        data = batch()
        model.set_phase("copy", "main")
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
        for _ in range(60):
            optimizer.zero_grad()
            model(data).loss.backward()
            optimizer.step()
        words, lengths = model.summarize_tokens(data["tokens"], data["lengths"])
        wanted = data["tokens"].gather(1, model.copy_positions(data["tokens"], data["lengths"], lengths))
        keep = model.valid(lengths, words.shape[1]).bool()
        assert (words == wanted)[keep].float().mean() > 0.9, emit


def test_salient_copy_targets_pick_rare_early_words_in_their_order():
    model = make(copy_target="salient", summary_ratio=0.5, salience_position=1.0)
    idf = torch.zeros(40)
    idf[[10, 11, 12, 13]] = torch.tensor([3.0, 2.0, 2.5, 0.5])
    model.idf.copy_(idf)
    tokens = torch.tensor([[5, 13, 11, 6, 10, 7, 12, 8], [12, 10, 11, 5, 0, 0, 0, 0]])
    lengths = torch.tensor([8, 4])
    positions = model.copy_positions(tokens, lengths, model.summary_lengths(lengths))
    # row 0, L_b 4: scores idf - i/8: 13 (0.375), 11 (1.75), 10 (2.5), 12 (1.75); the others below 0
    assert positions[0].tolist() == [1, 2, 4, 6]
    assert positions[1, :2].tolist() == [0, 1]  # L_b 2: idf 2.5 and 3.0 beat 2.0 at the third place
    continues = torch.zeros(40, dtype=torch.bool)
    continues[13] = True  # token 13 continues the word before it: that word scores as its best piece, 0.375
    picks = salient_positions(model.idf, tokens, lengths, model.summary_lengths(lengths), 1.0, continues)
    assert picks[0].tolist() == [0, 2, 4, 6]  # the word at 0-1 ties with itself: its first piece fills the last place
    model.config.salience_position = 100.0  # the place outweighs every IDF: the lead
    assert model.copy_positions(tokens, lengths, model.summary_lengths(lengths))[0].tolist() == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="salience_position"):
        SummarizerConfig(salience_position=-1.0).validate("recipe")


def test_a_salient_run_keeps_its_training_idf_and_reports_the_salient_baseline(tmp_path):
    corpus = book_corpus(tmp_path / "corpus")
    text = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel")
    text = text.replace('summary_ratio = 0.5', 'summary_ratio = 0.5\nemit = "extract"\ncopy_target = "salient"')
    run = seqae.train(write_recipe(tmp_path, text), out=tmp_path / "run")
    model = seqae.load(run)
    the = model.tokenizer.token_to_id("the")
    assert model.idf[the] < model.idf.max() - 1.0  # the training texts' IDF, kept in the checkpoint
    texts = tmp_path / "texts.txt"
    texts.write_text("the ship sails at dawn with the whale and the captain\nsister letter ball dance walk rain garden\n")
    refs = tmp_path / "refs.txt"
    refs.write_text("ship sails whale\nsister dances\n")
    result = seqae.evaluate(run, inputs=texts, references=refs, overrides=["eval.rouge_length=3"], write=False)
    assert result["salient_words"] <= 3 and 0.0 <= result["salient_rouge1_f"] <= 1.0
    salient = salient_texts(model, ["the ship sails at dawn with the whale and the captain"], length=3)[0]
    assert salient and "the" not in salient.split()  # three rare tokens of the text, never its commonest word


@pytest.mark.parametrize("path", ["gumbel", "reinforce"])
def test_the_topic_loss_is_zero_for_the_text_itself_and_reaches_the_compressor(path):
    model = make(through_words=path, topic_weight=1.0, readability="none", lead_baseline=False)
    data = batch()
    model.idf.copy_(torch.linspace(0.5, 2.0, 40))
    tokens, lengths = data["tokens"], data["lengths"]
    same = model.topic_distance(tokens, lengths, tokens, lengths)
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-5)  # a 'summary' that is the text: cos 1
    other = model.topic_distance(tokens.flip(0), lengths.flip(0), tokens, lengths)
    assert (other > 0.01).all() and (other <= 2.0).all()
    model.set_phase("main", "main")
    out = model(data)
    out.loss.backward()
    assert model.compressor.cell.weight_ih.grad.abs().sum() > 0
    if path == "gumbel":
        assert "topic_loss" in out.metrics


def test_the_idf_comes_from_the_training_texts(tmp_path):
    corpus = book_corpus(tmp_path / "corpus")
    text = TINY_SUMMARIZER.replace("CORPUS", str(corpus)).replace("WORDS", "gumbel")
    run = seqae.train(write_recipe(tmp_path, text), out=tmp_path / "run", overrides=["model.topic_weight=0.5"])
    idf = seqae.load(run).idf
    assert idf.min() >= 0 and idf.max() > idf.min()  # rare tokens weigh more than frequent ones
    plain = seqae.train(write_recipe(tmp_path, text, "p.toml"), out=tmp_path / "plain")
    assert not hasattr(seqae.load(plain), "idf")  # runs without the topic loss keep their weights file as before


@pytest.mark.parametrize("emit", ["vocabulary", "extract"])
@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_teacher_forcing_in_one_pass_scores_decoded_words_as_decoding_does(emit, mode):
    """Teacher forcing runs every step at once; fed the words that step-by-step decoding chose, it must give
    decoding's log-probabilities, distributions and gradients (sampling: any allowed word, not only the best)."""
    model = make(emit=emit)
    b = batch()
    tokens = torch.stack([torch.randperm(36)[:9] + 4 for _ in range(6)]) * (torch.arange(9)[None] < b["lengths"][:, None])
    lengths, summary = b["lengths"], model.summary_lengths(b["lengths"])
    parameters = [p for p in model.compressor.parameters()] + [model.embedding.weight]
    torch.manual_seed(3)
    words, log_prob, dists = model.compressor(tokens, lengths, summary, mode, distributions=True)
    stepped = torch.autograd.grad(log_prob.sum(), parameters, allow_unused=True)
    # the extractor is taught positions: the tokens of a row are distinct, so the words name them
    targets = words if emit == "vocabulary" else (tokens[:, None, :] == words[:, :, None]).float().argmax(-1)
    taught, taught_log_prob, taught_dists = model.compressor(tokens, lengths, summary, "teacher", targets=targets,
                                                              distributions=True)
    assert torch.equal(taught, words) and (log_prob < 0).any()
    torch.testing.assert_close(taught_log_prob, log_prob, rtol=1e-5, atol=1e-5)
    finite = torch.isfinite(dists)
    assert torch.equal(finite, torch.isfinite(taught_dists))
    torch.testing.assert_close(taught_dists[finite], dists[finite], rtol=1e-5, atol=1e-5)
    at_once = torch.autograd.grad(taught_log_prob.sum(), parameters, allow_unused=True)
    assert sum(g.abs().sum() for g in stepped if g is not None) > 0
    for one, other in zip(stepped, at_once):
        assert (one is None) == (other is None)
        if one is not None:
            torch.testing.assert_close(other, one, rtol=1e-4, atol=1e-5)


def test_one_hot_rows_match_the_dense_product_in_value_and_gradient():
    from seqae.nn.straight_through import one_hot_rows

    torch.manual_seed(0)
    logits, weight = torch.randn(3, 5, 11, requires_grad=True), torch.randn(11, 4, requires_grad=True)
    soft = torch.softmax(logits, -1)
    words = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0) + soft - soft.detach()
    words = words * (torch.arange(5) < 3)[None, :, None]  # rows past a summary's end are zero
    target = torch.randn(3, 5, 4)
    grads = []
    for product in (lambda: words @ weight, lambda: one_hot_rows(words, weight)):
        out = product()
        grads.append((out, *torch.autograd.grad((out * target).sum(), [logits, weight], retain_graph=True)))
    for dense, rows in zip(*grads):
        torch.testing.assert_close(rows, dense)
    assert grads[0][0][:, 3:].abs().sum() == 0 and grads[1][1].abs().sum() > 0
    strided = torch.randn(11, 3, 4)[:, 1]  # a weight that is a view with strides of its own
    torch.testing.assert_close(one_hot_rows(words.detach(), strided), words.detach() @ strided)


def test_summaries_come_back_in_input_order_from_length_sorted_batches(summarizer_run):
    """Texts are decoded in batches of similar length; each summary must still be its own text's, and a text
    with no tokens is named by its line in the whole input, not in its batch."""
    run, _ = summarizer_run
    model = seqae.load(run)
    words = "the ship sails at dawn with the whale and the captain sister letter ball dance walk rain garden".split()
    texts = [" ".join(words[i % 5 : i % 5 + 3 + (7 * i) % 11]) for i in range(9)]
    together = model.summarize(texts, batch_size=4)
    assert together == [model.summarize([t])[0] for t in texts]
    assert len(set(together)) > 3
    with pytest.raises(DataError, match=r"texts:7: nothing left to summarise"):
        model.summarize(texts[:6] + [""] + texts[6:], batch_size=4)


def test_summary_lengths_are_drawn_per_example_in_training_only():
    model = make(summary_ratio=0.5, summary_ratio_range=[0.2, 0.8], copy_weight=1.0)
    lengths = torch.full((400,), 10)
    model.train()
    drawn = model.summary_lengths(lengths, model.drawn_ratios(lengths))
    assert set(drawn.tolist()) == {2, 3, 4, 5}  # round(0.2 .. 0.8 x 10) = 2 .. 8, within [summary_min, summary_max]
    model.eval()
    assert model.drawn_ratios(lengths) is None and model.summary_lengths(lengths).tolist() == [5] * 400
    model.train()
    model.set_phase("main", "main")
    out = model(batch())
    out.loss.backward()  # every player with lengths of its own per example: copy anchor, Lead-N twin, reconstruction
    assert math.isfinite(out.loss.item()) and model.compressor.cell.weight_ih.grad.abs().sum() > 0
    for bad in ([0.6], [0.8, 0.2], [0.0, 0.5], [0.5, 1.5]):
        with pytest.raises(ConfigError, match=r"model.summary_ratio_range must be \[low, high\]"):
            SummarizerConfig(summary_ratio_range=bad).validate("r.toml")


def test_the_pointer_reconstructor_is_a_distribution_that_copies_and_passes_gradients_to_the_words():
    from seqae.families.summarizer.parts import Reconstructor

    torch.manual_seed(0)
    table = torch.nn.Embedding(40, 8)
    rebuild = Reconstructor(table, 12, pointer=True)
    data = batch()
    words, lengths = data["tokens"][:, :4], torch.full((6,), 4)
    one_hots = torch.nn.functional.one_hot(words, 40).float().requires_grad_()
    by_ids = rebuild(table(words), lengths, data["tokens"], data["lengths"], 2, words)
    by_one_hots = rebuild(one_hots @ table.weight, lengths, data["tokens"], data["lengths"], 2, one_hots)
    assert torch.allclose(by_ids[0], by_one_hots[0], atol=1e-5) and torch.equal(by_ids[1], by_one_hots[1])
    by_one_hots[0].sum().backward()
    assert one_hots.grad.abs().sum() > 0  # the copy path reaches the (straight-through) words
    with torch.no_grad():  # the gate shut on the vocabulary: every target found among the summary's words is copied
        rebuild.gate.bias.fill_(-30.0)
        inside, _ = rebuild(table(words), lengths, words[:, [0, 3, 1]], torch.full((6,), 3), 2, words)
        outside, _ = rebuild(table(words), lengths, torch.full((6, 3), 1), torch.full((6,), 3), 2, words)
    assert not (words == 1).any()
    assert torch.all(inside < 15.0) and torch.all(outside > 60.0)  # only the summary's words keep probability
    plain = make(lead_baseline=True, readability="none")
    pointed = make(lead_baseline=True, readability="none", pointer=True)
    assert plain.reconstructor.gate is None and pointed.lead.gate is not None
    out = pointed(data)
    out.loss.backward()
    assert math.isfinite(out.loss.item()) and pointed.reconstructor.gate.weight.grad.abs().sum() > 0
    assert pointed.compressor.cell.weight_ih.grad.abs().sum() > 0


@pytest.mark.parametrize("pointer", [False, True])
def test_the_reconstructor_scores_the_text_and_never_its_padding(pointer):
    """The output layer runs on the text's tokens only: tokens past a text's length change nothing, and a
    text scored alone, unpadded, gets the figures it gets in the padded batch."""
    from seqae.families.summarizer.parts import Reconstructor

    torch.manual_seed(0)
    table = torch.nn.Embedding(40, 8)
    rebuild = Reconstructor(table, 12, pointer=pointer)
    data = batch()
    rows = len(data["tokens"])
    words, lengths = data["tokens"][:, :4], torch.full((rows,), 4)
    garbage = torch.randint(4, 40, data["tokens"].shape) * (data["tokens"] == 0)
    padded = torch.cat([data["tokens"] + garbage, torch.randint(4, 40, (rows, 5))], dim=1)
    with torch.no_grad():
        nll, right = rebuild(table(words), lengths, data["tokens"], data["lengths"], 2, words)
        nll_padded, right_padded = rebuild(table(words), lengths, padded, data["lengths"], 2, words)
        i = int(data["lengths"].argmin())
        n = int(data["lengths"][i])
        alone = rebuild(table(words[i : i + 1]), lengths[:1], data["tokens"][i : i + 1, :n], data["lengths"][i : i + 1], 2,
                        words[i : i + 1])
    assert torch.allclose(nll, nll_padded, atol=1e-5) and torch.equal(right, right_padded)
    assert nll[i].item() == pytest.approx(alone[0].item(), rel=1e-5) and int(right[i]) == int(alone[1])
    assert nll.shape == (rows,) and torch.all(nll > 0) and torch.all(right <= data["lengths"])


def test_reconstruction_against_lead_n_is_a_paired_difference_per_text_with_its_interval():
    from seqae.families.summarizer.family import reconstruction_figures

    per_text = {"nll": np.array([2.0, 4.0, 3.0]), "right": np.array([1.0, 1.0, 3.0]), "tokens": np.array([1.0, 2.0, 3.0]),
                "lead_nll": np.array([1.0, 1.0, 3.0]), "lead_right": np.array([0.0, 1.0, 3.0]),
                "read_lead_nll": np.array([2.0, 4.0, 6.0]), "read_lead_right": np.array([1.0, 1.0, 3.0])}
    out = reconstruction_figures(per_text, seed=0)
    assert out["reconstruction_perplexity"] == pytest.approx(math.exp(9 / 6))
    assert out["lead_reconstruction_accuracy"] == pytest.approx(4 / 6)
    assert out["summary_minus_lead_reconstruction_nats"] == pytest.approx((1.0 + 1.5 + 0.0) / 3)  # per text, per token
    assert out["summary_minus_lead_reconstruction_accuracy"] == pytest.approx(1 / 3)
    assert 0.0 <= out["summary_minus_lead_reconstruction_nats_low"] <= 2.5 / 3 <= out["summary_minus_lead_reconstruction_nats_high"] <= 1.5
    no_twin = reconstruction_figures({**per_text, "lead_nll": np.array([]), "lead_right": np.array([])}, seed=0)
    assert "summary_minus_lead_reconstruction_nats" not in no_twin and "lead_reconstruction_accuracy" not in no_twin
    for figures in (out, no_twin):  # Lead-N read by the summary's own reconstructor: a difference only in the third text
        assert figures["summary_minus_lead_read_alike_nats"] == pytest.approx(-1 / 3)
        assert figures["summary_minus_lead_read_alike_accuracy"] == 0.0


def test_a_run_is_evaluated_with_its_own_tokenizer_even_where_the_cache_is_new(summarizer_run, tmp_path, capsys,
                                                                               monkeypatch):
    import json
    import shutil

    run, _ = summarizer_run
    before = seqae.evaluate(run, write=False)
    monkeypatch.setenv("SEQAE_CACHE", str(tmp_path / "fresh"))  # another machine's cache: its vocabulary would differ
    again = seqae.evaluate(run, write=False)
    assert again["reconstruction_perplexity"] == before["reconstruction_perplexity"]
    built = list((tmp_path / "fresh").glob("text-*/tokenizer.json"))
    assert built and all(p.read_bytes() == (run / "tokenizer.json").read_bytes() for p in built)
    copy = tmp_path / "run"  # a run told to read its data with another vocabulary: named, not evaluated
    shutil.copytree(run, copy)
    other = json.loads((run / "tokenizer.json").read_text())
    first, second = list(other["model"]["vocab"])[5:7]
    other["model"]["vocab"][first], other["model"]["vocab"][second] = other["model"]["vocab"][second], other["model"]["vocab"][first]
    (tmp_path / "other.json").write_text(json.dumps(other))
    config = copy / "config.toml"
    config.write_text(config.read_text().replace('tokenizer_file = ""', f'tokenizer_file = "{tmp_path / "other.json"}"'))
    expect_error(["eval", str(copy)], capsys, str(copy / "tokenizer.json"), "another tokenizer.json", "data.tokenizer_file")


def test_a_run_resumes_after_its_cache_is_gone_with_its_tokenizer_named(summarizer_run, tmp_path, capsys, monkeypatch):
    import shutil
    import tomllib

    run, _ = summarizer_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    steps = tomllib.loads((copy / "config.toml").read_text())["train"]["steps"]
    monkeypatch.setenv("SEQAE_CACHE", str(tmp_path / "fresh"))  # a vocabulary trained again differs from the run's
    more = ["train", str(copy / "config.toml"), "--out", str(copy), "--resume", "--set", f"train.steps={steps + 2}"]
    saved = (copy / "config.toml").read_bytes()
    expect_error(more, capsys, str(copy / "tokenizer.json"), "data.tokenizer_file")
    assert (copy / "config.toml").read_bytes() == saved  # nothing of the run rewritten
    code, err = run_cli(more + ["--set", f"data.tokenizer_file={copy / 'tokenizer.json'}"], capsys)
    assert code == 0, err
    assert (copy / "tokenizer.json").read_bytes() == (run / "tokenizer.json").read_bytes()
