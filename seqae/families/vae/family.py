"""The VAE family's registry entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqae.config import Recipe
from seqae.datasets.arrays import ArrayDataConfig
from seqae.evaluation.arrays import ArrayEvalConfig, evaluate_vae
from seqae.families.arrays import (
    array_codes,
    array_items,
    array_scores,
    code_figures,
    discriminator_result,
    few_label_result,
    prepare_arrays,
    splits,
)
from seqae.families.base import Family, Prepared
from seqae.families.vae.model import VAE, VAEConfig


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    train_x, _, test_x, test_y = splits(prepared)
    result = evaluate_vae(model, train_x, test_x, test_y, recipe.eval, recipe.data.exclude_classes)
    result |= few_label_result(model, recipe, prepared, "codes")
    return result | discriminator_result(model, recipe, prepared, "codes", recipe.eval.probe_seed, **options)


@torch.no_grad()
def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """Reconstructions, the code map, and 40 samples from the prior."""
    from seqae import plots

    paths = code_figures(model, recipe, prepared, out_dir)
    generator = torch.Generator().manual_seed(recipe.eval.noise_seed)
    samples = model.sample(40, generator=generator).cpu().numpy()
    shape = tuple(recipe.data.image_shape)
    return paths + [plots.image_grid(samples, shape, out_dir / "samples.png", title="samples from the prior")]


FAMILY = Family(
    "vae", VAEConfig, ArrayDataConfig, ArrayEvalConfig,
    prepare_arrays, lambda r: VAE(r.model), evaluate, figures, array_codes, array_scores,
    eval_options=("discriminator",), search_items=array_items,
)
