"""Log-mel spectrogram to waveform.

A vocoder is anything with a ``sample_rate`` and ``__call__(log_mel (n_mels, frames)) -> wave (samples,)``
(:class:`Vocoder`); ``seqae convert`` takes one from :func:`get_vocoder`, so a neural vocoder can be
added beside Griffin-Lim without touching the conversion code.
"""

from __future__ import annotations

from typing import Protocol

import torch

from seqae.audio import MelConfig


class Vocoder(Protocol):
    sample_rate: int

    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(n_mels, frames)`` natural-log mel magnitudes (as :class:`seqae.audio.LogMel` makes them)
        -> ``(samples,)`` float32 in [-1, 1]."""
        ...


class GriffinLimVocoder:
    """torchaudio's inverse mel scale (least squares) and Griffin-Lim phase reconstruction, set up from
    the very :class:`MelConfig` the model was trained with, so analysis and synthesis cannot disagree."""

    def __init__(self, config: MelConfig, n_iter: int = 64, seed: int = 0):
        import torchaudio

        if n_iter < 1:
            raise ValueError("Griffin-Lim needs at least one iteration")
        self.config = config
        self.sample_rate = config.sample_rate
        self.seed = seed
        window_fn = torch.hann_window if config.window == "hann" else torch.hamming_window
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=config.n_fft // 2 + 1, n_mels=config.n_mels, sample_rate=config.sample_rate,
            f_min=config.f_min, f_max=config.f_max or None, norm=None, mel_scale="htk", driver="gelsd",
        )
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=config.n_fft, n_iter=n_iter, win_length=config.win_length, hop_length=config.hop_length,
            window_fn=window_fn, power=config.power,
        )

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.dim() != 2 or log_mel.shape[0] != self.config.n_mels:
            raise ValueError(f"expected a log-mel of shape ({self.config.n_mels}, frames), got {tuple(log_mel.shape)}")
        mel = torch.exp(log_mel.detach().float().cpu())
        spectrum = self.inverse_mel(mel).clamp_min(0.0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # Griffin-Lim starts from random phases: the same output every time
            wave = self.griffin_lim(spectrum)
        peak = float(wave.abs().max())
        return wave / peak * 0.95 if peak > 0.95 else wave


VOCODERS = {"griffin_lim": GriffinLimVocoder}


def get_vocoder(name: str, config: MelConfig, **options) -> Vocoder:
    if name not in VOCODERS:
        raise ValueError(f"unknown vocoder {name!r}; available: {', '.join(VOCODERS)}")
    return VOCODERS[name](config, **options)
