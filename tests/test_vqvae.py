import numpy as np
import pytest
import torch

import seqae
from seqae.cli import main
from seqae.config import ConfigError, load_recipe
from seqae.families.vqvae.model import VQVAE, VQVAEConfig

from conftest import write_recipe
from tiny import TINY_VQ


def make(**kw):
    torch.manual_seed(0)
    defaults = dict(input_dim=64, image_shape=[8, 8], channels=8, code_dim=4, codebook_size=8)
    return VQVAE(VQVAEConfig(**{**defaults, **kw}))


@pytest.mark.parametrize("quantizer", ["vq", "gumbel_hard", "gumbel_soft", "binary"])
@pytest.mark.parametrize("latent", ["grid", "global"])
def test_every_quantizer_and_latent_layout_trains_a_step(quantizer, latent):
    model = make(quantizer=quantizer, latent=latent)
    x = torch.rand(5, 64)
    out = model({"x": x})
    out.loss.backward()
    assert torch.isfinite(out.loss)
    codes = model.eval().codes(x)
    assert codes.shape == (5, *model.code_shape)
    torch.testing.assert_close(model.decode_codes(codes), model.reconstruct(x))


def test_grid_codes_have_the_down_sampled_shape():
    model = make(latent="grid", downsample=1)
    assert model.code_shape == (4, 4)


def test_codes_of_the_wrong_shape_empty_input_and_nan_are_errors():
    model = make(latent="grid").eval()
    with pytest.raises(ValueError, match=r"codes must have shape \(batch, 4, 4\) for this model, got \(2, 3, 3\)"):
        model.decode_codes(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="empty input"):
        model.codes(torch.zeros(0, 64))
    x = torch.rand(2, 64)
    x[0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.codes(x)


def test_codebook_of_size_zero_or_one_is_a_recipe_error(tmp_path):
    for size in (0, 1):
        path = write_recipe(tmp_path, TINY_VQ.replace("codebook_size = 16", f"codebook_size = {size}"))
        with pytest.raises(ConfigError, match=f"model.codebook_size = {size}; a codebook needs at least 2 codes"):
            load_recipe(path)


def test_train_eval_codes_and_figures_end_to_end(tmp_path):
    recipe = write_recipe(tmp_path, TINY_VQ)
    run = seqae.train(recipe, out=tmp_path / "run")
    result = seqae.evaluate(run)
    assert result["codebook_size"] == 16 and 1 <= result["codes_used"] <= 16
    assert 0.0 <= result["codes_nmi"] <= 1.0 and 0.0 <= result["kmeans_nmi"] <= 1.0
    assert result["kmeans_clusters_used"] > 1
    assert 0.0 < result["codes_purity"] <= 1.0
    for name in ("codes", "untrained", "pca", "pixels"):  # few-label probes of the quantised latents and baselines
        assert 0.1 <= result[f"{name}_linear_10"] <= 1.0 and result[f"{name}_linear_10_sd"] >= 0.0
        assert 0.0 < result[f"{name}_map"] <= 1.0 and 0.0 <= result[f"{name}_precision_at_10"] <= 1.0
    assert result["pixels_precision_at_10"] > 0.8  # digits' nearest pixels mostly share the label
    from sklearn.datasets import load_digits

    np.save(tmp_path / "x.npy", load_digits().data[:9])
    assert main(["codes", str(run), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "codes.npy")]) == 0
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (9,) and codes.dtype == np.int64 and codes.max() < 16
    names = {p.name for p in seqae.plot(run, tmp_path / "plots")}
    assert {"reconstructions.png", "code_usage.png", "training_curves.png", "codebook.npz"} <= names
    with np.load(tmp_path / "plots" / "codebook.npz") as codebook:  # the codebook for TensorBoard's projector
        assert codebook["vectors"].shape[0] == 16 and codebook["uses"].astype(int).min() >= 0 and codebook["uses"].astype(int).sum() > 0
        assert sorted(codebook["code"].astype(int)) == list(range(16))


def test_exact_elbo_of_a_categorical_latent_sums_over_every_code():
    model = make(quantizer="gumbel_hard", latent="global", codebook_size=4, reconstruction="bernoulli").eval()
    x = torch.rand(3, 64)
    nll, kl = model.exact_elbo(x)
    h = model.encoder(x.view(3, 1, 8, 8))
    probs = torch.softmax(model.quantizer.to_logits(model.to_code(h.flatten(1))), -1)
    expected = torch.zeros(3)
    for c in range(4):
        recon = model.decode_codes(torch.full((3,), c)).clamp(1e-7, 1 - 1e-7)
        log_p = (x * recon.log() + (1 - x) * (1 - recon).log()).sum(1)
        expected -= probs[:, c] * log_p
    torch.testing.assert_close(nll, expected, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(kl, (probs * (probs * 4).log()).sum(1))
    assert (kl >= 0).all() and (kl <= torch.log(torch.tensor(4.0)) + 1e-6).all()
