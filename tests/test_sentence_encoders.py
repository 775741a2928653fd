
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seqae
from seqae.cli import main
from seqae.datasets.base import DataError
from seqae.evaluation.sentences import read_task, retrieval
from seqae.families.quick_thought.model import QuickThought, QuickThoughtConfig
from seqae.families.skip_thought.model import SkipThought, SkipThoughtConfig
from seqae.nn.encoders import BagOfNgramsEncoder, TransformerSentenceEncoder

from tiny import TINY_QT, book_corpus, write_recipe


def tiny_qt(**kw):
    torch.manual_seed(0)
    return QuickThought(QuickThoughtConfig(vocab_size=40, embed_dim=8, hidden=12, **kw))


def test_quick_thought_targets_are_neighbours_in_the_same_segment():
    model = tiny_qt(context=1)
    target = model.targets(torch.tensor([0, 0, 0, 1, 1]))
    expected = torch.tensor([
        [0, 1, 0, 0, 0],
        [1, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
    ], dtype=torch.bool)
    assert torch.equal(target, expected)
    assert model.targets(torch.zeros(5, dtype=torch.long)).sum(1).tolist() == [1, 2, 2, 2, 1]
    assert tiny_qt(context=2).targets(torch.zeros(5, dtype=torch.long)).sum(1).tolist() == [2, 3, 4, 3, 2]


def test_quick_thought_loss_is_the_softmax_over_the_batch_without_self():
    model = tiny_qt()
    tokens = torch.randint(4, 40, (4, 5))
    lengths = torch.tensor([5, 3, 4, 2])
    out = model({"tokens": tokens, "lengths": lengths, "segment": torch.zeros(4, dtype=torch.long)})
    f, g = model.f(tokens, lengths), model.g(tokens, lengths)
    scores = f @ g.t()
    scores.fill_diagonal_(float("-inf"))
    logp = F.log_softmax(scores, 1)
    pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
    expected = -sum(logp[i, j] for i, j in pairs) / len(pairs)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.encode_tokens(tokens, lengths).shape == (4, 24)


def test_skip_thought_loss_ignores_padding():
    torch.manual_seed(0)
    model = SkipThought(SkipThoughtConfig(vocab_size=40, embed_dim=8, hidden=12))
    tokens = torch.randint(4, 40, (3, 4))
    lengths = torch.tensor([4, 2, 3])
    tokens[1, 2:] = 0
    tokens[2, 3:] = 0
    batch = {"tokens": tokens, "lengths": lengths, "prev_tokens": tokens, "prev_lengths": lengths,
             "next_tokens": tokens, "next_lengths": lengths}
    padded = {k: (F.pad(v, (0, 6)) if v.dim() == 2 else v) for k, v in batch.items()}
    assert model(batch).loss.item() == pytest.approx(model(padded).loss.item(), rel=1e-6)
    # shared embeddings are stored once
    names = [n for n, _ in model.named_parameters()]
    assert sum("embedding" in n for n in names) == 1


def test_skip_thought_decoder_nll_is_the_sum_over_sentences_in_a_mixed_batch():
    from seqae.datasets.text import pad_batch

    torch.manual_seed(0)
    model = SkipThought(SkipThoughtConfig(vocab_size=40, embed_dim=8, hidden=12, tie_embeddings=False))
    rng = np.random.default_rng(0)
    tokens, lengths = pad_batch([rng.integers(4, 40, size=n) for n in rng.integers(1, 30, size=140)])  # grouped by length
    sentence = torch.randn(140, 12)
    nll, count = model.decode_next(sentence, tokens, lengths)
    singles = [model.decode_next(sentence[i : i + 1], tokens[i : i + 1, : lengths[i]], lengths[i : i + 1]) for i in range(140)]
    assert nll.item() == pytest.approx(sum(n.item() for n, _ in singles), rel=1e-5)
    assert count.item() == int(lengths.sum()) + 140  # every token and one EOS each


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return book_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("family", ["quick_thought", "skip_thought"])
def test_train_embed_and_evaluate_end_to_end(tmp_path, corpus_dir, family):
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(corpus_dir)).replace("quick_thought", family))
    run = seqae.train(recipe, out=tmp_path / "run")
    assert (run / "tokenizer.json").is_file()
    model = seqae.load(run)
    emb = model.embed(["The ship and the sea.", "A letter to my sister.", ""])
    assert emb.shape == (3, model.embedding_dim) and np.isfinite(emb).all()
    (tmp_path / "cls.tsv").write_text("".join(f"{i % 2}\t{'the ship sea' if i % 2 else 'the house letter'} {i}\n" for i in range(20)))
    (tmp_path / "sim.tsv").write_text("".join(f"{i}\tthe ship\tthe {'ship' if i > 2 else 'house'}\n" for i in range(6)))
    result = seqae.evaluate(run, tasks=[str(tmp_path / "cls.tsv"), str(tmp_path / "sim.tsv")])
    for name in ("trained", "untrained", "bow_trained", "bow_untrained"):
        assert 0.0 <= result[f"book_accuracy_{name}"] <= 1.0
        assert 0.0 < result[f"next_mrr_{name}"] <= 1.0
        assert 0.0 <= result[f"cls_accuracy_{name}"] <= 1.0
        assert -1.0 <= result[f"sim_spearman_{name}"] <= 1.0
        assert 0.0 <= result[f"order_accuracy_{name}"] <= 1.0 and result[f"order_accuracy_se_{name}"] > 0
    for figure in ("book_accuracy", "next_recall_at_1", "next_mrr", "order_accuracy"):
        for other in ("untrained", "bow_trained"):
            gain = result[f"{figure}_gain_over_{other}"]
            assert gain == pytest.approx(result[f"{figure}_trained"] - result[f"{figure}_{other}"], abs=1e-9)
            assert result[f"{figure}_gain_over_{other}_se"] >= 0
    neighbours = result["neighbours"]  # what the encoder counts as alike, to read (seqae report shows it)
    assert len(neighbours) == 5 and all(n["nearest"] != n["sentence"] and -1 <= n["cosine"] <= 1 + 1e-5 for n in neighbours)
    (tmp_path / "in.txt").write_text("The whale.\nA dance in the rain.\n")
    assert main(["embed", str(run), "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "emb.npy")]) == 0
    assert np.load(tmp_path / "emb.npy").shape == (2, model.embedding_dim)


def test_bad_task_files_name_the_line(tmp_path):
    (tmp_path / "t.tsv").write_text("pos\tgood\nneg\n")
    with pytest.raises(DataError, match=r"t.tsv:2: expected label<TAB>sentence"):
        read_task(tmp_path / "t.tsv")
    (tmp_path / "s.tsv").write_text("1.0\ta\tb\nhigh\tc\td\n")
    with pytest.raises(DataError, match=r"s.tsv:2: the score 'high' is not a number"):
        read_task(tmp_path / "s.tsv")
    (tmp_path / "one.tsv").write_text("pos\ta\npos\tb\n")
    with pytest.raises(DataError, match="at least 2 labels"):
        read_task(tmp_path / "one.tsv")


def test_embed_input_errors(tmp_path, corpus_dir, capsys):
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(corpus_dir)).replace("steps = 12", "steps = 2"))
    run = seqae.train(recipe, out=tmp_path / "run")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    assert main(["embed", str(run), "-i", str(tmp_path / "latin.txt"), "-o", str(tmp_path / "e.npy")]) == 1
    assert "not UTF-8 text (invalid byte at byte offset 3)" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("")
    assert main(["embed", str(run), "-i", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "e.npy")]) == 1
    assert "empty file" in capsys.readouterr().err
    (tmp_path / "long.txt").write_text("ok\n" + "x" * 1_000_000 + "\n")
    assert main(["embed", str(run), "-i", str(tmp_path / "long.txt"), "-o", str(tmp_path / "e.npy")]) == 1
    assert "long.txt:2: a line of 1,000,000 characters" in capsys.readouterr().err
    assert not (tmp_path / "e.npy").exists()
    assert main(["codes", str(run), "-i", str(tmp_path / "long.txt"), "-o", str(tmp_path / "e.npy")]) == 1
    assert "use seqae embed" in capsys.readouterr().err


def test_corpus_smaller_than_a_batch_is_an_error(tmp_path, corpus_dir):
    recipe = write_recipe(tmp_path, TINY_QT.replace("CORPUS", str(corpus_dir)).replace("batch_size = 32", "batch_size = 4096"))
    with pytest.raises(DataError, match="fewer than one batch of 4096"):
        seqae.train(recipe, out=tmp_path / "run")


def test_retrieval_figures_are_the_expectation_over_distractor_draws():
    # 2-d unit vectors by angle: the query at 0; its true next sentence at 0.3 rad; pool sentences at
    # 0.1 (closer than the true next), 0.5, 0.7 and 0.9 (farther); the pool also holds the query and
    # the true next, which are never distractors
    angles = {"q": 0.0, "n": 0.3, "a": 0.1, "b": 0.5, "c": 0.7, "d": 0.9}
    embed = lambda texts: np.array([[np.cos(angles[t]), np.sin(angles[t])] for t in texts])  # noqa: E731
    pool = ["q", "n", "a", "b", "c", "d"]
    # 2 distractors from {a, b, c, d}: a is among them in 3 of the 6 pairs (rank 2), else rank 1
    result = retrieval(embed, ["q"], ["n"], pool, candidates=3)
    assert result["recall_at_1"] == pytest.approx(0.5)
    assert result["mrr"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    # the same figures from explicit draws
    rng = np.random.default_rng(0)
    ranks = [1 + ("a" in rng.choice(["a", "b", "c", "d"], 2, replace=False)) for _ in range(20000)]
    assert np.mean(np.array(ranks) == 1) == pytest.approx(0.5, abs=0.02)
    angles["n"] = 0.05  # nothing scores above the true next: rank 1 whatever is drawn
    certain = retrieval(embed, ["q"], ["n"], pool, candidates=3)
    assert (certain["recall_at_1"], certain["mrr"]) == (1.0, 1.0)
    # the standard errors are over queries: two queries, one certain and one at 0.5
    two = retrieval(embed, ["q", "q"], ["n", "b"], pool + ["n"], candidates=3)
    per_query = [1.0, retrieval(embed, ["q"], ["b"], pool + ["n"], candidates=3)["recall_at_1"]]
    assert two["recall_at_1_se"] == pytest.approx(np.std(per_query, ddof=1) / np.sqrt(2))


def test_sentence_order_and_author_tasks_on_encoders_that_know_and_do_not_know_order():
    """An encoder whose vector says where a sentence stands in the book orders pairs perfectly; one that
    sees only the words is at chance."""
    from seqae.evaluation.sentences import SentenceEvalConfig, builtin_tasks

    texts = [f"s{i}" for i in range(400)]
    positional = lambda items: np.array([[int(t[1:]) / 400.0, 1.0] for t in items])  # noqa: E731
    rng = np.random.default_rng(0)
    table = {t: rng.normal(size=4) for t in texts}
    blind = lambda items: np.array([table[t] for t in items])  # noqa: E731
    held = {"probe_sentences": texts, "probe_labels": np.arange(400) // 100, "probe_authors": np.arange(400) // 200,
            "queries": texts[:200], "nexts": texts[200:], "pool": texts}  # each "next" stands 200 places later
    config = SentenceEvalConfig(candidates=20)
    knows = builtin_tasks(positional, held, config)
    assert knows["order_accuracy"] > 0.95 and knows["author_accuracy"] > 0.95 and knows["book_accuracy"] > 0.9
    guesses = builtin_tasks(blind, held, config)
    assert abs(guesses["order_accuracy"] - 0.5) < 3 * guesses["order_accuracy_se"] + 0.02
    assert 0 < guesses["order_accuracy_se"] < 0.05
    # overlapping consecutive pairs (a, b), (b, c), ...: only pairs sharing no sentence are kept, so a
    # probe that recognises sentences is at chance, not below it
    wide_table = {t: rng.normal(size=64) for t in texts}  # wide enough for the probe to recognise sentences
    wide = lambda items: np.array([wide_table[t] for t in items])  # noqa: E731
    chain = builtin_tasks(wide, {**held, "queries": texts[:-1], "nexts": texts[1:]}, config)  # 0.42 without the rule
    assert chain["order_pairs"] == 200
    assert abs(chain["order_accuracy"] - 0.5) < 3 * chain["order_accuracy_se"] + 0.02


def test_encode_follows_sentence_transformers(runs):
    """``encode`` with sentence-transformers' arguments: input order kept, one string gives one vector,
    normalisation, tensors, an empty list, and MTEB's keyword arguments accepted."""
    model = seqae.load(runs["qt"])
    sentences = ["The ship and the sea.", "A letter.", "", "A much longer sentence about the ship and a letter to my sister."]
    rows = model.encode(sentences)
    assert rows.shape == (4, model.embedding_dim) and rows.dtype == np.float32
    assert np.allclose(rows, model.embed(sentences), atol=1e-6)
    assert np.allclose(model.encode(sentences, batch_size=1), rows, atol=1e-5)  # batching and sorting keep the order
    assert np.allclose(model.encode(sentences[1]), rows[1], atol=1e-6) and model.encode(sentences[1]).shape == (model.embedding_dim,)
    unit = model.encode(sentences, normalize_embeddings=True)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert np.allclose(unit, rows / np.linalg.norm(rows, axis=1, keepdims=True), atol=1e-6)
    tensor = model.encode(sentences, convert_to_tensor=True, device="cpu")
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor, torch.from_numpy(rows), atol=1e-6)
    assert model.encode([]).shape == (0, model.embedding_dim)
    assert model.encode(sentences, task_name="STSBenchmark", prompt_type=None).shape == rows.shape  # MTEB's protocol
    with pytest.raises(TypeError, match="unexpected keyword argument.*precision"):
        model.encode(sentences, precision="int8")
    with pytest.raises(TypeError, match="sentence 1 is a int"):
        model.encode(["a", 3])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        model.encode(sentences, batch_size=0)


def test_normalising_a_zero_embedding_leaves_it_zero(runs, monkeypatch):
    model = seqae.load(runs["qt"])
    monkeypatch.setattr(model, "encode_tokens", lambda tokens, lengths: torch.zeros(len(lengths), model.embedding_dim))
    out = model.encode(["a", "b"], normalize_embeddings=True)
    assert np.isfinite(out).all() and not out.any()


@pytest.mark.parametrize("make", [
    lambda: TransformerSentenceEncoder(50, 8, 16, layers=2, heads=2, readout="mean"),
    lambda: TransformerSentenceEncoder(50, 8, 16, layers=2, heads=2, readout="max"),
    lambda: TransformerSentenceEncoder(50, 8, 16, layers=2, heads=2, readout="cls"),
    lambda: BagOfNgramsEncoder(50, 8, ngrams=3, buckets=97),
], ids=["transformer-mean", "transformer-max", "transformer-cls", "bag-of-3grams"])
def test_the_other_encoders_ignore_padding_and_batch_companions(make):
    from seqae.datasets.text import pad_batch

    torch.manual_seed(0)
    encoder = make().eval()
    tokens, lengths = pad_batch([np.array([5, 6, 7]), np.array([8, 9, 10, 11, 12, 13]), np.array([], dtype=np.int64)])
    both = encoder(tokens, lengths)
    torch.testing.assert_close(both[:1], encoder(tokens[:1, :3], lengths[:1]))
    assert both.shape == (3, 8) and torch.isfinite(both).all()
    assert not torch.allclose(both[0], both[1])


def test_a_bag_of_ngrams_is_the_mean_of_its_token_and_ngram_rows():
    encoder = BagOfNgramsEncoder(50, 4, ngrams=2, buckets=97)
    out = encoder(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    rows = [encoder.embedding.weight[t] for t in (5, 6, 7)]
    rows += [encoder.ngram_embedding.weight[(a * 50 + b) % 97] for a, b in ((5, 6), (6, 7))]
    torch.testing.assert_close(out[0], torch.stack(rows).mean(0))


@pytest.mark.parametrize("family", ["quick_thought", "skip_thought"])
@pytest.mark.parametrize("encoder", ["transformer", "bag"])
def test_every_encoder_trains_for_both_families_chosen_in_the_recipe(tmp_path, corpus_dir, family, encoder):
    extra = 'readout = "cls"\nheads = 2\nlayers = 1\n' if encoder == "transformer" else "ngram_buckets = 500\n"
    text = TINY_QT.replace("CORPUS", str(corpus_dir)).replace("quick_thought", family)
    text = text.replace("hidden = 24\n", f"hidden = 24\nencoder = \"{encoder}\"\n{extra}")
    run = seqae.train(write_recipe(tmp_path, text), out=tmp_path / "run")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if r.get("stage") == "main" and "loss" in r]
    assert losses[-1] < losses[0]
    model = seqae.load(run)
    assert model.recipe.model.encoder == encoder
    assert model.encode(["The ship.", "A letter to my sister."]).shape == (2, model.embedding_dim)


def test_encoder_options_that_do_not_fit_are_named(tmp_path, corpus_dir):
    from seqae.config import ConfigError

    base = TINY_QT.replace("CORPUS", str(corpus_dir))
    for extra, named in (('encoder = "transformer"\nreadout = "last"\n', "reads out mean, max or cls"),
                         ('readout = "cls"\n', 'needs model.encoder = "transformer"'),
                         ('encoder = "transformer"\nreadout = "mean"\nheads = 5\n', "a multiple of model.heads")):
        with pytest.raises(ConfigError, match=named):
            seqae.train(write_recipe(tmp_path, base.replace("hidden = 24\n", "hidden = 24\n" + extra)), out=tmp_path / "r")


@pytest.mark.parametrize("encoder", ["recurrent", "transformer", "bag"])
def test_embed_init_scales_the_initial_word_embeddings_only(encoder):
    """torch draws word embeddings from N(0, 1), so Adam's steps of about lr move them by a few per cent
    in a short run; ``embed_init`` sets their scale (the same draw, scaled: 1.0 reproduces older runs)."""
    from seqae.families.sentence_encoder import SentenceEncoderConfig, build_encoder

    readout = "mean" if encoder != "recurrent" else "last"
    torch.manual_seed(0)
    plain = build_encoder(SentenceEncoderConfig(vocab_size=300, encoder=encoder, readout=readout))
    torch.manual_seed(0)
    small = build_encoder(SentenceEncoderConfig(vocab_size=300, encoder=encoder, readout=readout, embed_init=0.1))
    torch.testing.assert_close(small.embedding.weight, 0.1 * plain.embedding.weight)
    assert abs(plain.embedding.weight[1:].std().item() - 1.0) < 0.02 and not small.embedding.weight[0].any()
    others = [n for n, _ in plain.named_parameters() if "embedding" not in n]
    for name in others:
        torch.testing.assert_close(dict(small.named_parameters())[name], dict(plain.named_parameters())[name])


def test_gains_are_paired_over_the_same_items():
    from seqae.evaluation.sentences import paired_gains

    trained = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    untrained = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    gains = paired_gains({"trained": {"book_accuracy": trained}, "untrained": {"book_accuracy": untrained}}, "trained", ["untrained"])
    diff = trained - untrained
    assert gains["book_accuracy_gain_over_untrained"] == pytest.approx(2 / 6)
    assert gains["book_accuracy_gain_over_untrained_se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(6))
    # the paired error is smaller than the unpaired one when the items agree
    unpaired = np.sqrt(trained.var(ddof=1) / 6 + untrained.var(ddof=1) / 6)
    assert gains["book_accuracy_gain_over_untrained_se"] < unpaired


def test_probes_are_tested_on_chapters_they_never_saw():
    """Sentences that carry only their chapter's identity (no sign of the book): folds that mix a
    chapter's sentences let the probe name the book from the chapter's other sentences; chapter-grouped
    folds do not, so the figure is at chance."""
    from seqae.evaluation.sentences import probe_predictions

    rng = np.random.default_rng(0)
    chapters = np.repeat(np.arange(20), 30)
    books = chapters % 2
    features = rng.normal(size=(20, 32))[chapters] + 0.1 * rng.normal(size=(600, 32))
    mixed = probe_predictions(features, books, 5, 0)
    grouped = probe_predictions(features, books, 5, 0, groups=chapters)
    assert mixed["accuracy"] > 0.95
    assert abs(grouped["accuracy"] - 0.5) < 0.2


def test_semantic_search_returns_the_nearest_sentences_best_first():
    from seqae.retrieval import semantic_search

    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0], [0.0, 0.0]])
    hits = semantic_search(np.array([[2.0, 0.1], [0.0, 0.0]]), corpus, top_k=3, chunk=2)  # chunks of 2 merge exactly
    assert [h["corpus_id"] for h in hits[0]] == [0, 2, 1]
    assert hits[0][0]["score"] == pytest.approx(2.0 / np.hypot(2.0, 0.1))
    assert all(h["score"] == 0.0 for h in hits[1])  # a zero query is at cosine 0 from everything
    assert len(semantic_search(corpus[:1], corpus[:2], top_k=10)[0]) == 2
    with pytest.raises(ValueError, match="top_k"):
        semantic_search(corpus, corpus, top_k=0)
