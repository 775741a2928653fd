"""The infomax family's registry entry: Deep InfoMax on images (digits, IDX, .npy/.npz), evaluated by
few-label probes on its codes beside the same encoder untrained, PCA and pixels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.arrays import ArrayDataConfig
from seqae.evaluation.few_labels import few_label_probes
from seqae.families.arrays import (
    array_codes,
    array_items,
    discriminator_result,
    encode_all,
    prepare_images,
    probe_baselines,
    retrieval_by_label,
    splits,
    thumbnails,
)
from seqae.families.base import Family, Prepared
from seqae.families.infomax.model import InfoMax, InfoMaxConfig
from seqae.runtime import model_device


@dataclass
class InfoMaxEvalConfig:
    """``[eval]`` for ``family = "infomax"``."""

    seed: int = 0  # the untrained encoder's initialisation and the labelled subsets
    labels_per_class: list[int] = field(default_factory=lambda: [10, 50, 0])  # 0: every training label
    draws: int = 5  # labelled subsets per size (mean and standard deviation over them)
    max_iter: int = 1000  # logistic-regression iterations
    batch_size: int = 128  # test batches for the mutual-information estimates
    discriminator: bool = False  # also the discriminator evaluation of the codes (seqae eval --discriminator)
    retrieval_queries: int = 1000  # test inputs used as retrieval queries (evenly spaced; 0: all)

    def validate(self, where: str) -> None:
        if self.draws < 1 or self.max_iter < 1 or self.batch_size < 2:
            raise ConfigError(f"{where}: eval.draws and eval.max_iter must be positive, eval.batch_size at least 2")
        if any(n < 0 for n in self.labels_per_class):
            raise ConfigError(f"{where}: eval.labels_per_class holds counts >= 0 (0: every label), got {self.labels_per_class}")


def local_maps(net: nn.Module, x: np.ndarray) -> np.ndarray:
    """The local feature maps, flattened ``(n, local_dim * M * M)`` (DIM's "conv" representation)."""
    return encode_all(net, x, lambda batch: net.local_features(batch).flatten(1))


@torch.no_grad()
def test_estimates(model: nn.Module, test_x: np.ndarray, batch_size: int) -> dict[str, float]:
    """The training objective's terms on held-out batches: the MI estimates (nats) and how often the global
    discriminator picks an image's own code among the batch's (chance 1 / batch size)."""
    model.eval()
    device = model_device(model)
    totals: dict[str, float] = {}
    starts = list(range(0, len(test_x) - batch_size + 1, batch_size)) or [0]
    for start in starts:
        out = model({"x": torch.from_numpy(test_x[start : start + batch_size]).to(device)})
        for k, v in out.metrics.items():
            totals[f"test_{k}"] = totals.get(f"test_{k}", 0.0) + float(v) / len(starts)
    return totals


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    config = recipe.eval
    train_x, train_y, test_x, test_y = splits(prepared)
    result: dict[str, Any] = {"code_dim": model.config.code_dim, "estimator": model.config.estimator}
    result.update(test_estimates(model, test_x, config.batch_size))
    if train_y is None or test_y is None:
        return result
    features = probe_baselines(model, train_x, test_x, "infomax", config.seed, model.config.code_dim)
    torch.manual_seed(config.seed)  # the same untrained network as the baselines'
    untrained = InfoMax(model.config).to(model_device(model)).eval()
    features["infomax_local"] = (local_maps(model, train_x), local_maps(model, test_x))
    features["untrained_local"] = (local_maps(untrained, train_x), local_maps(untrained, test_x))
    result.update(few_label_probes(features, train_y, test_y, tuple(config.labels_per_class), config.draws, config.seed,
                                   config.max_iter))
    result.update(retrieval_by_label(features, train_y, test_y, config.retrieval_queries))
    return result | discriminator_result(model, recipe, prepared, "infomax", config.seed, **options)


@torch.no_grad()
def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """A map of the test split's codes (first two principal components), coloured by label."""
    from seqae import plots

    _, _, test_x, test_y = splits(prepared)
    model.eval()
    codes = encode_all(model, test_x)
    paths = [plots.code_map(codes, test_y, out_dir / "code_map.png", title="infomax codes of the test split")]
    paths.append(plots.projector(codes, out_dir / "codes.npz", thumbnails(recipe, test_x), **({} if test_y is None else {"label": test_y})))
    if test_y is not None:
        paths.append(plots.code_map(codes, test_y, out_dir / "tsne_map.png", title="infomax codes of the test split (t-SNE)",
                                    projection="tsne"))
    return paths


FAMILY = Family(
    "infomax", InfoMaxConfig, ArrayDataConfig, InfoMaxEvalConfig,
    prepare_images, lambda r: InfoMax(r.model), evaluate, figures, array_codes, eval_options=("discriminator",), search_items=array_items,
)
