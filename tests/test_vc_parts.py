"""Voice conversion's parts: instance norm and AdaIN, the encoders and their losses, the adversary's phases, reference
windows, DTW and the conversion plans."""


import numpy as np
import pytest
import torch

from seqae.datasets.audio import Utterance
from seqae.families.voice_conversion.data import SpeakerSegments
from seqae.families.voice_conversion.distortion import dtw_path, mcd_dtw, mel_cepstrum
from seqae.families.voice_conversion.evaluate import plan_conversions
from seqae.families.voice_conversion.model import VoiceConversion, VoiceConversionConfig
from seqae.nn.norm import AdaIN, instance_norm

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
    from seqae.families.voice_conversion.model import SpeakerEncoder

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
        assert (single.source, single.target_speaker, single.references[0]) == (
            several.source,
            several.target_speaker,
            several.references[0],
        )
        for r in several.references:
            assert utterances[r].speaker == several.target_speaker != utterances[several.source].speaker
            assert utterances[r].text != utterances[several.source].text


def test_vocal_tract_warp_moves_a_formant_up_and_leaves_alpha_1_alone():
    from seqae.audio import MelConfig, vocal_tract_warp

    config = MelConfig(n_mels=40)
    bands = torch.arange(40, dtype=torch.float32)[:, None]
    peak = torch.exp(-0.5 * ((bands - 15) / 1.5) ** 2).repeat(1, 5)  # (40 bands, 5 frames), a formant at band 15
    assert torch.equal(vocal_tract_warp(peak, 1.0, config), peak)
    up, down = vocal_tract_warp(peak, 1.2, config), vocal_tract_warp(peak, 0.8, config)
    assert up.shape == peak.shape and int(up[:, 0].argmax()) > 15 > int(down[:, 0].argmax())
    assert torch.allclose(up[:, 0], up[:, 4])  # every frame alike
    # a warp and its inverse come back close to the start (interpolation blurs a little)
    assert (vocal_tract_warp(up, 1 / 1.2, config) - peak)[:30].abs().max() < 0.15


def test_vtlp_warps_each_example_and_its_references_alike_and_moves_its_pitch():
    from seqae.audio import MelConfig, PitchTrack, vocal_tract_warp
    from seqae.families.voice_conversion.data import Augmentation

    rng = np.random.default_rng(0)
    mels = [torch.from_numpy(rng.normal(size=(40, 20)).astype(np.float32)) for _ in range(4)]
    pitch = [PitchTrack(torch.full((20,), 0.5 + 0.1 * i), 0.5 + 0.1 * i, 0.1) for i in range(4)]
    config = MelConfig(n_mels=40)
    plain = SpeakerSegments(mels, [0, 0, 1, 1], 16, 0.0, 1.0, "t", pitch=pitch)
    warped = SpeakerSegments(mels, [0, 0, 1, 1], 16, 0.0, 1.0, "t", pitch=pitch, augment=Augmentation(config, vtlp_warp=0.2))
    indices = np.array([0, 3, len(plain) + 1])  # two examples of epoch 0, one of epoch 1
    a, b = plain.collate(indices), warped.collate(indices)
    alphas = []
    for row in range(3):
        factors = np.linspace(0.8, 1.2, 401)  # the factor that explains the window also explains its references
        errors = [(vocal_tract_warp(a["x"][row], f, config) - b["x"][row]).abs().max().item() for f in factors]
        alpha = factors[int(np.argmin(errors))]
        assert min(errors) < 0.06 and (vocal_tract_warp(a["ref"][row], alpha, config) - b["ref"][row]).abs().max() < 0.06
        real = a["mask"][row].bool()
        assert torch.allclose(b["pitch"][row][real] - a["pitch"][row][real], torch.tensor(np.log2(alpha), dtype=torch.float32), atol=2e-3)
        alphas.append(alpha)
    assert len(set(alphas)) == 3 and all(0.8 <= f <= 1.2 for f in alphas)
    assert torch.equal(warped.collate(indices)["x"], b["x"])  # a pure function of the indices: resumable, DDP-safe
    assert "target" not in b  # no noise: the window is its own target


def test_vtlp_is_a_checked_recipe_option(vc_corpus, tmp_path, capsys):
    import seqae

    from conftest import expect_error
    from tiny import TINY_VC, write_recipe

    train, unseen = vc_corpus
    text = TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(train)).replace("UNSEEN", str(unseen)).replace("steps = 12", "steps = 2")
    recipe = write_recipe(tmp_path, text)
    expect_error(["train", recipe, "--out", tmp_path / "bad", "--set", "data.vtlp_warp=0.7"], capsys, "data.vtlp_warp")
    run = seqae.train(recipe, out=tmp_path / "run", overrides=["data.vtlp_warp=0.15"])
    assert seqae.load(run).recipe.data.vtlp_warp == 0.15
