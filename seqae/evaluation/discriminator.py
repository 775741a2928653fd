"""Is a code representative of its input? A fresh discriminator is fitted on training pairs (input, its
code) against (input, another input's code), and judged on held-out inputs.

The discriminator scores a pair by the cosine similarity of two small embeddings, one of the
(standardised) input and one of the (standardised) code, at temperature 0.1, so a batch's every pairing
is scored at once; it is trained with binary cross-entropy (each input's own code the positive, a
shuffled code the negative) plus InfoNCE (its own code among the batch's). Reported on the test split:
the AUROC of own-code against shuffled-code scores, the accuracy at score 0, the share of inputs whose
own code scores highest among ``candidates`` (chance ``1 / candidates``), and the InfoNCE lower bound on
I(input; code) in nats over batches of ``candidates`` test inputs, with its ceiling ``log(candidates)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqae.datasets.base import DataError

MIN_TEST = 16


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    return torch.from_numpy(((train - mean) / std).astype(np.float32)), torch.from_numpy(((test - mean) / std).astype(np.float32))


class PairScorer(nn.Module):
    """``scores(x (B, dx), c (N, dc)) -> (B, N)``: every input against every code."""

    def __init__(self, x_dim: int, c_dim: int, hidden: int):
        super().__init__()
        self.x = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.c = nn.Sequential(nn.Linear(c_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # cosine similarity of the embeddings at temperature 0.1: scores in [-10, 10], so a critic that is
        # overconfident on held-out pairs cannot drive the InfoNCE bound to minus infinity
        return 10.0 * F.normalize(self.x(x), dim=1) @ F.normalize(self.c(c), dim=1).T


def fit_scorer(x: torch.Tensor, c: torch.Tensor, steps: int, hidden: int, seed: int, batch: int = 128) -> PairScorer:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    scorer = PairScorer(x.shape[1], c.shape[1], hidden)
    optimizer = torch.optim.Adam(scorer.parameters(), lr=1e-3)
    for _ in range(steps):
        pick = torch.randint(len(x), (min(batch, len(x)),), generator=generator)
        scores = scorer(x[pick], c[pick])
        shuffled = torch.roll(torch.arange(len(pick)), 1)
        pos, neg = scores.diagonal(), scores[torch.arange(len(pick)), shuffled]
        # binary cross-entropy (own code against a shuffled one) for calibrated scores, and InfoNCE (own code
        # among the batch's) so that the held-out bound is tight
        infonce = F.cross_entropy(scores, torch.arange(len(pick)))
        loss = F.softplus(-pos).mean() + F.softplus(neg).mean() + infonce
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return scorer.eval()


@torch.no_grad()
def judge(scorer: PairScorer, x: torch.Tensor, c: torch.Tensor, candidates: int, seed: int) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, c = x[order], c[order]
    pos = torch.cat([scorer(x[i : i + 1], c[i : i + 1])[0] for i in range(len(x))])
    neg = (scorer(x, c[torch.roll(torch.arange(len(x)), 1)])).diagonal()
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    bounds, top = [], []
    for start in range(0, len(x) - candidates + 1, candidates):
        scores = scorer(x[start : start + candidates], c[start : start + candidates])
        bounds.append(float((scores.diagonal() - torch.logsumexp(scores, 1)).mean()) + math.log(candidates))
        top.append(float((scores.argmax(1) == torch.arange(candidates)).float().mean()))
    return {"auroc": float(roc_auc_score(labels, torch.cat([pos, neg]).numpy())),
            "accuracy": float(((pos > 0).float().mean() + (neg < 0).float().mean()) / 2),
            "own_code_first": float(np.mean(top)), "infonce_nats": float(np.mean(bounds)),
            "infonce_ceiling_nats": math.log(candidates)}


def discriminator_evaluation(codes: dict[str, tuple[np.ndarray, np.ndarray]], train_x: np.ndarray, test_x: np.ndarray,
                             seed: int = 0, steps: int = 500, hidden: int = 128, candidates: int = 128) -> dict[str, float]:
    """``codes``: name -> (train codes ``(n_train, d)``, test codes ``(n_test, d)``) of the inputs
    ``train_x`` / ``test_x``. Returns ``discriminator_{name}_{auroc|accuracy|infonce_nats}`` and the ceiling."""
    if len(test_x) < MIN_TEST:
        raise DataError(f"{len(test_x)} test inputs: the discriminator evaluation needs at least {MIN_TEST}; use a larger test split")
    candidates = min(candidates, len(test_x))
    x_train, x_test = standardise(train_x, test_x)
    result: dict[str, float] = {}
    for name, (train_c, test_c) in codes.items():
        c_train, c_test = standardise(train_c, test_c)
        scorer = fit_scorer(x_train, c_train, steps, hidden, seed)
        for key, value in judge(scorer, x_test, c_test, candidates, seed).items():
            result[f"discriminator_{key}" if key == "infonce_ceiling_nats" else f"discriminator_{name}_{key}"] = value
    return result
