"""The streaming audio stores: computed once into the cache, read back exactly as the in-memory path
computes, reused until a file or a setting changes, and the batches built from them unchanged."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pytest
import torch

from seqae.audio import MelConfig
from seqae.datasets.audio import MelSegments, WaveSegments, iter_audio, log_mels_and_pitch, read_manifest, read_waves, segment_windows
from seqae.datasets.audio_store import FileStore, mel_statistics, mel_store, wave_store
from seqae.datasets.augment import change_speed
from seqae.errors import DataError

from tiny import synthetic_corpus


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store_speech")
    return read_manifest(synthetic_corpus(folder))


def waves_of(utts, rate=16000, min_samples=400):
    return lambda: iter_audio(utts, rate, min_samples, "test")


def test_waveforms_stream_back_exactly_and_the_cache_is_reused(speech, tmp_path):
    store = wave_store(speech, 16000, 400, tmp_path, waves_of(speech), "test")
    expected = read_waves(speech, 16000, 400)
    assert isinstance(store, FileStore) and len(store) == len(expected)
    assert store.lengths.tolist() == [len(w) for w in expected]
    for i in (0, 3, len(expected) - 1):
        np.testing.assert_array_equal(store.full(i), expected[i])
        np.testing.assert_array_equal(store.read(i, 100, 5000), expected[i][100:5100])
        assert len(store.read(i, len(expected[i]) - 10, 100)) == 10  # clipped at the utterance's end
    built = [p for p in tmp_path.iterdir() if p.name.startswith("audio-")]
    assert len(built) == 1 and (built[0] / "done").exists()
    again = wave_store(speech, 16000, 400, tmp_path, lambda: pytest.fail("read the audio again"), "test")
    assert again.folder == store.folder
    # another sample rate, or a file that changed, is another cache entry
    assert wave_store(speech, 8000, 400, tmp_path, waves_of(speech, 8000), "test").folder != store.folder
    os.utime(speech[0].audio, ns=(1, 1))
    assert wave_store(speech, 16000, 400, tmp_path, waves_of(speech), "test").folder != store.folder


def test_log_mels_and_pitch_stream_back_as_computed_with_changes_applied(speech, tmp_path):
    mel = MelConfig(n_mels=40)
    utts = speech[:4]
    mels, pitch = log_mels_and_pitch(utts, mel, pitch=True)
    store = mel_store(utts, mel, True, tmp_path, waves_of(utts), "test")
    for i in range(4):
        np.testing.assert_allclose(store.full(i), mels[i].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(store.read(i, 7, 20), mels[i].numpy()[:, 7:27], atol=1e-6)
        track = store.pitch[i]
        torch.testing.assert_close(track.contour, pitch[i].contour)
        assert (track.level, track.spread) == pytest.approx((pitch[i].level, pitch[i].spread))
    # a copy made faster before its log-mel is taken: fewer frames, its own cache entry
    changes = [("", None), ("speed1.2", partial(change_speed, factor=1.2))]
    both = mel_store(utts[:1] * 2, mel, False, tmp_path, waves_of(utts[:1] * 2), "test", changes)
    assert both.pitch is None and both.folder != store.folder
    np.testing.assert_allclose(both.full(0), mels[0].numpy(), atol=1e-6)
    assert both.lengths[1] == pytest.approx(both.lengths[0] / 1.2, abs=2)
    # the statistics, one utterance at a time, as from the arrays in memory; kept with the store
    data = type("D", (), {"mel_mean": 0.0, "mel_std": 0.0})()
    values = torch.cat([m.reshape(-1) for m in mels])
    first = mel_statistics(data, store)
    assert first == pytest.approx((values.mean().item(), values.std().item()), rel=1e-4)
    assert mel_statistics(data, mels) == pytest.approx(first, rel=1e-9)
    store.full = lambda i: pytest.fail("read the log-mels again")
    assert mel_statistics(data, store) == first and (store.folder / "statistics-4.json").exists()
    # a read-only cache: the statistics are computed and not kept
    import seqae.atomic
    from seqae.atomic import CheckpointError

    def refuse(path, data):
        raise CheckpointError(f"{path}: could not write (read-only)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seqae.atomic, "atomic_write", refuse)
        values = np.concatenate([both.full(0).reshape(-1), both.full(1).reshape(-1)]).astype(np.float64)
        assert mel_statistics(data, both) == pytest.approx((values.mean(), values.std(ddof=1)), rel=1e-6)
        assert not list(both.folder.glob("statistics-*.json"))


def test_batches_from_a_store_are_the_batches_from_memory(speech, tmp_path):
    mel = MelConfig(n_mels=40)
    mels, _ = log_mels_and_pitch(speech, mel, pitch=False)
    store = mel_store(speech, mel, False, tmp_path, waves_of(speech), "test")
    a, b = MelSegments(mels, 32, -3.0, 2.0, "memory"), MelSegments(store, 32, -3.0, 2.0, "store")
    assert len(a) == len(b) > 10
    picks = np.array([0, 5, len(a) - 1, 3])
    for key in ("x", "mask"):
        torch.testing.assert_close(a.collate(picks)[key], b.collate(picks)[key], atol=1e-5, rtol=0)
    waves = read_waves(speech, 16000, 400)
    w_store = wave_store(speech, 16000, 400, tmp_path, waves_of(speech), "test")
    wa, wb = WaveSegments(waves, list(range(len(waves))), 4000, "m"), WaveSegments(w_store, list(range(len(waves))), 4000, "s")
    picks = np.array([1, 0, len(wa) - 1])
    for key in ("wave", "speaker"):
        torch.testing.assert_close(wa.collate(picks)[key], wb.collate(picks)[key])


def test_segment_windows_are_the_half_overlapping_windows():
    lengths = np.array([10, 64, 65, 200, 3])
    for keep_short in (True, False):
        expected = [(i, s) for i, n in enumerate(lengths)
                    for s in (range(0, max(n - 64, 0) + 1, 32) if keep_short else range(0, n - 64 + 1, 32))]
        assert segment_windows(lengths, 64, keep_short).tolist() == [list(w) for w in expected]


def test_an_unwritable_cache_is_a_clear_error(speech, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(DataError, match="audio feature cache"):
        wave_store(speech, 16000, 400, blocked / "cache", waves_of(speech), "test")
