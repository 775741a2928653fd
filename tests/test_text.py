import gzip

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqae.config import ConfigError
from seqae.datasets.base import DataError
from seqae.datasets.sentences import is_heading, iter_sentences, split_sentences
from seqae.datasets.text import ContiguousSentences, SentenceTriples, TextDataConfig, pad_batch, tokenise_corpus
from seqae.nn.encoders import RecurrentEncoder


def test_abbreviations_quotes_and_brackets():
    text = ('Mr. Darcy and Mrs. Bennet met Dr. Jones at St. Paul\'s. "Is it true?" she asked. '
            '"It is!" (He smiled.) Then J. Smith left at 3 p.m. yesterday. The end.')
    assert split_sentences(text) == [
        "Mr. Darcy and Mrs. Bennet met Dr. Jones at St. Paul's.",
        '"Is it true?" she asked.',
        '"It is!"',
        "(He smiled.)",
        "Then J. Smith left at 3 p.m. yesterday.",
        "The end.",
    ]


def test_line_breaks_inside_a_paragraph_are_spaces():
    assert split_sentences("It was a truth\nuniversally acknowledged.  A second\none.") == [
        "It was a truth universally acknowledged.", "A second one."]


@pytest.mark.parametrize("heading", [
    "Chapter 1", "CHAPTER IV", "VOLUME I", "Chapter 12.", "CHAPTER XLII", "Chapter the First",
    # titled headings, as in Moby-Dick (some wrap onto a second line)
    "CHAPTER 1. Loomings.", "CHAPTER 135. The Chase.—Third Day.",
    "CHAPTER 56. Of the Less Erroneous Pictures of Whales, and the True\nPictures of Whaling Scenes.",
])
def test_chapter_headings_are_breaks(heading):
    assert is_heading(heading)


@pytest.mark.parametrize("paragraph", [
    "Chapter one of her life was over, she thought, and another had begun.",
    "Chapter 1 was a bore, she said.", "Part of the reason was plain.",
])
def test_ordinary_paragraphs_are_not_headings(paragraph):
    assert not is_heading(paragraph)


def test_a_book_with_titled_chapter_headings_is_split_into_chapters(tmp_path):
    """Moby-Dick's "CHAPTER 1. Loomings." headings once made the whole book one chapter, so none of it
    was ever held out and its headings became training sentences."""
    chapters = [f"CHAPTER {c + 1}. The Title Of Part {c + 1}.\n\n" + " ".join(f"Line {c}-{i} here." for i in range(5))
                for c in range(3)]
    (tmp_path / "whale.txt").write_text("\n\n".join(chapters) + "\n", encoding="utf-8")
    sentences = list(iter_sentences([tmp_path / "whale.txt"], 5000))
    assert len(sentences) == 15 and not any("Title" in s.text for s in sentences)
    assert len({s.segment for s in sentences}) == 3


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcAB .!?\"'()\n,;-")), max_size=300))
def test_splitting_keeps_every_word_in_order(text):
    sentences = split_sentences(text)
    assert " ".join(sentences).split() == text.split()
    assert all(s == s.strip() and s for s in sentences)


def write_book(path, chapters, sentences_per_chapter=30, gz=False):
    parts = []
    for c in range(chapters):
        parts.append(f"Chapter {c + 1}")
        parts.append(" ".join(f"Sentence {c}-{i} of the book {path.stem}." for i in range(sentences_per_chapter)))
    text = "\n\n".join(parts) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_sentences_keep_their_document_and_chapter(tmp_path):
    write_book(tmp_path / "a.txt", 2, 3)
    write_book(tmp_path / "b.txt.gz", 1, 2, gz=True)
    sentences = list(iter_sentences(sorted(tmp_path.iterdir()), 5000))
    assert [s.text for s in sentences][:2] == ["Sentence 0-0 of the book a.", "Sentence 0-1 of the book a."]
    assert [s.document for s in sentences] == [0] * 6 + [1] * 2
    assert len({s.segment for s in sentences[:3]}) == 1 and sentences[3].segment != sentences[2].segment
    assert sentences[6].segment != sentences[5].segment


def test_non_utf8_names_the_byte_offset(tmp_path):
    (tmp_path / "latin.txt").write_bytes(b"Hello.\nCaf\xe9 au lait.\n")
    with pytest.raises(DataError, match=r"latin.txt:2: not UTF-8 text \(invalid byte 0xe9 at byte offset 10\)"):
        list(iter_sentences([tmp_path / "latin.txt"], 5000))


def test_a_million_character_line_is_an_error_naming_the_line(tmp_path):
    (tmp_path / "big.txt").write_text("Intro.\n\n" + "word " * 200_000 + "\n")
    with pytest.raises(DataError, match=r"big.txt:3: a paragraph of more than 100,000 characters"):
        list(iter_sentences([tmp_path / "big.txt"], 5000))


def test_empty_corpus_and_binary_files_are_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="no sentences found"):
        tokenise_corpus(TextDataConfig(corpus=str(tmp_path / "empty.txt"), vocab_size=100, cache_dir=str(tmp_path / "c")))
    (tmp_path / "bin.txt").write_bytes(b"abc\x00\x00def")
    with pytest.raises(DataError, match="bin.txt:1: holds NUL bytes; this looks like a binary file"):
        list(iter_sentences([tmp_path / "bin.txt"], 5000))


def test_tokenised_cache_is_built_once_and_reused(tmp_path):
    write_book(tmp_path / "corpus" / "a.txt" if (tmp_path / "corpus").mkdir() is None else None, 4)
    config = TextDataConfig(corpus=str(tmp_path / "corpus"), vocab_size=120, cache_dir=str(tmp_path / "cache"))
    first = tokenise_corpus(config)
    assert len(first) == 120 and isinstance(first.tokens, np.memmap)
    stamp = (first.folder / "tokens.bin").stat().st_mtime_ns
    second = tokenise_corpus(config)
    assert second.folder == first.folder and (second.folder / "tokens.bin").stat().st_mtime_ns == stamp
    assert second.texts(np.array([0]))[0] == "Sentence 0-0 of the book a."
    # other settings, another cache entry
    third = tokenise_corpus(TextDataConfig(corpus=config.corpus, vocab_size=150, cache_dir=config.cache_dir))
    assert third.folder != first.folder


def test_a_given_tokenizer_is_used_byte_for_byte_and_a_bad_one_is_named(tmp_path):
    (tmp_path / "corpus").mkdir()
    write_book(tmp_path / "corpus" / "a.txt", 4)
    trained = tokenise_corpus(TextDataConfig(corpus=str(tmp_path / "corpus"), vocab_size=120, cache_dir=str(tmp_path / "c")))
    given = tmp_path / "tokenizer.json"
    given.write_bytes((trained.folder / "tokenizer.json").read_bytes())
    config = TextDataConfig(corpus=str(tmp_path / "corpus"), vocab_size=120, cache_dir=str(tmp_path / "c2"),
                            tokenizer_file=str(given))
    reused = tokenise_corpus(config)
    assert (reused.folder / "tokenizer.json").read_bytes() == given.read_bytes()
    assert np.array_equal(np.asarray(reused.tokens), np.asarray(trained.tokens))
    with pytest.raises(DataError, match="nothing.json: missing; data.tokenizer_file"):
        tokenise_corpus(TextDataConfig(corpus=config.corpus, vocab_size=120, cache_dir=config.cache_dir,
                                       tokenizer_file=str(tmp_path / "nothing.json")))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="bad.json: not a tokenizer file"):
        tokenise_corpus(TextDataConfig(corpus=config.corpus, vocab_size=120, cache_dir=config.cache_dir,
                                       tokenizer_file=str(tmp_path / "bad.json")))


def test_contiguous_batches_and_fewer_sentences_than_a_batch(tmp_path):
    (tmp_path / "corpus").mkdir()
    write_book(tmp_path / "corpus" / "a.txt", 2, 10)
    corpus = tokenise_corpus(TextDataConfig(corpus=str(tmp_path / "corpus"), vocab_size=100, cache_dir=str(tmp_path / "c")))
    source = ContiguousSentences(corpus, np.arange(len(corpus)), "a")
    batches = source.epoch_batches(0, 0, 8)
    assert all(np.array_equal(b, np.arange(b[0], b[0] + 8)) for b in batches)
    batch = source.collate(batches[0])
    assert batch["tokens"].shape[0] == 8 and (batch["lengths"] >= 1).all()
    with pytest.raises(DataError, match=r"20 sentences, fewer than one batch of 64"):
        source.epoch_batches(0, 0, 64)
    triples = SentenceTriples(corpus, np.arange(len(corpus)), "a")
    assert len(triples) == 16  # 8 middles per chapter of 10: no triple crosses the chapter heading


def test_batches_of_several_runs_never_pair_sentences_across_runs(tmp_path):
    (tmp_path / "corpus").mkdir()
    write_book(tmp_path / "corpus" / "a.txt", 3, 20)
    corpus = tokenise_corpus(TextDataConfig(corpus=str(tmp_path / "corpus"), vocab_size=100, cache_dir=str(tmp_path / "c")))
    source = ContiguousSentences(corpus, np.arange(len(corpus)), "a", runs=4)
    batches = source.epoch_batches(0, 0, 8)
    assert len(batches) == 60 // 8  # 30 runs of 2 in an epoch -> 7 batches of 4 runs
    for b in batches:
        runs = b.reshape(4, 2)
        assert (runs[:, 1] == runs[:, 0] + 1).all()  # each run: 2 consecutive sentences
    positions = np.array([0, 1, 2, 3, 10, 11, 4, 5])  # runs [0..3], [10, 11], [4, 5]: one chapter
    segment = source.collate(positions)["segment"]
    assert segment[0] == segment[3] and len({int(segment[0]), int(segment[4]), int(segment[6])}) == 3
    from seqae.families.quick_thought.model import QuickThought, QuickThoughtConfig

    target = QuickThought(QuickThoughtConfig(vocab_size=100, embed_dim=4, hidden=4)).targets(segment)
    # 3 pairs inside the first run (both directions), one in each of the other two; none across runs
    assert target.sum() == 2 * (3 + 1 + 1) and not target[3, 4] and not target[5, 6]
    with pytest.raises(ConfigError, match="multiple of data.runs_per_batch"):
        source.epoch_batches(0, 0, 6)
    one_run = ContiguousSentences(corpus, np.arange(len(corpus)), "a").collate(positions[:4])["segment"]
    assert torch.equal(one_run, torch.from_numpy(source.segments[:4].astype(np.int64)))


def test_padding_never_reaches_the_readout():
    torch.manual_seed(0)
    for readout in ("last", "mean", "max"):
        for bidirectional in (False, True):
            encoder = RecurrentEncoder(50, 8, 16, bidirectional=bidirectional, readout=readout)
            tokens, lengths = pad_batch([np.array([5, 6, 7]), np.array([8, 9, 10, 11, 12, 13])])
            both = encoder(tokens, lengths)
            alone = encoder(tokens[:1, :3], lengths[:1])
            torch.testing.assert_close(both[:1], alone, msg=f"{readout} {bidirectional}")


def test_embedding_dropout_acts_in_training_only():
    torch.manual_seed(0)
    encoder = RecurrentEncoder(50, 8, 16, readout="mean", dropout=0.5)
    tokens, lengths = pad_batch([np.array([5, 6, 7, 8]), np.array([9, 10, 11])])
    encoder.eval()
    torch.testing.assert_close(encoder(tokens, lengths), encoder(tokens, lengths))
    reference = RecurrentEncoder(50, 8, 16, readout="mean")
    reference.load_state_dict(encoder.state_dict())  # dropout has no weights: the same network
    torch.testing.assert_close(encoder(tokens, lengths), reference.eval()(tokens, lengths))
    encoder.train()
    a, b = encoder(tokens, lengths), encoder(tokens, lengths)
    assert (a - b).abs().max() > 1e-3  # a fresh mask each call
    with pytest.raises(ValueError, match="dropout"):
        RecurrentEncoder(50, 8, 16, dropout=1.0)


def test_a_batch_of_mixed_lengths_runs_in_groups_with_the_same_result():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sentences = [rng.integers(1, 50, size=n) for n in rng.integers(1, 40, size=150)]
    tokens, lengths = pad_batch(sentences)
    for readout in ("last", "mean", "max"):
        encoder = RecurrentEncoder(50, 8, 16, readout=readout)
        together = encoder(tokens, lengths)  # 150 rows of very different lengths: two groups
        one_by_one = torch.cat([encoder(tokens[i : i + 1, : lengths[i]], lengths[i : i + 1]) for i in range(150)])
        torch.testing.assert_close(together, one_by_one, msg=readout)
        together.sum().backward()
        assert encoder.embedding.weight.grad is not None


def test_a_document_with_no_held_out_sentence_is_reported(tmp_path, capsys):
    """A book whose headings are not recognised is one chapter; if that chapter is not held out, the
    held-out tasks silently skip the whole book. It is named on stderr."""
    from seqae.datasets.text import held_out
    from seqae.families.text import report_uncovered_documents

    (tmp_path / "corpus").mkdir()
    write_book(tmp_path / "corpus" / "chaptered.txt", 10, 5)
    (tmp_path / "corpus" / "plain.txt").write_text(" ".join(f"Plain line {i} here." for i in range(30)) + "\n")
    corpus = tokenise_corpus(TextDataConfig(corpus=str(tmp_path / "corpus"), vocab_size=100, cache_dir=str(tmp_path / "c")),
                             quiet=True)
    mask = held_out(corpus, 10)
    assert report_uncovered_documents(corpus, mask, "CORPUS") == ["plain"]
    err = capsys.readouterr().err
    assert "none of the 30 sentences of 'plain' is held out (1 chapter(s) found" in err and "chaptered" not in err
