"""Audio features that stream from disk: every utterance's waveform (int16) or log-mel (float32, and its
pitch contour) computed once into a cache folder and read back window by window.

A store holds one array per utterance, time on the last axis: ``read(i, start, count)`` gives
``(..., count)`` (fewer at the utterance's end), ``full(i)`` the whole array, ``lengths`` ``(n,)`` their
lengths. :class:`seqae.datasets.audio.ArrayStore` keeps arrays in memory; :class:`FileStore` keeps them end
to end in one file, rows of time, and reads a range with ``os.pread``: nothing is mapped, so the
resident memory of a run stays that of its batches whatever the corpus's size (the operating system's
page cache does the rest). The cache folder ($SEQAE_CACHE or ``data.cache_dir``, like the text cache)
is keyed by the files (path, size, modification time), the features' settings and any change made to
the waveform first (an augmentation's label), and reused by every later run.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from seqae.atomic import keep_if_possible
from seqae.audio import LogMel, MelConfig, PitchTrack, pitch_contour, track_pitch
from seqae.datasets.audio import (
    AudioDataConfig,
    MelSegments,
    Utterance,
    WaveSegments,
    float_to_pcm16,
    iter_audio,
    train_and_test_utterances,
)
from seqae.datasets.base import DataError, build_once, default_cache_dir

STORE_VERSION = "seqae-audio-store-1"


class FileStore:
    """A cache folder: ``data.bin`` (rows of ``width`` values of ``dtype``, utterances end to end),
    ``offsets.npy`` ``(n + 1,)`` and, for log-mels with pitch, ``pitch.bin`` (one float32 a frame) and
    ``pitch_stats.npy`` ``(n, 2)`` (level, spread)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.dtype, self.width = np.dtype(meta["dtype"]), int(meta["width"])
        self.offsets = np.load(self.folder / "offsets.npy")
        self.lengths = np.diff(self.offsets)
        self.has_pitch = bool(meta.get("pitch"))
        self.pitch_stats = np.load(self.folder / "pitch_stats.npy") if self.has_pitch else None
        self.pitch = PitchTracks(self) if self.has_pitch else None
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.lengths)

    def _fd(self, name: str) -> int:
        if self._pid != os.getpid():  # a forked process opens its own
            self._fds, self._pid = {}, os.getpid()
        if name not in self._fds:
            self._fds[name] = os.open(self.folder / name, os.O_RDONLY)
        return self._fds[name]

    def _rows(self, name: str, dtype: np.dtype, width: int, first: int, count: int) -> np.ndarray:
        size = dtype.itemsize * width
        data = os.pread(self._fd(name), count * size, first * size)
        return np.frombuffer(data, dtype=dtype).reshape(-1, width)

    def read(self, i: int, start: int, count: int) -> np.ndarray:
        count = max(0, min(count, int(self.lengths[i]) - start))
        rows = self._rows("data.bin", self.dtype, self.width, int(self.offsets[i]) + start, count)
        return rows[:, 0].copy() if self.width == 1 else rows.T.copy()

    def full(self, i: int) -> np.ndarray:
        return self.read(i, 0, int(self.lengths[i]))

    def contour(self, i: int) -> np.ndarray:
        return self._rows("pitch.bin", np.dtype(np.float32), 1, int(self.offsets[i]), int(self.lengths[i]))[:, 0].copy()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_fds"} | {"_fds": {}}


class PitchTracks:
    """A :class:`FileStore`'s pitch as a sequence of :class:`~seqae.audio.PitchTrack`, read on use."""

    def __init__(self, store: FileStore):
        self.store = store
        self.levels = store.pitch_stats[:, 0]

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> PitchTrack:
        level, spread = self.store.pitch_stats[i]
        return PitchTrack(torch.from_numpy(self.store.contour(i)), float(level), float(spread))


def store_key(utterances, settings: dict) -> str:
    """The cache key: every file's resolved path, size and modification time, then the settings."""
    h = hashlib.sha256(STORE_VERSION.encode())
    for utt in utterances:
        path = Path(utt.audio)
        stat = path.stat()
        h.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:24]


Waves = Callable[[], Iterable[torch.Tensor]]


def cached_store(utterances, settings: dict, compute: Callable[[int, torch.Tensor], tuple[np.ndarray, PitchTrack | None]],
                 cache_dir: Path, waves: Waves, desc: str) -> FileStore:
    """The :class:`FileStore` of ``utterances`` under ``cache_dir``: built on first use from ``waves()``
    (each utterance's waveform ``(samples,)``, in order) with ``compute(i, wave)`` -> ``(rows (time,
    width), PitchTrack or None)``; reused after."""
    folder = Path(cache_dir) / f"audio-{store_key(utterances, settings)}"
    if not (folder / "done").exists():
        build_once(folder, lambda work: write_store(work, len(utterances), settings, compute, waves, desc), "audio feature cache")
    return FileStore(folder)


def write_store(work: Path, count: int, settings: dict, compute, waves: Waves, desc: str) -> None:
    from seqae.progress import each

    offsets, stats = array("q", [0]), []
    dtype, width = None, None
    with open(work / "data.bin", "wb") as data, open(work / "pitch.bin", "wb") as pitch_fh:
        numbered = enumerate(waves())
        for i, wave in each(numbered, f"{desc}, caching", total=count) if count >= 50 else numbered:
            rows, track = compute(i, wave)
            dtype, width = rows.dtype, rows.shape[1]
            data.write(np.ascontiguousarray(rows).tobytes())
            offsets.append(offsets[-1] + rows.shape[0])
            if track is not None:
                pitch_fh.write(track.contour.numpy().astype(np.float32).tobytes())
                stats.append((track.level, track.spread))
    np.save(work / "offsets.npy", np.frombuffer(offsets, dtype=np.int64))
    if stats:
        np.save(work / "pitch_stats.npy", np.asarray(stats, dtype=np.float64))
    meta = {"dtype": str(dtype or "float32"), "width": width or 1, "utterances": count, "pitch": bool(stats),
            "settings": settings, "version": STORE_VERSION}
    (work / "meta.json").write_text(json.dumps(meta))


def wave_store(utterances, sample_rate: int, min_samples: int, cache_dir: Path, waves: Waves, desc: str) -> FileStore:
    """Every utterance as int16 at ``sample_rate`` (``waves()`` reads them at that rate), cached."""
    def compute(i, wave):
        return float_to_pcm16(wave)[:, None], None

    return cached_store(utterances, {"kind": "wave", "sample_rate": sample_rate, "min_samples": min_samples}, compute,
                        cache_dir, waves, desc)


def mel_store(utterances, mel: MelConfig, pitch: bool, cache_dir: Path, waves: Waves, desc: str,
              transforms: Sequence[tuple[str, Callable | None]] | None = None) -> FileStore:
    """Every utterance's log-mel ``(n_mels, frames)`` (and its pitch with ``pitch``), cached. ``transforms``:
    one ``(label, change)`` per utterance, the waveform changed first (an augmentation's copy)."""
    front_end = LogMel(mel)
    labels = [label for label, _ in transforms] if transforms and any(label for label, _ in transforms) else []

    @torch.no_grad()
    def compute(i, wave):
        if transforms and transforms[i][1] is not None:
            wave = transforms[i][1](wave)
        rows = front_end(wave)[0].T.contiguous().numpy()
        return rows, pitch_contour(*track_pitch(wave, mel)) if pitch else None

    settings = {"kind": "log-mel", "mel": mel.__dict__, "pitch": pitch, "changes": labels}
    return cached_store(utterances, settings, compute, cache_dir, waves, desc)


def train_and_test_mels(config: AudioDataConfig, train_utts: list[Utterance], test_utts: list[Utterance], pitch: bool = False,
                        train_changes: Sequence[tuple[str, Callable | None]] | None = None):
    """The log-mel stores of both splits and, with ``pitch``, their pitch (``store.pitch``, else ``None``):
    ``(train_mels, test_mels, train_pitch, test_pitch)``. ``train_changes``: see :func:`mel_store`."""
    mel, cache = config.mel(), default_cache_dir(config)
    what = "log-mel and pitch" if pitch else "log-mel"
    train = mel_store(train_utts, mel, pitch, cache, lambda: iter_audio(train_utts, mel.sample_rate, mel.win_length, f"{what} (train)"),
                      f"{what} (train)", train_changes)
    test = mel_store(test_utts, mel, pitch, cache, lambda: iter_audio(test_utts, mel.sample_rate, mel.win_length, f"{what} (test)"),
                     f"{what} (test)")
    return train, test, train.pitch, test.pitch


def mel_statistics(config: AudioDataConfig, train_mels, utterances: int | None = None) -> tuple[float, float]:
    """``(mel_mean, mel_std)``: the recipe's when set, else those of the training log-mels (a list, an
    ArrayStore or a FileStore; the first ``utterances`` of it when given), summed one utterance at a time in float64."""
    if config.mel_mean != 0.0 or config.mel_std != 0.0:
        return config.mel_mean, config.mel_std
    count = utterances if utterances is not None else len(train_mels)
    saved = train_mels.folder / f"statistics-{count}.json" if isinstance(train_mels, FileStore) else None
    if saved is not None and saved.exists():  # a store's files never change: its statistics are computed once
        return tuple(json.loads(saved.read_text()))
    total = square = n = 0.0
    for i in range(count):
        values = np.asarray(train_mels.full(i) if hasattr(train_mels, "full") else train_mels[i], dtype=np.float64)
        total, square, n = total + values.sum(), square + (values ** 2).sum(), n + values.size
    mean = total / n
    result = float(mean), float(max(max((square - n * mean * mean) / max(n - 1, 1), 0.0) ** 0.5, 1e-5))
    if saved is not None:
        keep_if_possible(saved, json.dumps(result))  # a read-only cache: computed again next time
    return result


def build_mel_splits(config: AudioDataConfig) -> tuple[MelSegments, MelSegments, list, list, tuple[float, float]]:
    """Train and test segment sources, the utterances of each, and the ``(mel_mean, mel_std)`` they are
    normalised by (:func:`mel_statistics`)."""
    train_utts, test_utts = train_and_test_utterances(config)
    train_mels, test_mels, _, _ = train_and_test_mels(config, train_utts, test_utts)
    mean, std = mel_statistics(config, train_mels)
    train = MelSegments(train_mels, config.segment_frames, mean, std, f"{config.source} (train)")
    test = MelSegments(test_mels, config.segment_frames, mean, std, f"{config.source} (test)")
    return train, test, train_utts, test_utts, (mean, std)


def build_wave_splits(config: AudioDataConfig, min_samples: int) -> tuple[WaveSegments, WaveSegments, dict]:
    """Train and test waveform windows from the cache; speakers are numbered over both splits."""
    train_utts, test_utts = train_and_test_utterances(config)
    names = sorted({u.speaker for u in train_utts + test_utts})
    index = {n: i for i, n in enumerate(names)}
    rate, cache = config.sample_rate, default_cache_dir(config)
    train_waves = wave_store(train_utts, rate, min_samples, cache,
                             lambda: iter_audio(train_utts, rate, min_samples, "reading audio (train)"), "audio (train)")
    test_waves = wave_store(test_utts, rate, min_samples, cache,
                            lambda: iter_audio(test_utts, rate, min_samples, "reading audio (test)"), "audio (test)")
    train = WaveSegments(train_waves, [index[u.speaker] for u in train_utts], config.segment_samples, f"{config.source} (train)")
    test = WaveSegments(test_waves, [index[u.speaker] for u in test_utts], config.segment_samples, f"{config.source} (test)")
    if len(train) == 0:
        raise DataError(f"{config.source}: no utterance is as long as data.segment_samples ({config.segment_samples} samples)")
    return train, test, {"train": train_utts, "test": test_utts, "speakers": names}
