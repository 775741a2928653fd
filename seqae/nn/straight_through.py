"""Embedding lookups of straight-through one-hots without the dense product's waste.

A straight-through word ``y = hard + soft - soft.detach()`` is one-hot in value (the ``1`` up to a rounding
of ``soft``, every other entry exactly 0) and soft in gradient. ``y @ W`` is then one row of ``W`` per word,
but the dense product spends ``2 V E`` multiply-adds per word forward and as many for ``W``'s gradient, of
which a gather and an ``index_add`` need ``E``. Only ``y``'s own gradient, ``grad @ W^T``, is dense by nature
(it is what reaches the soft distribution)."""

from __future__ import annotations

import torch


class _OneHotRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, one_hots: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        index = one_hots.argmax(-1)
        scale = one_hots.gather(-1, index[..., None])  # ~1 for a word, 0 for a zeroed (padding) row
        ctx.save_for_backward(index, scale, weight)
        return weight[index] * scale

    @staticmethod
    @torch.autograd.function.once_differentiable  # the saved scale carries no graph: no second derivative
    def backward(ctx, grad: torch.Tensor):
        index, scale, weight = ctx.saved_tensors
        grad_hots = grad @ weight.t() if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            rows = (grad * scale).reshape(-1, grad.shape[-1])
            grad_weight = torch.zeros_like(weight).index_add_(0, index.reshape(-1), rows)
        return grad_hots, grad_weight


def one_hot_rows(one_hots: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``one_hots @ weight`` for ``one_hots`` ``(..., V)`` that are one-hot or zero in value (straight-through
    words, zeroed past a summary's end) and ``weight`` ``(V, E)`` -> ``(..., E)``: the same values and
    gradients as the product, the forward a gather and ``weight``'s gradient an ``index_add``. Not for soft
    distributions: only each row's largest entry is read."""
    return _OneHotRows.apply(one_hots, weight)
