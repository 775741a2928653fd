"""Audio: reading files (soundfile), manifests, and log-mel segments for training.

Manifest format (JSON Lines, one utterance per line; paths relative to the manifest's folder)::

    {"audio": "wavs/a.wav", "speaker": "name", "text": "...", "phones": [[0.00, 0.12, "h"], ...]}

``speaker``, ``text`` and ``phones`` are optional. A folder of audio files works in place of a
manifest (every .wav/.flac/.ogg below it; the speaker is the file's parent folder name).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqae.audio import LogMel, MelConfig, PitchTrack, pitch_contour, track_pitch
from seqae.config import ConfigError, path_field
from seqae.datasets.base import BatchSource, DataError, check_input_file, read_text_lines

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class Utterance:
    audio: Path
    speaker: str = ""
    text: str = ""
    phones: list[tuple[float, float, str]] = field(default_factory=list)
    where: str = ""  # "manifest.jsonl:12", for error messages


# Float samples beyond this are not audio (they would overflow the features); the nominal range is [-1, 1].
MAX_SAMPLE = 1e6

# Commands that take one audio file whole (codes, convert) refuse longer ones rather than run out of memory.
ONE_PIECE_SECONDS = 600.0


def pcm16_to_float(samples: np.ndarray) -> np.ndarray:
    """16-bit PCM samples -> float32 in [-1, 1)."""
    return samples.astype(np.float32) / 32768.0


def float_to_pcm16(wave: torch.Tensor) -> np.ndarray:
    """Float samples ``(samples,)`` -> 16-bit PCM (clipped to [-1, 1], rounded; half the memory of float32)."""
    return (wave.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()


def write_wave(samples: np.ndarray, sample_rate: int, out: Path) -> Path:
    """``samples`` (1-D, nominally in [-1, 1]) as a 16-bit WAV file, written atomically."""
    import io

    import soundfile

    from seqae.atomic import atomic_write

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    atomic_write(out, buffer.getvalue())
    return out


def read_audio(path: str | Path, sample_rate: int, min_samples: int = 1, max_seconds: float | None = None) -> torch.Tensor:
    """Read an audio file as mono float32 ``(samples,)`` at ``sample_rate`` (mixed down, resampled).

    A file that cannot be decoded, is empty, is shorter than ``min_samples`` (one analysis frame) or
    longer than ``max_seconds`` is a :class:`DataError` naming it.
    """
    import soundfile

    path = check_input_file(path, "audio file")
    if max_seconds is not None:
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError) as err:
            raise DataError(f"{path}: cannot decode audio ({err}); use WAV, FLAC or OGG") from None
        if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
            raise DataError(
                f"{path}: {info.frames / info.samplerate / 60:.1f} min of audio, longer than the {max_seconds / 60:.0f} min "
                "taken in one piece; split it into shorter files"
            )
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError) as err:
        raise DataError(f"{path}: cannot decode audio ({err}); use WAV, FLAC or OGG") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: the audio file is empty")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: the audio holds NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak > MAX_SAMPLE:
        raise DataError(f"{path}: samples reach {peak:.3g}, far outside the [-1, 1] of audio; rescale the file")
    wave = torch.from_numpy(data.mean(axis=1))  # stereo and more: mixed down
    if rate != sample_rate:
        import torchaudio

        wave = torchaudio.functional.resample(wave, rate, sample_rate)
    if wave.shape[0] < min_samples:
        raise DataError(
            f"{path}: {wave.shape[0] / sample_rate * 1000:.1f} ms of audio, shorter than one frame "
            f"({min_samples / sample_rate * 1000:.1f} ms)"
        )
    return wave


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSON Lines manifest; every problem names the file and the line."""
    path = Path(path)
    lines = read_text_lines(path, "manifest")
    base = path.parent
    utterances = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not a JSON object ({err.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("audio"), str):
            raise DataError(f"{where}: each line needs an \"audio\" path")
        audio = Path(record["audio"])
        audio = audio if audio.is_absolute() else base / audio
        if not audio.is_file():
            raise DataError(f"{where}: no such audio file: {audio}")
        phones = parse_phones(record.get("phones", []), where)
        utterances.append(Utterance(audio, str(record.get("speaker", "")), str(record.get("text", "")), phones, where))
    if not utterances:
        raise DataError(f"{path}: the manifest lists no utterances")
    return utterances


def parse_phones(raw, where: str) -> list[tuple[float, float, str]]:
    if not isinstance(raw, list):
        raise DataError(f"{where}: \"phones\" must be a list of [start_s, end_s, phone]")
    phones = []
    previous_end = 0.0
    for i, item in enumerate(raw):
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(v, (int, float)) for v in item[:2])):
            raise DataError(f"{where}: phone {i} must be [start_s, end_s, \"phone\"], got {item!r}")
        start, end, label = float(item[0]), float(item[1]), str(item[2])
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            raise DataError(f"{where}: phone {i} ({label!r}) has times {start}..{end}; need 0 <= start < end")
        if start < previous_end - 1e-6:
            raise DataError(f"{where}: phone {i} ({label!r}) starts at {start} s, before the previous one ends ({previous_end} s)")
        previous_end = end
        phones.append((start, end, label))
    return phones


def list_utterances(source: str | Path) -> list[Utterance]:
    """A manifest (``.jsonl``) or a folder of audio files."""
    source = Path(source)
    if source.exists() and not source.is_dir():
        check_input_file(source, "manifest or audio file")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise DataError(f"{source}: no {', '.join(AUDIO_SUFFIXES)} files in this folder")
        return [Utterance(p, p.parent.name, where=str(p)) for p in files]
    if source.suffix == ".jsonl":
        return read_manifest(source)
    if source.suffix.lower() in AUDIO_SUFFIXES:
        return [Utterance(source, where=str(source))]
    raise DataError(f"{source}: expected a folder of audio files, a .jsonl manifest or an audio file")


@dataclass
class AudioDataConfig:
    """``[data]`` for families trained on log-mel segments; the mel settings are saved with the model."""

    source: str = path_field("", doc="a .jsonl manifest or a folder of audio files")
    test_source: str = path_field("", doc="optional test manifest/folder; else test_fraction of the files")
    test_fraction: float = 0.1
    split_seed: int = 0
    segment_frames: int = 64  # log-mel families: training windows of this many frames, half-overlapping
    segment_samples: int = 20480  # waveform families (cpc): training windows of this many samples
    # voice conversion: each training reference (for the speaker code) is this many windows of other
    # utterances of the speaker, laid end to end (1: one window, as long as the segment)
    reference_windows: int = 1
    mel_mean: float = 0.0  # normalisation of the log-mel values; 0 and 0 compute them from the training files
    mel_std: float = 0.0
    # the features (waveforms, log-mels, pitch) are computed once into this folder and stream from it
    # (seqae.datasets.audio_store); "": $SEQAE_CACHE, else ~/.cache/seqae
    cache_dir: str = ""
    # the mel front end (seqae.audio.MelConfig)
    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    window: str = "hann"
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 0.0
    power: float = 1.0
    log_floor: float = 1e-5

    def validate(self, where: str) -> None:
        if not self.source:
            raise ConfigError(f"{where}: data.source is required: a .jsonl manifest or a folder of audio files")
        for problem in self.mel().check():
            raise ConfigError(f"{where}: [data] mel settings: {problem}")
        if (self.mel_mean != 0.0 or self.mel_std != 0.0) and self.mel_std <= 0:
            raise ConfigError(f"{where}: data.mel_std must be > 0 (or leave mel_mean and mel_std at 0 to compute them)")
        if self.segment_frames < 4:
            raise ConfigError(f"{where}: data.segment_frames must be at least 4")
        if self.reference_windows < 1:
            raise ConfigError(f"{where}: data.reference_windows must be at least 1, got {self.reference_windows}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{where}: data.test_fraction must be in (0, 1)")

    def mel(self) -> MelConfig:
        return MelConfig.from_object(self)

    def normalise(self, log_mel):
        """Log-mel (tensor or array) to the model's scale, with the training files' ``mel_mean``/``mel_std``."""
        return (log_mel - self.mel_mean) / self.mel_std

    def denormalise(self, values):
        """The inverse of :meth:`normalise`: a model's output back to natural-log mel magnitudes."""
        return values * self.mel_std + self.mel_mean


def iter_audio(utterances: list[Utterance], sample_rate: int, min_samples: int, desc: str) -> Iterator[torch.Tensor]:
    """Each utterance's waveform (:func:`read_audio`), with a progress bar on long lists."""
    import sys

    from tqdm import tqdm

    for utt in tqdm(utterances, desc=desc, disable=len(utterances) < 50 or not sys.stderr.isatty(), leave=False):
        yield read_audio(utt.audio, sample_rate, min_samples=min_samples)


def log_mels(utterances: list[Utterance], config: MelConfig, desc: str = "log-mel") -> list[torch.Tensor]:
    """Each utterance's log-mel ``(n_mels, frames)``."""
    return log_mels_and_pitch(utterances, config, desc, pitch=False)[0]


def log_mels_and_pitch(utterances: list[Utterance], config: MelConfig, desc: str = "log-mel and pitch", pitch: bool = True
                       ) -> tuple[list[torch.Tensor], list[PitchTrack] | None]:
    """Each utterance's log-mel ``(n_mels, frames)`` and, with ``pitch``, its pitch: the
    :class:`seqae.audio.PitchTrack` (contour ``(frames,)``, level and spread, octaves re 100 Hz) of
    :func:`seqae.audio.pitch_contour`, from one reading of the audio; ``None`` in its place without."""
    front_end = LogMel(config)
    mels, pitches = [], []
    with torch.no_grad():
        for wave in iter_audio(utterances, config.sample_rate, config.win_length, desc):
            mels.append(front_end(wave)[0])
            if pitch:
                pitches.append(pitch_contour(*track_pitch(wave, config)))
    return mels, pitches if pitch else None


class ArrayStore:
    """Arrays in memory, time on the last axis, behind the interface of the streaming stores
    (:class:`seqae.datasets.audio_store.FileStore`): ``lengths``, ``read(i, start, count)``, ``full(i)``."""

    def __init__(self, arrays):
        self.arrays = [a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a) for a in arrays]
        self.lengths = np.array([a.shape[-1] for a in self.arrays], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.arrays)

    def read(self, i: int, start: int, count: int) -> np.ndarray:
        return self.arrays[i][..., start : start + count]

    def full(self, i: int) -> np.ndarray:
        return self.arrays[i]


class MelSegments(BatchSource):
    """Half-overlapping windows of ``segment_frames`` frames from log-mels (a list of ``(n_mels, frames)``
    or a store of them, :mod:`seqae.datasets.audio_store`), normalised by ``mean`` and ``std`` as they
    are read.

    Batches are ``{"x": (batch, n_mels, segment_frames), "mask": (batch, segment_frames)}``. Utterances
    shorter than a segment are zero-padded; ``mask`` marks the real frames, so padding stays out of losses.
    """

    def __init__(self, mels, segment_frames: int, mean: float, std: float, name: str):
        self.store = mels if hasattr(mels, "read") else ArrayStore(mels)
        self.mean, self.std = mean, std
        self.segment = segment_frames
        self.name = name
        self.windows = segment_windows(self.store.lengths, segment_frames, keep_short=True)

    @property
    def mels(self) -> list[torch.Tensor]:
        """Every utterance's normalised log-mel ``(n_mels, frames)`` (read now: for small test sets)."""
        return [torch.from_numpy((np.asarray(self.store.full(i), dtype=np.float32) - self.mean) / self.std)
                for i in range(len(self.store))]

    def __len__(self) -> int:
        return len(self.windows)

    def describe(self) -> str:
        return self.name

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        batch, mask = None, torch.zeros(len(indices), self.segment, dtype=torch.bool)
        for row, index in enumerate(indices):
            utt, start = self.windows[int(index)]
            piece = torch.from_numpy((np.asarray(self.store.read(int(utt), int(start), self.segment), dtype=np.float32)
                                      - self.mean) / self.std)
            if batch is None:
                batch = torch.zeros(len(indices), piece.shape[0], self.segment)
            batch[row, :, : piece.shape[1]] = piece
            mask[row, : piece.shape[1]] = True
        return {"x": batch, "mask": mask}


def segment_windows(lengths: np.ndarray, segment: int, keep_short: bool) -> np.ndarray:
    """``(windows, 2)`` int64 rows of (utterance, start): half-overlapping windows of ``segment`` over
    utterances of ``lengths``; an utterance shorter than one window gives one window at 0 with
    ``keep_short``, none without."""
    hop = max(1, segment // 2)
    lengths = np.asarray(lengths, dtype=np.int64)
    if not keep_short:
        counts = np.where(lengths >= segment, (lengths - segment) // hop + 1, 0)
    else:
        counts = np.maximum(lengths - segment, 0) // hop + 1
    utts = np.repeat(np.arange(len(lengths)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    return np.stack([utts, (np.arange(len(utts)) - first) * hop], axis=1).astype(np.int64)


def train_and_test_utterances(config: AudioDataConfig) -> tuple[list[Utterance], list[Utterance]]:
    """``data.test_source`` as the test set, or ``data.test_fraction`` of ``data.source`` held out."""
    utterances = list_utterances(config.source)
    if config.test_source:
        return utterances, list_utterances(config.test_source)
    return split_utterances(utterances, config.test_fraction, config.split_seed)


def split_utterances(utterances: list[Utterance], fraction: float, seed: int) -> tuple[list[Utterance], list[Utterance]]:
    if len(utterances) < 2:
        raise DataError(f"{utterances[0].where}: one utterance; need at least 2 to hold some out for testing")
    order = np.random.default_rng(seed).permutation(len(utterances))
    n_test = max(1, int(round(fraction * len(utterances))))
    test = sorted(order[:n_test].tolist())
    train = sorted(order[n_test:].tolist())
    return [utterances[i] for i in train], [utterances[i] for i in test]


class WaveSegments(BatchSource):
    """Half-overlapping windows of ``segment`` samples from int16 waveforms (a list of ``(samples,)``
    arrays or a store of them, :mod:`seqae.datasets.audio_store`).

    Batches are ``{"wave": (batch, segment) float32, "speaker": (batch,) int64}``; utterances shorter
    than one window are left out (``skipped`` counts them).
    """

    def __init__(self, waves, speakers: list[int], segment: int, name: str):
        self.store = waves if hasattr(waves, "read") else ArrayStore(waves)
        self.speakers = np.asarray(speakers, dtype=np.int64)
        self.segment = segment
        self.name = name
        self.windows = segment_windows(self.store.lengths, segment, keep_short=False)
        self.skipped = int((self.store.lengths < segment).sum())

    def __len__(self) -> int:
        return len(self.windows)

    def describe(self) -> str:
        return self.name

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        rows = self.windows[np.asarray(indices, dtype=np.int64)]
        wave = np.stack([self.store.read(int(u), int(s), self.segment) for u, s in rows])
        return {"wave": torch.from_numpy(pcm16_to_float(wave)), "speaker": torch.from_numpy(self.speakers[rows[:, 0]])}


def read_waves(utterances: list[Utterance], sample_rate: int, min_samples: int, desc: str = "reading audio") -> list[np.ndarray]:
    """Every utterance as int16 at ``sample_rate`` (half the memory of float32)."""
    return [float_to_pcm16(wave) for wave in iter_audio(utterances, sample_rate, min_samples, desc)]
