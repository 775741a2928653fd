"""The autoencoder family's registry entry."""

from __future__ import annotations

from typing import Any

from torch import nn

from seqae.config import Recipe
from seqae.datasets.arrays import ArrayDataConfig
from seqae.evaluation.arrays import ArrayEvalConfig, evaluate_autoencoder
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
from seqae.families.autoencoder.model import Autoencoder, AutoencoderConfig
from seqae.families.base import Family, Prepared


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    train_x, train_y, test_x, test_y = splits(prepared)
    result = evaluate_autoencoder(model, train_x, test_x, test_y, train_y, recipe.eval, recipe.data.exclude_classes,
                                  prepared.train.labelled)
    result |= few_label_result(model, recipe, prepared, "codes")
    return result | discriminator_result(model, recipe, prepared, "codes", recipe.eval.probe_seed, **options)


FAMILY = Family(
    "autoencoder", AutoencoderConfig, ArrayDataConfig, ArrayEvalConfig,
    prepare_arrays, lambda r: Autoencoder(r.model), evaluate, code_figures, array_codes, array_scores,
    eval_options=("discriminator",), search_items=array_items,
)
