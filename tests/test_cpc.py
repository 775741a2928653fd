
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seqae
from seqae.datasets.audio import Utterance
from seqae.evaluation.probes import frame_labels, split_by_sentence, stack_frames
from seqae.families.cpc.model import CPC, CPCConfig

from tiny import TINY_CPC, synthetic_corpus, write_recipe


def make(**kw):
    torch.manual_seed(0)
    defaults = dict(channels=16, context_dim=16, prediction_steps=3, negatives=5)
    return CPC(CPCConfig(**{**defaults, **kw}))


def test_one_frame_per_160_samples():
    model = make()
    assert model.config.hop == 160 and model.config.receptive_field == 465
    for samples in (465, 1600, 16000):
        z = model.features(torch.randn(2, samples), "z")
        assert z.shape[1] == model.frames(samples) == (samples - 465) // 160 + 1



@pytest.mark.parametrize("norm", ["layer", "layer_affine", "none"])
def test_encoder_norm_options(norm):
    model = make(encoder_norm=norm)
    wave = torch.randn(2, 1600)
    z = model.features(wave, "z")
    raw = model.encoder.net(wave[:, None, :]).transpose(1, 2)
    if norm == "none":
        assert torch.equal(z, raw)
    else:  # each frame: zero mean, unit variance over its channels (the affine part starts at 1, 0)
        assert torch.allclose(z.mean(-1), torch.zeros(2, z.shape[1]), atol=1e-5)
        assert torch.allclose(z.var(-1, unbiased=False), torch.ones(2, z.shape[1]), atol=1e-2)
    assert sum(p.numel() for p in model.encoder.norm.parameters()) == (32 if norm == "layer_affine" else 0)


def test_batch_norm_after_every_convolution():
    model = make(encoder_norm="batch")
    convs = [m for m in model.encoder.net if isinstance(m, torch.nn.Conv1d)]
    norms = [m for m in model.encoder.net if not isinstance(m, (torch.nn.Conv1d, torch.nn.ReLU))]
    assert len(convs) == len(norms) == 5 and isinstance(model.encoder.norm, torch.nn.Identity)
    wave = torch.randn(3, 1600) * 0.1
    first = model.encoder.net[1](model.encoder.net[0](wave[:, None, :]))  # (B, channels, frames) after one norm
    # each channel over the batch and frames (training mode)
    assert torch.allclose(first.mean((0, 2)), torch.zeros(16), atol=1e-5)
    assert torch.allclose(first.var((0, 2), unbiased=False), torch.ones(16), atol=1e-2)
    out = model({"wave": torch.randn(4, 4000), "speaker": torch.tensor([0, 0, 1, 1])})
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in model.encoder.parameters())
    model.eval()  # batch norm then uses its running statistics: one utterance alone gives the same frames
    alone = model.features(wave[:1], "z")
    together = model.features(wave, "z")[:1]
    assert torch.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("mode", ["same_speaker", "any_speaker", "same_sequence"])
def test_negatives_come_from_where_the_mode_says(mode):
    model = make(negative_sampling=mode, negatives=50)
    speaker = torch.tensor([0, 1, 0, 2])
    idx = model.negative_indices(speaker, 4, 10)
    assert idx.shape == (4, 10, 50) and idx.min() >= 0 and idx.max() < 40
    rows = idx // 10
    if mode == "same_sequence":
        assert (rows == torch.arange(4)[:, None, None]).all()
    elif mode == "same_speaker":
        assert set(rows[0].unique().tolist()) <= {0, 2} and set(rows[1].unique().tolist()) == {1}
        assert set(rows[0].unique().tolist()) == {0, 2}  # both utterances of speaker 0 are drawn from
    else:
        assert len(rows.unique()) == 4


def test_infonce_is_cross_entropy_with_the_true_future_first(monkeypatch):
    model = make(prediction_steps=1, negatives=3)
    fixed = torch.randint(0, 2 * 8, (2, 8, 3))
    monkeypatch.setattr(model, "negative_indices", lambda speaker, b, t, draws: fixed[:, :t])
    wave = torch.randn(2, 465 + 160 * 7)
    out = model({"wave": wave, "speaker": torch.tensor([0, 1])})
    z = model.features(wave, "z")
    c = model.features(wave, "c")
    pred = model.predictors[0](c[:, :-1])
    negs = z.reshape(16, -1)[fixed[:, :7]]
    logits = torch.cat([(pred * z[:, 1:]).sum(-1, keepdim=True), torch.einsum("btc,btnc->btn", pred, negs)], -1)
    expected = F.cross_entropy(logits.reshape(-1, 4), torch.zeros(14, dtype=torch.long))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(out.metrics) == {"accuracy_k1", "chance_loss"} and out.metrics["chance_loss"] == pytest.approx(math.log(4))


def test_sequence_draws_share_one_set_of_negatives_across_time(monkeypatch):
    model = make(prediction_steps=2, negatives=4, negative_draws="sequence")
    fixed = torch.randint(0, 2 * 8, (2, 1, 4))
    calls = []
    monkeypatch.setattr(model, "negative_indices", lambda speaker, b, t, draws: calls.append(draws) or fixed)
    wave = torch.randn(2, 465 + 160 * 7)
    out = model({"wave": wave, "speaker": torch.tensor([0, 1])})
    assert calls == [1]
    z, c = model.features(wave, "z"), model.features(wave, "c")
    negs = z.reshape(16, -1)[fixed[:, 0]]  # (2, 4, C): the same four for every time step
    losses = []
    for k in (1, 2):
        pred = model.predictors[k - 1](c[:, :-k])
        logits = torch.cat([(pred * z[:, k:]).sum(-1, keepdim=True), torch.einsum("btc,bnc->btn", pred, negs)], -1)
        losses.append(F.cross_entropy(logits.reshape(-1, 5), torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.long)))
    assert out.loss.item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)
    monkeypatch.undo()
    rows = model.negative_indices(torch.tensor([0, 1, 0]), 3, 10, draws=1) // 10
    assert rows.shape == (3, 1, 4) and set(rows[1].flatten().tolist()) == {1}


def test_frame_labels_take_the_phone_under_each_frame_centre():
    utt = Utterance(audio=None, phones=[(0.0, 0.025, "a"), (0.025, 0.05, "b")])
    assert frame_labels(utt, 6, 0.005, 0.01) == ["a", "a", "b", "b", "b", None]
    assert stack_frames(np.arange(6.0).reshape(3, 2), 1).tolist() == [[0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 4, 5]]


def test_probe_split_never_shares_a_sentence():
    utts = [Utterance(audio=None, speaker=s, text=t) for s in "ab" for t in ("one", "two", "three", "four")]
    train, test = split_by_sentence(utts, 0)
    assert not {utts[i].text for i in train} & {utts[i].text for i in test}
    assert len(train) + len(test) == 8


def test_cpc_trains_and_its_probes_report_every_baseline(tmp_path):
    manifest = synthetic_corpus(tmp_path)
    run = seqae.train(write_recipe(tmp_path, TINY_CPC.replace("MANIFEST", str(manifest))), out=tmp_path / "run")
    result = seqae.evaluate(run, manifest=str(manifest))
    for name in ("cpc", "cpc_random", "logmel", "logmel_stacked"):
        assert 0.0 <= result[f"phone_accuracy_{name}"] <= 1.0
        assert 0.0 <= result[f"speaker_accuracy_{name}"] <= 1.0
    assert result["phone_classes"] == 3
    # three tone chords are easy for log-mel features
    assert result["phone_accuracy_logmel"] > 0.8
    assert {"test_accuracy_k1", "test_accuracy_k3"} <= result.keys()
    from seqae.cli import main

    assert main(["codes", str(run), "-i", str(tmp_path / "low_0.wav"), "-o", str(tmp_path / "c.npy"), "--kind", "z"]) == 0
    assert np.load(tmp_path / "c.npy").shape == ((int(16000 * 0.96) - 465) // 160 + 1, 16)


@pytest.mark.parametrize("draws", ["frame", "sequence"])
@pytest.mark.parametrize("mode", ["same_speaker", "any_speaker", "same_sequence"])
def test_scoring_by_blocks_equals_gathering_the_negatives(mode, draws):
    """The two ways of scoring the negatives give the same scores and the same gradients."""
    from seqae.families.cpc.model import negative_scores_of

    model = make(prediction_steps=3, negatives=5, negative_sampling=mode, negative_draws=draws)
    b, t, k, c = 4, 9, 3, 6
    torch.manual_seed(1)
    indices = model.negative_indices(torch.tensor([0, 1, 0, 2]), b, t, t if draws == "frame" else 1)
    results = []
    for blocks in (False, True):
        predictions = torch.randn(b, t, k, c, generator=torch.Generator().manual_seed(2), requires_grad=True)
        z = torch.randn(b, t, c, generator=torch.Generator().manual_seed(3), requires_grad=True)
        scores = negative_scores_of(predictions, z, indices, blocks)
        (scores * torch.arange(scores.numel()).reshape(scores.shape).sin()).sum().backward()
        results.append((scores.detach(), predictions.grad, z.grad))
    for gathered, blocked in zip(*results):
        assert gathered.shape == blocked.shape
        torch.testing.assert_close(blocked, gathered, rtol=1e-5, atol=1e-5)
    assert results[0][0].shape == (b, t, k, 5)
