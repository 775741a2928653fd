"""Evaluation of the array families (autoencoder, vae) on the test split, each figure beside a baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError
from seqae.runtime import model_device


@dataclass
class ArrayEvalConfig:
    """``[eval]`` for the array families."""

    noise_seed: int = 0  # seed of the noise added to test inputs for the denoising figure
    elbo_samples: int = 10  # posterior samples per example for the VAE's test ELBO
    active_unit_threshold: float = 0.01  # a latent unit is active if Cov_x(E[z_u|x]) exceeds this
    labels_per_class: list[int] = field(default_factory=lambda: [10, 50, 0])  # few-label probes on the codes; 0: every label
    draws: int = 5  # labelled subsets per size (mean and standard deviation over them)
    probe_seed: int = 0  # the labelled subsets and the untrained network's initialisation
    discriminator: bool = False  # also the discriminator evaluation of the codes (seqae eval --discriminator)
    retrieval_queries: int = 1000  # test inputs used as retrieval queries (evenly spaced; 0: all)

    def validate(self, where: str) -> None:
        if self.elbo_samples <= 0:
            raise ConfigError(f"{where}: eval.elbo_samples must be positive")
        if self.draws < 1 or any(n < 0 for n in self.labels_per_class):
            raise ConfigError(f"{where}: eval.draws must be positive and eval.labels_per_class counts >= 0 (0: every label)")


def batched(fn, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def pca_mse(train_x: np.ndarray, test_x: np.ndarray, components: int) -> float:
    """Test MSE of reconstruction by PCA with ``components`` components fitted on the training split."""
    from sklearn.decomposition import PCA

    components = min(components, train_x.shape[1], train_x.shape[0])
    pca = PCA(n_components=components, random_state=0).fit(train_x)
    rec = pca.inverse_transform(pca.transform(test_x))
    return float(np.mean((rec - test_x) ** 2))


def pca_baseline(train_x: np.ndarray, test_x: np.ndarray, code_dim: int, mse: float) -> dict[str, Any]:
    """PCA with as many components as the code is wide; none for an over-complete code (PCA is exact)."""
    if code_dim >= train_x.shape[1]:
        return {}
    pca = pca_mse(train_x, test_x, code_dim)
    return {"pca_mse": pca, "pca_components": int(code_dim), "mse_ratio_to_pca": mse / pca if pca > 0 else float("nan")}


def corrupt_like(model: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The model's own input noise, drawn from a fixed seed so the figure is repeatable."""
    generator = torch.Generator().manual_seed(seed)
    level = model.config.noise_level
    if model.config.noise == "gaussian":
        return x + level * torch.randn(x.shape, generator=generator)
    return x * (torch.rand(x.shape, generator=generator) >= level).float()


@torch.no_grad()
def denoising_metrics(model: nn.Module, x: torch.Tensor, reconstruct, seed: int) -> dict[str, float]:
    """For a denoising model (``model.noise``): the test inputs corrupted by its own noise (fixed seed),
    the error of their reconstructions against the clean inputs, beside the noisy inputs' own error."""
    cfg = model.config
    if cfg.noise == "none" or cfg.noise_level <= 0:
        return {}
    noisy = corrupt_like(model, x, seed)
    denoised_mse = float((batched(reconstruct, noisy) - x).pow(2).mean())
    noisy_mse = float((noisy - x).pow(2).mean())
    return {"denoised_mse": denoised_mse, "noisy_input_mse": noisy_mse,
            "denoised_ratio_to_noisy": denoised_mse / noisy_mse if noisy_mse > 0 else float("nan")}


@torch.no_grad()
def evaluate_autoencoder(
    model: nn.Module, train_x: np.ndarray, test_x: np.ndarray, test_y, train_y, config: ArrayEvalConfig, excluded: list[int],
    labelled: np.ndarray | None = None,
) -> dict[str, Any]:
    """Reconstruction against PCA, code statistics, anomaly figures and, with a classifier, its test
    accuracy beside logistic regression on the pixels of the same labelled rows (``labelled``: the rows
    of ``train_x`` fine-tuning saw; None: every row)."""
    model.eval()
    device = model_device(model)
    x = torch.from_numpy(test_x)
    reconstruct = lambda b: model.reconstruct(b.to(device)).cpu()  # noqa: E731
    rec = batched(reconstruct, x)
    mse = float((rec - x).pow(2).mean())
    result: dict[str, Any] = {"test_examples": int(x.shape[0]), "test_mse": mse}
    result.update(pca_baseline(train_x, test_x, model.code_dim, mse))
    cfg = model.config
    result.update(denoising_metrics(model, x, reconstruct, config.noise_seed))
    codes = batched(lambda b: model.encode(b.to(device)).cpu(), x)
    if cfg.sparsity != "none":
        result["mean_activation"] = float(codes.mean())
        result["mean_abs_activation"] = float(codes.abs().mean())
        if cfg.sparsity == "kl":
            result["sparsity_target"] = cfg.sparsity_target
            result["activation_ratio_to_target"] = result["mean_activation"] / cfg.sparsity_target
    if model.classifier is not None and test_y is not None:
        logits = batched(lambda b: model.classify(b.to(device)).cpu(), x)
        result["test_accuracy"] = float((logits.argmax(1).numpy() == test_y).mean())
        rows = slice(None) if labelled is None else labelled
        result["logistic_regression_pixels_accuracy"] = logistic_baseline(train_x[rows], train_y[rows], test_x, test_y)
        result["labelled_examples"] = int(len(train_y[rows]))
    result.update(anomaly_figures(model, x, test_y, excluded, device))
    return result


def logistic_baseline(train_x, train_y, test_x, test_y) -> float:
    """Logistic regression on the raw inputs (pixels in [0, 1], not standardised)."""
    from seqae.evaluation.linear import Probe

    return Probe(train_x, train_y, max_iter=2000, standardise=False).accuracy(test_x, test_y)


def anomaly_figures(model: nn.Module, x: torch.Tensor, test_y, excluded: list[int], device) -> dict[str, Any]:
    """AUROC of the reconstruction error for telling the classes left out of training from the rest."""
    if not excluded or test_y is None:
        return {}
    from sklearn.metrics import roc_auc_score

    scores = batched(lambda b: model.reconstruction_error(b.to(device)).cpu(), x).numpy()
    is_anomaly = np.isin(test_y, excluded)
    if is_anomaly.all() or not is_anomaly.any():
        return {}
    return {"anomaly_classes": list(excluded), "anomaly_auroc": float(roc_auc_score(is_anomaly, scores))}


@torch.no_grad()
def evaluate_vae(
    model: nn.Module, train_x: np.ndarray, test_x: np.ndarray, test_y, config: ArrayEvalConfig, excluded: list[int]
) -> dict[str, Any]:
    model.eval()
    device = model_device(model)
    x = torch.from_numpy(test_x)
    generator_state = torch.get_rng_state()
    torch.manual_seed(config.noise_seed)
    nll_sum, kl_sum = 0.0, 0.0
    for _ in range(config.elbo_samples):
        for i in range(0, x.shape[0], 1024):
            nll, kl = model.elbo_terms(x[i : i + 1024].to(device), sample=True)
            nll_sum += float(nll.sum())
            kl_sum += float(kl.sum())
    torch.set_rng_state(generator_state)
    n = x.shape[0] * config.elbo_samples
    mu = batched(lambda b: model.encode(b.to(device))[0].cpu(), x)
    active = (mu.var(dim=0) > config.active_unit_threshold).sum()
    rec = batched(lambda b: model.reconstruct(b.to(device)).cpu(), x)
    mse = float((rec - x).pow(2).mean())
    result = {
        "test_examples": int(x.shape[0]),
        "test_elbo": -(nll_sum + kl_sum) / n,
        "test_nll": nll_sum / n,
        "test_kl": kl_sum / n,
        "active_units": int(active),
        "latent_dim": int(model.code_dim),
        "test_mse": mse,
    }
    result.update(pca_baseline(train_x, test_x, model.code_dim, mse))
    result.update(denoising_metrics(model, x, lambda b: model.reconstruct(b.to(device)).cpu(), config.noise_seed))
    result.update(anomaly_figures(model, x, test_y, excluded, device))
    return result


@torch.no_grad()
def evaluate_vqvae(model: nn.Module, train_x: np.ndarray, train_y, test_x: np.ndarray, test_y, config: ArrayEvalConfig) -> dict[str, Any]:
    """Reconstruction error, codebook usage over the whole test pass, and clustering against labels
    (global codes) beside k-means on the raw pixels with as many clusters as codes."""
    from seqae.evaluation.clustering import clustering_metrics, kmeans_baseline
    from seqae.nn.quantize import CodebookUsage

    model.eval()
    device = model_device(model)
    x = torch.from_numpy(test_x)
    rec = batched(lambda b: model.reconstruct(b.to(device)).cpu(), x)
    codes = batched(lambda b: model.codes(b.to(device)).cpu(), x)
    result: dict[str, Any] = {"test_examples": int(x.shape[0]), "test_mse": float((rec - x).pow(2).mean())}
    cfg = model.config
    if cfg.quantizer == "binary":
        bits = codes.reshape(-1, cfg.codebook_size).float()
        result["bits_on"] = float(bits.mean())
        result["bits_used"] = int(((bits.mean(0) > 0) & (bits.mean(0) < 1)).sum())
        return result
    usage = CodebookUsage(cfg.codebook_size)
    usage.update(codes)
    result.update(usage.result())
    if cfg.latent == "global" and cfg.quantizer in ("gumbel_hard", "gumbel_soft") and cfg.reconstruction == "bernoulli":
        nll, kl = batched(lambda b: torch.stack(model.exact_elbo(b.to(device)), 1).cpu(), x).unbind(1)
        result.update(test_elbo=float(-(nll + kl).mean()), test_nll=float(nll.mean()), test_kl=float(kl.mean()))
    if cfg.latent == "global" and test_y is not None and train_y is not None:
        train_codes = batched(lambda b: model.codes(b.to(device)).cpu(), torch.from_numpy(train_x)).numpy()
        for key, value in clustering_metrics(codes.numpy(), test_y, train_codes, train_y).items():
            result[f"codes_{key}"] = value
        for key, value in kmeans_baseline(train_x, train_y, test_x, test_y, cfg.codebook_size).items():
            result[f"kmeans_{key}"] = value
    return result
