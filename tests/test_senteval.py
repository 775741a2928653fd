"""SentEval's tasks read from tiny synthetic files in exactly the layout of SentEval's download script,
evaluated with its protocols; user pair-classification files; bad input."""

import json

import numpy as np
import pytest

from seqae.cli import main
from seqae.datasets.base import DataError
from seqae.evaluation import senteval as se
from seqae.evaluation.sentences import read_task, user_task

POSITIVE = ["good", "great", "fine", "happy", "bright", "kind"]
NEGATIVE = ["bad", "awful", "poor", "sad", "dark", "cruel"]
FILLER = ["the", "a", "film", "day", "story", "was", "very", "quite", "and", "it"]


def sentence(rng, words, n=6):
    """A sentence of filler words with two words of ``words``."""
    body = list(rng.choice(FILLER, n)) + list(rng.choice(words, 2))
    rng.shuffle(body)
    return " ".join(body)


def lexicon_embed(sentences):
    """A fixed encoder: counts of each lexicon word (what a sentiment probe needs), plus a constant."""
    vocab = POSITIVE + NEGATIVE + FILLER
    out = np.zeros((len(sentences), len(vocab) + 1), np.float32)
    for i, s in enumerate(sentences):
        for w in s.split():
            if w in vocab:
                out[i, vocab.index(w)] += 1
        out[i, -1] = 1
    return out


def write_senteval(root, n=60, seed=0):
    """Every task of SentEval's data/downstream folder, tiny, in its own files and formats."""
    rng = np.random.default_rng(seed)
    for folder, files in se.CV_TASKS.values():
        (root / folder).mkdir(parents=True)
        for words, filename in zip((POSITIVE, NEGATIVE), files):
            (root / folder / filename).write_text("".join(sentence(rng, words) + "\n" for _ in range(n)), encoding="latin-1")
    (root / "SST" / "binary").mkdir(parents=True)
    for part in ("train", "dev", "test"):
        rows = [(sentence(rng, POSITIVE if i % 2 else NEGATIVE), i % 2) for i in range(n)]
        (root / "SST" / "binary" / f"sentiment-{part}").write_text("".join(f"{s}\t{y}\n" for s, y in rows))
    (root / "TREC").mkdir()
    for filename in ("train_5500.label", "TREC_10.label"):
        rows = [("NUM:count" if i % 2 else "DESC:manner", sentence(rng, POSITIVE if i % 2 else NEGATIVE)) for i in range(n)]
        (root / "TREC" / filename).write_text("".join(f"{y} {s} ?\n" for y, s in rows), encoding="latin-1")
    (root / "MRPC").mkdir()
    for part in ("train", "test"):
        lines = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            a = sentence(rng, POSITIVE)
            b = a if i % 2 else sentence(rng, NEGATIVE)  # paraphrase: the same words
            lines.append(f"{i % 2}\t{i}\t{i + 1000}\t{a}\t{b}")
        (root / "MRPC" / f"msr_paraphrase_{part}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "SICK").mkdir()
    for filename in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
        lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        for i in range(n):
            a = sentence(rng, POSITIVE)
            same = i % 3
            b = a if same == 2 else sentence(rng, POSITIVE if same else NEGATIVE)
            lines.append(f"{i}\t{a}\t{b}\t{1 + 2 * same}\t{['CONTRADICTION', 'NEUTRAL', 'ENTAILMENT'][same]}")
        (root / "SICK" / filename).write_text("\n".join(lines) + "\n")
    for folder in se.STS_YEARS.values():
        (root / folder).mkdir(parents=True)
        for subset in ("headlines", "images"):
            pairs, scores = sts_pairs(rng, n)
            (root / folder / f"STS.input.{subset}.txt").write_text("".join(f"{a}\t{b}\n" for a, b in pairs))
            scores[3] = ""  # a pair without a gold score, as in STS16: dropped
            (root / folder / f"STS.gs.{subset}.txt").write_text("".join(f"{s}\n" for s in scores))
    (root / "STS" / "STSBenchmark").mkdir()
    for part in ("train", "dev", "test"):
        pairs, scores = sts_pairs(rng, n)
        (root / "STS" / "STSBenchmark" / f"sts-{part}.csv").write_text(
            "".join(f"main-news\tfile\t2012\t{i:04d}\t{s}\t{a}\t{b}\textra\n" for i, ((a, b), s) in enumerate(zip(pairs, scores))))
    return root


def sts_pairs(rng, n):
    pairs, scores = [], []
    for i in range(n):
        a = sentence(rng, POSITIVE)
        score = i % 4
        b = " ".join(a.split()[: 2 + 2 * score]) + " " + sentence(rng, NEGATIVE, n=6 - 2 * score)
        pairs.append((a, b))
        scores.append(f"{score:.1f}")
    return pairs, scores


@pytest.fixture(scope="module")
def senteval_dir(tmp_path_factory):
    return write_senteval(tmp_path_factory.mktemp("senteval") / "downstream")


def test_every_task_is_read_from_senteval_s_own_layout(senteval_dir):
    tasks = {t.name: t for t in se.load_tasks(senteval_dir, list(se.TASKS))}
    assert list(tasks) == list(se.TASKS)
    assert len(tasks["MR"].sentences) == 120 and sorted(set(tasks["MR"].labels)) == [0, 1]
    assert len(tasks["TREC"].parts["train"][0]) == 60 and set(tasks["TREC"].parts["test"][1]) == {"NUM", "DESC"}
    assert tasks["MRPC"].parts["train"][0][0][0] != "#1 String"  # the header (with a byte-order mark) is not a pair
    assert set(tasks["SICKEntailment"].parts["dev"][1]) == {"CONTRADICTION", "NEUTRAL", "ENTAILMENT"}
    assert tasks["SICKRelatedness"].parts["test"][1][:3] == [1.0, 3.0, 5.0]
    assert sorted(tasks["STS12"].subsets) == ["headlines", "images"]
    assert len(tasks["STS12"].subsets["images"][0]) == 59  # the pair without a gold score is dropped
    assert tasks["STSBenchmark"].parts["dev"][1][:4] == [0.0, 1.0, 2.0, 3.0]


def test_protocols_give_the_figures_a_perfect_encoder_earns(senteval_dir):
    """A lexicon encoder separates the synthetic sentiment classes exactly and ranks the synthetic
    similarity pairs by their word overlap; a shuffled-label run of the same protocol is at chance."""
    tasks = {t.name: t for t in se.load_tasks(senteval_dir, list(se.TASKS))}
    for name in ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC"):
        assert se.run_task(lexicon_embed, tasks[name])["accuracy"] == 1.0, name
    assert se.run_task(lexicon_embed, tasks["MRPC"])["accuracy"] >= 0.9
    assert se.run_task(lexicon_embed, tasks["SICKEntailment"])["accuracy"] >= 0.9
    for name in ("SICKRelatedness", "STSBenchmark"):
        assert se.run_task(lexicon_embed, tasks[name])["pearson"] > 0.8, name
    sts = se.run_task(lexicon_embed, tasks["STS13"])
    assert sts["headlines_spearman"] > 0.7 and sts["images_spearman"] > 0.7
    assert sts["spearman"] == pytest.approx((sts["headlines_spearman"] + sts["images_spearman"]) / 2)
    shuffled = tasks["MR"]
    shuffled.labels = list(np.random.default_rng(1).permutation(shuffled.labels))
    assert se.run_task(lexicon_embed, shuffled)["accuracy"] < 0.7


def test_a_missing_task_is_skipped_with_a_note_and_a_malformed_file_is_named(tmp_path, capsys):
    root = write_senteval(tmp_path / "downstream", n=20)
    (root / "CR" / "custrev.neg").unlink()
    tasks = se.load_tasks(root, ["MR", "CR"])
    assert [t.name for t in tasks] == ["MR"]
    assert "CR skipped" in capsys.readouterr().err
    with pytest.raises(DataError, match="none of the tasks CR is there"):
        se.load_tasks(root, ["CR"])
    bad = root / "SST" / "binary" / "sentiment-dev"
    bad.write_text("a fine film\t1\na sentence with no label\n")
    with pytest.raises(DataError, match=r"sentiment-dev:2: expected sentence<TAB>label"):
        se.load_tasks(root, ["SST2"])
    (root / "STS" / "STS12-en-test" / "STS.gs.images.txt").write_text("1.0\n2.0\n")
    with pytest.raises(DataError, match=r"STS.gs.images.txt: 2 lines of scores for the 20 pairs"):
        se.load_tasks(root, ["STS12"])
    (root / "STS" / "STSBenchmark" / "sts-test.csv").write_text("g\tf\t2012\t1\thigh\ta b\tc d\n")
    with pytest.raises(DataError, match=r"sts-test.csv:1: the score 'high' is not a number"):
        se.load_tasks(root, ["STSBenchmark"])
    with pytest.raises(DataError, match="unknown SentEval task 'MRX'"):
        se.parse_task_names("MR,MRX")
    with pytest.raises(DataError, match="no such SentEval data folder"):
        se.load_tasks(tmp_path / "nowhere", ["MR"])


def test_eval_prints_the_papers_table_for_a_trained_run(runs, tmp_path, senteval_dir, capsys):
    code = main(["eval", str(runs["qt"]), "--senteval", str(senteval_dir), "--tasks", "mr,STS12,SICKRelatedness"])
    out = capsys.readouterr().out
    assert code == 0
    table = out[out.index("encoder "):].splitlines()
    assert table[0].split() == ["encoder", "MR", "STS12", "SICKRelatedness"]  # in the order asked for
    assert [row.split()[0] for row in table[1:5]] == ["trained", "untrained", "bow_trained", "bow_untrained"]
    result = json.loads((runs["qt"] / "eval.json").read_text())
    for name in ("trained", "untrained", "bow_trained", "bow_untrained"):
        assert 0.3 <= result[f"senteval_MR_accuracy_{name}"] <= 1.0
        assert -1.0 <= result[f"senteval_STS12_spearman_{name}"] <= 1.0
    assert f"{100 * result['senteval_MR_accuracy_trained']:.1f}" == table[1].split()[1]


def test_senteval_options_are_refused_where_they_do_not_apply(runs, senteval_dir, capsys):
    assert main(["eval", str(runs["ae"]), "--senteval", str(senteval_dir)]) == 1
    assert "--senteval: a 'autoencoder' run takes no SentEval data folder" in capsys.readouterr().err
    assert main(["eval", str(runs["qt"]), "--tasks", "MR"]) == 1
    assert "give their folder with --senteval DIR" in capsys.readouterr().err


def test_pair_classification_files(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        a = sentence(rng, POSITIVE)
        lines.append(f"{'same' if i % 2 else 'different'}\t{a}\t{a if i % 2 else sentence(rng, NEGATIVE)}")
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    kind, items = read_task(tmp_path / "pairs.tsv")
    assert kind == "pairs" and items[1][0] == "same"
    assert user_task(lexicon_embed, kind, items)["accuracy"] >= 0.9
    (tmp_path / "bad.tsv").write_text("same\ta\tb\nsame\tc\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: expected label<TAB>sentence1<TAB>sentence2"):
        read_task(tmp_path / "bad.tsv")
    (tmp_path / "scores.tsv").write_text("1\ta\tb\n2\tc\td\n3\te\tf\n")
    assert read_task(tmp_path / "scores.tsv")[0] == "similarity"  # numeric first fields: scores
