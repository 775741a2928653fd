"""Voice conversion's pitch and spectral-envelope paths: the envelope input, YIN pitch tracking, contours moved to
the target, harmonic templates, the source-filter decoder and pitch-adaptive smoothing."""


import numpy as np
import pytest
import torch
import torchaudio

import seqae
from seqae.audio import PitchTrack
from seqae.cli import main
from seqae.families.voice_conversion.data import SpeakerSegments
from seqae.families.voice_conversion.model import VoiceConversion, VoiceConversionConfig

from tiny import PHONES, RATE, TINY_VC, voiced, write_recipe


def test_envelope_input_keeps_the_spectral_envelope_and_drops_the_harmonic_ripple():
    import torchaudio

    torch.manual_seed(0)
    model = VoiceConversion(VoiceConversionConfig(input_dim=40, channels=8, blocks=1, content_dim=4, speaker_dim=4,
                                                  content_input="envelope", envelope_coefficients=10, speakers=["a", "b"]))
    assert model.content_encoder.inp.in_channels == 10 and "content_encoder.envelope" not in model.state_dict()
    bands = torch.arange(40.0)
    envelope = torch.exp(-((bands - 12) / 8) ** 2)  # one smooth formant bump
    ripple = 0.5 * torch.cos(np.pi * bands * 0.8)  # fast alternation along the mel axis: harmonics
    dct = torchaudio.functional.create_dct(10, 40, "ortho")
    smooth, rippled = envelope @ dct, (envelope + ripple) @ dct
    assert torch.allclose(model.content_encoder.envelope, dct)
    assert (rippled - smooth).norm() < 0.15 * ripple.norm()  # most of the ripple is beyond coefficient 10
    mel = (envelope + ripple)[None, :, None].repeat(2, 1, 7)
    mean, _ = model.content_encoder(mel)
    assert mean.shape == (2, 4, 7)
    with pytest.raises(ValueError, match="more than the 40 mel bands"):
        VoiceConversion(VoiceConversionConfig(input_dim=40, content_input="envelope", envelope_coefficients=41, speakers=["a", "b"]))


# -- pitch -------------------------------------------------------------------------------------------


def test_yin_finds_the_pitch_of_harmonic_tones_and_calls_noise_unvoiced():
    from seqae.audio import MelConfig, track_pitch

    rng = np.random.default_rng(1)
    mel = MelConfig(sample_rate=RATE)
    for f0 in (90.0, 137.0, 220.0, 310.0):
        wave = torch.from_numpy(0.3 * voiced(f0, PHONES["a"], 0.5, 0.5, rng)).float()
        octaves, is_voiced = track_pitch(wave, mel)
        assert octaves.shape == is_voiced.shape == (len(wave) // 160 + 1,)
        inner = slice(5, -5)  # away from the zero padding at the ends
        assert bool(is_voiced[inner].all()), f0
        hz = 100 * 2 ** octaves[inner]
        assert float((hz / f0 - 1).abs().max()) < 0.01, (f0, hz.min(), hz.max())  # within 1 %, no octave errors
    noise = torch.from_numpy(0.1 * rng.standard_normal(RATE // 2)).float()
    assert float(track_pitch(noise, mel)[1].float().mean()) < 0.05
    assert not bool(track_pitch(torch.zeros(RATE // 4), mel)[1].any())  # silence


def test_pitch_contour_fills_unvoiced_gaps_and_move_pitch_shifts_it_to_the_target_level():
    from seqae.audio import move_pitch, pitch_contour

    octaves = torch.tensor([9.0, 0.0, 9.0, 9.0, 1.0, 9.0])
    contour, level, spread = pitch_contour(octaves, torch.tensor([False, True, False, False, True, False]))
    assert torch.allclose(contour, torch.tensor([0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]))
    assert level == pytest.approx(0.5)
    assert spread == pytest.approx(0.5 / 1.349)  # interquartile range of the voiced frames (0, 1) / 1.349
    flat, none, no_spread = pitch_contour(octaves, torch.zeros(6, dtype=torch.bool))  # whisper: no level
    assert np.isnan(none) and np.isnan(no_spread) and not bool(flat.any())
    assert torch.allclose(move_pitch(contour, 0.5, [1.0, 2.0]), contour + 1.0)  # to the references' mean level
    assert torch.allclose(move_pitch(contour, 0.5, [float("nan"), 1.5]), contour + 1.0)  # unvoiced references ignored
    assert torch.equal(move_pitch(contour, 0.5, [float("nan")]), contour)  # no level to move to: unchanged
    assert torch.equal(move_pitch(flat, none, 0.75), torch.full((6,), 0.75))  # an unvoiced source: flat at the target's


def test_move_pitch_scales_the_range_to_the_targets_and_target_contour_chooses():
    from seqae.audio import MAX_RANGE_RATIO, PitchTrack, move_pitch, pitch_contour, target_contour

    rng = np.random.default_rng(0)
    source = pitch_contour(torch.from_numpy(rng.normal(0.0, 0.1, 400)), torch.ones(400, dtype=torch.bool))
    target = pitch_contour(torch.from_numpy(rng.normal(1.0, 0.3, 400)), torch.ones(400, dtype=torch.bool))
    assert source.spread == pytest.approx(0.1, rel=0.15) and target.spread == pytest.approx(0.3, rel=0.15)
    moved = target_contour(source, [target])  # default: the target's level and range
    assert float(np.median(moved.numpy())) == pytest.approx(target.level, abs=1e-6)  # the median maps to the target's level
    assert float(moved.std() / source.contour.std()) == pytest.approx(target.spread / source.spread, rel=1e-6)
    kept = target_contour(source, [target], "source")  # the source's range kept: a shift only
    assert torch.allclose(kept, source.contour + (target.level - source.level))
    # the ratio is held within [1/4, 4]; no usable spread on either side moves the level only
    wide = PitchTrack(target.contour, 1.0, 100.0)
    assert torch.allclose(target_contour(source, [wide]) - 1.0, (source.contour - source.level) * MAX_RANGE_RATIO)
    whisper = PitchTrack(torch.zeros(400), float("nan"), float("nan"))
    assert torch.allclose(target_contour(source, [whisper, target]), moved)  # unvoiced references ignored
    assert torch.allclose(move_pitch(source.contour, source.level, [1.0], 0.0, [0.3]), source.contour + 1.0 - source.level)
    with pytest.raises(ValueError, match="pitch_range"):
        target_contour(source, [target], "both")


def test_training_batches_carry_each_windows_contour_at_its_references_level():
    mels = [torch.randn(4, 10) for _ in range(4)]
    contours = [torch.linspace(0, 1, 10) + k for k in range(4)]
    pitch = [PitchTrack(c, float(c.median()), 0.1) for c in contours]
    data = SpeakerSegments(mels, [0, 0, 1, 1], 6, 0.0, 1.0, "t", pitch=pitch)
    batch = data.collate(np.arange(len(data)))
    for row, window in enumerate(range(len(data))):
        utt, start = data.windows[window]
        ref_utt = data.windows[data.references(window)[0]][0]
        expected = contours[utt][start : start + 6] - pitch[utt][1] + pitch[ref_utt][1]
        assert torch.allclose(batch["pitch"][row], expected, atol=1e-6)
    assert batch["pitch"].shape == (len(data), 6)
    with pytest.raises(ValueError, match="as long as its log-mel"):
        SpeakerSegments(mels, [0, 0, 1, 1], 6, 0.0, 1.0, "t", pitch=pitch[:3])


@pytest.mark.parametrize("pitch, extra, smoothing", [("contour", 1, "cepstral"), ("harmonics", 40, "cepstral"),
                                                      ("source_filter", 40, "cepstral"), ("source_filter", 40, "pitch_adaptive")])
def test_a_pitch_model_trains_evaluates_converts_and_needs_the_contour(vc_corpus, tmp_path, monkeypatch, pitch, extra, smoothing):
    train, unseen = vc_corpus
    text = TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(train)).replace("UNSEEN", str(unseen))
    lines = f"adversary_hidden = 16\npitch = \"{pitch}\"\nenvelope_smoothing = \"{smoothing}\""
    recipe = write_recipe(tmp_path, text.replace("adversary_hidden = 16", lines), "pitch.toml")
    run = seqae.train(recipe, out=tmp_path / "run")
    model = seqae.load(run)
    assert model.decoder.inp.in_channels == 8 + extra  # content_dim + the contour or its harmonic templates (n_mels)
    result = seqae.evaluate(run)
    assert result["seen_conversions"] > 0 and 0.0 <= result["unseen_labelled_target"] <= 1.0
    out = tmp_path / "out.wav"
    assert main(["convert", str(run), "--source", str(train.parent / "low_0.wav"), "--target", str(train.parent / "high_1.wav"),
                 "-o", str(out)]) == 0
    assert np.isfinite(np.load(out.with_suffix(".npy"))).all()
    kept = tmp_path / "kept.wav"  # the source's pitch range kept
    assert main(["convert", str(run), "--source", str(train.parent / "low_0.wav"), "--target", str(train.parent / "high_1.wav"),
                 "-o", str(kept), "--pitch-range", "source"]) == 0
    assert np.isfinite(np.load(kept.with_suffix(".npy"))).all()
    # the flag reaches the decoder: keeping the source's range changes the converted mel
    assert np.abs(np.load(kept.with_suffix(".npy")) - np.load(out.with_suffix(".npy"))).max() > 1e-4
    adapted = tmp_path / "adapted.wav"  # the speaker vector fitted to the target utterance first
    assert main(["convert", str(run), "--source", str(train.parent / "low_0.wav"), "--target", str(train.parent / "high_1.wav"),
                 "-o", str(adapted), "--adapt-steps", "5"]) == 0
    assert np.abs(np.load(adapted.with_suffix(".npy")) - np.load(out.with_suffix(".npy"))).max() > 1e-4
    assert main(["convert", str(run), "--source", str(train.parent / "low_0.wav"), "--target", str(train.parent / "high_1.wav"),
                 "-o", str(tmp_path / "no.wav"), "--adapt-steps", "-1"]) != 0
    assert not (tmp_path / "no.wav").exists()
    calls = []  # the evaluation converts with the fitted vectors: every conversion and resynthesis fits one
    fit = VoiceConversion.adapted_code
    monkeypatch.setattr(VoiceConversion, "adapted_code", lambda self, *a: calls.append(a[2]) or fit(self, *a))
    fitted = seqae.evaluate(run, write=False, overrides=["eval.adapt_steps=3"])
    assert fitted["unseen_conversions"] == result["unseen_conversions"]
    assert len(calls) >= fitted["seen_conversions"] + fitted["unseen_conversions"] and set(calls) == {3}
    assert "conversion.png" in {p.name for p in seqae.plot(run)}
    mel = torch.zeros(1, 40, 20)
    with pytest.raises(ValueError, match="pitch contour"):
        model.convert(mel, torch.zeros(1, 16))
    with pytest.raises(ValueError, match=r"expected \(batch, frames\)"):
        model.convert(mel, torch.zeros(1, 16), torch.zeros(1, 19))
    bad = write_recipe(tmp_path, text.replace('method = "adain"', f'method = "adversarial"\npitch = "{pitch}"'), "bad.toml")
    with pytest.raises(seqae.config.ConfigError, match="model.pitch needs method"):
        seqae.train(bad, out=tmp_path / "bad")


def test_the_source_filter_decoder_draws_its_fine_structure_only_from_the_harmonic_templates():
    from seqae.audio import MelConfig
    from seqae.families.voice_conversion.model import VoiceConversion, VoiceConversionConfig

    torch.manual_seed(0)
    config = VoiceConversionConfig(input_dim=40, channels=16, blocks=1, content_dim=8, speaker_dim=16, pitch="source_filter",
                                   envelope_coefficients=10)
    model = VoiceConversion(config, MelConfig(sample_rate=RATE, n_mels=40)).eval()
    for ada in model.decoder.adains.modules():  # AdaIN starts as plain instance normalisation: give it a say
        if isinstance(ada, torch.nn.Linear):
            torch.nn.init.normal_(ada.weight, std=0.3)
    content = torch.randn(2, 8, 30)
    assert model.decoder.excitation.weight.shape == (40, 1, 1)  # a gain per band: no mixing that could move the harmonics
    rough = torch.eye(40) - model.decoder.smooth  # what the first 10 DCT coefficients along the mel axis leave out
    with torch.no_grad():
        for octaves in (0.0, 0.4):
            x = model._with_pitch(content, torch.full((2, 30), octaves))
            templates = torch.einsum("mn,bnt->bmt", rough, model.decoder.excitation(x[:, -40:]))
            assert float(templates.abs().mean()) > 1e-3
            outputs = [model.decoder(x, torch.randn(2, 16)) for _ in range(2)]
            assert float((outputs[0] - outputs[1]).abs().mean()) > 1e-3  # the speaker code shapes the output ...
            for out in outputs:  # ... but its fine structure is the templates', times a voicing gain in (0, 1) per frame
                fine = torch.einsum("mn,bnt->bmt", rough, out)
                gain = (fine * templates).sum(1) / templates.pow(2).sum(1)
                assert torch.allclose(fine, gain[:, None] * templates, atol=1e-5)
                assert bool(((gain > 0) & (gain < 1)).all())
    with pytest.raises(ValueError, match="envelope_coefficients = 50"):
        VoiceConversion(
            VoiceConversionConfig(input_dim=40, pitch="source_filter", envelope_coefficients=50), MelConfig(sample_rate=RATE, n_mels=40)
        )


def test_pitch_adaptive_smoothing_removes_the_ripple_of_its_pitch_and_keeps_the_envelope():
    from seqae.audio import MelConfig, harmonic_templates, mel_bands, pitch_adaptive_smoothers

    mel = MelConfig(sample_rate=RATE)
    dct = torchaudio.functional.create_dct(mel.n_mels, mel.n_mels, "ortho")
    centres, _ = mel_bands(mel)
    for f0 in (90.0, 130.0, 210.0):
        octaves = torch.tensor([np.log2(f0 / 100), np.log2(f0 / 100) + 4 / 12])
        smoother = pitch_adaptive_smoothers(mel, octaves[:1])[0]
        assert smoother.shape == (80, 80) and bool((smoother >= 0).all())
        assert torch.allclose(smoother.sum(1), torch.ones(80))

        def ripple(v):  # what lies beyond the first 15 cepstral coefficients
            return float((v @ dct)[15:].norm())

        own, other = harmonic_templates(mel, octaves)
        assert ripple(smoother @ own) < ripple(own) / 4, f0  # the ripple of this pitch is gone ...
        assert ripple(smoother @ other) < ripple(other) / 2, f0  # ... and most of one 4 semitones higher
        # a formant-like bump 400 Hz wide at 2.5 kHz, where bands are 90 Hz apart, is kept
        envelope = torch.exp(-0.5 * ((centres - 2500) / 200) ** 2).float()
        assert float((smoother @ envelope - envelope).abs().max()) < 0.1 * float(envelope.max()), f0
        # where the neighbouring bands lie further than f0 away, the harmonics are not resolved: the band is left alone
        gaps = centres.diff()
        alone = torch.cat([gaps[:1], torch.minimum(gaps[1:], gaps[:-1]), gaps[-1:]]) >= f0
        assert torch.allclose(smoother[alone], torch.eye(80)[alone])
        assert bool(alone[-5:].all()), f0  # the top bands are 230-260 Hz apart
    floored = pitch_adaptive_smoothers(mel, torch.tensor([np.log2(0.9), np.log2(2.1), np.log2(3.5)]), min_width=300.0)
    assert torch.equal(floored[0], floored[1])  # below the floor every pitch is smoothed alike ...
    assert torch.allclose(floored[0], pitch_adaptive_smoothers(mel, torch.tensor([np.log2(3.0)]))[0], atol=1e-6)  # ... as at 300 Hz
    assert float((floored[2] - floored[0]).abs().max()) > 0.01  # and above it by its own pitch


def test_envelope_smoothing_settings_are_checked():
    with pytest.raises(seqae.config.ConfigError, match="r.toml: model.envelope_smoothing .* needs model.pitch"):
        VoiceConversionConfig(pitch="harmonics", envelope_smoothing="pitch_adaptive").validate("r.toml")
    with pytest.raises(seqae.config.ConfigError, match="r.toml: model.envelope_min_width must be >= 0"):
        VoiceConversionConfig(pitch="source_filter", envelope_smoothing="pitch_adaptive", envelope_min_width=-1).validate("r.toml")
    VoiceConversionConfig(pitch="source_filter", envelope_smoothing="pitch_adaptive", envelope_min_width=300).validate("r.toml")


def test_a_pitch_adaptive_decoder_smooths_each_frame_at_its_own_pitch():
    from seqae.audio import FrameSmoothers, MelConfig, pitch_adaptive_smoothers
    from seqae.families.voice_conversion.model import VoiceConversion, VoiceConversionConfig

    torch.manual_seed(0)
    mel = MelConfig(sample_rate=RATE, n_mels=40)
    config = VoiceConversionConfig(input_dim=40, channels=16, blocks=1, content_dim=8, speaker_dim=16, pitch="source_filter",
                                   envelope_smoothing="pitch_adaptive")
    model = VoiceConversion(config, mel).eval()
    pitch = torch.tensor([[0.0, 0.5, 1.0], [-0.5, 0.25, 1.5]])
    smoothing = model.smoothing(pitch).matrices()
    assert smoothing.shape == (2, 3, 40, 40)
    assert torch.allclose(smoothing[1, 2], pitch_adaptive_smoothers(mel, torch.tensor([1.5]))[0], atol=1e-6)  # on the table's grid
    captured = []
    model.decoder.out.register_forward_hook(lambda module, inputs, output: captured.append(output))
    source, speaker = torch.randn(2, 40, 3), torch.randn(1, 16)
    with torch.no_grad():
        out = model.convert(source, speaker, pitch)  # convert() gives each frame its own matrix
        raw = captured[-1]  # (2, 41, 3): the envelope before smoothing, and the voicing gain's logit
        fine = model.decoder.excitation(model.harmonics(pitch))
        expected = torch.einsum("btmn,bnt->bmt", smoothing, raw[:, :40]) + torch.sigmoid(raw[:, 40:]) * fine
        assert torch.allclose(out, expected, atol=1e-5)
        flipped = FrameSmoothers(model.smoothers, model.smoothing(pitch).index.flip(1))
        other = model.decoder(model._with_pitch(model.content(source), pitch), speaker.expand(2, -1), smoothing=flipped)
        assert float((other - out).abs().max()) > 1e-3  # another frame's matrix is another output
        with pytest.raises(ValueError, match="smoothing matrix"):
            model.decoder(model._with_pitch(model.content(source), pitch), speaker.expand(2, -1))
    with pytest.raises(ValueError, match="needs pitch"):
        VoiceConversion(VoiceConversionConfig(input_dim=40, pitch="harmonics", envelope_smoothing="pitch_adaptive"), mel)


def test_frames_smoothed_by_groups_of_one_matrix_match_the_gathered_matrices_values_and_gradients():
    """The CPU path (frames grouped by matrix, one product each) against the gathered ``(B, T, n, n)``
    matrices in one batched product: the same output and the same gradient for the frames."""
    from seqae.audio import FrameSmoothers

    torch.manual_seed(0)
    table = torch.rand(7, 5, 5)
    index = torch.tensor([[0, 3, 3, 6, 1], [3, 3, 0, 2, 2]])  # repeated rows, one row of the table unused
    x = torch.randn(2, 5, 5, requires_grad=True)
    smoothers = FrameSmoothers(table, index)
    grouped = smoothers(x)
    weights = torch.randn_like(grouped)
    (grouped * weights).sum().backward()
    grad, x.grad = x.grad, None
    gathered = torch.einsum("btmn,bnt->bmt", smoothers.matrices(), x)
    (gathered * weights).sum().backward()
    assert torch.allclose(grouped, gathered, atol=1e-6) and torch.allclose(grad, x.grad, atol=1e-6)
    assert torch.allclose(grouped[1, :, 4], table[2] @ x[1, :, 4], atol=1e-6)  # frame 4 of example 1: matrix 2
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast: computed in fp32, returned as the input
        assert smoothers(x.detach().bfloat16()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="takes no gradient"):
        FrameSmoothers(table.requires_grad_(), index)(x)


def test_harmonic_templates_match_the_log_mel_of_a_harmonic_tone_at_that_pitch():
    from seqae.audio import LogMel, MelConfig, harmonic_templates

    mel = MelConfig(sample_rate=RATE)
    rng = np.random.default_rng(2)
    for f0 in (110.0, 190.0):
        t = np.arange(RATE // 2) / RATE
        wave = sum(np.cos(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) for h in range(1, int(RATE / 2 / f0)))
        real = LogMel(mel)(torch.from_numpy(0.05 * wave).float())[0][:, 10:-10].mean(1)
        octaves = torch.tensor([np.log2(f0 / 100), np.log2(f0 * 1.06 / 100)])
        right, off = harmonic_templates(mel, octaves)
        assert right.shape == (mel.n_mels,) and abs(float(right.mean())) < 1e-4  # centred
        centred = real - real.mean()
        error, error_off = float((right - centred).abs().mean()), float((off - centred).abs().mean())
        assert error < 0.1, (f0, error)  # nats: the same ripple, band by band
        assert error_off > 3 * error, (f0, error_off)  # 6 % off in pitch is clearly another template


@pytest.mark.parametrize("smoothing", ["cepstral", "pitch_adaptive"])
def test_the_adapted_speaker_vector_rebuilds_its_references_better_and_leaves_the_networks_alone(smoothing):
    from seqae.audio import MelConfig

    torch.manual_seed(0)
    config = VoiceConversionConfig(input_dim=40, channels=16, blocks=1, content_dim=8, speaker_dim=16, pitch="source_filter",
                                   envelope_coefficients=10, envelope_smoothing=smoothing)
    model = VoiceConversion(config, MelConfig(sample_rate=RATE, n_mels=40)).eval()
    for ada in model.decoder.adains.modules():  # AdaIN starts as plain instance normalisation: give it a say
        if isinstance(ada, torch.nn.Linear):
            torch.nn.init.normal_(ada.weight, std=0.3)
    references = [torch.randn(40, 30) + torch.linspace(-1, 1, 40)[:, None], torch.randn(40, 22)]
    contours = [torch.full((30,), 0.5), torch.linspace(0.0, 1.0, 22)]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    def error(code):
        with torch.no_grad():
            return sum(float((model._decode(model.content(r[None]), code, c[None]) - r[None]).abs().mean())
                       for r, c in zip(references, contours))

    assert torch.equal(model.adapted_code(references, contours, steps=0), model.target_code(references))
    code = model.adapted_code(references, contours, steps=100, rate=0.1)
    assert code.shape == (1, 16) and not code.requires_grad
    # a random decoder gives the vector little say (about 3 % here), but every step count does better than the last
    errors = [error(model.adapted_code(references, contours, steps=n, rate=0.1)) for n in (0, 10)] + [error(code)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.98 * errors[0]
    assert all(torch.equal(p, before[name]) and p.grad is None for name, p in model.named_parameters())
    # the references are fitted as one padded batch: each one's error is what it gets alone
    with torch.no_grad():
        batch = model.reference_batch(references, contours)
        alone = [float(model.reference_error(code, model.reference_batch([r], [c]))) for r, c in zip(references, contours)]
        assert model.reference_error(code, batch).tolist() == pytest.approx(alone, rel=1e-5)
    with pytest.raises(ValueError, match="1 pitch contours for 2 references"):
        model.adapted_code(references, contours[:1])
