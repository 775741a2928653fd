"""The CPC family's registry entry: contrastive predictive coding on raw audio, with phone and speaker probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.audio import ONE_PIECE_SECONDS, AudioDataConfig
from seqae.datasets.base import BatchSource, utterances_fingerprint
from seqae.evaluation.probes import ProbeEvalConfig
from seqae.families.base import Family, Prepared, Utterances, manifest_utterances, resolve_manifests, utterance_items
from seqae.families.cpc.model import CPC, CPCConfig
from seqae.registry import CODE_KINDS
from seqae.runtime import model_device


def prepare(recipe: Recipe) -> Prepared:
    from seqae.datasets.audio_store import build_wave_splits

    cfg = recipe.model
    if recipe.data.segment_samples < cfg.receptive_field + cfg.hop * (cfg.prediction_steps + 1):
        raise ConfigError(
            f"{recipe.source}: data.segment_samples = {recipe.data.segment_samples} is too short to predict "
            f"{cfg.prediction_steps} frames ahead; use at least {cfg.receptive_field + cfg.hop * (cfg.prediction_steps + 1)}"
        )
    train, test, info = build_wave_splits(recipe.data, min_samples=cfg.receptive_field)
    return Prepared(train, test, Utterances(info["train"], info["test"]), fingerprint=utterances_fingerprint(info["train"] + info["test"]),
                    data_name=str(recipe.data.source))


def cpc_extractors(model: nn.Module, recipe: Recipe) -> dict:
    from seqae.audio import LogMel, MelConfig
    from seqae.evaluation.probes import stack_frames

    cfg = model.config
    rate = recipe.data.sample_rate
    device = model_device(model)
    torch.manual_seed(recipe.eval.seed)
    untrained = CPC(recipe.model).to(device).eval()
    mel = LogMel(MelConfig(sample_rate=rate, n_fft=400, win_length=400, hop_length=cfg.hop, n_mels=80))

    def cpc_fn(net):
        @torch.no_grad()
        def extract(wave):
            return net.features(torch.from_numpy(wave)[None].to(device))[0].cpu().numpy()
        return extract

    @torch.no_grad()
    def logmel(wave):
        return mel(torch.from_numpy(wave))[0].t().numpy()

    centre, hop = cfg.receptive_field / 2 / rate, cfg.hop / rate
    return {
        "cpc": (cpc_fn(model), centre, hop),
        "cpc_random": (cpc_fn(untrained), centre, hop),
        "logmel": (logmel, 0.0, hop),
        "logmel_stacked": (lambda w: stack_frames(logmel(w), 4), 0.0, hop),
    }


@torch.no_grad()
def infonce_accuracy(model: nn.Module, source: BatchSource, batches: int = 20, batch_size: int = 16) -> dict[str, float]:
    model.eval()
    device = model_device(model)
    totals: dict[str, float] = {}
    picked = source.epoch_batches(0, 12345, batch_size)[:batches] if len(source) >= batch_size else []
    torch.manual_seed(0)  # the negatives
    for indices in picked:
        out = model({k: v.to(device) for k, v in source.collate(indices).items()})
        for k, v in out.metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) / len(picked)
    return {f"test_{k}": v for k, v in totals.items()}


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared, manifest: str | None = None, **options) -> dict[str, Any]:
    """Phone and speaker probes on frozen features of the manifest's utterances, beside log-mel (single
    and +-4 stacked frames) and a randomly initialised CPC; InfoNCE accuracy per step on the test split."""
    from seqae.datasets.audio import pcm16_to_float, read_waves
    from seqae.evaluation.probes import probe

    paths = resolve_manifests(recipe, manifest)
    utterances = manifest_utterances(paths)
    waves = [pcm16_to_float(w) for w in read_waves(utterances, recipe.data.sample_rate, model.config.receptive_field)]
    result: dict[str, Any] = {"manifest": ", ".join(map(str, paths)), "utterances": len(utterances)}
    result.update(probe(utterances, waves, cpc_extractors(model, recipe), recipe.eval))
    result.update(infonce_accuracy(model, prepared.test))
    return result


@torch.no_grad()
def figures(model: nn.Module, recipe: Recipe, prepared: Prepared, out_dir: Path) -> list[Path]:
    from seqae import plots
    from seqae.audio import LogMel, MelConfig
    from seqae.datasets.audio import pcm16_to_float, read_waves

    model.eval()
    device = model_device(model)
    utts = prepared.extra.test
    first = utts[0]
    wave = read_waves([first], recipe.data.sample_rate, model.config.receptive_field)[0]
    wave = pcm16_to_float(wave)
    mel = LogMel(MelConfig(sample_rate=recipe.data.sample_rate, hop_length=160))(torch.from_numpy(wave))[0].numpy()
    title = first.text or first.audio.name
    paths = [plots.mel_with_phones(mel, first.phones, 160 / recipe.data.sample_rate, out_dir / "mel_phones.png", title=title)]
    accuracy = infonce_accuracy(model, prepared.test)
    ks = sorted(int(k.split("_k")[1]) for k in accuracy)
    paths.append(
        plots.bars(
            ks,
            [accuracy[f"test_accuracy_k{k}"] for k in ks],
            out_dir / "infonce_accuracy.png",
            xlabel="prediction step k (10 ms frames ahead)",
            ylabel="InfoNCE accuracy",
            title="test split",
        )
    )
    # utterance-mean context features by speaker
    by_speaker = utts[:: max(1, len(utts) // 400)]  # spread over every speaker of the list
    waves = read_waves(by_speaker, recipe.data.sample_rate, model.config.receptive_field)
    feats = np.stack([model.features(torch.from_numpy(pcm16_to_float(w))[None].to(device))[0].mean(0).cpu().numpy()
                      for w in waves])
    names = sorted({u.speaker for u in by_speaker})
    labels = np.array([names.index(u.speaker) for u in by_speaker])
    paths.append(plots.code_map(feats, labels, out_dir / "speaker_map.png", title="utterance-mean CPC context by speaker", names=names))
    paths.append(plots.projector(feats, out_dir / "utterance_context.npz", speaker=[u.speaker for u in by_speaker],
                                 text=[u.text for u in by_speaker]))
    return paths


@torch.no_grad()
def codes(model: nn.Module, recipe: Recipe, path: Path, kind: str = "c") -> np.ndarray:
    """Frame features ``(frames, dim)`` of one audio file: the context ``c`` or the encoder's ``z``."""
    from seqae.datasets.audio import read_audio

    model.eval()
    wave = read_audio(path, recipe.data.sample_rate, min_samples=model.config.receptive_field, max_seconds=ONE_PIECE_SECONDS)
    return model.features(wave[None].to(model_device(model)), kind)[0].cpu().numpy()


def search_items(model: nn.Module, recipe: Recipe, path: Path) -> tuple[list[str], np.ndarray]:
    """Search items of an audio file, folder or manifest: each utterance's mean context vector."""
    return utterance_items(path, lambda audio: codes(model, recipe, audio, "c").mean(0))


FAMILY = Family(
    "cpc", CPCConfig, AudioDataConfig, ProbeEvalConfig,
    prepare, lambda r: CPC(r.model), evaluate, figures, codes, code_kinds=CODE_KINDS["cpc"], eval_options=("manifest",),
    search_items=search_items,
)
