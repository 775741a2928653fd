"""The discriminator evaluation: a fresh discriminator of (input, code) pairs tells a code that carries its
input from one that does not; ``seqae eval --discriminator`` runs it for the families with codes."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import seqae
from seqae.cli import main
from seqae.datasets.base import DataError
from seqae.evaluation.discriminator import discriminator_evaluation

from conftest import expect_error
from tiny import TINY_AE, write_recipe


def test_a_code_that_carries_its_input_is_told_apart_from_one_that_does_not():
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(400, 10)), rng.normal(size=(200, 10))
    projection = rng.normal(size=(10, 4))
    codes = {"informative": (train_x @ projection, test_x @ projection),
             "noise": (rng.normal(size=(400, 4)), rng.normal(size=(200, 4)))}
    result = discriminator_evaluation(codes, train_x, test_x, steps=300, candidates=64)
    assert result["discriminator_infonce_ceiling_nats"] == pytest.approx(math.log(64))
    assert result["discriminator_informative_auroc"] > 0.9 and result["discriminator_informative_accuracy"] > 0.75
    assert result["discriminator_informative_infonce_nats"] > 1.0
    assert abs(result["discriminator_noise_auroc"] - 0.5) < 0.1 and result["discriminator_noise_infonce_nats"] < 0.3
    assert result["discriminator_informative_infonce_nats"] <= math.log(64) + 1e-6


def test_too_few_test_inputs_is_a_named_error():
    x = np.zeros((5, 3))
    with pytest.raises(DataError, match="needs at least 16"):
        discriminator_evaluation({"c": (x, x)}, x, x)


def test_seqae_eval_discriminator_judges_the_codes_and_others_refuse_it(tmp_path, capsys, runs):
    run = seqae.train(write_recipe(tmp_path, TINY_AE), out=tmp_path / "ae")
    code = main(["eval", str(run), "--json", "--discriminator", "--set", "eval.labels_per_class=[5]", "--set", "eval.draws=2"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("codes", "untrained", "pca"):
        assert 0.0 <= result[f"discriminator_{name}_auroc"] <= 1.0
    assert "discriminator_pixels_auroc" not in result
    expect_error(["eval", runs["qt"], "--discriminator"], capsys, "--discriminator",
                 "'quick_thought' run takes no discriminator evaluation")


def test_a_vq_vaes_quantised_codes_are_judged_too(tmp_path, capsys):
    """The VQ-VAE's (and the Gumbel VAE's) codes are its quantised latents, flattened."""
    recipe = Path(__file__).parents[1] / "recipes" / "vqvae_digits.toml"
    short = ["--set", "train.steps=200", "--set", "train.eval_every=0", "--set", "train.warmup_steps=20", "--set", "model.channels=16"]
    assert main(["train", str(recipe), "--out", str(tmp_path / "vq"), *short]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "vq"), "--json", "--discriminator", "--set", "eval.labels_per_class=[5]",
                 "--set", "eval.draws=2"]) == 0
    result = json.loads(capsys.readouterr().out)
    # 200 steps use about 9 of the 64 codes (the bound about 1.3 nats); a collapsed codebook (one code, as the
    # untrained network has) scores AUROC 0.5, 0 nats and chance (0.1) in the probes
    assert result["codes_used"] >= 6
    assert 0.75 < result["discriminator_codes_auroc"] <= 1.0 and abs(result["discriminator_untrained_auroc"] - 0.5) < 0.05
    assert 0.8 < result["discriminator_codes_infonce_nats"] <= result["discriminator_infonce_ceiling_nats"]
    assert result["codes_linear_5"] > 0.18
