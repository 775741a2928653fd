import json

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

import seqae
from seqae.audio import PitchTrack
from seqae.cli import main
from seqae.datasets.audio import SpeakerSegments, Utterance
from seqae.evaluation.conversion import dtw_path, mcd_dtw, mel_cepstrum, plan_conversions
from seqae.models.voice_conversion import VoiceConversion, VoiceConversionConfig
from seqae.nn.norm import AdaIN, instance_norm

from conftest import write_recipe

RATE = 16000
PHONES = {"a": (700, 1200), "i": (300, 2300), "u": (300, 800), "s": (4000, 5500)}  # two formants each


def voiced(f0: float, formants, tilt: float, seconds: float, rng) -> np.ndarray:
    """Harmonics of f0 shaped by two formant bumps and a speaker's spectral tilt."""
    t = np.arange(int(RATE * seconds)) / RATE
    wave = np.zeros_like(t)
    for h in range(1, int(7000 / f0)):
        f = h * f0
        gain = sum(np.exp(-((f - c) / 200.0) ** 2) for c in formants) * (f / 1000.0) ** -tilt + 0.02
        wave += gain * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return wave


def parallel_corpus(folder, speakers=(("low", 110, 1.0), ("mid", 160, 0.5), ("high", 230, 0.2), ("bright", 190, -0.2),
                                      ("new", 140, 0.8)), sentences=6):
    """Speakers (pitch, spectral tilt) saying the same phone sequences, with alignments; the last
    speaker goes to a separate manifest (unseen)."""
    rng = np.random.default_rng(0)
    scripts = [rng.choice(list(PHONES), size=10) for _ in range(sentences)]
    manifests = {"train": [], "unseen": []}
    for k, (name, f0, tilt) in enumerate(speakers):
        for s, script in enumerate(scripts):
            parts, alignment, t0 = [], [], 0.0
            for phone in script:
                parts.append(voiced(f0, PHONES[phone], tilt, 0.08, rng))
                alignment.append([round(t0, 4), round(t0 + 0.08, 4), str(phone)])
                t0 += 0.08
            wave = np.concatenate(parts)
            wave = 0.5 * wave / np.abs(wave).max() + 0.003 * rng.standard_normal(len(wave))
            path = folder / f"{name}_{s}.wav"
            soundfile.write(str(path), wave.astype(np.float32), RATE)
            record = {"audio": path.name, "speaker": name, "text": " ".join(script), "phones": alignment}
            manifests["unseen" if k == len(speakers) - 1 else "train"].append(json.dumps(record))
    for split, lines in manifests.items():
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl", folder / "unseen.jsonl"


TINY_VC = """
[model]
family = "voice_conversion"
method = "METHOD"
channels = 32
blocks = 2
content_dim = 8
speaker_dim = 16
kl_anneal_steps = 10
adversary_hidden = 16

[data]
source = "TRAIN"
test_fraction = 0.2
segment_frames = 32
n_mels = 40

[train]
steps = 12
batch_size = 8
lr = 2e-3
warmup_steps = 2
log_every = 4
checkpoint_every = 12

[eval]
manifest = "TRAIN"
unseen_manifest = "UNSEEN"
conversions = 6
max_train_frames = 2000
max_iter = 100
griffin_lim_iters = 8
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return parallel_corpus(tmp_path_factory.mktemp("vc"))


def tiny_recipe(tmp_path, corpus, method="adain"):
    train, unseen = corpus
    text = TINY_VC.replace("METHOD", method).replace("TRAIN", str(train)).replace("UNSEEN", str(unseen))
    return write_recipe(tmp_path, text, f"{method}.toml")


@pytest.fixture(scope="module")
def adain_run(corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adain")
    return seqae.train(tiny_recipe(folder, corpus), out=folder / "run")


# -- parts -----------------------------------------------------------------------------------------


def test_instance_norm_removes_each_channels_mean_and_spread_over_real_frames():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 20) * torch.rand(3, 5, 1) * 4 + torch.randn(3, 5, 1) * 3
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 12:] = False
    y = instance_norm(x, mask)
    assert torch.all(y[1, :, 12:] == 0)
    real = y[1, :, :12]
    assert torch.allclose(real.mean(1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(real.std(1, unbiased=False), torch.ones(5), atol=1e-4)
    # a per-channel rescaling and shift of the input (a 'speaker') leaves the output unchanged
    shifted = x * torch.rand(1, 5, 1).add(0.5) + torch.randn(1, 5, 1)
    assert torch.allclose(instance_norm(shifted, mask), y, atol=1e-4)
    # padding never reaches the statistics
    garbage = x.clone()
    garbage[1, :, 12:] = 1e6
    assert torch.allclose(instance_norm(garbage, mask), y)


def test_adain_starts_as_instance_norm_and_then_takes_scale_and_shift_from_the_condition():
    ada = AdaIN(4, 3)
    x, s = torch.randn(2, 4, 10), torch.randn(2, 3)
    assert torch.allclose(ada(x, s), instance_norm(x))
    with torch.no_grad():
        ada.project.bias.copy_(torch.tensor([1.0, 0, 0, 0, 5.0, 0, 0, 0]))
    out = ada(x, s)
    assert torch.allclose(out[:, 0].mean(1), torch.full((2,), 5.0), atol=1e-5)  # shift 5
    assert torch.allclose(out[:, 0].std(1, unbiased=False), torch.full((2,), 2.0), atol=1e-3)  # scale 1 + 1


def test_content_code_is_instance_normalised_and_conversion_keeps_the_frames():
    torch.manual_seed(0)
    model = VoiceConversion(VoiceConversionConfig(input_dim=20, channels=16, blocks=2, content_dim=6, speaker_dim=5)).eval()
    mel = torch.randn(2, 20, 37)
    code = model.content(mel)
    assert code.shape == (2, 6, 37)
    assert torch.allclose(code.mean(2), torch.zeros(2, 6), atol=1e-5)
    assert torch.allclose(code.std(2, unbiased=False), torch.ones(2, 6), atol=1e-3)
    target = model.target_code([torch.randn(20, 50), torch.randn(20, 12)])
    assert target.shape == (1, 5)
    assert model.convert(mel, target).shape == (2, 20, 37)


def test_the_adversary_phase_trains_only_the_classifier_and_the_model_phase_fights_it():
    torch.manual_seed(0)
    config = VoiceConversionConfig(method="adversarial", input_dim=10, channels=8, blocks=1, content_dim=4, speaker_dim=4,
                                   speakers=["a", "b", "c"], adversary_hidden=8)
    model = VoiceConversion(config).train()
    batch = {"x": torch.randn(4, 10, 16), "mask": torch.ones(4, 16, dtype=torch.bool), "speaker": torch.tensor([0, 1, 2, 0])}
    (stage,) = model.training_stages(10)
    assert [p.name for p in stage.phases] == ["adversary", "model"]
    adversary_ids = {id(p) for p in model.adversary.parameters()}
    assert {id(p) for p in stage.phases[0].parameters} == adversary_ids
    assert not adversary_ids & {id(p) for p in stage.phases[1].parameters}
    model.set_phase("main", "adversary")
    model(batch).loss.backward()
    assert all(p.grad is None for p in model.content_encoder.parameters())  # the code is detached
    assert all(p.grad is not None for p in model.adversary.parameters())
    model.zero_grad()
    model.set_phase("main", "model")
    out = model(batch)
    assert {"l1", "kl", "confusion"} <= out.metrics.keys()
    out.loss.backward()
    assert all(p.grad is not None for p in model.content_encoder.parameters())


def test_speaker_loss_classifies_the_reference_speaker_vector():
    torch.manual_seed(0)
    config = VoiceConversionConfig(input_dim=10, channels=8, blocks=1, content_dim=4, speaker_dim=4,
                                   speakers=["a", "b", "c"], speaker_loss_weight=0.5)
    model = VoiceConversion(config)
    x, ref = torch.randn(3, 10, 12), torch.randn(3, 10, 9)
    mask, ref_mask = torch.ones(3, 12, dtype=torch.bool), torch.ones(3, 9, dtype=torch.bool)
    batch = {"x": x, "mask": mask, "ref": ref, "ref_mask": ref_mask, "speaker": torch.tensor([2, 0, 1])}
    out = model(batch)
    logits = model.speaker_head(model.speaker_encoder(ref, ref_mask))
    expected = torch.nn.functional.cross_entropy(logits, batch["speaker"])
    assert out.metrics["speaker_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.metrics["speaker_accuracy"].item() == pytest.approx((logits.argmax(1) == batch["speaker"]).float().mean().item())
    assert out.loss.item() == pytest.approx((out.metrics["l1"] + 0.5 * expected).item(), rel=1e-5)  # KL weight 0 at step 0
    out.loss.backward()
    assert model.speaker_head.weight.grad.abs().sum() > 0 and model.speaker_encoder.out.weight.grad.abs().sum() > 0
    assert not hasattr(VoiceConversion(VoiceConversionConfig(input_dim=10, channels=8, blocks=1)), "speaker_head")
    with pytest.raises(ValueError, match="speakers"):
        VoiceConversion(VoiceConversionConfig(input_dim=10, channels=8, blocks=1, speaker_loss_weight=0.1))


def test_statistics_pooling_gives_the_speaker_vector_each_channels_spread_over_real_frames():
    from seqae.models.voice_conversion import SpeakerEncoder

    torch.manual_seed(0)
    encoder = SpeakerEncoder(VoiceConversionConfig(input_dim=6, channels=8, blocks=2, speaker_dim=5, speaker_pooling="mean_std"))
    assert encoder.out.in_features == 16
    mel = torch.randn(2, 6, 20)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    code = encoder(mel, mask)
    assert code.shape == (2, 5)
    # padding changes nothing: the second utterance alone, cut to its 12 real frames
    assert torch.allclose(code[1], encoder(mel[1:, :, :12])[0], atol=1e-5)
    # the pooled statistics are each channel's mean and (population) standard deviation over time
    h = torch.relu(encoder.inp(mel[:1, :, :12]))
    for conv in encoder.convs:
        h = h + torch.relu(conv(h))
    stats = torch.cat([h.mean(2), h.std(2, unbiased=False)], dim=1)
    assert torch.allclose(encoder(mel[:1, :, :12]), encoder.out(stats), atol=1e-4)


def test_kl_weight_ramps_over_training_steps():
    model = VoiceConversion(VoiceConversionConfig(input_dim=8, channels=8, blocks=1, content_dim=2, speaker_dim=2,
                                                  kl_weight=0.2, kl_anneal_steps=4)).train()
    batch = {"x": torch.randn(2, 8, 12), "mask": torch.ones(2, 12, dtype=torch.bool), "ref": torch.randn(2, 8, 12),
             "ref_mask": torch.ones(2, 12, dtype=torch.bool), "speaker": torch.tensor([0, 1])}
    weights = [model(batch).metrics["kl_weight"] for _ in range(6)]
    assert weights == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])


def test_references_come_from_another_utterance_of_the_same_speaker_and_change_with_the_epoch():
    mels = [torch.randn(4, n) for n in (40, 40, 40, 40, 40)]
    source = SpeakerSegments(mels, [0, 0, 1, 1, 1], 16, 0.0, 1.0, "t")
    n = len(source)
    for index in range(3 * n):
        ref = source.references(index)[0]
        window = index % n
        assert source.window_speaker[ref] == source.window_speaker[window]
        assert source.window_utt[ref] != source.window_utt[window]
    assert [source.references(i)[0] for i in range(n)] != [source.references(i + n)[0] for i in range(n)]
    # a batch collated whole or in shards (data-parallel ranks) gets the same references
    (batch,) = source.epoch_batches(1, 0, n)[:1]
    whole = source.collate(batch)
    halves = [source.collate(part) for part in np.array_split(batch, 2)]
    assert torch.equal(whole["ref"], torch.cat([h["ref"] for h in halves]))
    assert torch.equal(whole["speaker"], torch.cat([h["speaker"] for h in halves]))


def test_several_reference_windows_come_from_different_other_utterances_laid_end_to_end():
    mels = [torch.randn(4, n) for n in (40, 40, 40, 40, 40, 12)]
    source = SpeakerSegments(mels, [0, 0, 0, 0, 1, 1], 16, 0.0, 1.0, "t", reference_windows=3)
    one = SpeakerSegments(mels, [0, 0, 0, 0, 1, 1], 16, 0.0, 1.0, "t")
    n = len(source)
    for index in range(2 * n):
        refs = source.references(index)
        window = index % n
        assert len(refs) == 3 and refs[0] == one.references(index)[0]  # the first window is the one-window draw
        assert all(source.window_speaker[r] == source.window_speaker[window] for r in refs)
        assert all(source.window_utt[r] != source.window_utt[window] for r in refs)
        if source.window_speaker[window] == 0:  # three other utterances: one window of each
            assert len({int(source.window_utt[r]) for r in refs}) == 3
        else:  # one other utterance: its windows (utterance 5 has one, repeated; utterance 4 has four)
            assert len({int(source.window_utt[r]) for r in refs}) == 1
            assert len(set(refs)) == (1 if source.window_utt[window] == 4 else 3)
    (batch,) = source.epoch_batches(0, 0, n)[:1]
    out = source.collate(batch)
    assert out["ref"].shape == (n, 4, 48) and out["ref_mask"].shape == (n, 48)
    for row, index in enumerate(batch):
        for j, r in enumerate(source.references(int(index))):
            piece = one.collate(np.array([r]))
            assert torch.equal(out["ref"][row, :, 16 * j : 16 * (j + 1)], piece["x"][0])
            assert torch.equal(out["ref_mask"][row, 16 * j : 16 * (j + 1)], piece["mask"][0])
    assert not out["ref_mask"].all()  # the 12-frame utterance's window is padded
    with pytest.raises(ValueError, match="reference_windows"):
        SpeakerSegments(mels, [0, 0, 0, 0, 1, 1], 16, 0.0, 1.0, "t", reference_windows=0)


def test_dtw_finds_the_cheapest_monotone_path():
    cost = np.array([[0, 5, 5, 5], [5, 0, 0, 5], [5, 5, 5, 0]], dtype=float)
    rows, cols = dtw_path(cost)
    assert [(int(r), int(c)) for r, c in zip(rows, cols)] == [(0, 0), (1, 1), (1, 2), (2, 3)]
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 30))
    stretched = np.repeat(a, 2, axis=1)  # the same spectrogram at half speed
    assert mcd_dtw(a, stretched, 12) == pytest.approx(0.0, abs=1e-9)
    assert mcd_dtw(a, a + rng.normal(size=a.shape), 12) > 1.0
    assert mel_cepstrum(a, 12).shape == (30, 12)


def test_conversion_plans_draw_references_of_the_target_never_of_the_source_sentence():
    speakers = ["a", "b", "c", "u"]
    utterances = [Utterance(audio=f"{s}{t}.wav", speaker=s, text=f"sentence {t}") for s in speakers for t in range(6)]
    everything = np.arange(len(utterances))
    one = plan_conversions(utterances, everything, {"a", "b", "c"}, per_group=30, seed=0)
    three = plan_conversions(utterances, everything, {"a", "b", "c"}, per_group=30, seed=0, count=3)
    mixed = plan_conversions(utterances, everything, {"a", "b", "c"}, per_group=30, seed=0, count=3, unseen_count=1)
    # the seen conversions as with three references for all, the unseen as one-shot
    assert [(c.source, c.references) for c in mixed] == [(c.source, (t if c.seen else o).references) for c, t, o in zip(mixed, three, one)]
    assert [c.seen for c in one].count(False) == 30 and all(c.target_speaker == "u" for c in one if not c.seen)
    for single, several in zip(one, three):
        assert len(single.references) == 1 and len(several.references) == 3 == len(set(several.references))
        # the one-shot plan's draws are kept: the same source, target and first reference
        assert (single.source, single.target_speaker, single.references[0]) == (several.source, several.target_speaker, several.references[0])
        for r in several.references:
            assert utterances[r].speaker == several.target_speaker != utterances[several.source].speaker
            assert utterances[r].text != utterances[several.source].text


# -- end to end ------------------------------------------------------------------------------------


def test_adain_trains_evaluates_and_converts(adain_run, corpus, tmp_path):
    train, unseen = corpus
    result = seqae.evaluate(adain_run)
    assert result["seen_speakers"] == 4 and result["unseen_speakers"] == 1
    for key in ("speaker_classifier_accuracy_real", "seen_labelled_target", "seen_labelled_source", "unseen_labelled_target",
                "phone_accuracy_real", "phone_accuracy_converted", "speaker_from_content_mean_std",
                "speaker_from_content_frames", "speaker_from_speaker_code", "seen_mcd_below_source_share",
                "resynthesis_labelled_source"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["seen_mcd_source_to_target_db"] > 0
    # the tone-and-formant speakers are easy for the classifier on real speech
    assert result["speaker_classifier_accuracy_real"] > 0.9
    records = [json.loads(line) for line in (adain_run / "eval_records.jsonl").read_text().splitlines()]
    assert "records" not in result and result["records_file"].endswith("eval_records.jsonl")
    assert len(records) == result["seen_conversions"] + result["unseen_conversions"]
    seen = [r for r in records if r["seen"]]
    assert np.mean([r["labelled_as"] == r["target_speaker"] for r in seen]) == pytest.approx(result["seen_labelled_target"])
    assert all(r["source_speaker"] != r["target_speaker"] and len(r["references"]) == 1 for r in records)
    # more references for seen targets only: every seen conversion carries two, every unseen one
    more = seqae.evaluate(adain_run, write=False, overrides=["eval.seen_references=2"])
    assert (more["seen_references_per_conversion"], more["unseen_references_per_conversion"]) == (2, 1)
    assert sorted({(r["seen"], len(r["references"])) for r in more["records"]}) == [(False, 1), (True, 2)]
    with pytest.raises(seqae.config.ConfigError, match="eval.unseen_references must be positive"):
        seqae.evaluate(adain_run, write=False, overrides=["eval.unseen_references=-1"])
    out = tmp_path / "out.wav"
    assert main(["convert", str(adain_run), "--source", str(train.parent / "low_0.wav"), "--target", str(train.parent / "high_1.wav"),
                 "--target", str(unseen.parent / "new_2.wav"), "-o", str(out)]) == 0
    wave, rate = soundfile.read(str(out))
    source, _ = soundfile.read(str(train.parent / "low_0.wav"))
    assert rate == RATE and abs(len(wave) - len(source)) <= 160
    assert np.abs(wave).max() > 0.01  # not silent
    mel = np.load(out.with_suffix(".npy"))
    assert mel.shape[0] == 40 and np.isfinite(mel).all()
    assert out.with_suffix(".png").stat().st_size > 0
    codes = tmp_path / "content.npy"
    assert main(["codes", str(adain_run), "-i", str(train.parent / "low_0.wav"), "-o", str(codes)]) == 0
    assert np.load(codes).shape[1] == 8
    assert main(["codes", str(adain_run), "-i", str(train.parent / "low_0.wav"), "-o", str(codes), "--kind", "speaker"]) == 0
    assert np.load(codes).shape == (16,)
    names = {p.name for p in seqae.plot(adain_run)}
    assert {"training_curves.png", "conversion.png", "speaker_map.png"} <= names


def test_adversarial_variant_alternates_and_converts_to_training_speakers(corpus, tmp_path):
    train, _ = corpus
    run = seqae.train(tiny_recipe(tmp_path, corpus, "adversarial"), out=tmp_path / "run")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"adversary_loss", "adversary_accuracy", "model_l1", "model_confusion"} <= records[-1].keys()
    result = seqae.evaluate(run)
    assert "unseen_labelled_target" not in result and "unseen_note" in result
    assert 0.0 <= result["seen_labelled_target"] <= 1.0 and 0.0 <= result["resynthesis_labelled_source"] <= 1.0
    out = tmp_path / "adv.wav"
    assert main(["convert", str(run), "--source", str(train.parent / "low_0.wav"), "--target-speaker", "high", "-o", str(out)]) == 0
    assert np.abs(soundfile.read(str(out))[0]).max() > 0.01


def test_griffin_lim_resynthesises_a_tone_at_its_pitch():
    from seqae.audio import LogMel, MelConfig
    from seqae.vocoder import get_vocoder

    config = MelConfig()
    t = np.arange(RATE) / RATE
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    wave = get_vocoder("griffin_lim", config, n_iter=16)(LogMel(config)(tone)[0]).numpy()
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * RATE / len(wave) - 440) < 15


# -- bad input ---------------------------------------------------------------------------------------


def test_convert_rejects_bad_audio_and_other_runs_by_name(adain_run, corpus, tmp_path, capsys):
    train, _ = corpus
    good = str(train.parent / "low_0.wav")
    out = tmp_path / "keep.wav"
    out.write_bytes(b"previous result")
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(RATE, np.float32), RATE)
    short = tmp_path / "short.wav"
    soundfile.write(str(short), (0.3 * np.random.default_rng(0).standard_normal(400)).astype(np.float32), RATE)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not audio at all")
    cases = [
        (["--source", str(silent), "--target", good], "silent.wav: silent"),
        (["--source", good, "--target", str(silent)], "silent.wav: silent"),
        (["--source", str(short), "--target", good], "short.wav"),
        (["--source", str(corrupt), "--target", good], "corrupt.wav: cannot decode"),
        (["--source", good], "--target"),
    ]
    for args, message in cases:
        assert main(["convert", str(adain_run), *args, "-o", str(out)]) == 1
        assert message in capsys.readouterr().err
        assert out.read_bytes() == b"previous result"
    # stereo at 44.1 kHz, shorter than a training segment: handled (mixed down, resampled)
    t = np.arange(int(44100 * 0.25)) / 44100
    stereo = tmp_path / "stereo.wav"
    soundfile.write(str(stereo), np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32) * 0.3, 44100)
    assert main(["convert", str(adain_run), "--source", str(stereo), "--target", good, "-o", str(tmp_path / "s.wav")]) == 0
    assert soundfile.read(str(tmp_path / "s.wav"))[1] == RATE
    # a run of another family
    other = seqae.train(write_recipe(tmp_path, "[model]\nfamily = \"autoencoder\"\nhidden = [8]\n[data]\nsource = \"digits\"\n"
                                     "[train]\nsteps = 2\nbatch_size = 16\n", "ae.toml"), out=tmp_path / "ae")
    assert main(["convert", str(other), "--source", good, "--target", good, "-o", str(out)]) == 1
    assert "'autoencoder' run" in capsys.readouterr().err


def test_a_manifest_without_speakers_is_an_error_naming_the_line(tmp_path, corpus, capsys):
    train, _ = corpus
    lines = train.read_text().splitlines()
    record = json.loads(lines[3])
    del record["speaker"]
    lines[3] = json.dumps(record)
    bad = train.parent / "nospeaker.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    recipe = write_recipe(tmp_path, TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(bad)).replace("UNSEEN", str(bad)))
    assert main(["train", str(recipe), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4" in err and "speaker" in err and "Traceback" not in err, err


def test_the_shipped_recipes_validate():
    from seqae.config import load_recipe
    from conftest import ROOT

    for name in ("adain_vc_speech", "adversarial_vc_speech", "adain_vc_source_filter"):
        recipe = load_recipe(ROOT / "recipes" / f"{name}.toml", check_paths=False)
        assert recipe.family == "voice_conversion"
        assert recipe.model.method == name.split("_")[0]
    # the recipe that meets every goal: a seen target from five utterances, an unseen one from one
    recipe = load_recipe(ROOT / "recipes" / "adain_vc_source_filter.toml", check_paths=False)
    assert (recipe.eval.seen_references, recipe.eval.unseen_references, recipe.eval.references) == (5, 0, 1)
    assert recipe.model.pitch == "source_filter" and recipe.eval.pitch_range == "target"


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
def test_a_pitch_model_trains_evaluates_converts_and_needs_the_contour(corpus, tmp_path, pitch, extra, smoothing):
    train, unseen = corpus
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
    from seqae.models.voice_conversion import VoiceConversion, VoiceConversionConfig

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
        VoiceConversion(VoiceConversionConfig(input_dim=40, pitch="source_filter", envelope_coefficients=50), MelConfig(sample_rate=RATE, n_mels=40))


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
        ripple = lambda v: float((v @ dct)[15:].norm())  # what lies beyond the first 15 cepstral coefficients
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
    from seqae.audio import MelConfig, pitch_adaptive_smoothers
    from seqae.models.voice_conversion import VoiceConversion, VoiceConversionConfig

    torch.manual_seed(0)
    mel = MelConfig(sample_rate=RATE, n_mels=40)
    config = VoiceConversionConfig(input_dim=40, channels=16, blocks=1, content_dim=8, speaker_dim=16, pitch="source_filter",
                                   envelope_smoothing="pitch_adaptive")
    model = VoiceConversion(config, mel).eval()
    pitch = torch.tensor([[0.0, 0.5, 1.0], [-0.5, 0.25, 1.5]])
    smoothing = model.smoothing(pitch)
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
        other = model.decoder(model._with_pitch(model.content(source), pitch), speaker.expand(2, -1), smoothing=smoothing.flip(2))
        assert float((other - out).abs().max()) > 1e-3  # another frame's matrix is another output
        with pytest.raises(ValueError, match="smoothing matrix"):
            model.decoder(model._with_pitch(model.content(source), pitch), speaker.expand(2, -1))
    with pytest.raises(ValueError, match="needs pitch"):
        VoiceConversion(VoiceConversionConfig(input_dim=40, pitch="harmonics", envelope_smoothing="pitch_adaptive"), mel)


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
