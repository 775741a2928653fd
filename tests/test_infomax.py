"""Deep InfoMax: the estimators' formulas, the discriminators' pairing, prior matching's phases, and a
tiny run end to end (train, evaluate with few-label probes, codes, figures)."""

import math

import numpy as np
import pytest
import torch

import seqae
from seqae.cli import main
from seqae.config import ConfigError
from seqae.evaluation.few_labels import labelled_subset
from seqae.families.infomax.model import InfoMax, InfoMaxConfig, mi_estimate

from tiny import write_recipe

TINY_INFOMAX = """
[model]
family = "infomax"
channels = 16
local_dim = 16
code_dim = 8
hidden = 32

[data]
source = "digits"

[train]
steps = 30
batch_size = 32
lr = 2e-3
warmup_steps = 5
log_every = 10
checkpoint_every = 30

[eval]
labels_per_class = [5, 0]
draws = 2
max_iter = 200
"""


def small(**kw) -> InfoMax:
    torch.manual_seed(0)
    return InfoMax(InfoMaxConfig(input_dim=64, image_shape=[8, 8], channels=8, local_dim=8, code_dim=4, hidden=16, **kw))


def test_estimators_follow_their_formulas():
    scores = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    positive = torch.tensor([0, 1])
    sp = torch.nn.functional.softplus
    pos, neg = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.5, 0.0, -2.0])
    assert mi_estimate(scores, positive, "jsd") == pytest.approx(float(-sp(-pos).mean() - sp(neg).mean()))
    nce = float((pos - torch.logsumexp(scores, 1)).mean()) + math.log(3)
    assert mi_estimate(scores, positive, "infonce") == pytest.approx(nce)
    assert mi_estimate(scores, positive, "dv") == pytest.approx(float(pos.mean() - torch.log(neg.exp().mean())))
    # InfoNCE is bounded by log(candidates), reached when the positive dominates
    assert mi_estimate(torch.tensor([[50.0, 0.0, 0.0]]), torch.tensor([0]), "infonce") == pytest.approx(math.log(3), abs=1e-6)


def test_positives_are_each_image_with_its_own_code_at_every_position():
    model = small()
    x = torch.rand(5, 64)
    local = model.local_features(x)
    global_scores, local_scores, positive = model.scores(local, model.code(local))
    assert global_scores.shape == (5, 5) and local_scores.shape == (5 * 16, 5)
    assert positive.tolist() == [0, 1, 2, 3, 4]
    # the local scores of image 2 at position 7 against every code
    features = model.local_x(local)[2, :, 7 // 4, 7 % 4]
    torch.testing.assert_close(local_scores[2 * 16 + 7], model.local_y(model.code(local)) @ features)


def test_prior_matching_alternates_a_critic_and_the_encoder():
    model = small(prior_weight=0.5)
    stages = model.training_stages(10)
    assert [p.name for p in stages[0].phases] == ["prior", "model"]
    critic = {id(p) for p in model.prior_critic.parameters()}
    assert {id(p) for p in stages[0].phases[0].parameters} == critic
    assert not critic & {id(p) for p in stages[0].phases[1].parameters}
    x = torch.rand(6, 64)
    codes = model.encode(x).detach()
    assert float(codes.min()) >= 0.0 and float(codes.max()) <= 1.0  # uniform prior: sigmoid codes
    model.set_phase("main", "prior")
    assert "critic_accuracy" in model({"x": x}).metrics
    model.set_phase("main", "model")
    assert "prior_loss" in model({"x": x}).metrics


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="nothing to maximise"):
        InfoMaxConfig(global_weight=0.0, local_weight=0.0).validate("r.toml")
    with pytest.raises(ValueError, match="must divide by 4"):
        InfoMax(InfoMaxConfig(input_dim=36, image_shape=[6, 6], downsample=2))


def test_labelled_subsets_take_n_of_every_class():
    labels = np.repeat(np.arange(3), [10, 4, 7])
    pick = labelled_subset(labels, 5, np.random.default_rng(0))
    assert np.bincount(labels[pick]).tolist() == [5, 4, 5]
    assert len(labelled_subset(labels, 0, np.random.default_rng(0))) == len(labels)


def test_infomax_trains_evaluates_and_writes_codes(tmp_path):
    run = seqae.train(write_recipe(tmp_path, TINY_INFOMAX), out=tmp_path / "run")
    result = seqae.evaluate(run)
    for name in ("infomax", "untrained", "pca", "pixels"):
        for key in (f"{name}_linear_5", f"{name}_knn_5", f"{name}_linear_all"):
            assert 0.0 <= result[key] <= 1.0, key
        assert result[f"{name}_linear_5_sd"] >= 0.0
    assert {"test_mi_global", "test_mi_local", "test_accuracy"} <= result.keys()
    images = tmp_path / "x.npy"
    np.save(images, np.random.default_rng(0).random((3, 64)).astype(np.float32) * 16)
    assert main(["codes", str(run), "-i", str(images), "-o", str(tmp_path / "codes.npy")]) == 0
    assert np.load(tmp_path / "codes.npy").shape == (3, 8)
    assert {p.name for p in seqae.plot(run)} >= {"training_curves.png", "code_map.png", "tsne_map.png"}


def test_autoencoder_and_vae_report_few_label_probes_beside_their_baselines(tmp_path):
    from tiny import TINY_AE

    for family in ("autoencoder", "vae"):
        text = TINY_AE.replace('family = "autoencoder"', f'family = "{family}"')
        if family == "vae":
            text = text.replace("hidden = [32, 8]", "hidden = [32]\nlatent_dim = 4").replace('activation = "sigmoid"\n', "")
        run = seqae.train(write_recipe(tmp_path, text, f"{family}.toml"), out=tmp_path / family)
        result = seqae.evaluate(run, write=False, overrides=["eval.labels_per_class=[5]", "eval.draws=2"])
        for name in ("codes", "untrained", "pca", "pixels"):
            assert 0.0 <= result[f"{name}_linear_5"] <= 1.0 and result[f"{name}_knn_5_sd"] >= 0.0, (family, name)
        assert "codes_linear_10" not in result
