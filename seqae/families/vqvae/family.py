"""The VQ-VAE family's registry entry: images (one code or a grid of codes per image, VQ, Gumbel or
binary latents) or log-mel spectrograms (a code per frame)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.arrays import ArrayDataConfig
from seqae.datasets.audio import AudioDataConfig, MelSegments, list_utterances, log_mels
from seqae.datasets.audio_store import build_mel_splits
from seqae.datasets.base import DataError, utterances_fingerprint
from seqae.evaluation.arrays import ArrayEvalConfig, evaluate_vqvae
from seqae.families.arrays import (
    array_inputs,
    array_items,
    array_scores,
    discriminator_result,
    few_label_result,
    figure_picks,
    prepare_images,
    reconstruction_figure,
    splits,
)
from seqae.families.base import Family, Inferred, Prepared, Utterances
from seqae.families.vqvae.model import VQVAE, VQVAEConfig
from seqae.runtime import model_device


def prepare_vqvae(recipe: Recipe) -> Prepared:
    if recipe.model.input == "mel":
        train, test, train_utts, test_utts, (mean, std) = build_mel_splits(recipe.data)
        n_mels = recipe.data.n_mels
        if recipe.model.input_dim not in (0, n_mels):
            raise ConfigError(f"{recipe.source}: model.input_dim = {recipe.model.input_dim} but data.n_mels = {n_mels}")
        return Prepared(train, test, Utterances(train_utts, test_utts), Inferred(input_dim=n_mels, mel_mean=mean, mel_std=std),
                        fingerprint=utterances_fingerprint(train_utts + test_utts), data_name=str(recipe.data.source))
    return prepare_images(recipe)


def quantized_code(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The quantised latents of images, flattened: ``(batch, code_dim)`` (global) or ``(batch, h * w * code_dim)``."""
    return model.encode(x).quantized.flatten(1)


def vqvae_items(model: nn.Module, recipe: Recipe, path: Path) -> tuple[list[str], np.ndarray]:
    """Search items of an image file: each image's quantised latents, flattened."""
    if model.config.input == "mel":
        raise ConfigError(f"{path}: a log-mel VQ-VAE has a code per frame, not one vector per item to search by; "
                          "search with a cpc or voice_conversion run, or write the codes with seqae codes")
    return array_items(model, recipe, path, quantized_code)


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, **options) -> dict[str, Any]:
    """Log-mel input: reconstruction error and code usage over every test utterance; images: the array
    evaluation with code usage and clustering, few-label probes of the quantised latents and, when asked
    for, their discriminator evaluation."""
    wants_discriminator = options.get("discriminator") or recipe.eval.discriminator
    if recipe.model.input == "mel":
        if wants_discriminator:
            raise ConfigError(f"{recipe.source}: the discriminator evaluation takes image codes; this VQ-VAE codes log-mel frames "
                              "(a code per frame, no one input to pair it with): drop --discriminator / eval.discriminator")
        return evaluate_mel_vqvae(model, prepared.test)
    train_x, train_y, test_x, test_y = splits(prepared)
    result = evaluate_vqvae(model, train_x, train_y, test_x, test_y, recipe.eval)
    result |= few_label_result(model, recipe, prepared, "codes", quantized_code)
    return result | discriminator_result(model, recipe, prepared, "codes", recipe.eval.probe_seed, quantized_code, **options)


@torch.no_grad()
def evaluate_mel_vqvae(model: nn.Module, test: MelSegments) -> dict[str, Any]:
    """Reconstruction error (normalised log-mel units) and codebook usage over every test utterance, whole."""
    from seqae.nn.quantize import CodebookUsage

    model.eval()
    device = model_device(model)
    usage = CodebookUsage(model.config.codebook_size)
    squared, count = 0.0, 0
    mels = test.mels  # read from the store once
    for mel in mels:
        x = mel[None].to(device)
        squared += float((model.reconstruct(x) - x).pow(2).sum())
        count += x.numel()
        usage.update(model.codes(x))
    return {
        "test_utterances": len(mels),
        "test_frames": count // model.config.input_dim,
        "test_mse": squared / count,
        **usage.result(),
    }


@torch.no_grad()
def mel_figures(model: nn.Module, recipe: Recipe, test: MelSegments, out_dir: Path) -> list[Path]:
    from seqae import plots

    model.eval()
    device = model_device(model)
    mels = test.mels  # read from the store once
    mel = mels[0][None].to(device)
    recon = model.reconstruct(mel)
    codes = [model.codes(m[None].to(device)).cpu().numpy() for m in mels]
    counts = np.bincount(np.concatenate([c.reshape(-1) for c in codes]), minlength=model.config.codebook_size)
    sample = codes[0]
    return [
        plots.spectrograms([mel[0].cpu().numpy(), recon[0].cpu().numpy()], ["log-mel (normalised)", "reconstruction"],
                           out_dir / "reconstructions.png", hop_seconds=recipe.data.hop_length / recipe.data.sample_rate),
        plots.code_usage(counts, sample[:, :: max(1, sample.shape[1] // 40)], None, out_dir / "code_usage.png"),
    ] + mel_clips(recipe, test, mel[0].cpu(), recon[0].cpu(), out_dir)


def mel_clips(recipe: Recipe, test: MelSegments, mel: torch.Tensor, recon: torch.Tensor, out_dir: Path) -> list[Path]:
    """The first test utterance and its reconstruction as audio (Griffin-Lim, 32 iterations), to listen to
    in the report and in TensorBoard: ``clip_1_original.wav``, ``clip_1_reconstruction.wav``."""
    from seqae.datasets.audio import write_wave
    from seqae.vocoder import get_vocoder

    vocoder = get_vocoder("griffin_lim", recipe.data.mel(), n_iter=32)
    return [write_wave(vocoder(m * test.std + test.mean).numpy(), recipe.data.sample_rate, out_dir / f"clip_1_{role}.wav")
            for role, m in (("original", mel), ("reconstruction", recon))]


@torch.no_grad()
def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    """Log-mel input: a reconstruction and the code usage; images: reconstructions and code usage."""
    if recipe.model.input == "mel":
        return mel_figures(model, recipe, prepared.test, out_dir)
    _, _, test_x, test_y = splits(prepared)
    picks = figure_picks(test_y, len(test_x))
    return [reconstruction_figure(model, recipe, test_x, picks, out_dir)] + vqvae_figures(model, recipe, test_x, test_y, picks, out_dir)


def vqvae_figures(model, recipe, test_x, test_y, picks, out_dir: Path) -> list[Path]:
    from seqae import plots

    if model.config.quantizer == "binary":
        return []
    device = model_device(model)
    codes = model.codes(torch.from_numpy(test_x).to(device)).cpu().numpy()
    counts = np.bincount(codes.reshape(-1), minlength=model.config.codebook_size)
    sample = codes[picks]
    labels = None if test_y is None else test_y[picks]
    codebook = model.quantizer.decode_codes(torch.arange(model.config.codebook_size, device=device)).cpu().numpy()
    return [plots.code_usage(counts, sample, labels, out_dir / "code_usage.png"),  # and the codebook, for the projector
            plots.projector(codebook, out_dir / "codebook.npz", code=range(len(codebook)), uses=counts.tolist())]


@torch.no_grad()
def vqvae_codes(model: nn.Module, recipe: Recipe, path: Path) -> np.ndarray:
    """Codes ``(examples,)`` (global) or ``(examples, h, w)`` (grid); for log-mel models, the codes
    ``(frames,)`` of one audio file (``-i`` a folder or manifest: see :func:`mel_codes_by_file`)."""
    model.eval()
    if model.config.input == "mel":
        utterances = list_utterances(path)
        if len(utterances) != 1:
            raise DataError(f"{path}: {len(utterances)} utterances; give one audio file, or write a .npz with -o codes.npz")
        return mel_codes(model, recipe, utterances)[0]
    x = array_inputs(model, recipe, path)
    return torch.cat([model.codes(x[i : i + 1024]) for i in range(0, len(x), 1024)]).cpu().numpy()


def mel_codes(model: nn.Module, recipe: Recipe, utterances) -> list[np.ndarray]:
    device = model_device(model)
    out = []
    for mel in log_mels(utterances, recipe.data.mel()):
        x = recipe.data.normalise(mel)[None].to(device)
        out.append(model.codes(x)[0].cpu().numpy())
    return out


@torch.no_grad()
def mel_codes_by_file(model: nn.Module, recipe: Recipe, path: Path) -> dict[str, np.ndarray]:
    """Codes of every utterance of a folder or manifest, keyed by the audio path."""
    model.eval()
    utterances = list_utterances(path)
    return {str(u.audio): codes for u, codes in zip(utterances, mel_codes(model, recipe, utterances))}


FAMILY = Family(
    "vqvae", VQVAEConfig, ArrayDataConfig, ArrayEvalConfig,
    prepare_vqvae, lambda r: VQVAE(r.model), evaluate, figures, vqvae_codes, array_scores,
    data_config_for=lambda model: AudioDataConfig if getattr(model, "input", "image") == "mel" else ArrayDataConfig,
    codes_by_file=lambda model, recipe, path: mel_codes_by_file(model, recipe, path) if model.config.input == "mel" else None,
    eval_options=("discriminator",), search_items=vqvae_items,
)
