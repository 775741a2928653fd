"""Voice conversion's training-time augmentation: the waveform changes (speed, pitch), the log-mel ones
(equaliser, noise, whisper), their place in the batches, and the recipe options that turn them on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchaudio

from seqae.audio import LogMel, MelConfig, PitchTrack, mel_bands, track_pitch
from seqae.datasets.augment import change_speed, equalise, mix_noise, noise_bank, random_gains, shift_pitch, whisper
from seqae.families.voice_conversion.data import Augmentation, SpeakerSegments


def tone(f0: float, seconds: float = 1.0, sample_rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return 0.3 * sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8))


def median_f0(wave: torch.Tensor) -> float:
    octaves, voiced = track_pitch(wave, MelConfig())
    return 100.0 * 2.0 ** octaves[voiced].median().item()


@pytest.mark.parametrize("semitones", [-4.0, 3.0, 7.0])
def test_shift_pitch_moves_the_pitch_and_keeps_the_duration(semitones):
    wave = tone(150.0)
    shifted = shift_pitch(wave, semitones)
    assert shifted.shape == wave.shape
    assert median_f0(shifted) == pytest.approx(150.0 * 2 ** (semitones / 12), rel=0.01)
    # the level is kept: a phase vocoder moves the pitch, not the loudness
    assert shifted[2000:-2000].pow(2).mean().item() == pytest.approx(wave[2000:-2000].pow(2).mean().item(), rel=0.25)
    assert torch.equal(shift_pitch(wave, 0.0), wave)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_moves_pitch_and_duration_together(factor):
    wave = tone(150.0)
    faster = change_speed(wave, factor)
    assert faster.shape[-1] == pytest.approx(wave.shape[-1] / factor, abs=2)
    assert median_f0(faster) == pytest.approx(150.0 * factor, rel=0.01)
    assert change_speed(torch.stack([wave, wave]), factor).shape[0] == 2  # batches too


def test_equaliser_gains_are_smooth_bounded_and_exact_in_the_log_domain():
    rng = np.random.default_rng(0)
    gains = [random_gains(40, 12.0, rng) for _ in range(20)]
    assert all(g.abs().max() <= 12.0 + 1e-5 for g in gains)
    assert max(g.abs().max().item() for g in gains) > 6.0  # the draws reach most of the range
    assert all((g[1:] - g[:-1]).abs().max() < 3.0 for g in gains)  # smooth across the bands
    log_mel = torch.randn(40, 7)
    # +20 dB of energy is x10 in magnitude (power 1), x100 in power (power 2)
    flat = torch.full((40,), 20.0)
    assert torch.allclose(equalise(log_mel, flat, 1.0) - log_mel, torch.full((40, 7), math.log(10.0)), atol=1e-5)
    assert torch.allclose(equalise(log_mel, flat, 2.0) - log_mel, torch.full((40, 7), math.log(100.0)), atol=1e-5)


def test_noise_is_mixed_at_the_asked_ratio_of_band_energies():
    config = MelConfig(n_mels=40)
    bank = noise_bank(config, seconds=2.0)
    assert bank.shape[:2] == (2, 40)
    # pink noise has more of its energy in the low bands than white noise
    white, pink = torch.exp(2 * bank[0]).mean(1), torch.exp(2 * bank[1]).mean(1)
    assert (pink[:10].sum() / pink.sum()) > 2 * (white[:10].sum() / white.sum())
    speech = LogMel(config)(tone(150.0))[0]
    noise = bank[1][:, : speech.shape[1]]
    for snr in (0.0, 10.0, 20.0):
        mixed = mix_noise(speech, noise, snr)
        added = torch.exp(2 * mixed) - torch.exp(2 * speech)
        measured = 10 * math.log10(torch.exp(2 * speech).sum().item() / added.sum().item())
        assert measured == pytest.approx(snr, abs=0.05)
    loud = speech > speech.max() - math.log(10.0)  # bands within 20 dB of the loudest: unchanged by noise 60 dB down
    assert (mix_noise(speech, noise, 60.0) - speech)[loud].abs().max() < 1e-3
    # the mask: the ratio counts the real frames only
    mask = torch.zeros(speech.shape[1], dtype=torch.bool)
    mask[:20] = True
    mixed = mix_noise(speech, noise, 10.0, mask=mask)
    added = (torch.exp(2 * mixed) - torch.exp(2 * speech))[:, :20]
    assert 10 * math.log10(torch.exp(2 * speech[:, :20]).sum().item() / added.sum().item()) == pytest.approx(10.0, abs=0.05)


def segments(augment=None):
    rng = np.random.default_rng(0)
    mels = [torch.from_numpy(rng.normal(-4.0, 2.0, size=(40, n)).astype(np.float32)) for n in (20, 40, 12, 30)]
    pitch = [PitchTrack(torch.linspace(0.2, 0.8, m.shape[1]), 0.5, 0.1) for m in mels]
    return SpeakerSegments(mels, [0, 0, 1, 1], 16, -4.0, 2.0, "t", reference_windows=2, pitch=pitch, augment=augment)


def test_equaliser_and_noise_in_the_batches():
    config = MelConfig(n_mels=40)
    plain = segments()
    indices = np.array([0, 4, len(plain) + 2])
    a = plain.collate(indices)
    b = segments(Augmentation(config, equalise_db=10.0)).collate(indices)
    for row in range(3):
        # one gain curve per example, the same on its window and its references, none on the padding
        shift = (b["x"][row] - a["x"][row])[:, a["mask"][row]]
        assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
        ref_shift = (b["ref"][row] - a["ref"][row])[:, a["ref_mask"][row]]
        assert torch.allclose(ref_shift, shift[:, :1].expand_as(ref_shift), atol=1e-5)
        assert (b["x"][row][:, ~a["mask"][row]] == 0).all()
        assert 0.01 < shift.abs().max() * 2.0 / (math.log(10) / 20) <= 10.0 + 1e-3  # in dB: within the peak
    assert "target" not in b
    both = segments(Augmentation(config, equalise_db=10.0, noise_snr=(0.0, 5.0)))
    c = both.collate(indices)
    assert torch.equal(c["target"], b["x"])  # the target: equalised, clean
    real = a["mask"]
    assert (c["x"] - c["target"])[real[:, None, :].expand_as(c["x"])].mean() > 0.05  # noise raises the energies
    assert (c["ref"] != b["ref"]).any() and (c["x"][~real[:, None, :].expand_as(c["x"])] == 0).all()
    assert torch.equal(both.collate(indices)["x"], c["x"])  # a pure function of the indices
    assert torch.equal(c["pitch"], a["pitch"])  # neither moves the pitch


def test_whisper_keeps_the_envelope_takes_off_the_tilt_and_leaves_silence():
    config = MelConfig(n_mels=40)
    frames = 30
    basis = torchaudio.functional.create_dct(40, 40, "ortho")  # (bands, coefficients), orthonormal
    coefficients = torch.from_numpy(np.random.default_rng(1).normal(0.0, 1.0, (12, frames)).astype(np.float32))
    coefficients[0] -= 20.0
    envelope = basis[:, :12] @ coefficients  # smooth along the mel axis
    ripple = 4.0 * basis[:, 35:36]  # a fine structure along the mel axis (harmonics)
    speech = envelope + ripple
    speech[:, :3] = math.log(config.log_floor)  # silence at the front end's floor
    flat = torch.zeros(40, frames)  # noise with no fine structure: the rendering is the envelope alone
    smooth = whisper(speech, flat, 0.0, config, coefficients=12)
    assert (smooth[:, :3] == speech[:, :3]).all()  # silence is left as it is
    assert (smooth[:, 3:] - envelope[:, 3:]).abs().max() < 0.05  # the harmonic ripple is gone, the envelope kept
    assert (speech[:, 3:] - envelope[:, 3:]).abs().max() > 0.7
    tilted = whisper(speech, flat, 6.0, config, coefficients=12)
    centres, _ = mel_bands(config)
    rise = 6.0 * torch.log2(centres / 1000.0).float() * math.log(10.0) / 20.0  # dB of energy -> nats of magnitude
    assert torch.allclose((tilted - smooth)[:, 3:], rise[:, None].expand(40, frames - 3), atol=1e-4)
    assert float(rise[0]) < -1.0 and float(rise[-1]) > 0.5  # below 1 kHz down, above it up
    noise = noise_bank(config, seconds=1.0)[0][:, :frames]
    noisy = whisper(speech, noise, 0.0, config, coefficients=12)
    fine = noise - noise.mean(-1, keepdim=True)
    assert torch.allclose((noisy - smooth)[:, 3:], fine[:, 3:], atol=1e-4)  # noise's fine structure, its mean off
    mask = torch.ones(frames, dtype=torch.bool)
    mask[-5:] = False
    assert torch.equal(whisper(speech, noise, 6.0, config, mask=mask)[:, -5:], speech[:, -5:])


def test_whispered_windows_in_the_batches():
    config = MelConfig(n_mels=40)
    plain = segments()
    indices = np.arange(3 * len(plain))
    a = plain.collate(indices)
    every = segments(Augmentation(config, whisper=1.0)).collate(indices)
    real = a["mask"]
    assert torch.equal(every["target"], a["x"]) and torch.equal(every["ref"], a["ref"])  # the inputs change, not the target
    assert all((every["x"][row] != a["x"][row])[:, real[row]].any() for row in range(len(indices)))
    assert (every["x"][~real[:, None, :].expand_as(every["x"])] == 0).all()
    # one row rebuilt by hand: its draws (the stream [epoch, window, 6]), its natural values, the white noise
    bank, row, frames = noise_bank(config), 7, a["x"].shape[-1]
    rng = np.random.default_rng([row // len(plain), row % len(plain), 6])
    assert rng.uniform() < 1.0
    noise = bank[0][:, (int(rng.integers(bank.shape[-1])) + torch.arange(frames)) % bank.shape[-1]]
    expected = whisper(a["x"][row] * 2.0 - 4.0, noise, float(rng.uniform(4.0, 10.0)), config, mask=real[row])
    assert torch.allclose(every["x"][row][:, real[row]], ((expected + 4.0) / 2.0)[:, real[row]], atol=1e-5)
    for row in range(len(indices)):  # the contour flat at its median on the real frames, zero on padding
        contour = every["pitch"][row][real[row]]
        assert torch.allclose(contour, a["pitch"][row][real[row]].median().expand_as(contour))
        assert (every["pitch"][row][~real[row]] == 0).all()
    half = segments(Augmentation(config, whisper=0.5))
    b = half.collate(indices)
    changed = torch.tensor([bool((b["x"][row] != a["x"][row]).any()) for row in range(len(indices))])
    assert 0.25 < changed.float().mean() < 0.75  # about the share asked for
    assert torch.equal(b["x"][changed], every["x"][changed]) and torch.equal(b["x"][~changed], a["x"][~changed])
    assert torch.equal(b["pitch"][~changed], a["pitch"][~changed])  # the contour flattened with the whisper only
    assert torch.equal(half.collate(indices)["x"], b["x"])  # a pure function of the indices
    with_noise = segments(Augmentation(config, whisper=1.0, noise_snr=(0.0, 5.0))).collate(indices)
    assert torch.equal(with_noise["target"], a["x"])  # the target stays the clean window under both
    assert not torch.equal(with_noise["x"], every["x"]) and torch.equal(with_noise["pitch"], every["pitch"])


def test_the_model_reconstructs_the_target_when_there_is_one():
    from seqae.families.voice_conversion.config import VoiceConversionConfig
    from seqae.families.voice_conversion.model import VoiceConversion

    config = VoiceConversionConfig(input_dim=40, channels=16, blocks=1, content_dim=4, speaker_dim=8, speakers=["a", "b"])
    model = VoiceConversion(config).eval()
    batch = segments().collate(np.array([0, 1]))
    plain = model(batch).loss
    assert torch.equal(model(dict(batch, target=batch["x"])).loss, plain)
    assert model(dict(batch, target=batch["x"] + 5.0)).loss > plain + 3.0  # |r - x - 5| >= 5 - |r - x|


def test_augmentation_options_are_checked_and_make_new_speakers(vc_corpus, tmp_path, capsys):
    import seqae

    from conftest import expect_error
    from tiny import TINY_VC, write_recipe

    train, unseen = vc_corpus
    text = TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(train)).replace("UNSEEN", str(unseen)).replace("steps = 12", "steps = 2")
    recipe = write_recipe(tmp_path, text)
    for bad, key in (("data.speed_perturb=[1.0]", "data.speed_perturb"), ("data.pitch_shift=[0]", "data.pitch_shift"),
                     ("data.pitch_shift=[2, 2]", "data.pitch_shift"), ("data.equalise_db=-1", "data.equalise_db"),
                     ("data.noise_snr=[20, 10]", "data.noise_snr"), ("data.noise_snr=[10]", "data.noise_snr"),
                     ("data.whisper=1.5", "data.whisper")):
        expect_error(["train", recipe, "--out", tmp_path / "bad", "--set", bad], capsys, key)
    run = seqae.train(recipe, out=tmp_path / "run", overrides=["data.speed_perturb=[1.1]", "data.pitch_shift=[-3]",
                                                                 "data.equalise_db=6", "data.noise_snr=[5, 20]",
                                                                 "data.whisper=0.5"])
    model = seqae.load(run)
    corpus = sorted({s for s in model.config.speakers if "@" not in s})
    assert model.config.speakers == sorted(corpus + [f"{s}@speed1.1" for s in corpus] + [f"{s}@pitch-3" for s in corpus])
    assert model.recipe.data.noise_snr == [5.0, 20.0] and model.recipe.data.whisper == 0.5
