"""End-to-end quality runs on the digits test split: the figures of docs/RESULTS.md (Digits) and their thresholds.

Slow (about 10 CPU minutes in all): run with ``python -m pytest -m slow -s``.
"""

import numpy as np
import pytest

import seqae

from conftest import ROOT

pytestmark = pytest.mark.slow


def train_and_eval(name, tmp_path, **overrides):
    run = seqae.train(ROOT / "recipes" / f"{name}.toml", out=tmp_path / name, overrides=overrides or None)
    result = seqae.evaluate(run)
    print(f"\n{name} {overrides or ''}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)))
    return result


def test_stacked_autoencoder_beats_pca_by_a_quarter(tmp_path):
    result = train_and_eval("ae_digits", tmp_path)
    assert result["pca_components"] == 8
    assert result["mse_ratio_to_pca"] <= 0.75


def test_vanilla_autoencoder_row(tmp_path):
    """The ``ae_vanilla_digits`` row of docs/RESULTS.md: one tied sigmoid layer of 32 units (test MSE 0.0116), far
    better than the mean image but not as good as PCA with as many components (0.0026)."""
    from seqae.config import load_recipe

    from test_quality_ci import digits_split, mean_predictor_mse

    result = train_and_eval("ae_vanilla_digits", tmp_path)
    mean_image = mean_predictor_mse(*digits_split(load_recipe(ROOT / "recipes" / "ae_vanilla_digits.toml")))
    assert result["test_mse"] < 0.25 * mean_image, (result["test_mse"], mean_image)
    assert result["test_mse"] == pytest.approx(0.0116, rel=0.15)
    assert result["pca_components"] == 32 and result["pca_mse"] < result["test_mse"]


def test_denoising_removes_most_of_the_noise(tmp_path):
    result = train_and_eval("dae_digits", tmp_path)
    assert result["noisy_input_mse"] == pytest.approx(0.09, rel=0.05)  # sigma 0.3
    assert result["denoised_ratio_to_noisy"] <= 0.3


def test_leave_one_class_out_anomaly_detection(tmp_path):
    aurocs = [
        train_and_eval("anomaly_digits", tmp_path / str(c), **{"data.exclude_classes": [c]})["anomaly_auroc"]
        for c in range(10)
    ]
    print("AUROC per left-out class:", [round(a, 3) for a in aurocs], "mean", round(float(np.mean(aurocs)), 3))
    assert np.mean(aurocs) >= 0.9


def test_greedy_pretraining_then_fine_tuning(tmp_path):
    with_pretraining = train_and_eval("greedy_digits", tmp_path)
    without = train_and_eval("greedy_digits", tmp_path / "nopre", **{"model.pretrain_steps": 0})
    assert with_pretraining["test_accuracy"] >= 0.95
    assert without["test_accuracy"] > 0.5  # the comparison run trains too


def test_vae_elbo_active_units_and_samples(tmp_path):
    from seqae.config import load_recipe

    from test_quality_ci import constant_image_elbo, digits_split

    result = train_and_eval("vae_digits", tmp_path)
    # above the trivial model (one constant image: the training means, no latent), measured here: -27.2
    trivial = constant_image_elbo(*digits_split(load_recipe(ROOT / "recipes" / "vae_digits.toml")))
    assert result["test_elbo"] > trivial + 2.0, (result["test_elbo"], trivial)
    assert 2 <= result["active_units"] <= 8
    paths = seqae.plot(tmp_path / "vae_digits")
    assert any(p.name == "samples.png" for p in paths)


def test_sparse_code_activation_is_near_its_target(tmp_path):
    result = train_and_eval("sparse_ae_digits", tmp_path)
    assert 0.5 <= result["activation_ratio_to_target"] <= 2.0
    assert result["test_mse"] < 0.05


def test_infomax_identifies_held_out_images_and_its_local_map_probes_well(tmp_path):
    """docs/RESULTS.md, Deep InfoMax: held-out own-code accuracy 0.988 among 128; the local map's linear
    probe with every label 0.972."""
    result = train_and_eval("infomax_digits", tmp_path)
    assert result["test_accuracy"] > 0.9
    assert result["infomax_local_linear_all"] > 0.95


@pytest.mark.xfail(strict=True, reason="not met: see docs/RESULTS.md, Deep InfoMax")
def test_infomax_beats_pixels_with_ten_labels_per_class(tmp_path):
    result = train_and_eval("infomax_digits", tmp_path)
    best = max(("infomax", "infomax_local"), key=lambda name: result[f"{name}_linear_10"])
    margin = 2 * max(result[f"{best}_linear_10_sd"], result["pixels_linear_10_sd"])
    assert result[f"{best}_linear_10"] > result["pixels_linear_10"] + margin



def test_denoising_vae_removes_most_of_the_noise(tmp_path):
    """docs/RESULTS.md, Digits: the denoising VAE's reconstructions of noisy inputs (ratio 0.33 to the noise)."""
    result = train_and_eval("dvae_digits", tmp_path)
    assert result["noisy_input_mse"] == pytest.approx(0.09, rel=0.05)  # sigma 0.3
    assert result["denoised_ratio_to_noisy"] <= 0.45 and result["test_elbo"] > -26.0


def test_pre_training_on_every_input_helps_fine_tuning_on_ten_labels_per_class(tmp_path):
    """docs/RESULTS.md, "Few-label fine-tuning": with 10 labels per class, greedy pre-training on every
    training image then fine-tuning scores 0.895 +- 0.003 (3 labelled draws), the same network trained on
    those labels alone 0.862 +- 0.003."""
    few = {"data.labelled_per_class": 10, "train.eval_every": 0}
    pretrained = train_and_eval("greedy_digits", tmp_path / "pre", **few)
    alone = train_and_eval("greedy_digits", tmp_path / "alone", **few, **{"model.pretrain_steps": 0})
    assert pretrained["labelled_examples"] == alone["labelled_examples"] == 100
    assert pretrained["test_accuracy"] > alone["test_accuracy"] + 0.015
