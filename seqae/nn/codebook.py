"""Codebook helpers of the quantisers: k-means initialisation and usage statistics (perplexity, share
of codes used, dead codes), per batch or accumulated over a pass (:class:`CodebookUsage`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def usage_metrics(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Perplexity and the share of the codebook used, from per-code counts ``(codebook_size,)``."""
    total = counts.sum().clamp_min(1)
    probs = counts / total
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return {"perplexity": entropy.exp(), "codebook_usage": (counts > 0).float().mean()}


class CodebookUsage:
    """Accumulates code counts over a whole evaluation pass (not only one batch)."""

    def __init__(self, codebook_size: int):
        self.counts = torch.zeros(codebook_size, dtype=torch.float64)

    def update(self, codes: torch.Tensor) -> None:
        self.counts += torch.bincount(codes.reshape(-1).cpu(), minlength=len(self.counts)).double()

    def result(self) -> dict[str, float]:
        metrics = usage_metrics(self.counts)
        return {
            "perplexity": float(metrics["perplexity"]),
            "codebook_usage": float(metrics["codebook_usage"]),
            "codes_used": int((self.counts > 0).sum()),
            "codebook_size": len(self.counts),
        }


def kmeans(x: torch.Tensor, k: int, iters: int, cosine: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on ``x`` ``(n, dim)``; returns ``(k, dim)`` centroids.

    Starts from k distinct random rows (with repeats only if n < k); an empty cluster keeps its
    previous centroid.
    """
    n = x.shape[0]
    if n >= k:
        idx = torch.randperm(n, generator=generator, device="cpu")[:k]
    else:
        idx = torch.randint(0, n, (k,), generator=generator, device="cpu")
    centroids = x[idx.to(x.device)].clone()
    for _ in range(iters):
        if cosine:
            assign = (F.normalize(x, dim=-1) @ F.normalize(centroids, dim=-1).t()).argmax(dim=1)
        else:
            assign = torch.cdist(x, centroids).argmin(dim=1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids
