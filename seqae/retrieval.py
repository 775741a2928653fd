"""Semantic search: the sentences of a collection nearest to each query by cosine similarity of their
embeddings (sentence-transformers' ``util.semantic_search`` contract)."""

from __future__ import annotations

import numpy as np
import torch


def semantic_search(query_embeddings, corpus_embeddings, top_k: int = 10, chunk: int = 4096) -> list[list[dict]]:
    """For each query row the ``top_k`` corpus rows by cosine similarity, best first.

    ``query_embeddings`` ``(q, dim)`` and ``corpus_embeddings`` ``(n, dim)`` (numpy arrays or tensors).
    Returns one list per query of ``{"corpus_id": int, "score": float}``, as sentence-transformers'
    ``util.semantic_search``. A zero row has cosine 0 with everything. Memory stays bounded: the corpus
    is scored ``chunk`` rows at a time.
    """
    q = torch.as_tensor(np.asarray(query_embeddings, dtype=np.float32))
    c = torch.as_tensor(np.asarray(corpus_embeddings, dtype=np.float32))
    if q.dim() != 2 or c.dim() != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"expected query (q, dim) and corpus (n, dim) embeddings, got {tuple(q.shape)} and {tuple(c.shape)}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    q = torch.nn.functional.normalize(q, dim=1)
    c = torch.nn.functional.normalize(c, dim=1)
    k = min(top_k, c.shape[0])
    best_scores = torch.full((q.shape[0], 0), float("-inf"))
    best_ids = torch.zeros((q.shape[0], 0), dtype=torch.long)
    for start in range(0, c.shape[0], chunk):
        scores = q @ c[start : start + chunk].T
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_ids = torch.cat([best_ids, torch.arange(start, start + scores.shape[1]).expand(q.shape[0], -1)], dim=1)
        best_scores, order = merged_scores.topk(min(k, merged_scores.shape[1]), dim=1)
        best_ids = merged_ids.gather(1, order)
    return [[{"corpus_id": int(i), "score": float(s)} for i, s in zip(ids, scores)]
            for ids, scores in zip(best_ids.tolist(), best_scores.tolist())]
