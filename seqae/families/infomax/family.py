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
from seqae.families.arrays import array_codes, prepare_images, splits
from seqae.families.base import Family, Prepared
from seqae.families.infomax.model import InfoMax, InfoMaxConfig


@dataclass
class InfoMaxEvalConfig:
    """``[eval]`` for ``family = "infomax"``."""

    seed: int = 0  # the untrained encoder's initialisation and the labelled subsets
    labels_per_class: list[int] = field(default_factory=lambda: [10, 50, 0])  # 0: every training label
    draws: int = 5  # labelled subsets per size (mean and standard deviation over them)
    max_iter: int = 1000  # logistic-regression iterations
    batch_size: int = 128  # test batches for the mutual-information estimates

    def validate(self, where: str) -> None:
        if self.draws < 1 or self.max_iter < 1 or self.batch_size < 2:
            raise ConfigError(f"{where}: eval.draws and eval.max_iter must be positive, eval.batch_size at least 2")
        if any(n < 0 for n in self.labels_per_class):
            raise ConfigError(f"{where}: eval.labels_per_class holds counts >= 0 (0: every label), got {self.labels_per_class}")


@torch.no_grad()
def encode_all(model: nn.Module, x: np.ndarray, batch: int = 1024, local: bool = False) -> np.ndarray:
    """The global codes ``(n, code_dim)`` of images ``(n, input_dim)``, or with ``local`` their local feature
    maps flattened ``(n, local_dim * M * M)`` (DIM's "conv" representation)."""
    device = next(model.parameters()).device
    fn = (lambda x: model.local_features(x).flatten(1)) if local else model.encode
    return torch.cat([fn(torch.from_numpy(x[i : i + batch]).to(device)) for i in range(0, len(x), batch)]).cpu().numpy()


@torch.no_grad()
def test_estimates(model: nn.Module, test_x: np.ndarray, batch_size: int) -> dict[str, float]:
    """The training objective's terms on held-out batches: the MI estimates (nats) and how often the global
    discriminator picks an image's own code among the batch's (chance 1 / batch size)."""
    model.eval()
    device = next(model.parameters()).device
    totals: dict[str, float] = {}
    starts = list(range(0, len(test_x) - batch_size + 1, batch_size)) or [0]
    for start in starts:
        out = model({"x": torch.from_numpy(test_x[start : start + batch_size]).to(device)})
        for k, v in out.metrics.items():
            totals[f"test_{k}"] = totals.get(f"test_{k}", 0.0) + float(v) / len(starts)
    return totals


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    from sklearn.decomposition import PCA

    config = recipe.eval
    train_x, train_y, test_x, test_y = splits(prepared)
    result: dict[str, Any] = {"code_dim": model.config.code_dim, "estimator": model.config.estimator}
    result.update(test_estimates(model, test_x, config.batch_size))
    if train_y is None or test_y is None:
        return result
    torch.manual_seed(config.seed)
    untrained = InfoMax(model.config).to(next(model.parameters()).device).eval()
    pca = PCA(n_components=min(model.config.code_dim, *train_x.shape), random_state=config.seed).fit(train_x)
    features = {
        "infomax": (encode_all(model, train_x), encode_all(model, test_x)),
        "infomax_local": (encode_all(model, train_x, local=True), encode_all(model, test_x, local=True)),
        "untrained": (encode_all(untrained, train_x), encode_all(untrained, test_x)),
        "untrained_local": (encode_all(untrained, train_x, local=True), encode_all(untrained, test_x, local=True)),
        "pca": (pca.transform(train_x), pca.transform(test_x)),
        "pixels": (train_x, test_x),
    }
    result.update(few_label_probes(features, train_y, test_y, tuple(config.labels_per_class), config.draws, config.seed,
                                   config.max_iter))
    return result


@torch.no_grad()
def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """A map of the test split's codes (first two principal components), coloured by label."""
    from seqae import plots

    _, _, test_x, test_y = splits(prepared)
    model.eval()
    return [plots.code_map(encode_all(model, test_x), test_y, out_dir / "code_map.png", title="infomax codes of the test split")]


FAMILY = Family(
    "infomax", InfoMaxConfig, ArrayDataConfig, InfoMaxEvalConfig,
    prepare_images, lambda r: InfoMax(r.model), evaluate, figures, array_codes,
)
