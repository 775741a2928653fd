"""Few-label probes on frozen features: how well a representation serves a small labelled set.

For each feature set (codes of a trained encoder, the same encoder untrained, PCA, raw pixels), a linear
probe (:class:`~seqae.evaluation.linear.Probe`) and a k-nearest-neighbour classifier (cosine, k = 5) are
fitted on ``n`` labelled training examples per class and scored on the whole test split; each ``n`` is
drawn ``draws`` times, and the mean and standard deviation over the draws are reported. ``n = 0`` means
every training label (one draw).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqae.evaluation.linear import Probe


def labelled_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` examples of every class (all of a class that has fewer); all when 0."""
    if per_class == 0:
        return np.arange(len(labels))
    picks = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 5) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine").fit(train_x, train_y)
    return float((knn.predict(test_x) == test_y).mean())


def few_label_probes(features: dict[str, tuple[np.ndarray, np.ndarray]], train_y: np.ndarray, test_y: np.ndarray,
                     per_class: tuple[int, ...] = (10, 50, 0), draws: int = 5, seed: int = 0, max_iter: int = 1000) -> dict[str, Any]:
    """``features``: name -> (train features ``(n_train, d)``, test features ``(n_test, d)``). Returns
    ``{name}_{linear|knn}_{n|all}`` (mean accuracy) and the same with ``_sd``; every feature set sees the
    same labelled subsets."""
    result: dict[str, Any] = {}
    for n in per_class:
        rng = np.random.default_rng([seed, n])
        subsets = [labelled_subset(train_y, n, rng) for _ in range(1 if n == 0 else draws)]
        tag = "all" if n == 0 else str(n)
        for name, (train_x, test_x) in features.items():
            linear = [Probe(train_x[s], train_y[s], max_iter).accuracy(test_x, test_y) for s in subsets]
            knn = [knn_accuracy(train_x[s], train_y[s], test_x, test_y) for s in subsets]
            for kind, values in (("linear", linear), ("knn", knn)):
                result[f"{name}_{kind}_{tag}"] = float(np.mean(values))
                result[f"{name}_{kind}_{tag}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return result
