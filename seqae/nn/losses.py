"""Losses and penalties shared by the families."""

from __future__ import annotations

import torch


def gaussian_kl_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each coordinate, any shape (Kingma & Welling 2013, appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dimension.

    ``mu``, ``logvar``: ``(batch, latent)``; returns ``(batch,)``.
    """
    return gaussian_kl_terms(mu, logvar).sum(dim=-1)


def kl_sparsity_penalty(activations: torch.Tensor, target: float, eps: float = 1e-6) -> torch.Tensor:
    """Sum over units of KL(rho || rho_hat), rho_hat the mean activation of each unit over the batch.

    ``activations``: ``(batch, units)`` in (0, 1) (sigmoid units). Ng's sparse autoencoder notes, eq. 6.
    """
    rho_hat = activations.mean(dim=0).clamp(eps, 1.0 - eps)
    rho = torch.as_tensor(target, dtype=rho_hat.dtype, device=rho_hat.device)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def l1_penalty(activations: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the L1 norm of each example's activations. ``(batch, units)`` -> scalar."""
    return activations.abs().sum(dim=-1).mean()


def nll_by_example(log_probs: torch.Tensor, targets: torch.Tensor, example: torch.Tensor,
                   batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss of ``N`` target tokens gathered from a batch of ``batch`` sequences.

    ``log_probs``: ``(N, V)``; ``targets``: ``(N,)`` ids; ``example``: ``(N,)`` the sequence each token
    belongs to (``mask.nonzero(as_tuple=True)[0]`` of the batch's target mask, so that an output layer and its
    softmax run on the real tokens only, not the padding; on a GPU the count is read back, one
    synchronisation). Returns the negative log-likelihood summed per sequence ``(batch,)`` and the number of its
    tokens guessed right (the most probable token is the target) ``(batch,)``.
    """
    nll = torch.nn.functional.nll_loss(log_probs, targets, reduction="none")
    right = (log_probs.argmax(-1) == targets).long()
    summed = log_probs.new_zeros(batch).index_add(0, example, nll)
    return summed, torch.zeros(batch, dtype=torch.long, device=right.device).index_add(0, example, right)
