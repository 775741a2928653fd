import math

import pytest
import torch
import torch.nn.functional as F

from seqae.nn.quantize import CodebookUsage, GumbelQuantizer, VectorQuantizer, kmeans


def vq(**kw):
    torch.manual_seed(0)
    return VectorQuantizer(kw.pop("dim", 4), kw.pop("codebook_size", 16), **kw)


def test_nearest_code_is_the_squared_euclidean_argmin():
    q = vq()
    x = torch.randn(3, 5, 4)
    out = q(x)
    expected = torch.cdist(x.reshape(-1, 4), q.codebook.detach()).argmin(1).reshape(3, 5)
    assert torch.equal(out.codes, expected)
    assert out.quantized.shape == x.shape


def test_cosine_distance_picks_the_most_aligned_code():
    q = vq(distance="cosine")
    x = torch.randn(50, 4)
    expected = (F.normalize(x, dim=1) @ F.normalize(q.codebook.detach(), dim=1).t()).argmax(1)
    assert torch.equal(q(x).codes, expected)


def test_gradients_pass_straight_through_and_losses_follow_the_paper():
    q = vq()
    x = torch.randn(8, 4, requires_grad=True)
    out = q(x)
    selected = q.codebook[out.codes]
    expected_loss = F.mse_loss(selected, x) * 1.25  # codebook loss + 0.25 x commitment (equal values)
    assert out.loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
    weights = torch.randn_like(x)
    (out.quantized * weights).sum().backward(retain_graph=True)
    torch.testing.assert_close(x.grad, weights)  # the identity through the quantisation
    x.grad = None
    out.loss.backward()
    # the encoder receives only the commitment term; the codebook only the codebook term
    torch.testing.assert_close(x.grad, 0.25 * 2 * (x - selected).detach() / x.numel())
    codebook_grad = q.codebook.grad[out.codes]
    assert codebook_grad.abs().sum() > 0


def test_decode_codes_is_the_exact_inverse():
    for kw in ({}, {"codebook_dim": 2}, {"distance": "cosine"}, {"ema": True}):
        q = vq(**kw).eval()
        x = torch.randn(6, 7, 4)
        out = q(x)
        assert torch.equal(q.decode_codes(out.codes), out.quantized), kw


def test_ema_update_moves_each_code_to_the_mean_of_its_vectors():
    q = vq(ema=True, decay=0.5, codebook_size=4, dim=2)
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    q.embed_sum.copy_(q.codebook)
    x = torch.tensor([[1.0, 1.0], [2.0, 2.0], [9.0, 1.0], [1.0, 9.0], [9.0, 9.0]])
    for _ in range(40):
        q(x)
    torch.testing.assert_close(q.codebook, torch.tensor([[1.5, 1.5], [9.0, 1.0], [1.0, 9.0], [9.0, 9.0]]), atol=1e-3, rtol=0)


def test_kmeans_initialisation_finds_the_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])
    x = (centres[:, None, :] + 0.1 * torch.randn(4, 50, 2)).reshape(-1, 2)
    q = vq(dim=2, codebook_size=4, kmeans_init=True, ema=True, kmeans_iters=20)
    assert not bool(q.initialized)
    q(x)
    assert bool(q.initialized)
    distance = torch.cdist(centres, q.codebook).min(dim=1).values
    assert distance.max() < 0.2


def test_dead_codes_are_restarted_from_batch_with_their_ema_statistics_reset():
    q = vq(ema=True, dead_code_threshold=0.5, codebook_size=8, dim=3)
    q.usage.fill_(1.0)
    q.usage[[2, 5]] = 0.0  # two codes nobody has used
    x = torch.randn(32, 3) + 100.0  # far from every code
    out = q(x)
    assert out.metrics["restarted_codes"].item() == 2
    for code in (2, 5):
        assert (q.codebook[code] - x).abs().sum(1).min() < 1e-5  # moved onto an input vector
        assert q.cluster_size[code].item() == 1.0
        torch.testing.assert_close(q.embed_sum[code], q.codebook[code])


def test_quantisation_runs_in_float32_under_autocast():
    q = vq()
    x = torch.randn(20, 4)
    reference = q(x).codes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(x)
    assert out.quantized.dtype == torch.float32
    assert torch.equal(out.codes, reference)


def test_bad_sizes_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="codebook_size must be at least 2"):
        VectorQuantizer(4, 1)
    with pytest.raises(ValueError, match="codebook_size must be at least 2"):
        VectorQuantizer(4, 0)
    q = vq()
    with pytest.raises(ValueError, match="NaN or infinite"):
        q(torch.tensor([[0.0, float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="empty input"):
        q(torch.zeros(0, 4))
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 4\)"):
        q(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"codes must be in \[0, 16\)"):
        q.decode_codes(torch.tensor([3, 16]))


def test_usage_is_accumulated_over_a_whole_pass():
    usage = CodebookUsage(8)
    usage.update(torch.tensor([0, 1, 1]))
    usage.update(torch.tensor([[2, 3], [0, 0]]))
    result = usage.result()
    assert result["codes_used"] == 4 and result["codebook_usage"] == 0.5
    probs = torch.tensor([3, 2, 1, 1]) / 7
    assert result["perplexity"] == pytest.approx(math.exp(-(probs * probs.log()).sum().item()))


def test_kmeans_keeps_empty_clusters_in_place():
    x = torch.zeros(3, 2)
    centroids = kmeans(x, 5, iters=3)
    assert centroids.shape == (5, 2) and torch.isfinite(centroids).all()


# -- Gumbel ---------------------------------------------------------------------------------------


def gumbel(**kw):
    torch.manual_seed(0)
    return GumbelQuantizer(6, 5, out_dim=3, **kw)


def test_temperature_follows_the_schedule_and_is_kept_on_the_module():
    q = gumbel(tau_min=0.5, anneal_rate=0.1)
    assert q.tau == 1.0
    for _ in range(3):
        q(torch.randn(2, 6))
    assert q.tau == pytest.approx(math.exp(-0.3))
    for _ in range(20):
        q(torch.randn(2, 6))
    assert q.tau == 0.5
    assert int(q.state_dict()["num_updates"]) == 23


def test_non_positive_temperature_is_rejected():
    with pytest.raises(ValueError, match="tau_min must be > 0"):
        GumbelQuantizer(4, 4, tau_min=0.0)


def test_extreme_uniform_noise_cannot_produce_inf_or_nan(monkeypatch):
    for value in (0.0, 1.0):
        monkeypatch.setattr(torch, "rand_like", lambda t, v=value: torch.full_like(t, v))
        for mode in ("hard", "soft", "binary"):
            out = gumbel(mode=mode)(torch.randn(4, 6))
            assert torch.isfinite(out.quantized).all(), (mode, value)


def test_hard_mode_is_one_hot_forward_with_soft_gradients():
    q = gumbel(mode="hard")
    x = torch.randn(10, 6, requires_grad=True)
    out = q(x)
    torch.testing.assert_close(out.quantized, q.codebook[out.codes])
    out.quantized.sum().backward()
    assert x.grad.abs().sum() > 0
    assert torch.equal(q.decode_codes(out.codes), q.codebook[out.codes])


def test_soft_mode_mixes_codes_and_eval_is_deterministic():
    q = gumbel(mode="soft")
    out = q(torch.randn(10, 6))
    assert not torch.allclose(out.quantized, q.codebook[out.codes])
    q.eval()
    x = torch.randn(10, 6)
    a, b = q(x), q(x)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codes, q.to_logits(x).argmax(-1))


def test_kl_to_the_uniform_prior_is_zero_for_uniform_posteriors():
    q = gumbel(kl_weight=1.0)
    torch.nn.init.zeros_(q.to_logits.weight)
    torch.nn.init.zeros_(q.to_logits.bias)
    assert q(torch.randn(4, 6)).loss.item() == pytest.approx(0.0, abs=1e-6)


def test_binary_codes_threshold_at_one_half():
    q = gumbel(mode="binary").eval()
    x = torch.randn(8, 6)
    out = q(x)
    assert out.codes.shape == (8, 5)
    assert torch.equal(out.codes, (torch.sigmoid(q.to_logits(x)) > 0.5).long())
    torch.testing.assert_close(q.decode_codes(out.codes), out.quantized)


def test_diversity_loss_is_zero_for_a_batch_spread_evenly_over_the_codes():
    q = GumbelQuantizer(5, 5, diversity_weight=1.0)
    torch.nn.init.eye_(q.to_logits.weight)
    torch.nn.init.zeros_(q.to_logits.bias)
    spread = 50.0 * torch.eye(5)  # each example confident about a different code
    assert q(spread).loss.item() == pytest.approx(0.0, abs=1e-5)
    same = 50.0 * torch.eye(5)[[0, 0, 0, 0, 0]]  # all on code 0: KL = log 5
    assert q(same).loss.item() == pytest.approx(math.log(5), rel=1e-4)


def test_binary_diversity_loss_is_zero_when_each_bit_is_on_for_half_the_batch_and_log2_per_constant_bit():
    q = GumbelQuantizer(2, 2, mode="binary", diversity_weight=1.0)
    torch.nn.init.eye_(q.to_logits.weight)
    torch.nn.init.zeros_(q.to_logits.bias)
    half = 50.0 * torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # each bit on for one input, off for the other
    assert q(half).loss.item() == pytest.approx(0.0, abs=1e-5)
    constant = 50.0 * torch.ones(2, 2)  # both bits always on: KL(1 || 0.5) = log 2 each
    assert q(constant).loss.item() == pytest.approx(2 * math.log(2), rel=1e-4)
    assert q(constant).metrics["batch_kl_to_uniform"].item() == pytest.approx(2 * math.log(2), rel=1e-4)
