"""Parts the sentence encoders share (quick-thought, skip-thought): data preparation from a tokenised
corpus, the held-out tasks and evaluation against the untrained network and bags of words, the embedding
map, and ``seqae embed``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.base import BatchSource, DataError, read_text_lines
from seqae.families.base import Inferred, Prepared


@dataclass(frozen=True)
class TextData:
    """The sentence families' extra data: the tokenised corpus, the held-out sentences' indices into it,
    and the tokenizer."""

    corpus: Any  # seqae.datasets.text.TokenisedCorpus
    test_idx: np.ndarray
    tokenizer: Any  # tokenizers.Tokenizer


def tokenised(recipe: Recipe) -> tuple[Any, Any, int]:
    """The recipe's tokenised corpus (the sentence pipeline's cache), its tokenizer and vocabulary size, with
    ``model.vocab_size`` (0: the tokenizer's) checked against it."""
    from seqae.datasets.text import load_tokenizer, tokenise_corpus

    corpus = tokenise_corpus(recipe.data)
    tokenizer = load_tokenizer(corpus.folder / "tokenizer.json")
    vocab = tokenizer.get_vocab_size()
    if recipe.model.vocab_size not in (0, vocab):
        raise ConfigError(f"{recipe.source}: model.vocab_size = {recipe.model.vocab_size} but the tokenizer has {vocab}")
    return corpus, tokenizer, vocab


def prepare_text(recipe: Recipe, batches: Callable[..., BatchSource]) -> Prepared:
    """The tokenised corpus, split by chapters; ``batches(corpus, indices, name)`` makes the family's
    batch source of one split."""
    from seqae.datasets.text import held_out

    corpus, tokenizer, vocab = tokenised(recipe)
    mask = held_out(corpus, recipe.data.test_every)
    train_idx, test_idx = np.flatnonzero(~mask), np.flatnonzero(mask)
    if len(test_idx) == 0 or len(train_idx) == 0:
        raise DataError(
            f"{recipe.data.corpus}: {len(corpus)} sentences in too few chapters to hold every "
            f"{recipe.data.test_every}th out; lower data.test_every"
        )
    report_uncovered_documents(corpus, mask, recipe.data.corpus)
    name = Path(recipe.data.corpus).name
    train = batches(corpus, train_idx, f"{name} (training chapters)")
    test = batches(corpus, test_idx, f"{name} (held-out chapters)")
    return Prepared(train, test, TextData(corpus, test_idx, tokenizer), Inferred(vocab_size=vocab),
                    run_files={"tokenizer.json": corpus.folder / "tokenizer.json"}, fingerprint=corpus.content_fingerprint,
                    data_name=str(recipe.data.corpus))


def report_uncovered_documents(corpus, mask: np.ndarray, source: str) -> list[str]:
    """Name (on stderr) every document none of whose sentences is held out: the held-out tasks and the
    embedding map do not cover it, which is usually a book whose chapter headings were not recognised."""
    import sys

    documents = np.asarray(corpus.documents)
    held = np.bincount(documents[mask], minlength=len(corpus.document_names))
    total = np.bincount(documents, minlength=len(corpus.document_names))
    uncovered = [name for name, h, t in zip(corpus.document_names, held, total) if h == 0 and t > 0]
    for name in uncovered:
        chapters = len(np.unique(np.asarray(corpus.segments)[documents == corpus.document_names.index(name)]))
        print(f"{source}: note: none of the {total[corpus.document_names.index(name)]:,} sentences of '{name}' is held out "
              f"({chapters} chapter(s) found; chapters start at headings such as 'Chapter 1' or 'CHAPTER IV. Title'); "
              "the held-out tasks and the embedding map do not cover it", file=sys.stderr)
    return uncovered


def attach_run_tokenizer(model: nn.Module, recipe: Recipe, run_dir: Path) -> None:
    """A loaded run's ``tokenizer.json`` and ``data.max_tokens`` as ``model.tokenizer`` and ``model.max_tokens``
    (the summariser and the language model, which read and write text through them)."""
    from seqae.datasets.text import load_tokenizer

    model.tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    model.max_tokens = recipe.data.max_tokens


def token_rows(tokenizer, lines: list[str], max_tokens: int, where: str, empty: str) -> list[np.ndarray]:
    """Each line's token ids; a line with no tokens is a DataError ``where:LINE: empty``."""
    from seqae.datasets.text import encode_batch

    ids = encode_batch(tokenizer, lines, max_tokens)
    for number, row in enumerate(ids, start=1):
        if not row:
            raise DataError(f"{where}:{number}: {empty}")
    return [np.asarray(r, dtype=np.int64) for r in ids]


def encode_lines(tokenizer, lines: list[str], max_tokens: int, where: str, empty: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines of text as padded ids ``(N, T)`` and lengths ``(N,)``; a line with no tokens is a DataError
    ``where:LINE: empty``."""
    from seqae.datasets.text import pad_batch

    return pad_batch(token_rows(tokenizer, lines, max_tokens, where, empty))


def decode_ids(tokenizer, ids) -> str:
    """Token ids back to text, WordPiece continuations joined to their words."""
    return tokenizer.decode([int(i) for i in ids]).replace(" ##", "")


def attach_tokenizer(model: nn.Module, recipe: Recipe, run_dir: Path) -> None:
    from seqae.checkpoint import CheckpointError
    from seqae.datasets.text import load_tokenizer

    path = run_dir / "tokenizer.json"
    tokenizer = load_tokenizer(path)
    if tokenizer.get_vocab_size() > recipe.model.vocab_size:
        raise CheckpointError(f"{path}: a vocabulary of {tokenizer.get_vocab_size()} tokens, more than the model's "
                              f"{recipe.model.vocab_size} (model.vocab_size); this is not the run's own tokenizer")
    model.attach_tokenizer(tokenizer, recipe.data.max_tokens)


def held_out_tasks(prepared: Prepared, config) -> dict[str, Any]:
    corpus, test_idx = prepared.extra.corpus, prepared.extra.test_idx
    rng = np.random.default_rng(config.seed)
    documents = np.asarray(corpus.documents)
    segments = np.asarray(corpus.segments)
    probe = np.sort(rng.choice(test_idx, size=min(config.probe_sentences, len(test_idx)), replace=False))
    labels = documents[probe] if len(np.unique(documents[test_idx])) > 1 else None
    held = set(test_idx.tolist())
    pairs = np.array([i for i in test_idx if i + 1 in held and segments[i] == segments[i + 1]])
    if len(pairs) == 0:
        raise DataError(f"{corpus.folder}: no consecutive held-out sentences for the retrieval task")
    queries = np.sort(rng.choice(pairs, size=min(config.retrieval_queries, len(pairs)), replace=False))
    pool = np.sort(rng.choice(test_idx, size=min(5000, len(test_idx)), replace=False))
    if len(pool) < config.candidates:
        raise DataError(f"{prepared.data_name or corpus.folder}: {len(pool)} held-out sentences, fewer than "
                        f"eval.candidates ({config.candidates}); lower eval.candidates or use a larger corpus")
    texts = dict(zip(np.concatenate([probe, queries, queries + 1, pool]).tolist(),
                     corpus.texts(np.concatenate([probe, queries, queries + 1, pool]))))
    distinct = len({texts[i] for i in pool.tolist()})
    if distinct < config.candidates + 1:  # distractors are never the query or its true next sentence
        raise DataError(f"{prepared.data_name or corpus.folder}: the held-out chapters hold {distinct} distinct sentences, too "
                        f"few for next-sentence retrieval among eval.candidates = {config.candidates}; lower "
                        "eval.candidates or use a corpus with more varied text")
    authors = np.array([name.split("-", 1)[0] for name in corpus.document_names])  # "austen-emma" -> "austen"
    author_labels = authors[documents[probe]] if labels is not None else None
    if author_labels is not None and not 1 < len(np.unique(author_labels)) < len(np.unique(labels)):
        author_labels = None  # one author, or one document an author: the book task already says it
    return {
        "probe_sentences": [texts[i] for i in probe.tolist()],
        "probe_labels": labels,
        "probe_authors": author_labels,
        "probe_groups": segments[probe],
        "query_groups": segments[queries],
        "queries": [texts[i] for i in queries.tolist()],
        "nexts": [texts[i + 1] for i in queries.tolist()],
        "pool": [texts[i] for i in pool.tolist()],
    }


def bag_of_words(model: nn.Module):
    """Embed a sentence as the mean of ``model``'s input token embeddings."""
    from seqae.datasets.text import encode_batch

    table = model.token_embeddings().detach().float().cpu().numpy()

    def embed(sentences: list[str]) -> np.ndarray:
        ids = encode_batch(model.tokenizer, list(sentences), model.max_tokens)
        return np.stack([table[i].mean(0) if len(i) else np.zeros(table.shape[1], np.float32) for i in ids])

    return embed


def evaluate_text(model: nn.Module, recipe: Recipe, prepared: Prepared, tasks: list[str] | None = None,
                  senteval: str | None = None, senteval_tasks: list[str] | str | None = None, **options) -> dict[str, Any]:
    """Built-in held-out tasks, user task files and SentEval's tasks (``senteval``: SentEval's
    ``data/downstream`` folder; ``senteval_tasks``: their names, default all there are) for the trained
    encoder, the same encoder untrained, and bags of words (mean of the trained, and of the untrained,
    token embeddings)."""
    from seqae import progress
    from seqae.evaluation import senteval as se
    from seqae.evaluation.sentences import builtin_tasks, paired_gains, read_task, user_task

    parsed = [(Path(t), *read_task(t)) for t in tasks or []]  # bad task files fail before any work
    if senteval_tasks and not senteval:
        raise ConfigError("--tasks names SentEval tasks; give their folder with --senteval DIR")
    benchmark = se.load_tasks(senteval, se.parse_task_names(senteval_tasks)) if senteval else []
    model.eval()
    torch.manual_seed(recipe.eval.seed)
    untrained = type(model)(recipe.model).eval()  # the same network, untrained
    untrained.attach_tokenizer(model.tokenizer, model.max_tokens)
    embedders = {
        "trained": model.embed,
        "untrained": untrained.embed,
        "bow_trained": bag_of_words(model),
        "bow_untrained": bag_of_words(untrained),
    }
    held = held_out_tasks(prepared, recipe.eval)
    result: dict[str, Any] = {"held_out_sentences": len(prepared.extra.test_idx), "retrieval_queries": len(held["queries"]),
                              "embedding_dim": model.embedding_dim}
    per_item: dict[str, dict[str, np.ndarray]] = {name: {} for name in embedders}
    parts = progress.each(embedders.items(), "evaluating the trained encoder, the untrained one and the bags of words",
                          name=lambda item: item[0])
    for name, embed in parts:
        for key, value in builtin_tasks(embed, held, recipe.eval, per_item[name]).items():
            result[f"{key}_{name}"] = value
        for path, kind, items in parsed:
            for key, value in user_task(embed, kind, items, recipe.eval.seed).items():
                result[f"{path.stem}_{key}_{name}"] = value
        for task in benchmark:
            for key, value in se.run_task(embed, task, recipe.eval.seed).items():
                result[f"senteval_{task.name}_{key}_{name}"] = value
    # the trained encoder against the untrained one and its bag of words, on the same items (paired)
    result.update(paired_gains(per_item, "trained", ["untrained", "bow_trained"]))
    result["neighbours"] = nearest_neighbours(model.embed, held["pool"])
    if benchmark:
        result["senteval_table"] = se.table(result, [t.name for t in benchmark], list(embedders))
    return result


def nearest_neighbours(embed, sentences: list[str], queries: int = 5) -> list[dict[str, Any]]:
    """For ``queries`` held-out sentences spread through ``sentences`` (up to the first 2000), the nearest other
    one by cosine similarity of the embeddings: what the encoder counts as alike, to read."""
    pool = list(dict.fromkeys(sentences))[:2000]
    vectors = embed(pool)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out = []
    for i in np.linspace(0, len(pool) - 1, num=min(queries, len(pool)), dtype=int).tolist():
        similarity = vectors @ vectors[i]
        similarity[i] = -np.inf
        j = int(similarity.argmax())
        out.append({"sentence": pool[i], "nearest": pool[j], "cosine": round(float(similarity[j]), 4)})
    return out


def text_figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    from seqae import plots

    held = held_out_tasks(prepared, recipe.eval)
    if held["probe_labels"] is None:
        return []
    embeddings = model.embed(held["probe_sentences"])
    names = prepared.extra.corpus.document_names
    return [plots.code_map(embeddings, held["probe_labels"], out_dir / "embedding_map.png",
                           title="held-out sentence embeddings, by book", names=names),
            # with many books the first two principal components overlap; t-SNE keeps neighbours together
            plots.code_map(embeddings, held["probe_labels"], out_dir / "embedding_tsne.png", projection="tsne",
                           title="held-out sentence embeddings, by book (t-SNE)", names=names),
            plots.projector(embeddings, out_dir / "embeddings.npz", sentence=held["probe_sentences"],
                            book=[names[i] for i in held["probe_labels"]])]


@torch.no_grad()
def text_embed(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """One row per line of a UTF-8 text file (lines end at ``\n`` only; see :func:`read_text_lines`)."""
    return model.embed(text_lines(recipe, path))


def text_items(model: nn.Module, recipe: Recipe, source: Path | list[str]) -> tuple[list[str], np.ndarray]:
    """Search items: the sentences of a text file (or a list of sentences) and their embeddings."""
    lines = list(source) if isinstance(source, list) else text_lines(recipe, source)
    return lines, model.embed(lines)


def text_lines(recipe: Recipe, path: Path) -> list[str]:
    lines = read_text_lines(path, "text file (one sentence per line)")
    if not lines:
        raise DataError(f"{path}: empty file; give one sentence per line")
    for number, line in enumerate(lines, start=1):
        if len(line) > recipe.data.max_sentence_chars:
            raise DataError(f"{path}:{number}: a line of {len(line):,} characters, more than "
                            f"data.max_sentence_chars ({recipe.data.max_sentence_chars:,})")
    return lines
