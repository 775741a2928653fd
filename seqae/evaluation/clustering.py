"""Clustering quality of discrete codes against labels (scikit-learn metrics)."""

from __future__ import annotations

import numpy as np


def purity(assign: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose label is the most frequent label of their cluster."""
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(labels, assign)
    return float(table.max(axis=0).sum() / table.sum())


def majority_mapping(assign: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Each cluster's most frequent label."""
    mapping = {}
    for cluster in np.unique(assign):
        mapping[int(cluster)] = int(np.bincount(labels[assign == cluster]).argmax())
    return mapping


def clustering_metrics(
    test_assign: np.ndarray, test_labels: np.ndarray, train_assign: np.ndarray, train_labels: np.ndarray
) -> dict[str, float]:
    """NMI, adjusted Rand index and purity on the test split, and the accuracy of mapping each cluster to
    its most frequent training label (a cluster never seen in training counts as wrong)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    mapping = majority_mapping(train_assign, train_labels)
    predicted = np.array([mapping.get(int(c), -1) for c in test_assign])
    return {
        "nmi": float(normalized_mutual_info_score(test_labels, test_assign)),
        "ari": float(adjusted_rand_score(test_labels, test_assign)),
        "purity": purity(test_assign, test_labels),
        "mapping_accuracy": float((predicted == test_labels).mean()),
        "clusters_used": int(len(np.unique(test_assign))),
    }


def kmeans_baseline(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int, seed: int = 0
) -> dict[str, float]:
    """The same figures for k-means on the raw input with ``k`` clusters."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(train_x)
    return clustering_metrics(km.predict(test_x), test_y, km.labels_, train_y)
