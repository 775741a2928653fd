"""The networks of voice conversion: content encoder, speaker encoder, decoder and the adversary's
speaker classifier (shapes as in :mod:`seqae.families.voice_conversion.model`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from seqae.audio import FrameSmoothers, on_cpu
from seqae.families.voice_conversion.config import VoiceConversionConfig
from seqae.nn.norm import AdaIN, instance_norm, masked_mean


def mask_out(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask[:, None, :].to(x.dtype)


@on_cpu
def envelope_dct(config: VoiceConversionConfig) -> torch.Tensor:
    """``(n_mels, envelope_coefficients)``: the orthonormal DCT-II along the mel axis, as for MFCCs; its
    first coefficients are the spectral envelope."""
    if config.envelope_coefficients > config.input_dim:
        raise ValueError(f"model.envelope_coefficients = {config.envelope_coefficients} is more than the {config.input_dim} mel bands")
    return torchaudio.functional.create_dct(config.envelope_coefficients, config.input_dim, "ortho")


class ContentEncoder(nn.Module):
    """Mel ``(B, n_mels, T)`` -> content mean and log-variance ``(B, content_dim, T)``."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        c, k = config.channels, config.kernel_size
        self.norm = config.instance_norm
        inputs = config.input_dim
        self.envelope: torch.Tensor | None
        if config.content_input != "envelope":
            self.envelope = None
        else:  # not saved (rebuilt from the config)
            self.register_buffer("envelope", envelope_dct(config), persistent=False)
            inputs = config.envelope_coefficients
        self.inp = nn.Conv1d(inputs, c, 1)
        self.convs = nn.ModuleList(nn.ModuleList([nn.Conv1d(c, c, k, padding=k // 2), nn.Conv1d(c, c, k, padding=k // 2)])
                                   for _ in range(config.blocks))
        self.mean = nn.Conv1d(c, config.content_dim, 1)
        self.log_var = nn.Conv1d(c, config.content_dim, 1) if config.variational else None
        if self.log_var is not None:
            # small at the start: an unscaled head sends exp(log_var) and the KL term through the roof
            with torch.no_grad():
                self.log_var.weight.mul_(0.1)
                self.log_var.bias.zero_()

    def _n(self, x, mask):
        return instance_norm(x, mask) if self.norm else mask_out(x, mask)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.envelope is not None:
            mel = torch.einsum("bmt,mc->bct", mel, self.envelope)
        h = mask_out(self.inp(mel), mask)
        for conv1, conv2 in self.convs:
            y = F.relu(self._n(conv1(h), mask))
            y = F.relu(self._n(conv2(y), mask))
            h = h + y
        mean = self._n(self.mean(h), mask)
        log_var = None if self.log_var is None else mask_out(self.log_var(h).clamp(-8.0, 2.0), mask)
        return mean, log_var


class SpeakerEncoder(nn.Module):
    """Mel ``(B, n_mels, T)`` -> one speaker vector ``(B, speaker_dim)`` (pooled over the real frames:
    each channel's mean, or its mean and standard deviation)."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        c, k = config.channels, config.kernel_size
        self.inp = nn.Conv1d(config.input_dim, c, 1)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2) for _ in range(config.blocks))
        self.with_std = config.speaker_pooling == "mean_std"
        self.out = nn.Linear(2 * c if self.with_std else c, config.speaker_dim)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(mask_out(self.inp(mel), mask))
        for conv in self.convs:
            h = h + F.relu(mask_out(conv(h), mask))
        mean = masked_mean(h, mask)
        if not self.with_std:
            return self.out(mean)
        spread = (masked_mean(h.pow(2), mask) - mean.pow(2)).clamp_min(1e-6).sqrt()
        return self.out(torch.cat([mean, spread], dim=1))


class Decoder(nn.Module):
    """Content ``(B, content_dim, T)`` and speaker ``(B, speaker_dim)`` -> mel ``(B, n_mels, T)``; with
    ``pitch``, the content carries one more channel, the pitch contour, or the harmonic templates; with
    ``envelope_smoothing = "pitch_adaptive"``, ``smoothing`` (:class:`seqae.audio.FrameSmoothers`) holds each
    frame's smoothing matrix."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        c, k = config.channels, config.kernel_size
        extra = {"none": 0, "contour": 1, "harmonics": config.input_dim, "source_filter": config.input_dim}[config.pitch]
        self.inp = nn.Conv1d(config.content_dim + extra, c, 1)
        self.excitation: nn.Conv1d | None = None
        self.source_filter = config.pitch == "source_filter"
        smooth = None
        if config.pitch == "harmonics":  # a learned mixing of the templates' bands
            self.excitation = nn.Conv1d(config.input_dim, config.input_dim, 1)
        elif config.pitch == "source_filter":  # one gain per band: each band's ripple stays where the template puts it
            self.excitation = nn.Conv1d(config.input_dim, config.input_dim, 1, groups=config.input_dim)
            nn.init.constant_(self.excitation.weight, 0.25)  # about one nat in the normalised log-mel's units
            nn.init.zeros_(self.excitation.bias)
            if config.envelope_smoothing == "cepstral":
                dct = envelope_dct(config)
                smooth = dct @ dct.T  # (n_mels, n_mels): projection onto the first K cepstral coefficients
        self.smooth: torch.Tensor | None
        self.register_buffer("smooth", smooth, persistent=False)  # not saved (rebuilt from the config)
        self.convs = nn.ModuleList(nn.ModuleList([nn.Conv1d(c, c, k, padding=k // 2), nn.Conv1d(c, c, k, padding=k // 2)])
                                   for _ in range(config.blocks))
        self.adains = nn.ModuleList(nn.ModuleList([AdaIN(c, config.speaker_dim), AdaIN(c, config.speaker_dim)])
                                    for _ in range(config.blocks))
        self.out = nn.Conv1d(c, config.input_dim + self.source_filter, 1)  # source_filter: + the voicing gain

    def forward(self, content: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor | None = None,
                smoothing: FrameSmoothers | None = None) -> torch.Tensor:
        h = mask_out(self.inp(content), mask)
        for (conv1, conv2), (ada1, ada2) in zip(self.convs, self.adains):
            y = F.relu(ada1(conv1(h), speaker, mask))
            y = F.relu(ada2(conv2(y), speaker, mask))
            h = h + y
        out = self.out(h)
        if self.excitation is not None:
            n_mels = self.excitation.in_channels
            fine = self.excitation(content[:, -n_mels:])  # the harmonic templates are the input's last n_mels channels
            if not self.source_filter:  # harmonics: added to the output
                out = out + fine
            else:  # source_filter: a smooth envelope plus the templates, gated per frame
                if self.smooth is not None:
                    envelope = torch.einsum("mn,bnt->bmt", self.smooth.to(out.dtype), out[:, :n_mels])
                elif smoothing is None:
                    raise ValueError("envelope_smoothing = \"pitch_adaptive\": give each frame's smoothing matrix "
                                     "(VoiceConversion.smoothing)")
                else:
                    envelope = smoothing(out[:, :n_mels])  # each frame by its own matrix
                out = envelope + torch.sigmoid(out[:, n_mels:]) * fine
        return mask_out(out, mask)


class SpeakerClassifier(nn.Module):
    """The adversary: content code ``(B, content_dim, T)`` -> speaker logits ``(B, speakers)``."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        h, k = config.adversary_hidden, config.kernel_size
        self.conv1 = nn.Conv1d(config.content_dim, h, k, padding=k // 2)
        self.conv2 = nn.Conv1d(h, h, k, padding=k // 2)
        self.out = nn.Linear(h, len(config.speakers))

    def forward(self, content: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(mask_out(self.conv1(content), mask))
        h = F.relu(mask_out(self.conv2(h), mask))
        return self.out(masked_mean(h, mask))
