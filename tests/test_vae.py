import math

import pytest
import torch

from seqae.families.vae.model import VAE, VAEConfig


def make(**kw):
    torch.manual_seed(0)
    return VAE(VAEConfig(input_dim=10, hidden=[16], latent_dim=3, **kw))


def test_sample_and_encode_shapes():
    model = make()
    mu, logvar = model.encode(torch.rand(4, 10))
    assert mu.shape == logvar.shape == (4, 3)
    samples = model.sample(7)
    assert samples.shape == (7, 10)
    assert samples.min() >= 0 and samples.max() <= 1  # bernoulli means


def test_elbo_is_the_negative_of_nll_plus_kl():
    model = make()
    out = model({"x": torch.rand(6, 10)})
    assert out.metrics["elbo"].item() == pytest.approx(-(out.metrics["nll"] + out.metrics["kl"]).item(), rel=1e-5)


def test_gaussian_likelihood_has_the_normalising_constant():
    model = make(likelihood="gaussian")
    x = torch.zeros(1, 10)
    nll = model.negative_log_likelihood(torch.zeros(1, 10), x)
    assert nll.item() == pytest.approx(10 * 0.5 * math.log(2 * math.pi))


def test_kl_warmup_ramps_the_weight_with_training_steps():
    model = make(kl_warmup_steps=4, beta=1.0)
    model.train()
    weights = [model({"x": torch.rand(2, 10)}).metrics["kl_weight"] for _ in range(6)]
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    model.eval()
    model({"x": torch.rand(2, 10)})
    assert int(model.num_updates) == 6  # evaluation does not advance the schedule


def test_a_denoising_vae_encodes_the_corrupted_input_and_scores_the_clean_one():
    from seqae.config import ConfigError

    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=6, hidden=[8], latent_dim=2, noise="masking", noise_level=0.5))
    x = torch.rand(64, 6) + 0.1  # no zeros: a masked entry shows
    seen = []
    original = model.encode
    model.encode = lambda inp: seen.append(inp) or original(inp)
    model.train()
    model.elbo_terms(x)
    assert bool((seen[-1] == 0).any()) and bool(((seen[-1] == 0) | (seen[-1] == x)).all())  # masked, else unchanged
    model.eval()
    model.elbo_terms(x)
    assert torch.equal(seen[-1], x)  # evaluation sees the clean input
    with pytest.raises(ConfigError, match="noise_level"):
        VAEConfig(noise="masking", noise_level=1.0).validate("r.toml")


def test_a_learned_output_variance_gives_the_gaussian_nll_of_that_variance():
    model = make(likelihood="gaussian_learned")
    assert model.output_log_variance.shape == (10,)
    out, x = torch.rand(3, 10), torch.rand(3, 10)
    with torch.no_grad():
        model.output_log_variance.fill_(math.log(0.25))  # sigma = 0.5
    expected = -torch.distributions.Normal(out, 0.5).log_prob(x).sum(1)
    torch.testing.assert_close(model.negative_log_likelihood(out, x), expected)
    # unit variance is the plain Gaussian's, and its model has no such parameter
    plain = make(likelihood="gaussian")
    assert plain.output_log_variance is None
    torch.testing.assert_close(plain.negative_log_likelihood(out, x), -torch.distributions.Normal(out, 1.0).log_prob(x).sum(1))
    loss = model({"x": x}).loss
    loss.backward()
    assert model.output_log_variance.grad is not None and bool(model.output_log_variance.grad.abs().sum() > 0)
