"""The one mel front end of seqae (torchaudio), configured by one :class:`MelConfig` that is saved with
every model that uses it, so training, encoding and vocoding can never disagree on the settings."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torchaudio
from torch import nn


@dataclass
class MelConfig:
    """Log-mel spectrogram settings. The defaults: 25 ms windows every 10 ms at 16 kHz, 80 bands."""

    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    window: str = "hann"  # hann or hamming
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 0.0  # 0: half the sample rate
    power: float = 1.0  # 1: magnitude, 2: power spectrogram
    log_floor: float = 1e-5  # log(max(mel, log_floor))

    @classmethod
    def from_object(cls, obj) -> "MelConfig":
        """Take the mel fields from any config object that has them (a ``[data]`` section, say)."""
        return cls(**{f.name: getattr(obj, f.name) for f in fields(cls)})

    def check(self) -> list[str]:
        problems = []
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            problems.append("sample_rate, n_fft, hop_length and n_mels must be positive")
        if not 0 < self.win_length <= self.n_fft:
            problems.append("win_length must be in (0, n_fft]")
        if self.window not in ("hann", "hamming"):
            problems.append("window must be 'hann' or 'hamming'")
        top = self.f_max or self.sample_rate / 2
        if not 0 <= self.f_min < top <= self.sample_rate / 2:
            problems.append("need 0 <= f_min < f_max <= sample_rate / 2")
        if self.log_floor <= 0:
            problems.append("log_floor must be > 0")
        return problems


class LogMel(nn.Module):
    """Waveforms ``(batch, samples)`` or ``(samples,)`` -> log-mel ``(batch, n_mels, frames)`` on the
    waveform's device; frames = samples // hop_length + 1 (centred windows)."""

    def __init__(self, config: MelConfig):
        super().__init__()
        self.config = config
        window_fn = torch.hann_window if config.window == "hann" else torch.hamming_window
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max or None,
            n_mels=config.n_mels,
            window_fn=window_fn,
            power=config.power,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave[None]
        with torch.autocast(device_type=wave.device.type, enabled=False):
            return torch.log(self.mel(wave.float()).clamp_min(self.config.log_floor))
