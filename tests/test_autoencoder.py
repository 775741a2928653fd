import pytest
import torch

from seqae.families.autoencoder.model import Autoencoder, AutoencoderConfig
from seqae.nn.losses import gaussian_kl, kl_sparsity_penalty, l1_penalty


def make(**kw):
    torch.manual_seed(0)
    return Autoencoder(AutoencoderConfig(input_dim=12, hidden=[6, 3], **kw))


def test_shapes_of_encode_and_decode():
    model = make()
    x = torch.rand(5, 12)
    assert model.encode(x).shape == (5, 3)
    assert model.decode(model.encode(x)).shape == (5, 12)
    assert model.reconstruction_error(x).shape == (5,)


def test_wrong_input_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 12\), got \(5, 10\)"):
        make().encode(torch.rand(5, 10))


def test_tied_decoder_uses_the_encoders_transposed_weights():
    model = make(tied=True)
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith("decoder.") for n in names)  # only decoder biases
    z = torch.randn(4, 3)
    expected = torch.sigmoid(
        torch.sigmoid(z @ model.encoder[1].weight + model.decoder_bias[1]) @ model.encoder[0].weight + model.decoder_bias[0]
    )
    torch.testing.assert_close(model.decode(z), expected)
    # a gradient through the decoder alone reaches the encoder's weights
    model.decode(z).sum().backward()
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0


def test_gaussian_noise_corrupts_only_in_training():
    model = make(noise="gaussian", noise_level=0.3)
    x = torch.rand(2000, 12)
    noisy = model.corrupt(x)
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.05)
    clean_loss = torch.nn.functional.mse_loss(model.decode(model.encode(x)), x).item()
    model.eval()  # evaluation encodes the clean input: the same loss every call, the clean one
    first, second = model({"x": x}).loss.item(), model({"x": x}).loss.item()
    assert first == second == pytest.approx(clean_loss, rel=1e-6)
    model.train()  # training encodes a fresh corruption each call
    assert model({"x": x}).loss.item() != model({"x": x}).loss.item()


def test_masking_noise_drops_the_asked_share():
    model = make(noise="masking", noise_level=0.25)
    x = torch.ones(1000, 12)
    assert (model.corrupt(x) == 0).float().mean().item() == pytest.approx(0.25, abs=0.02)


def test_kl_sparsity_penalty_is_zero_at_the_target_and_positive_elsewhere():
    assert kl_sparsity_penalty(torch.full((10, 4), 0.05), 0.05).item() == pytest.approx(0.0, abs=1e-6)
    # KL(0.05 || 0.5) per unit = 0.05 ln 0.1 + 0.95 ln 1.9
    expected = 4 * (0.05 * torch.log(torch.tensor(0.1)) + 0.95 * torch.log(torch.tensor(1.9)))
    assert kl_sparsity_penalty(torch.full((10, 4), 0.5), 0.05).item() == pytest.approx(expected.item(), rel=1e-5)
    assert l1_penalty(torch.tensor([[1.0, -2.0], [0.0, 3.0]])).item() == pytest.approx(3.0)


def test_gaussian_kl_matches_the_closed_form():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, torch.log(torch.tensor(2.0))]])
    expected = 0.5 * (1.0 + (2.0 - 1.0 - torch.log(torch.tensor(2.0))))
    assert gaussian_kl(mu, logvar).item() == pytest.approx(expected.item(), rel=1e-6)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).tolist() == [0.0, 0.0, 0.0]


def test_greedy_stages_train_one_layer_each_then_the_whole_network():
    model = make(pretrain_steps=5, num_classes=4)
    stages = model.training_stages(20)
    assert [s.name for s in stages] == ["pretrain_layer1", "pretrain_layer2", "finetune"]
    assert [s.steps for s in stages] == [5, 5, 20]
    layer1 = {id(p) for p in stages[0].phases[0].parameters}
    assert layer1 == {id(p) for p in [*model.encoder[0].parameters(), *model.decoder[0].parameters()]}
    # in layer 2's stage the loss reconstructs layer 1's code and gives no gradient to layer 1
    model.set_phase("pretrain_layer2", "main")
    out = model({"x": torch.rand(8, 12), "y": torch.zeros(8, dtype=torch.long)})
    out.loss.backward()
    assert model.encoder[0].weight.grad is None
    assert model.encoder[1].weight.grad is not None


def test_classifier_fine_tuning_reports_accuracy():
    model = make(num_classes=4)
    out = model({"x": torch.rand(8, 12), "y": torch.arange(8) % 4})
    assert 0.0 <= float(out.metrics["accuracy"]) <= 1.0
    assert out.loss.item() > out.metrics["ce"].item() * 0.99
