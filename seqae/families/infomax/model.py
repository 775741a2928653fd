"""Deep InfoMax (Hjelm et al. 2019, arXiv 1808.06670; reference code rdevon/DIM): an encoder trained so that
a discriminator can tell whether an (input, code) pair belongs together.

The encoder (the VQ-VAE's convolutional encoder) turns an image ``(B, 1, H, W)`` into a local feature map
``(B, local_dim, M, M)`` (``M = H / 2**downsample``) and that into the global code ``y`` ``(B, code_dim)``.
Two discriminators score pairs, each as a dot product of two small embeddings ("encode and dot", as in
DIM's local architecture), so every pair of the batch is scored at once:

- global: (a summary of the whole feature map of image i, the code of image j);
- local: (the feature at position m of image i, the code of image j), for every position.

Positives are the pairs of one image (i = j); negatives pair an image with the other codes of the batch
(of the global batch under DDP). The mutual-information estimator is ``model.estimator``, on scores
``T`` with positives P and negatives N:

- ``jsd`` (Jensen-Shannon, DIM's default): ``E_P[-softplus(-T)] - E_N[softplus(T)]``;
- ``infonce``: ``E_rows[T_pos - logsumexp_j T_j] + log(candidates)``, a lower bound on I at most
  log(candidates);
- ``dv`` (Donsker-Varadhan): ``E_P[T] - log E_N[exp(T)]``.

The loss is ``-(global_weight * MI_global + local_weight * MI_local)``. With ``prior_weight`` > 0 the codes
are also pushed towards a prior (``uniform`` on [0, 1], the code through a sigmoid; or ``gaussian``) by
an adversary that learns to tell prior samples from codes, in alternating phases through the Trainer's
phase hook (``prior`` then ``model``), the encoder paying ``prior_weight * softplus(-D(y))``.

An autoencoder's decoder is a special case of the discriminator: one that only ever sees positive pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.config import ConfigError, choice
from seqae.models.base import ModelOutput, Phase, Stage, single_stage
from seqae.nn.distributed import ddp_active, gather_rows
from seqae.nn.encoders import ConvEncoder

ESTIMATORS = ("jsd", "infonce", "dv")


@dataclass
class InfoMaxConfig:
    """``[model]`` for ``family = "infomax"``."""

    family: str = "infomax"
    input_dim: int = 0  # features per image; 0: taken from the data
    image_shape: list[int] = field(default_factory=list)  # (height, width); [] takes it from the data
    channels: int = 64  # convolution width
    downsample: int = 1  # the local feature map is the image divided by 2**downsample
    local_dim: int = 64  # channels of the local feature map
    code_dim: int = 64  # the global code
    hidden: int = 256  # width of the discriminators' embeddings
    estimator: str = choice("jsd", *ESTIMATORS, doc="the mutual-information estimator: jsd, infonce or dv")
    global_weight: float = 0.5  # alpha: the global term
    local_weight: float = 1.0  # beta: the local term
    prior_weight: float = 0.0  # gamma: prior matching (0: off)
    prior: str = choice("uniform", "uniform", "gaussian")

    def validate(self, where: str) -> None:
        if self.channels <= 0 or self.local_dim <= 0 or self.code_dim <= 0 or self.hidden <= 0 or self.downsample < 0:
            raise ConfigError(f"{where}: model.channels, local_dim, code_dim and hidden must be positive, model.downsample >= 0")
        if min(self.global_weight, self.local_weight, self.prior_weight) < 0:
            raise ConfigError(f"{where}: model.global_weight, local_weight and prior_weight must be >= 0")
        if self.global_weight == 0 and self.local_weight == 0:
            raise ConfigError(f"{where}: model.global_weight and model.local_weight are both 0: nothing to maximise")


def mi_estimate(scores: torch.Tensor, positive: torch.Tensor, estimator: str) -> torch.Tensor:
    """The estimate (nats) from ``scores`` ``(rows, candidates)``, one positive per row at column
    ``positive`` ``(rows,)``, every other column a negative."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    pos = scores[rows, positive]
    if estimator == "infonce":
        return (pos - torch.logsumexp(scores, dim=1)).mean() + math.log(scores.shape[1])
    negative = torch.ones_like(scores, dtype=torch.bool)
    negative[rows, positive] = False
    neg = scores[negative]
    if estimator == "jsd":
        return -F.softplus(-pos).mean() - F.softplus(neg).mean()
    if estimator == "dv":
        return pos.mean() - (torch.logsumexp(neg, dim=0) - math.log(neg.numel()))
    raise ValueError(f"unknown estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class InfoMax(nn.Module):
    """``forward(batch)`` takes ``{"x": (B, input_dim)}`` (flattened images); ``encode(x)``: ``(B, code_dim)``."""

    def __init__(self, config: InfoMaxConfig):
        super().__init__()
        self.config = config
        if len(config.image_shape) != 2 or config.image_shape[0] * config.image_shape[1] != config.input_dim:
            raise ValueError(f"model.image_shape {config.image_shape} does not hold model.input_dim = {config.input_dim} pixels")
        height, width = config.image_shape
        side = 2**config.downsample
        if height % side or width % side:
            raise ValueError(f"model.downsample = {config.downsample}: the image ({height} x {width}) must divide by {side}")
        positions = (height // side) * (width // side)
        flat = config.local_dim * positions
        self.encoder = ConvEncoder(1, config.channels, config.local_dim, config.downsample)
        self.to_code = mlp(flat, config.hidden, config.code_dim)
        self.global_x, self.global_y = mlp(flat, config.hidden, config.hidden), mlp(config.code_dim, config.hidden, config.hidden)
        self.local_x = nn.Sequential(nn.Conv2d(config.local_dim, config.hidden, 1), nn.ReLU(), nn.Conv2d(config.hidden, config.hidden, 1))
        self.local_y = mlp(config.code_dim, config.hidden, config.hidden)
        self.prior_critic = mlp(config.code_dim, config.hidden, 1) if config.prior_weight > 0 else None
        self.phase = "model"

    # -- encoding ------------------------------------------------------------------------------------

    def local_features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened images ``(B, input_dim)`` -> the local feature map ``(B, local_dim, M, M)``."""
        return self.encoder(x.reshape(x.shape[0], 1, *self.config.image_shape))

    def code(self, local: torch.Tensor) -> torch.Tensor:
        y = self.to_code(local.flatten(1))
        return torch.sigmoid(y) if self.prior_critic is not None and self.config.prior == "uniform" else y

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The global code ``(B, code_dim)`` of flattened images ``(B, input_dim)``."""
        return self.code(self.local_features(x))

    # -- training ------------------------------------------------------------------------------------

    def training_stages(self, steps: int) -> list[Stage]:
        if self.prior_critic is None:
            return single_stage(self, steps)
        critic = list(self.prior_critic.parameters())
        ids = {id(p) for p in critic}
        return [Stage("main", steps, [Phase("prior", critic), Phase("model", [p for p in self.parameters() if id(p) not in ids])])]

    def set_phase(self, stage: str, phase: str) -> None:
        self.phase = phase

    def prior_sample(self, like: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(like) if self.config.prior == "uniform" else torch.randn_like(like)

    def scores(self, local: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Global scores ``(B, N)``, local scores ``(B * M * M, N)`` against the ``N`` codes of the global
        batch, and each row's positive column."""
        codes = gather_rows(y, differentiable=True) if ddp_active() else y
        offset = 0
        if ddp_active():
            offset = int(gather_rows(torch.tensor([y.shape[0]], device=y.device))[: torch.distributed.get_rank()].sum())
        positive = torch.arange(y.shape[0], device=y.device) + offset
        global_scores = self.global_x(local.flatten(1)) @ self.global_y(codes).T
        features = self.local_x(local).flatten(2).transpose(1, 2)  # (B, M*M, hidden)
        local_scores = (features @ self.local_y(codes).T).reshape(-1, codes.shape[0])
        return global_scores, local_scores, positive

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        c = self.config
        local = self.local_features(batch["x"])
        y = self.code(local)
        if self.phase == "prior":  # the critic: prior samples are real, codes are fake
            real, fake = self.prior_critic(self.prior_sample(y)), self.prior_critic(y.detach())
            loss = F.softplus(-real).mean() + F.softplus(fake).mean()
            return ModelOutput(loss, {"critic_accuracy": ((real > 0).float().mean() + (fake < 0).float().mean()).detach() / 2})
        global_scores, local_scores, positive = self.scores(local, y)
        positions = local_scores.shape[0] // y.shape[0]
        mi_global = mi_estimate(global_scores, positive, c.estimator)
        mi_local = mi_estimate(local_scores, positive.repeat_interleave(positions), c.estimator)
        loss = -(c.global_weight * mi_global + c.local_weight * mi_local)
        accuracy = (global_scores.argmax(1) == positive).float().mean()
        metrics = {"mi_global": mi_global.detach(), "mi_local": mi_local.detach(), "accuracy": accuracy.detach()}
        if self.prior_critic is not None:
            fooling = F.softplus(-self.prior_critic(y)).mean()
            loss = loss + c.prior_weight * fooling
            metrics["prior_loss"] = fooling.detach()
        return ModelOutput(loss, metrics)
