import json

import numpy as np
import pytest
import soundfile
import torch

import seqae
from seqae.audio import LogMel, MelConfig
from seqae.cli import main
from seqae.config import ConfigError
from seqae.datasets.audio import list_utterances, read_audio, read_manifest
from seqae.datasets.base import DataError

from conftest import write_recipe


def tone(path, freq, seconds=0.5, rate=16000, channels=1, amplitude=0.3):
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    soundfile.write(str(path), data.astype(np.float32), rate)
    return path


def test_stereo_is_mixed_down_and_other_rates_resampled(tmp_path):
    path = tone(tmp_path / "a.wav", 440, seconds=1.0, rate=44100, channels=2)
    wave = read_audio(path, 16000)
    assert wave.dim() == 1 and abs(wave.shape[0] - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 3


def test_bad_audio_files_are_named(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(DataError, match="corrupt.wav: cannot decode audio"):
        read_audio(tmp_path / "corrupt.wav", 16000)
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav: the audio file is empty"):
        read_audio(tmp_path / "empty.wav", 16000)
    tone(tmp_path / "short.wav", 440, seconds=0.01)
    with pytest.raises(DataError, match=r"short.wav: 10.0 ms of audio, shorter than one frame \(25.0 ms\)"):
        read_audio(tmp_path / "short.wav", 16000, min_samples=400)


def test_manifest_lines_are_checked(tmp_path):
    tone(tmp_path / "a.wav", 300)
    good = {"audio": "a.wav", "speaker": "s1", "phones": [[0.0, 0.1, "a"], [0.1, 0.3, "b"]]}
    (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n")
    utts = read_manifest(tmp_path / "m.jsonl")
    assert utts[0].speaker == "s1" and utts[0].phones[1] == (0.1, 0.3, "b")
    cases = {
        "{not json": r"m.jsonl:2: not a JSON object",
        json.dumps({"speaker": "x"}): r"m.jsonl:2: each line needs an \"audio\" path",
        json.dumps({"audio": "missing.wav"}): r"m.jsonl:2: no such audio file: .*missing.wav",
        json.dumps({"audio": "a.wav", "phones": [[-0.1, 0.2, "a"]]}): r"m.jsonl:2: phone 0 .* need 0 <= start < end",
        json.dumps({"audio": "a.wav", "phones": [[0.0, 0.2, "a"], [0.1, 0.3, "b"]]}): r"m.jsonl:2: phone 1 .* before the previous one ends",
    }
    for line, message in cases.items():
        (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(DataError, match=message):
            read_manifest(tmp_path / "m.jsonl")


def test_log_mel_has_one_frame_per_hop():
    config = MelConfig()
    mel = LogMel(config)(torch.randn(16000) * 0.1)
    assert mel.shape == (1, 80, 101)
    assert torch.isfinite(mel).all() and mel.min() >= np.log(config.log_floor) - 1e-6


TINY_MEL_VQ = """
[model]
family = "vqvae"
input = "mel"
latent = "grid"
channels = 16
code_dim = 8
codebook_size = 8

[data]
source = "wavs"
test_fraction = 0.25
segment_frames = 16
n_mels = 20

[train]
steps = 20
batch_size = 8
lr = 2e-3
warmup_steps = 2
log_every = 5
checkpoint_every = 20
"""


def test_mel_vqvae_trains_evaluates_and_writes_codes(tmp_path):
    (tmp_path / "wavs" / "spk").mkdir(parents=True)
    for i, freq in enumerate([200, 300, 450, 600, 800, 1000, 1300, 1700]):
        tone(tmp_path / "wavs" / "spk" / f"u{i}.wav", freq)
    assert len(list_utterances(tmp_path / "wavs")) == 8
    run = seqae.train(write_recipe(tmp_path, TINY_MEL_VQ), out=tmp_path / "run")
    result = seqae.evaluate(run)
    assert result["test_utterances"] == 2 and result["codebook_size"] == 8
    assert 0 < result["test_mse"] < 5 and result["codes_used"] >= 1
    model = seqae.load(run)
    assert model.recipe.data.mel_std > 0  # normalisation saved with the run
    wav = tmp_path / "wavs" / "spk" / "u0.wav"
    assert main(["codes", str(run), "-i", str(wav), "-o", str(tmp_path / "c.npy")]) == 0
    codes = np.load(tmp_path / "c.npy")
    assert codes.shape == (26,)  # 51 frames, halved by one down-sampling stage
    assert main(["codes", str(run), "-i", str(tmp_path / "wavs"), "-o", str(tmp_path / "c.npz")]) == 0
    assert len(np.load(tmp_path / "c.npz").files) == 8
    names = {p.name for p in seqae.plot(run, tmp_path / "plots")}
    assert {"reconstructions.png", "code_usage.png", "clip_1_original.wav", "clip_1_reconstruction.wav"} <= names
    import soundfile

    original, rate = soundfile.read(tmp_path / "plots" / "clip_1_original.wav")
    assert rate == 16000 and len(original) == 8000 and np.abs(original).max() > 0.1  # the tone back through Griffin-Lim
    rebuilt, rate = soundfile.read(tmp_path / "plots" / "clip_1_reconstruction.wav")  # (near silence after a few steps)
    assert rate == 16000 and len(rebuilt) == len(original) and np.isfinite(rebuilt).all()
    with pytest.raises(ConfigError, match="a code per frame"):
        seqae.evaluate(run, discriminator=True)
