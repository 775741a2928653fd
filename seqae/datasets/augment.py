"""Training-time audio augmentation: new voices made from a corpus's own, and recording conditions.

Two kinds, by where they act:

- on the waveform, once, before the log-mel is computed: :func:`change_speed` (resampling: tempo, pitch
  and formants move together, as Kaldi's speed perturbation) and :func:`shift_pitch` (a phase-vocoder
  time stretch then resampling back: the pitch moves, the duration and, roughly, the formants stay).
  Voice conversion makes a copy of every training utterance for each factor, as a speaker of its own;
- on the log-mel of each training example, afresh every epoch: :func:`equalise` (a smooth random gain
  curve across the bands) and :func:`mix_noise` (noise at a signal-to-noise ratio, mixed in the band
  energies). :func:`seqae.audio.vocal_tract_warp` is the third of these; :func:`whisper` (the harmonic
  source replaced by noise, the spectral envelope kept) the fourth.

Every ratio is kept to a fraction with a small denominator so that torchaudio's resampler stays cheap
(its cost grows with the ratio's reduced numerator and denominator).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
import torchaudio.functional as AF

from seqae.audio import LogMel, MelConfig, mel_bands


def _ratio(value: float) -> Fraction:
    return Fraction(value).limit_denominator(40)


def change_speed(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """``(..., samples)`` -> ``(..., about samples / factor)``: played ``factor`` times faster (pitch and
    formants up by ``factor``, duration down), by resampling with the ratio as a small fraction."""
    ratio = _ratio(factor)
    if ratio == 1:
        return wave
    return AF.resample(wave, orig_freq=ratio.numerator, new_freq=ratio.denominator)


def shift_pitch(wave: torch.Tensor, semitones: float, n_fft: int = 512, hop_length: int = 128) -> torch.Tensor:
    """``(..., samples)`` -> the same length, pitch moved by ``semitones`` (12 to the octave), duration
    kept: the short-time spectrum is stretched in time by the pitch ratio with a phase vocoder
    (``torchaudio.functional.phase_vocoder``), then resampled back to the original duration, at the
    original level (mean square)."""
    ratio = _ratio(2.0 ** (semitones / 12.0))
    if ratio == 1:
        return wave
    shape, samples = wave.shape, wave.shape[-1]
    flat = wave.reshape(-1, samples)
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(flat, n_fft, hop_length, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop_length, spec.shape[-2], device=wave.device, dtype=wave.dtype)[..., None]
    stretched = AF.phase_vocoder(spec, 1.0 / float(ratio), advance)
    longer = torch.istft(stretched, n_fft, hop_length, window=window, length=int(round(samples * float(ratio))))
    back = AF.resample(longer, orig_freq=ratio.numerator, new_freq=ratio.denominator)
    out = torch.zeros(flat.shape[0], samples, dtype=wave.dtype, device=wave.device)
    n = min(samples, back.shape[-1])
    out[:, :n] = back[:, :n]
    # torchaudio's phase vocoder loses about half the energy when it stretches (rate < 1, an upward
    # shift): the level is put back, so that a shift changes the pitch and not the loudness
    level = flat.pow(2).mean(-1, keepdim=True) / out.pow(2).mean(-1, keepdim=True).clamp_min(1e-12)
    return (out * level.sqrt()).reshape(shape)


def _energy(log_mel: torch.Tensor, power: float) -> torch.Tensor:
    """Band energies (squared magnitudes) from natural-log mel values of a ``power`` spectrogram."""
    return torch.exp(log_mel * (2.0 / power))


def equalise(log_mel: torch.Tensor, gains_db: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """A filter applied to a log-mel ``(..., n_mels, frames)`` (natural-log values of a ``power``
    spectrogram): ``gains_db`` ``(n_mels,)`` in decibels of energy, added in the log domain (exact for a
    gain that is flat within each band)."""
    return log_mel + (gains_db * (power * math.log(10.0) / 20.0))[:, None].to(log_mel)


def random_gains(n_mels: int, max_db: float, rng: np.random.Generator, terms: int = 4) -> torch.Tensor:
    """``(n_mels,)`` dB: a smooth random curve across the bands (a sum of the first ``terms`` cosines with
    random weights and phases), scaled to a peak of ``max_db`` times a uniform draw in [0, 1]."""
    x = np.linspace(0.0, 1.0, n_mels)
    curve = sum(rng.uniform(-1, 1) * np.cos(np.pi * k * x + rng.uniform(0, 2 * np.pi)) for k in range(1, terms + 1))
    curve = curve / max(np.abs(curve).max(), 1e-6)
    return torch.from_numpy((curve * max_db * rng.uniform()).astype(np.float32))


def mix_noise(log_mel: torch.Tensor, noise: torch.Tensor, snr_db: float, power: float = 1.0, log_floor: float = 1e-5,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """A log-mel ``(n_mels, frames)`` with ``noise`` (a log-mel of the same shape) added at ``snr_db``:
    the noise scaled so that the ratio of the signal's to the noise's total band energy (over the frames
    of ``mask``, ``(frames,)``, when given) is ``snr_db``, the two mixed by adding band energies (their
    expected mix for independent signals), back to the log domain with the front end's floor."""
    signal_e, noise_e = _energy(log_mel, power), _energy(noise, power)
    if mask is not None:
        keep = mask.to(log_mel.dtype)
        gain = (signal_e * keep).sum() / (noise_e * keep).sum().clamp_min(1e-20)
    else:
        gain = signal_e.sum() / noise_e.sum().clamp_min(1e-20)
    mixed = signal_e + noise_e * gain * 10.0 ** (-snr_db / 10.0)
    return (power / 2.0) * torch.log(mixed.clamp_min(log_floor ** (2.0 / power)))


def noise_bank(config: MelConfig, seconds: float = 8.0, seed: int = 0) -> torch.Tensor:
    """``(2, n_mels, frames)``: log-mels of white and of pink (1/f energy) Gaussian noise, to cut
    windows from."""
    n = int(seconds * config.sample_rate)
    white = torch.from_numpy(np.random.default_rng(seed).standard_normal(n).astype(np.float32))
    spectrum = torch.fft.rfft(white)
    freqs = torch.fft.rfftfreq(n, 1.0 / config.sample_rate)
    pink = torch.fft.irfft(spectrum / freqs.clamp_min(20.0).sqrt(), n)
    pink = pink * (white.std() / pink.std())
    with torch.no_grad():
        return LogMel(config)(torch.stack([white, pink]))


WHISPER_PIVOT_HZ = 1000.0  # whisper's tilt turns about this frequency: the bands below lose, those above gain


def whisper_tilt(slope_db: float, config: MelConfig, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n_mels,)`` of ``dtype``: gains in dB of energy rising ``slope_db`` per octave about ``WHISPER_PIVOT_HZ`` at the
    mel band centres (for :func:`equalise`): whisper's flatter tilt against a glottal source's."""
    centres, _ = mel_bands(config)
    return slope_db * torch.log2(centres.clamp_min(20.0) / WHISPER_PIVOT_HZ).to(dtype)


def whisper(log_mel: torch.Tensor, noise: torch.Tensor, slope_db: float, config: MelConfig, coefficients: int | None = None,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """A whispered rendering of a log-mel ``(n_mels, frames)`` (natural-log values of a ``config.power``
    spectrogram): the harmonic source replaced by noise, the spectral envelope (where the words are) kept.

    The envelope is the first ``coefficients`` orthonormal DCT coefficients along the mel axis (default
    3/8 of the bands, 30 of 80: the harmonic ripple dropped); the glottal source's falling tilt is taken
    off by a rise of ``slope_db`` dB of energy per octave about 1 kHz (whispered espeak-ng voices lie
    1.5-2 nats below voiced ones at 150-300 Hz and as much above at 4 kHz); and the fine structure becomes
    that of noise: ``noise`` (a white-noise log-mel of the same shape, :func:`noise_bank`) less its mean in
    each band. Frames outside ``mask`` ``(frames,)`` and bands at the front end's floor (silence) are left
    as they are. The tilt is the same in every frame, so an encoder that normalises each channel over time
    does not see it (``benchmarks/vc_content_invariance.py``)."""
    n_mels = log_mel.shape[0]
    dct = AF.create_dct(min(coefficients or max(1, n_mels * 3 // 8), n_mels), n_mels, "ortho").to(log_mel)  # (n_mels, coefficients)
    envelope = (log_mel.T @ dct @ dct.T).T
    fine = noise - noise.mean(-1, keepdim=True)
    out = equalise(envelope + fine, whisper_tilt(slope_db, config, log_mel.dtype).to(log_mel.device), config.power)
    floor = math.log(config.log_floor)  # LogMel's clamp
    out = out.clamp_min(floor)
    keep = log_mel > floor + 1e-3
    if mask is not None:
        keep = keep & mask.bool()[None, :]
    return torch.where(keep, out, log_mel)
