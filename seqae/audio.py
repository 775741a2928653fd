"""The one mel front end of seqae (torchaudio), configured by one :class:`MelConfig` that is saved with
every model that uses it, so training, encoding and vocoding can never disagree on the settings."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
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
    def from_object(cls, obj) -> MelConfig:
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


def vocal_tract_warp(log_mel: torch.Tensor, alpha: float, config: MelConfig) -> torch.Tensor:
    """Vocal-tract-length perturbation of a log-mel ``(..., n_mels, frames)``: the frequency axis stretched
    by ``alpha`` (the value at f Hz becomes the original's at f / alpha: alpha > 1 moves formants and
    harmonics up, as a shorter vocal tract and a higher voice would), by linear interpolation between the
    bands (HTK mel scale, as :class:`LogMel`'s filter bank); bands that would come from beyond the edges
    repeat the edge band."""
    if alpha == 1.0:
        return log_mel

    def mel(hz):
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    top = config.f_max or config.sample_rate / 2
    low, high, n = mel(config.f_min), mel(top), config.n_mels
    step = (high - low) / (n + 1)
    centres = [700.0 * (10 ** ((low + (i + 1) * step) / 2595.0) - 1.0) for i in range(n)]
    source = torch.tensor([(mel(f / alpha) - low) / step - 1.0 for f in centres], dtype=log_mel.dtype, device=log_mel.device)
    source = source.clamp(0, n - 1)
    below = source.floor().long()
    above = (below + 1).clamp(max=n - 1)
    weight = (source - below)[:, None]
    return log_mel[..., below, :] * (1 - weight) + log_mel[..., above, :] * weight


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


@dataclass
class PitchConfig:
    """Fundamental-frequency tracking (YIN) settings; the frames are the log-mel's (``hop_length``)."""

    window: int = 640  # samples per difference-function window (40 ms at 16 kHz: two periods of 50 Hz)
    f_min: float = 60.0
    f_max: float = 500.0
    threshold: float = 0.3  # a frame is voiced where YIN's normalised difference dips below this


def track_pitch(wave: torch.Tensor, mel: MelConfig, config: PitchConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN (de Cheveigne and Kawahara 2002) on a waveform ``(samples,)``, one estimate per log-mel frame.

    Returns ``(octaves, voiced)``, both ``(frames,)`` with frames = samples // hop_length + 1 as for
    :class:`LogMel` (centred windows): ``log2(f0 / 100 Hz)`` (float, meaningful where voiced) and the
    voicing decision (bool). The difference function comes from one grouped convolution (every frame's
    window against the lags that follow it), so a 3 s utterance takes a few milliseconds.
    """
    config = config or PitchConfig()
    wave = wave.reshape(-1).float()
    rate, hop, w = mel.sample_rate, mel.hop_length, config.window
    max_lag = int(math.ceil(rate / config.f_min))
    min_lag = max(2, int(math.floor(rate / config.f_max)))
    frames = wave.shape[0] // hop + 1
    padded = F.pad(wave[None, None], (w // 2, w // 2 + max_lag + hop), mode="constant")[0, 0]
    chunks = padded.unfold(0, w + max_lag, hop)[:frames]  # (frames, w + max_lag)
    x = chunks[:, :w]
    # d(tau) = sum x_j^2 + sum x_{j+tau}^2 - 2 sum x_j x_{j+tau}, tau = 0..max_lag
    cross = F.conv1d(chunks[None], x[:, None, :], groups=frames)[0]  # (frames, max_lag + 1)
    squares = F.pad(chunks.pow(2).cumsum(1), (1, 0))
    energy = squares[:, w : w + max_lag + 1] - squares[:, : max_lag + 1]  # sum over the window shifted by tau
    diff = (energy[:, :1] + energy - 2 * cross).clamp_min(0)[:, 1:]  # tau = 1..max_lag
    taus = torch.arange(1, max_lag + 1, dtype=diff.dtype)
    cmnd = diff * taus / diff.cumsum(1).clamp_min(1e-12)  # cumulative-mean normalised difference
    inner = cmnd[:, min_lag - 1 : max_lag - 1]  # tau = min_lag .. max_lag - 1 (a neighbour on each side)
    left, right = cmnd[:, min_lag - 2 : max_lag - 2], cmnd[:, min_lag : max_lag]
    dips = (inner < config.threshold) & (inner <= left) & (inner <= right)
    voiced = dips.any(1) & (energy[:, 0] > 1e-6 * w)
    first = dips.float().argmax(1)  # the first dip below the threshold (the shortest period: no octave errors down)
    rows = torch.arange(frames)
    a, b, c = left[rows, first], inner[rows, first], right[rows, first]
    shift = (0.5 * (a - c) / (a - 2 * b + c).clamp_min(1e-12)).clamp(-1, 1)  # parabolic interpolation
    period = (first + min_lag).to(diff.dtype) + shift
    return torch.log2(rate / period / 100.0), voiced


class PitchTrack(NamedTuple):
    """One utterance's pitch, from :func:`pitch_contour`; octaves re 100 Hz throughout."""

    contour: torch.Tensor  # (frames,): continuous, unvoiced stretches filled
    level: float  # median over voiced frames; NaN where none is voiced (whisper)
    spread: float  # robust standard deviation over voiced frames (interquartile range / 1.349); NaN where none is voiced


def pitch_contour(octaves: torch.Tensor, voiced: torch.Tensor) -> PitchTrack:
    """A continuous contour ``(frames,)`` (unvoiced stretches filled by linear interpolation between
    their voiced neighbours, held at the ends), the utterance's pitch level (the median over voiced
    frames) and its spread (interquartile range of the voiced frames / 1.349: a standard deviation that
    a few octave errors of the tracker do not move); NaN level and spread (and a contour of zeros) where
    no frame is voiced (whisper)."""
    if not bool(voiced.any()):
        return PitchTrack(torch.zeros_like(octaves), float("nan"), float("nan"))
    at = torch.nonzero(voiced).flatten().double()
    values = octaves[voiced].double().numpy()
    contour = torch.from_numpy(np.interp(np.arange(octaves.shape[0]), at.numpy(), values)).to(octaves.dtype)
    upper, lower = np.percentile(values, [75, 25])
    return PitchTrack(contour, float(np.median(values)), float((upper - lower) / 1.349))


MAX_RANGE_RATIO = 4.0  # move_pitch scales a contour's excursions by at most this factor either way


def move_pitch(contour: torch.Tensor, source_level: float, target_levels: float | list[float],
               source_spread: float = float("nan"), target_spreads: Sequence[float] = ()) -> torch.Tensor:
    """The source's contour moved to the target's pitch level (a shift in octaves): the mean level of
    the target's reference utterances. NaN levels (unvoiced utterances) cannot be moved to or from: an
    unvoiced source gets a flat contour at the target's level, and a target with no voiced reference
    leaves the source's contour where it is.

    With spreads (the source's and the references', :class:`PitchTrack`), the contour's excursions
    around the source's level are also scaled to the target's range, by the ratio of the references'
    mean spread to the source's (the mean and variance conversion of log-F0), held within
    [1 / MAX_RANGE_RATIO, MAX_RANGE_RATIO]; without a usable spread on either side only the level moves."""
    levels = [target_levels] if isinstance(target_levels, float) else list(target_levels)
    voiced = [v for v in levels if not math.isnan(v)]
    if not voiced:
        return contour
    target = sum(voiced) / len(voiced)
    if math.isnan(source_level):
        return torch.full_like(contour, target)
    spreads = [s for s in target_spreads if not math.isnan(s)]
    if not spreads or math.isnan(source_spread) or source_spread <= 0:
        return contour + (target - source_level)
    ratio = min(max(sum(spreads) / len(spreads) / source_spread, 1 / MAX_RANGE_RATIO), MAX_RANGE_RATIO)
    return (contour - source_level) * ratio + target


PITCH_RANGES = ("target", "source")


def target_contour(source: PitchTrack, targets: Sequence[PitchTrack], pitch_range: str = "target") -> torch.Tensor:
    """The contour a conversion is decoded with: the source's, moved to the targets' level and, with
    ``pitch_range = "target"``, scaled to their range (``"source"``: the source's range kept)
    (:func:`move_pitch`)."""
    if pitch_range not in PITCH_RANGES:
        raise ValueError(f"pitch_range {pitch_range!r}: expected one of {PITCH_RANGES}")
    if pitch_range == "source":
        return move_pitch(source.contour, source.level, [t.level for t in targets])
    return move_pitch(source.contour, source.level, [t.level for t in targets], source.spread, [t.spread for t in targets])


def on_cpu(fn):
    """Compute a constant table on the CPU, whatever the default device (models are also built on the
    meta device, to check a run's shapes before anything is allocated; their tables are data, not shapes)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.device("cpu"):
            return fn(*args, **kwargs)

    return wrapper


@on_cpu
def mel_filterbank(mel: MelConfig) -> torch.Tensor:
    """``(n_fft // 2 + 1, n_mels)``, float64: the triangular filters :class:`LogMel` applies (torchaudio's)."""
    top = mel.f_max or mel.sample_rate / 2
    return torchaudio.functional.melscale_fbanks(mel.n_fft // 2 + 1, mel.f_min, top, mel.n_mels, mel.sample_rate).double()


@on_cpu
def harmonic_templates(mel: MelConfig, octaves: torch.Tensor) -> torch.Tensor:
    """The log-mel of a flat harmonic series at each pitch of ``octaves`` ``(G,)`` (log2(f0 / 100 Hz)),
    analysed with ``mel``'s own STFT window and filterbank: ``(G, n_mels)``.

    Each harmonic is a windowed cosine; their power spectra add (phases left out), and the magnitude or
    power goes through the mel filterbank as in :class:`LogMel`. This is the excitation's fine structure
    (the harmonic ripple in the low bands and the density of harmonics per band higher up) without any
    spectral envelope; each template is centred over its bands.
    """
    n = mel.n_fft
    window_fn = torch.hann_window if mel.window == "hann" else torch.hamming_window
    window = torch.zeros(n, dtype=torch.float64)
    left = (n - mel.win_length) // 2
    window[left : left + mel.win_length] = window_fn(mel.win_length, dtype=torch.float64)
    t = torch.arange(n, dtype=torch.float64) / mel.sample_rate
    bank = mel_filterbank(mel)
    rows = []
    for f0 in (100.0 * 2.0 ** octaves.double()).tolist():
        harmonics = torch.arange(1, int(mel.sample_rate / 2 / f0) + 1, dtype=torch.float64)[:, None] * f0
        power = torch.fft.rfft(torch.cos(2 * math.pi * harmonics * t) * window).abs().pow(2).sum(0)
        spectrum = power.sqrt() if mel.power == 1.0 else power.pow(mel.power / 2)
        rows.append(torch.log((spectrum @ bank).clamp_min(mel.log_floor)))
    templates = torch.stack(rows)
    return (templates - templates.mean(1, keepdim=True)).float()


def mel_bands(mel: MelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Each mel band's centre (the mean frequency of its filter) and width (its filter's area), in Hz,
    as measured on the STFT's frequency bins: two ``(n_mels,)`` tensors."""
    freqs = torch.linspace(0, mel.sample_rate / 2, mel.n_fft // 2 + 1, dtype=torch.float64)
    bank = mel_filterbank(mel)
    area = bank.sum(0)
    return (freqs @ bank) / area.clamp_min(1e-12), area * mel.sample_rate / mel.n_fft


SMOOTHER_STEP = 1.0 / 48  # octaves between neighbouring pitch-adaptive smoothing matrices


@on_cpu
def smoother_grid(low_hz: float, high_hz: float) -> torch.Tensor:
    """The pitches of a table of :func:`pitch_adaptive_smoothers`: every ``SMOOTHER_STEP`` octaves through
    100 Hz, covering ``low_hz`` to ``high_hz``, as log2(f0 / 100 Hz): ``(G,)``."""
    low = math.floor(math.log2(low_hz / 100.0) / SMOOTHER_STEP)
    high = math.ceil(math.log2(high_hz / 100.0) / SMOOTHER_STEP)
    return torch.arange(low, high + 1) * SMOOTHER_STEP


def nearest_smoothers(table: torch.Tensor, grid_start: float, contour: torch.Tensor) -> torch.Tensor:
    """Each frame's matrix from a table ``(G, n_mels, n_mels)`` built on :func:`smoother_grid` (whose first
    pitch is ``grid_start``): the nearest pitch to the contour ``(..., T)`` (log2(f0 / 100 Hz)), clamped
    to the table's range: ``(..., T, n_mels, n_mels)``."""
    return table[nearest_rows(table, grid_start, contour)]


def nearest_rows(table: torch.Tensor, grid_start: float, contour: torch.Tensor) -> torch.Tensor:
    """The index into ``table`` of :func:`nearest_smoothers`' matrices ``(..., T)``."""
    return ((contour.float() - grid_start) / SMOOTHER_STEP).round().clamp(0, table.shape[0] - 1).long()


class FrameSmoothers(NamedTuple):
    """Each frame's smoothing matrix, held as the table ``(G, n_mels, n_mels)`` and each frame's row of it,
    ``index`` ``(B, T)``: the matrices themselves (:meth:`matrices`, ``(B, T, n_mels, n_mels)``) are 105 MB
    for a batch of 32 x 128 frames of 80 bands. Calling it on ``x`` ``(B, n_mels, T)`` multiplies each frame
    by its matrix. On the CPU the frames are grouped by matrix, one product per group (no ``(B, T, n, n)``
    gather: forward and backward about 13x faster at the voice-conversion recipe's batch in a timing with
    random pitches); elsewhere the gathered matrices go into one batched product (no synchronisation)."""

    table: torch.Tensor
    index: torch.Tensor

    def matrices(self) -> torch.Tensor:
        return self.table[self.index]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return torch.einsum("btmn,bnt->bmt", self.matrices().to(x.dtype), x)
        batch, n_mels, frames = x.shape
        with torch.autocast("cpu", enabled=False):
            rows = x.transpose(1, 2).reshape(-1, n_mels).float()
            out = _ByMatrix.apply(rows, self.table.float(), self.index.reshape(-1))
        return out.view(batch, frames, n_mels).transpose(1, 2).to(x.dtype)


class _ByMatrix(torch.autograd.Function):
    """``y_f = M[i_f] x_f`` for rows ``x_f`` ``(F, n)``: the rows sorted by ``i``, each group in one product.
    The gradient reaches ``x`` only (the table is fixed)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if table.requires_grad:
            raise ValueError("FrameSmoothers: the table of matrices takes no gradient")
        order = index.argsort(stable=True)
        groups, counts = torch.unique_consecutive(index[order], return_counts=True)
        ctx.groups = (groups.tolist(), counts.tolist())
        ctx.save_for_backward(table, order)
        return _by_matrix(rows, table, order, *ctx.groups, transpose=False)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        table, order = ctx.saved_tensors
        return _by_matrix(grad.contiguous(), table, order, *ctx.groups, transpose=True), None, None


def _by_matrix(rows: torch.Tensor, table: torch.Tensor, order: torch.Tensor, groups: list[int], counts: list[int],
               transpose: bool) -> torch.Tensor:
    """Rows ``(F, n)`` times their matrices (``M x``, or ``M^T x`` with ``transpose``), in ``order``'s groups."""
    ordered = rows[order]
    out = torch.empty_like(ordered)
    start = 0
    for group, count in zip(groups, counts):
        matrix = table[group]
        torch.mm(ordered[start : start + count], matrix if transpose else matrix.T, out=out[start : start + count])
        start += count
    result = torch.empty_like(out)
    result[order] = out
    return result


@on_cpu
def pitch_adaptive_smoothers(mel: MelConfig, octaves: torch.Tensor, min_width: float = 0.0) -> torch.Tensor:
    """For each pitch of ``octaves`` ``(G,)`` (log2(f0 / 100 Hz)), the matrix ``(n_mels, n_mels)`` that
    smooths a log-mel frame along frequency with a triangle of half-width f0 in Hz: ``(G, n_mels, n_mels)``,
    rows summing to 1.

    A triangle of half-width f0 has a zero at a ripple of period f0, so it removes the harmonic ripple of
    that pitch from every band while keeping the spectral envelope at the finest resolution the harmonics
    allow (the pitch-adaptive smoothing of STRAIGHT's and WORLD's envelope estimators). Each band counts
    with its width in Hz, so the average is over frequency, not over bands; where the bands are wider apart
    than f0 (the harmonics are not resolved there) a row is the band alone. ``min_width`` (Hz): the
    half-width is never narrower than this, so every pitch below it is smoothed alike (a triangle of
    half-width W leaves at most 5 % of the ripple of any pitch up to W).
    """
    centres, widths = mel_bands(mel)
    distance = (centres[None, :] - centres[:, None]).abs()  # (n_mels, n_mels)
    f0 = (100.0 * 2.0 ** octaves.double()).clamp_min(min_width)
    weights = (1 - distance[None] / f0[:, None, None]).clamp_min(0) * widths[None, None, :]
    return (weights / weights.sum(2, keepdim=True)).float()
