"""Contrastive predictive coding for audio (van den Oord et al. 2018, arXiv 1807.03748).

A strided convolutional encoder turns the raw waveform into frames z_t (strides 5, 4, 2, 2, 2: one frame
per 160 samples, 10 ms at 16 kHz); a GRU (or LSTM) summarises z_1..z_t into the context c_t; one linear
predictor W_k per future step k scores the true future frame z_{t+k} against negatives with InfoNCE
(paper eq. 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.config import ConfigError, choice
from seqae.models.base import ModelOutput

NEGATIVE_MODES = ("same_speaker", "any_speaker", "same_sequence")


@dataclass
class CPCConfig:
    """``[model]`` for ``family = "cpc"``."""

    family: str = "cpc"
    channels: int = 256  # encoder width (512 in the paper)
    strides: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])
    kernels: list[int] = field(default_factory=lambda: [10, 8, 4, 4, 4])
    context: str = choice("gru", "gru", "lstm")
    context_dim: int = 256
    prediction_steps: int = 12  # K
    negatives: int = 128
    # where negatives come from, for each (utterance b, time t) of a batch:
    #   same_speaker:  frames of the batch's utterances by b's speaker (b's own included), any time;
    #   any_speaker:   frames of any utterance in the batch, any time;
    #   same_sequence: frames of utterance b itself, any time.
    negative_sampling: str = choice("same_speaker", *NEGATIVE_MODES)
    # how often negatives are drawn: "frame", a fresh set for every (utterance, time), as in the paper;
    # "sequence", one set per utterance shared by all its time steps (the same distribution, drawn from
    # the same frames, at a fraction of the gather and scoring cost: about 1.45x faster steps on the CPU)
    negative_draws: str = choice("frame", "frame", "sequence")
    # normalisation in the encoder. Once, on each output frame over its channels: "layer" (no
    # parameters), "layer_affine" (a learned scale and shift per channel), or "none" (the paper).
    # Or "batch": BatchNorm1d after every convolution, before its ReLU (statistics of the batch in
    # training, running ones at inference), and none at the end.
    encoder_norm: str = choice("layer", "layer", "layer_affine", "none", "batch")

    def validate(self, where: str) -> None:
        if len(self.strides) != len(self.kernels) or not self.strides:
            raise ConfigError(f"{where}: model.strides and model.kernels must be lists of the same length")
        if self.prediction_steps < 1 or self.negatives < 1:
            raise ConfigError(f"{where}: model.prediction_steps and model.negatives must be positive")

    @property
    def hop(self) -> int:
        hop = 1
        for s in self.strides:
            hop *= s
        return hop

    @property
    def receptive_field(self) -> int:
        field_, jump = 1, 1
        for k, s in zip(self.kernels, self.strides):
            field_ += (k - 1) * jump
            jump *= s
        return field_


class WaveEncoder(nn.Module):
    """Waveform ``(batch, samples)`` -> frames ``(batch, frames, channels)``, frames =
    (samples - receptive_field) // hop + 1. ReLU after every convolution. ``encoder_norm``: each output
    frame normalised over its channels (a LayerNorm without or with affine parameters) or not at all; or
    a batch norm after every convolution and none at the end."""

    def __init__(self, config: CPCConfig):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for k, s in zip(config.kernels, config.strides):
            layers.append(nn.Conv1d(in_ch, config.channels, k, stride=s, padding=0))
            if config.encoder_norm == "batch":
                layers.append(nn.BatchNorm1d(config.channels))
            layers.append(nn.ReLU())
            in_ch = config.channels
        self.net = nn.Sequential(*layers)
        if config.encoder_norm in ("layer", "layer_affine"):
            self.norm = nn.LayerNorm(config.channels, elementwise_affine=config.encoder_norm == "layer_affine")
        else:
            self.norm = nn.Identity()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(wave[:, None, :]).transpose(1, 2))


class CPC(nn.Module):
    """``forward(batch)`` takes ``{"wave": (B, samples), "speaker": (B,)}``; metrics include the InfoNCE
    accuracy at every prediction step k (``accuracy_k1`` ... ``accuracy_kK``).

    ``features(wave, kind)``: ``"c"`` (context) or ``"z"`` (encoder) frames ``(B, frames, dim)``.
    """

    def __init__(self, config: CPCConfig):
        super().__init__()
        self.config = config
        self.encoder = WaveEncoder(config)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[config.context]
        self.context = rnn(config.channels, config.context_dim, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(config.context_dim, config.channels) for _ in range(config.prediction_steps))

    def frames(self, samples: int) -> int:
        return max(0, (samples - self.config.receptive_field) // self.config.hop + 1)

    def check_input(self, wave: torch.Tensor) -> None:
        if wave.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), got {tuple(wave.shape)}")
        if self.frames(wave.shape[1]) < 1:
            raise ValueError(f"{wave.shape[1]} samples: shorter than one frame ({self.config.receptive_field} samples)")

    def features(self, wave: torch.Tensor, kind: str = "c") -> torch.Tensor:
        self.check_input(wave)
        z = self.encoder(wave)
        if kind == "z":
            return z
        if kind != "c":
            raise ValueError(f"kind must be 'c' or 'z', got {kind!r}")
        return self.context(z)[0]

    def negative_indices(self, speaker: torch.Tensor, batch: int, frames: int, draws: int | None = None) -> torch.Tensor:
        """Flat indices into the batch's ``batch * frames`` frames: ``(batch, draws, negatives)``, one set
        of negatives per draw (``draws`` = ``frames`` by default: one per time step)."""
        n = self.config.negatives
        d = frames if draws is None else draws
        device = speaker.device
        mode = self.config.negative_sampling
        if mode == "any_speaker":
            return torch.randint(0, batch * frames, (batch, d, n), device=device)
        if mode == "same_sequence":
            rows = torch.arange(batch, device=device)[:, None, None] * frames
            return rows + torch.randint(0, frames, (batch, d, n), device=device)
        # same speaker: pick a random utterance of b's speaker, then a random time in it
        same = speaker[:, None] == speaker[None, :]  # (B, B), the diagonal is True
        choice_of_row = torch.multinomial(same.float(), d * n, replacement=True).view(batch, d, n)
        return choice_of_row * frames + torch.randint(0, frames, (batch, d, n), device=device)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        wave = batch["wave"]
        self.check_input(wave)
        z = self.encoder(wave)  # (B, T, C)
        c = self.context(z)[0]  # (B, T, D)
        b, t, ch = z.shape
        k_max = self.config.prediction_steps
        if t <= k_max:
            raise ValueError(f"segments of {t} frames are too short to predict {k_max} steps ahead")
        speaker = batch.get("speaker", torch.zeros(b, dtype=torch.long, device=wave.device))
        draws = t if self.config.negative_draws == "frame" else 1
        indices = self.negative_indices(speaker, b, t, draws)  # (B, draws, N)
        predictions = torch.stack([p(c) for p in self.predictors], dim=2)  # (B, T, K, C)
        negative_scores = negative_scores_of(predictions, z, indices)  # (B, T, K, N)
        losses, metrics = [], {}
        for k in range(1, k_max + 1):
            prediction = predictions[:, : t - k, k - 1]  # (B, T-k, C): W_k c_t
            positive = (prediction * z[:, k:]).sum(-1, keepdim=True)  # (B, T-k, 1): z_{t+k}
            negative = negative_scores[:, : t - k, k - 1]  # (B, T-k, N)
            logits = torch.cat([positive, negative], dim=-1)  # the true future is class 0
            target = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
            losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)))
            # correct only when the true future scores strictly above every negative: a tie (a collapsed
            # encoder scores everything 0) is not a hit, as argmax == 0 would count it
            metrics[f"accuracy_k{k}"] = (positive.squeeze(-1) > negative.max(-1).values).float().mean().detach()
        loss = torch.stack(losses).mean()
        metrics["chance_loss"] = math.log(self.config.negatives + 1)  # a uniform guess among the future and its negatives
        return ModelOutput(loss, metrics)


def negative_scores_of(predictions: torch.Tensor, z: torch.Tensor, indices: torch.Tensor, blocks: bool | None = None) -> torch.Tensor:
    """Every prediction ``(B, T, K, C)`` scored against its negatives: ``indices`` ``(B, draws, N)`` are flat
    indices into the batch's ``B * T`` frames ``z`` ``(B, T, C)``, one set per draw (``draws`` = T or 1).
    Returns ``(B, T, K, N)``.

    Two exact ways. Gathering the negative frames (``(B, draws, N, C)``) and one batched matmul; for a
    fresh set per frame that gather and its backward (a scatter-add into z's gradient) move ``B*T*N*C``
    floats and took about a fifth of a CPC step. Or, when the negatives come from few utterances (the
    same speaker, the same sequence), scoring every prediction of utterance b against every frame of each
    utterance b draws from (one matmul per used pair of utterances) and gathering the scalar scores. With
    P such pairs the second does ``P*T / (B*N)`` times the first's multiply-adds but moves no vectors;
    on the 2-core CPU (B 16, T 128, K 12, C 256, N 128; forward and backward) it took 0.07 s against
    0.72 s at a ratio of 1, 0.35 s against 0.94 s at 4, 0.78 s against 0.84 s at 8 and 1.5 s against
    0.93 s at 16 (one speaker in the batch), so it is used (``blocks=None``) up to a ratio of 6."""
    b, t, k_max, ch = predictions.shape
    draws = indices.shape[1]
    rows, times = indices // t, indices % t
    used = torch.zeros(b, b, dtype=torch.bool, device=z.device)
    used[torch.arange(b, device=z.device)[:, None, None].expand_as(rows), rows] = True
    pairs = used.nonzero()  # (P, 2): (utterance, utterance it draws negatives from)
    if blocks is None:
        blocks = draws == t and len(pairs) * t <= 6 * b * indices.shape[-1]
    if not blocks:
        negatives = z.reshape(b * t, ch)[indices]  # (B, draws, N, C)
        return torch.bmm(predictions.reshape(b * draws, (t // draws) * k_max, ch),
                         negatives.reshape(b * draws, -1, ch).transpose(1, 2)).view(b, t, k_max, -1)
    pair_id = torch.full((b, b), -1, dtype=torch.long, device=z.device)
    pair_id[pairs[:, 0], pairs[:, 1]] = torch.arange(len(pairs), device=z.device)
    block = torch.bmm(predictions[pairs[:, 0]].reshape(len(pairs), t * k_max, ch), z[pairs[:, 1]].transpose(1, 2))
    # block[p, t' * K + k, s]: prediction (t', k) of the pair's first utterance against frame s of its second
    p = pair_id[torch.arange(b, device=z.device)[:, None, None], rows].expand(b, t, -1)
    at = torch.arange(t, device=z.device)[None, :, None]
    base = (p * (t * k_max) + at * k_max) * t + times.expand(b, t, -1)  # (B, T, N), for k = 0
    flat = base[:, :, None, :] + (torch.arange(k_max, device=z.device) * t)[None, None, :, None]
    return block.reshape(-1)[flat]  # (B, T, K, N)
