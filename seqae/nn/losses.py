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

