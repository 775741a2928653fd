"""Search by code: the items of a collection nearest to each query, by cosine similarity or Euclidean
distance of their vectors (cosine: sentence-transformers' ``util.semantic_search`` contract); a cached
index of a collection's vectors; and retrieval precision and mean average precision by label."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from seqae.atomic import atomic_write

METRICS = ("cosine", "euclidean")
INDEX_FORMAT = "seqae-index/1"


def nearest(query_vectors, index_vectors, top_k: int = 10, metric: str = "cosine", chunk: int = 4096) -> list[list[dict]]:
    """For each query row the ``top_k`` index rows, best first.

    ``query_vectors`` ``(q, dim)`` and ``index_vectors`` ``(n, dim)`` (numpy arrays or tensors). Returns one
    list per query of ``{"corpus_id": int, "score": float}``: cosine similarity (a zero row has cosine 0
    with everything) or, for ``metric="euclidean"``, minus the Euclidean distance, so higher is nearer
    either way. Memory stays bounded: the index is scored ``chunk`` rows at a time.
    """
    q = torch.as_tensor(np.asarray(query_vectors, dtype=np.float32))
    c = torch.as_tensor(np.asarray(index_vectors, dtype=np.float32))
    if q.dim() != 2 or c.dim() != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"expected query (q, dim) and index (n, dim) vectors, got {tuple(q.shape)} and {tuple(c.shape)}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if metric == "cosine":
        q, c = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(c, dim=1)
    k = min(top_k, c.shape[0])
    best_scores = torch.full((q.shape[0], 0), float("-inf"))
    best_ids = torch.zeros((q.shape[0], 0), dtype=torch.long)
    for start in range(0, c.shape[0], chunk):
        block = c[start : start + chunk]
        scores = q @ block.T if metric == "cosine" else -torch.cdist(q.double(), block.double()).float()
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_ids = torch.cat([best_ids, torch.arange(start, start + scores.shape[1]).expand(q.shape[0], -1)], dim=1)
        best_scores, order = merged_scores.topk(min(k, merged_scores.shape[1]), dim=1)
        best_ids = merged_ids.gather(1, order)
    return [[{"corpus_id": int(i), "score": float(s)} for i, s in zip(ids, scores)]
            for ids, scores in zip(best_ids.tolist(), best_scores.tolist())]


def semantic_search(query_embeddings, corpus_embeddings, top_k: int = 10, chunk: int = 4096) -> list[list[dict]]:
    """Cosine :func:`nearest`, as sentence-transformers' ``util.semantic_search``."""
    return nearest(query_embeddings, corpus_embeddings, top_k, "cosine", chunk)


def label_retrieval(query_vectors: np.ndarray, query_labels: np.ndarray, index_vectors: np.ndarray, index_labels: np.ndarray,
                    k: int = 10, metric: str = "cosine", chunk: int = 256) -> dict[str, float]:
    """Each query against the whole index, ranked by ``metric``: ``precision_at_{k}`` (the share of the k
    nearest items with the query's label) and ``map`` (mean over queries of the average precision of the
    full ranking, the items of the query's label being the relevant ones), both averaged over queries.
    Queries are ranked ``chunk`` at a time, so memory stays ``chunk x index size``."""
    c = torch.as_tensor(np.asarray(index_vectors, dtype=np.float32))
    if metric == "cosine":
        c = torch.nn.functional.normalize(c, dim=1)
    index_labels, query_labels = np.asarray(index_labels), np.asarray(query_labels)
    ranks = np.arange(1, len(c) + 1)
    precision, average_precision = [], []
    for start in range(0, len(query_vectors), chunk):
        q = torch.as_tensor(np.asarray(query_vectors[start : start + chunk], dtype=np.float32))
        scores = torch.nn.functional.normalize(q, dim=1) @ c.T if metric == "cosine" else -torch.cdist(q, c)
        # ties broken by index order, the same for every feature set (stable sort)
        order = torch.sort(-scores, dim=1, stable=True).indices.numpy()
        relevant = index_labels[order] == query_labels[start : start + chunk, None]  # (chunk, n) in rank order
        hits = np.cumsum(relevant, axis=1)
        average_precision.append((relevant * hits / ranks).sum(1) / np.maximum(relevant.sum(1), 1))
        precision.append(relevant[:, :k].mean(1))
    return {f"precision_at_{k}": float(np.concatenate(precision).mean()), "map": float(np.concatenate(average_precision).mean())}


def collection_digest(path: Path) -> str:
    """SHA-256 of a collection file's bytes; for a folder, of its files' relative paths, sizes and
    modification times."""
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = item.stat()
            digest.update(f"{item.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_index(path: Path) -> tuple[dict, list[str], np.ndarray]:
    """``(meta, names, vectors)`` of an index file; anything else is a ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            names, vectors = [str(n) for n in data["names"]], np.asarray(data["vectors"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path}: not a seqae index ({error}); give another --index-file or remove this file") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT or len(names) != len(vectors):
        raise ValueError(f"{path}: not a seqae index ({INDEX_FORMAT}); give another --index-file or remove this file")
    return meta, names, vectors


def cached_index(collection: Path, index_file: Path, run: str, weights: str, build: Callable[[], tuple[list[str], np.ndarray]],
                 rebuild: bool = False) -> tuple[list[str], np.ndarray, bool]:
    """The collection's ``(names, vectors)`` from ``index_file`` when it was built by the run ``run`` with
    the weights ``weights`` (a digest) from the same collection; else built with ``build()`` and written
    there. Returns ``(names, vectors, built)``.

    An index of the same run whose collection or weights changed is rebuilt (it is this run's cache); one
    written by another run, or a file that is no seqae index, is a ValueError unless ``rebuild`` (nothing
    of the user's is overwritten unasked)."""
    digest = collection_digest(collection)
    if index_file.exists() and not rebuild:
        meta, names, vectors = read_index(index_file)
        if meta.get("run") != run:
            raise ValueError(f"{index_file}: built by another run ({meta.get('run')}); pass --rebuild to replace it, "
                             "or --index-file to keep it and write this run's index elsewhere")
        if meta.get("collection") == digest and meta.get("weights") == weights:
            return names, vectors, False
    names, vectors = build()
    vectors = np.asarray(vectors, np.float32)
    buffer = io.BytesIO()
    meta = {"format": INDEX_FORMAT, "run": run, "weights": weights, "collection": digest, "collection_path": str(collection)}
    np.savez(buffer, meta=np.array(json.dumps(meta)), names=np.array(names, dtype=str), vectors=vectors)
    atomic_write(index_file, buffer.getvalue())
    return names, vectors, True
