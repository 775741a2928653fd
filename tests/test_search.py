"""Search by code (``seqae search``): nearest items by cosine or Euclidean distance, the cached index of a
collection and when it is reused, rebuilt or refused, retrieval precision and mAP by label, and one
command for images, sentences and audio."""

import json

import numpy as np
import pytest
import torch

import seqae
from seqae.cli import main
from seqae.retrieval import label_retrieval, nearest

from conftest import expect_error


def test_nearest_by_euclidean_distance_matches_brute_force_across_chunks():
    rng = np.random.default_rng(0)
    index, queries = rng.normal(size=(50, 6)), rng.normal(size=(7, 6))
    hits = nearest(queries, index, top_k=4, metric="euclidean", chunk=8)
    distances = np.linalg.norm(queries[:, None] - index[None], axis=2)
    for row, found in zip(distances, hits):
        assert [h["corpus_id"] for h in found] == list(np.argsort(row)[:4])
        assert [h["score"] for h in found] == pytest.approx(list(-np.sort(row)[:4]), abs=1e-5)
    with pytest.raises(ValueError, match="metric"):
        nearest(queries, index, metric="manhattan")


def test_precision_at_k_and_mean_average_precision_by_label():
    index = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = np.array([0, 1, 1, 0])
    # the query's ranking: items 0 (label 0), 1 (1), 3 (0), 2 (1); relevant (label 0) at ranks 1 and 3
    result = label_retrieval(np.array([[1.0, 0.02]]), np.array([0]), index, labels, k=2)
    assert result["precision_at_2"] == pytest.approx(0.5)
    assert result["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    perfect = label_retrieval(index, np.array([0, 0, 1, 1]), index, np.array([0, 0, 1, 1]), k=2)
    assert perfect == {"precision_at_2": 1.0, "map": 1.0}


def digits_file(path, rows):
    from sklearn.datasets import load_digits

    np.save(path, load_digits().data[rows])
    return path


def test_images_found_by_their_codes_with_a_cached_index(runs, tmp_path, capsys):
    collection = digits_file(tmp_path / "collection.npy", slice(0, 40))
    queries = digits_file(tmp_path / "queries.npy", [3, 17])
    argv = ["search", str(runs["ae"]), "--index", str(collection), "--query", str(queries), "-k", "3"]
    assert main([*argv, "-o", str(tmp_path / "hits.jsonl")]) == 0
    assert "index written" in capsys.readouterr().err
    hits = [json.loads(line) for line in (tmp_path / "hits.jsonl").read_text().splitlines()]
    assert [h["hits"][0]["item"] for h in hits] == [3, 17]  # each query finds itself first, at cosine 1
    assert hits[0]["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5) and len(hits[0]["hits"]) == 3
    index_file = tmp_path / "collection.npy.seqae-index.npz"
    assert index_file.exists()
    assert main([*argv, "--json", "--metric", "euclidean"]) == 0  # the index is reused: nothing encoded
    out = capsys.readouterr()
    assert "index written" not in out.err and json.loads(out.out.splitlines()[1])["hits"][0]["score"] == pytest.approx(0.0, abs=1e-4)
    digits_file(collection, slice(10, 50))  # a changed collection: this run's index is rebuilt
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr()
    assert "index written" in out.err and json.loads(out.out.splitlines()[1])["hits"][0]["item"] == 7  # row 17, now 7th


def test_search_bad_input_is_named(runs, tmp_path, capsys):
    collection = digits_file(tmp_path / "collection.npy", slice(0, 20))
    other = seqae.train(runs["root"] / "ae.toml", out=tmp_path / "other_ae")
    argv = ["search", str(runs["ae"]), "--index", str(collection)]
    assert main([*argv, "--query", str(collection)]) == 0
    capsys.readouterr()
    expect_error(["search", str(other), "--index", str(collection), "--query", str(collection)], capsys,
                 "collection.npy.seqae-index.npz", "built by another run", "--rebuild")
    np.save(tmp_path / "wide.npy", np.zeros((2, 65)))
    expect_error([*argv, "--query", str(tmp_path / "wide.npy")], capsys, "wide.npy", "65 features", "trained on 64")
    (tmp_path / "junk.npz").write_bytes(b"not an index")
    expect_error([*argv, "--query", str(collection), "--index-file", str(tmp_path / "junk.npz")], capsys,
                 "junk.npz", "not a seqae index")
    assert (tmp_path / "junk.npz").read_bytes() == b"not an index"  # nothing of the user's overwritten
    expect_error([*argv, "--query", str(collection), "--query", str(collection)], capsys, "--query", "one file or folder")
    expect_error([*argv, "--query", str(collection), "--metric", "cosine", "-k", "0"], capsys, "--top-k 0")
    expect_error(["search", str(runs["ae"]), "--index", str(tmp_path / "nope.npy"), "--query", str(collection)], capsys,
                 "nope.npy", "no such collection")
    assert main(["search", str(other), "--index", str(collection), "--query", str(collection), "--rebuild"]) == 0


def test_sentences_found_in_their_own_collection(runs, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The ship sails at dawn.\nA letter came for my sister.\nThe garden was full of rain.\n")
    assert main(["search", str(runs["qt"]), "--index", str(corpus), "--query", "A letter came for my sister.", "-k", "2",
                 "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["query"] == "A letter came for my sister." and len(found["hits"]) == 2
    assert found["hits"][0] == {"item": 1, "name": "A letter came for my sister.", "score": pytest.approx(1.0, abs=1e-5)}
    queries = tmp_path / "queries.txt"
    queries.write_text("The garden was full of rain.\n")
    assert main(["search", str(runs["qt"]), "--corpus", str(corpus), "--queries", str(queries), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["item"] == 2
    assert seqae.search(runs["qt"], ["The ship sails at dawn."], corpus.read_text().splitlines(), top_k=1)[0][0]["corpus_id"] == 0
    expect_error(["search", str(runs["ae"]), "--index", str(corpus), "--query", "x", "--index-file", str(tmp_path / "ae.npz")], capsys,
                 "corpus.txt", "unknown array format")
    expect_error(["search", str(runs["qt"]), "--index", str(tmp_path / "nope.txt"), "--query", "x"], capsys,
                 "nope.txt", "no such collection")


@pytest.mark.parametrize("run", ["vc", "cpc"])
def test_audio_files_found_by_voice_or_mean_context(runs, tmp_path, capsys, run):
    """Voice conversion searches by speaker code (by voice), CPC by each utterance's mean context."""
    folder = runs["speech"] if run == "cpc" else runs["vc_wav"].parent
    wav = runs["wav"] if run == "cpc" else runs["vc_wav"]
    assert main(["search", str(runs[run]), "--index", str(folder), "--query", str(wav), "-k", "2", "--json",
                 "--index-file", str(tmp_path / "index.npz")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["query"] == str(wav) and found["hits"][0]["name"] == str(wav)
    assert found["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_a_zero_vector_index_is_searchable():
    assert nearest(torch.zeros(1, 3), torch.zeros(2, 3), top_k=2)[0][0]["score"] == 0.0
