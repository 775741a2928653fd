"""Sentence-embedding evaluation: user task files and the built-in held-out tasks, each figure beside
the same encoder untrained and bag-of-words baselines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqae.config import ConfigError
from seqae.datasets.base import DataError, read_text_lines

Embedder = Callable[[list[str]], np.ndarray]


@dataclass
class SentenceEvalConfig:
    """``[eval]`` for the sentence encoders."""

    probe_sentences: int = 2000  # held-out sentences for the which-book probe
    retrieval_queries: int = 5000  # held-out sentences whose next sentence is retrieved (at most; all there are by default)
    candidates: int = 100  # the true next sentence among this many
    folds: int = 5  # cross-validation folds of the which-book probe
    seed: int = 0

    def validate(self, where: str) -> None:
        if self.candidates < 2 or self.folds < 2:
            raise ConfigError(f"{where}: eval.candidates and eval.folds must be at least 2")


def read_task(path: str | Path) -> tuple[str, list]:
    """Read a task file: ``label<TAB>sentence`` (classification), ``score<TAB>s1<TAB>s2`` (similarity)
    or ``label<TAB>s1<TAB>s2`` (pair classification, e.g. paraphrase or entailment).

    Three fields make a similarity file when the first line's first field is a number, and a
    pair-classification file when it is a name (write pair labels as names, e.g. ``yes``/``no``, not 0/1).
    Lines end at ``\n`` only (:func:`~seqae.datasets.base.read_text_lines`). Returns
    ``("classification", [(label, sentence)])``, ``("similarity", [(score, s1, s2)])`` or
    ``("pairs", [(label, s1, s2)])``. A malformed line (a missing field, a score that is not a finite
    number, a fractional class label) is an error naming the file and the line; so is a task too small
    to evaluate (a class with one example, fewer than three scored pairs, scores that are all equal).
    """
    path = Path(path)
    lines = read_text_lines(path, "task file")
    rows = [(i, line.split("\t")) for i, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise DataError(f"{path}: the task file is empty")
    if len(rows[0][1]) == 2:
        items = [classification_row(path, number, fields) for number, fields in rows]
        check_classification(path, items)
        return "classification", items
    if len(rows[0][1]) == 3 and not is_number(rows[0][1][0]):
        items = [pair_row(path, number, fields) for number, fields in rows]
        check_classification(path, [(label, a) for label, a, _ in items])
        return "pairs", items
    items = [similarity_row(path, number, fields) for number, fields in rows]
    if len(items) < 3:
        raise DataError(f"{path}: {len(items)} scored pair(s); a similarity task needs at least 3 to correlate")
    if len({score for score, _, _ in items}) < 2:
        raise DataError(f"{path}: every pair has the same score; a correlation with the scores is undefined")
    return "similarity", items


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def pair_row(path: Path, number: int, fields: list[str]) -> tuple[str, str, str]:
    if len(fields) != 3 or not all(f.strip() for f in fields):
        raise DataError(f"{path}:{number}: expected label<TAB>sentence1<TAB>sentence2 (a pair-classification file, "
                        f"from line 1), got {len(fields)} field(s)")
    return fields[0].strip(), fields[1].strip(), fields[2].strip()


def classification_row(path: Path, number: int, fields: list[str]) -> tuple[str, str]:
    if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
        raise DataError(f"{path}:{number}: expected label<TAB>sentence (a classification file, from line 1), "
                        f"got {len(fields)} field(s)")
    label = fields[0].strip()
    try:
        value = float(label)
    except ValueError:
        value = None
    if value is not None and not float(value).is_integer():
        raise DataError(f"{path}:{number}: the label {label!r} is a fractional number; a classification file takes class "
                        "labels (names or integers); for scores write score<TAB>sentence1<TAB>sentence2")
    return label, fields[1].strip()


def similarity_row(path: Path, number: int, fields: list[str]) -> tuple[float, str, str]:
    if len(fields) != 3 or not fields[1].strip() or not fields[2].strip():
        raise DataError(f"{path}:{number}: expected score<TAB>sentence1<TAB>sentence2 (a similarity file, from line 1)")
    try:
        score = float(fields[0])
    except ValueError:
        raise DataError(f"{path}:{number}: the score {fields[0]!r} is not a number") from None
    if not np.isfinite(score):
        raise DataError(f"{path}:{number}: the score {fields[0].strip()!r} is not a finite number")
    return score, fields[1].strip(), fields[2].strip()


def check_classification(path: Path, items: list[tuple[str, str]]) -> None:
    labels, counts = np.unique([label for label, _ in items], return_counts=True)
    if len(labels) < 2:
        raise DataError(f"{path}: a classification task needs at least 2 labels, found {len(labels)}")
    if counts.min() < 2:
        rare = str(labels[counts.argmin()])
        raise DataError(f"{path}: the label {rare!r} has {int(counts.min())} example; cross-validation needs at least 2 of "
                        "every label")


def probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> float:
    """Cross-validated accuracy of logistic regression on standardised frozen features."""
    return probe_predictions(features, labels, folds, seed)["accuracy"]


def probe_predictions(features: np.ndarray, labels: np.ndarray, folds: int, seed: int,
                      groups: np.ndarray | None = None) -> dict[str, float]:
    """Cross-validated logistic regression on standardised frozen features: ``accuracy`` (every item
    predicted once, by the fold that did not train on it) and its standard error ``accuracy_se``
    (``std(correct) / sqrt(n)``); ``correct``: the per-item 0/1 array.

    ``groups`` (e.g. the chapter of each item) keep a group's items in one fold, so that the probe is
    tested on chapters it never saw, not on the neighbours of sentences it was fitted on.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    from seqae.evaluation.linear import linear_classifier

    counts = np.unique(labels, return_counts=True)[1]
    folds = max(2, min(folds, int(counts.min())))
    clf = linear_classifier(max_iter=1000)
    if groups is not None and len(np.unique(groups)) >= 2:
        cv = StratifiedGroupKFold(n_splits=min(folds, len(np.unique(groups))), shuffle=True, random_state=seed)
        predicted = cross_val_predict(clf, features, labels, cv=cv, groups=groups)
    else:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        predicted = cross_val_predict(clf, features, labels, cv=cv)
    correct = (predicted == labels).astype(float)
    return {"accuracy": float(correct.mean()), "accuracy_se": float(correct.std(ddof=1) / np.sqrt(len(correct))),
            "correct": correct}


def sentence_order(embed: Embedder, firsts: list[str], seconds: list[str], folds: int, seed: int,
                   groups: np.ndarray | None = None) -> dict[str, float]:
    """Which of two consecutive sentences comes first: half the pairs (chosen at random) are swapped, and
    a logistic regression on ``[u; v; |u-v|; u*v]`` says whether they were (chance 0.5).

    A probe that recognises sentences, or their neighbours, learns nothing about order but is wrong on
    purpose: pairs (a, b) and (b, c) put ``b`` in opposite places (below chance, 0.42 measured). So only
    pairs that share no sentence are used, and ``groups`` (the pairs' chapters) keep a chapter's pairs in
    one fold.
    """
    seen: set[str] = set()
    kept = []
    for k, (a, b) in enumerate(zip(firsts, seconds)):
        if a not in seen and b not in seen and a != b:
            kept.append(k)
            seen.update((a, b))
    rng = np.random.default_rng(seed)
    swap = rng.random(len(kept)) < 0.5
    a, b = embed([firsts[k] for k in kept]), embed([seconds[k] for k in kept])
    u, v = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    features = np.concatenate([u, v, np.abs(u - v), u * v], axis=1)
    kept_groups = None if groups is None else np.asarray(groups)[kept]
    result = probe_predictions(features, swap.astype(int), folds, seed, kept_groups)
    return {**result, "pairs": len(kept)}


def classification_task(embed: Embedder, items, folds: int = 10, seed: int = 0) -> dict[str, float]:
    labels_text = [label for label, _ in items]
    classes = {c: i for i, c in enumerate(sorted(set(labels_text)))}
    labels = np.array([classes[c] for c in labels_text])
    return {"accuracy": probe_accuracy(embed([s for _, s in items]), labels, folds, seed)}


def pair_classification_task(embed: Embedder, items, folds: int = 10, seed: int = 0) -> dict[str, float]:
    """Cross-validated logistic regression on SentEval's pair features ``[|u-v|; u*v]``."""
    labels_text = [label for label, _, _ in items]
    classes = {c: i for i, c in enumerate(sorted(set(labels_text)))}
    a, b = embed([s for _, s, _ in items]), embed([s for _, _, s in items])
    features = np.concatenate([np.abs(a - b), a * b], axis=1)
    return {"accuracy": probe_accuracy(features, np.array([classes[c] for c in labels_text]), folds, seed)}


def user_task(embed: Embedder, kind: str, items, seed: int = 0) -> dict[str, float]:
    """The figures of one task file read by :func:`read_task`."""
    if kind == "classification":
        return classification_task(embed, items, folds=10, seed=seed)
    if kind == "pairs":
        return pair_classification_task(embed, items, folds=10, seed=seed)
    return similarity_task(embed, items)


def similarity_task(embed: Embedder, items) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    a = embed([s for _, s, _ in items])
    b = embed([s for _, _, s in items])
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
    scores = np.array([score for score, _, _ in items])
    return {"spearman": float(spearmanr(cosine, scores).statistic), "pearson": float(pearsonr(cosine, scores).statistic)}


def retrieval(embed: Embedder, queries: list[str], nexts: list[str], pool: list[str], candidates: int,
              per_query: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Rank each query's true next sentence among ``candidates`` (it and ``candidates - 1`` distractors
    drawn at random from ``pool``) by cosine similarity of the embeddings; recall@1 and mean reciprocal
    rank.

    The figures are the exact expectations over the random draw of distractors, not one draw: if ``h`` of
    a query's ``M`` allowed pool sentences score above its true next sentence, the number of them among
    ``m = candidates - 1`` distractors is hypergeometric, so recall@1 = P(none drawn) and the reciprocal
    rank is E[1 / (1 + drawn)]. Only the choice of queries is left to chance. ``per_query``, when given,
    receives the per-query arrays (``recall_at_1``, ``mrr``).
    """
    from scipy.stats import hypergeom

    q = embed(queries)
    n = embed(nexts)
    p = embed(pool)
    normalise = lambda m: m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-9)  # noqa: E731
    q, n, p = normalise(q), normalise(n), normalise(p)
    pool_arr = np.array(pool, dtype=object)
    m = candidates - 1
    recall, reciprocal = [], []
    for i in range(len(queries)):
        # distractors: other pool sentences, never the query itself or its true next sentence
        allowed = (pool_arr != queries[i]) & (pool_arr != nexts[i])
        total = int(allowed.sum())
        if total < m:
            raise ValueError(f"{total} pool sentences allowed as distractors, fewer than candidates - 1 = {m}")
        higher = int(((p[allowed] @ q[i]) > float(q[i] @ n[i])).sum())
        x = np.arange(0, min(higher, m) + 1)
        probs = hypergeom(total, higher, m).pmf(x)
        recall.append(float(probs[0]))
        reciprocal.append(float((probs / (1 + x)).sum()))
    if per_query is not None:
        per_query.update(recall_at_1=np.array(recall), mrr=np.array(reciprocal))
    se = lambda values: float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")  # noqa: E731
    return {"recall_at_1": float(np.mean(recall)), "mrr": float(np.mean(reciprocal)),
            "recall_at_1_se": se(recall), "mrr_se": se(reciprocal)}


def builtin_tasks(embed: Embedder, held_out: dict[str, Any], config: SentenceEvalConfig,
                  items: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """The built-in tasks on held-out chapters, each with its standard error (``*_se``).

    ``held_out``: ``probe_sentences`` with ``probe_labels`` (their document; None for one document) and
    ``probe_authors`` (None unless there are at least two authors and fewer authors than documents);
    ``queries``/``nexts``/``pool``; ``probe_groups`` and ``query_groups`` (their chapters: the probes are
    cross-validated across chapters, never within one). Figures: ``book_accuracy`` (which document, a linear probe),
    ``author_accuracy``, ``next_recall_at_1``/``next_mrr`` (the true next sentence among
    ``config.candidates``), ``order_accuracy`` (which of two consecutive sentences comes first).
    ``items``, when given, receives each figure's per-item values (for paired comparisons of encoders).
    """
    result = {}
    items = {} if items is None else items
    probe = embed(held_out["probe_sentences"]) if held_out["probe_labels"] is not None else None
    tasks = [("book_accuracy", "probe_labels"), ("author_accuracy", "probe_authors")]
    for name, labels in tasks:
        if probe is not None and held_out.get(labels) is not None:
            found = probe_predictions(probe, held_out[labels], config.folds, config.seed, held_out.get("probe_groups"))
            result.update({name: found["accuracy"], f"{name}_se": found["accuracy_se"]})
            items[name] = found["correct"]
    per_query: dict[str, np.ndarray] = {}
    found = retrieval(embed, held_out["queries"], held_out["nexts"], held_out["pool"], config.candidates, per_query)
    result.update({f"next_{k}": v for k, v in found.items()})
    items.update({f"next_{k}": v for k, v in per_query.items()})
    order = sentence_order(embed, held_out["queries"], held_out["nexts"], config.folds, config.seed, held_out.get("query_groups"))
    result.update(order_accuracy=order["accuracy"], order_accuracy_se=order["accuracy_se"], order_pairs=order["pairs"])
    items["order_accuracy"] = order["correct"]
    return result


def paired_gains(items: dict[str, dict[str, np.ndarray]], base: str, others: list[str]) -> dict[str, float]:
    """``{figure}_gain_over_{other}`` (``base`` minus ``other``, on the same items) and its paired
    standard error ``{figure}_gain_over_{other}_se`` for every figure both embedders have."""
    result = {}
    for other in others:
        for figure, values in items[base].items():
            if figure in items.get(other, {}) and len(values) > 1:
                diff = values - items[other][figure]
                result[f"{figure}_gain_over_{other}"] = float(diff.mean())
                result[f"{figure}_gain_over_{other}_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return result
