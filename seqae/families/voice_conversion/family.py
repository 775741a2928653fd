"""The voice-conversion family's registry entry (AdaIN-VC and the adversarial variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.audio import ONE_PIECE_SECONDS, log_mels_and_pitch, write_wave
from seqae.datasets.base import DataError, utterances_fingerprint
from seqae.families.base import (
    Command,
    Family,
    Inferred,
    Prepared,
    Utterances,
    manifest_utterances,
    resolve_manifests,
    utterance_items,
)
from seqae.families.voice_conversion import command_line, convert
from seqae.families.voice_conversion.config import VoiceDataConfig
from seqae.families.voice_conversion.convert import convert_mel
from seqae.families.voice_conversion.evaluate import ConversionEvalConfig
from seqae.families.voice_conversion.model import VoiceConversion, VoiceConversionConfig
from seqae.registry import CODE_KINDS
from seqae.runtime import model_device


def prepare(recipe: Recipe) -> Prepared:
    """Log-mel segments with speakers and same-speaker references; infers ``model.input_dim``,
    ``model.speakers`` (the training speakers, sorted) and the log-mel statistics."""
    from seqae.datasets.audio import train_and_test_utterances
    from seqae.datasets.audio_store import mel_statistics, train_and_test_mels
    from seqae.families.voice_conversion.data import Augmentation, SpeakerSegments, copy_changes
    from seqae.families.voice_conversion.parallel import PARTNERS, align_partners, pick_partners

    config = recipe.data
    train_utts, test_utts = train_and_test_utterances(config)
    for u in train_utts + test_utts:
        if not u.speaker:
            raise DataError(f"{u.where}: no \"speaker\"; voice conversion trains on utterances labelled with their speaker")
    corpus_names = sorted({u.speaker for u in train_utts})
    if len(corpus_names) < 2:
        raise DataError(f"{config.source}: {len(corpus_names)} speaker(s); voice conversion needs at least 2 training speakers")
    if any("@" in name for name in corpus_names):
        raise DataError(f"{config.source}: a speaker name with \"@\"; that mark is kept for the speakers that data.speed_perturb "
                        "and data.pitch_shift make: rename the speaker")
    changes = copy_changes(config)
    # each training window's speaker: the corpus's, then each copy's (its utterances follow the corpus's)
    speakers = [u.speaker for u in train_utts] + [f"{u.speaker}@{label}" for label, _ in changes for u in train_utts]
    names = sorted(set(speakers))
    if recipe.model.speakers and recipe.model.speakers != names:
        raise ConfigError(f"{recipe.source}: model.speakers does not match the training data's speakers ({len(names)} found)")
    if recipe.model.input_dim not in (0, config.n_mels):
        raise ConfigError(f"{recipe.source}: model.input_dim = {recipe.model.input_dim} but data.n_mels = {config.n_mels}")
    if recipe.model.content_input == "envelope" and recipe.model.envelope_coefficients > config.n_mels:
        raise ConfigError(f"{recipe.source}: model.envelope_coefficients = {recipe.model.envelope_coefficients} is more than "
                          f"data.n_mels = {config.n_mels}")
    test_utts = [u for u in test_utts if u.speaker in names]  # the evaluation loss: training speakers only
    if not test_utts:
        raise DataError(f"{config.test_source or config.source}: no test utterance of a training speaker")
    # the copies (data.speed_perturb, data.pitch_shift) follow the corpus in the training store, each
    # utterance's waveform changed before its log-mel is taken
    items = train_utts + [u for _ in changes for u in train_utts]
    item_changes = [("", None)] * len(train_utts) + [change for change in changes for _ in train_utts]
    train_mels, test_mels, train_pitch, test_pitch = train_and_test_mels(config, items, test_utts, recipe.model.pitch != "none",
                                                                         item_changes)
    mean, std = mel_statistics(config, train_mels, len(train_utts))  # the corpus's own, without the copies
    index = {n: i for i, n in enumerate(names)}
    partners = None
    if recipe.model.content_consistency_weight > 0:
        chosen = pick_partners([u.text for u in items], speakers, PARTNERS, recipe.train.seed)
        if not any(chosen):
            raise DataError(f"{config.source}: model.content_consistency_weight needs a parallel corpus (one text said by "
                            "two training speakers) and no two speakers here say the same text: set it to 0")
        partners = align_partners(train_mels, chosen)
    train = SpeakerSegments(train_mels, [index[n] for n in speakers], config.segment_frames, mean, std,
                            f"{config.source} (train)", config.reference_windows, train_pitch, Augmentation.from_data(config),
                            partners)
    test = SpeakerSegments(test_mels, [index[u.speaker] for u in test_utts], config.segment_frames,
                           mean, std, f"{config.test_source or config.source} (test)", config.reference_windows, test_pitch)
    inferred = Inferred(input_dim=config.n_mels, speakers=names, mel_mean=mean, mel_std=std)
    return Prepared(train, test, Utterances(train_utts, test_utts), inferred,
                    fingerprint=utterances_fingerprint(train_utts + test_utts), data_name=str(config.source))


def evaluate(model: nn.Module, recipe: Recipe, prepared: Prepared | None, manifest=None, **options) -> dict[str, Any]:
    from seqae.families.voice_conversion.evaluate import evaluate_conversion

    paths = resolve_manifests(recipe, manifest)
    utterances = manifest_utterances(paths)
    data = recipe.data
    mels, pitch = log_mels_and_pitch(utterances, data.mel(), "log-mel (evaluation)", model.config.pitch != "none")
    model.eval()
    result: dict[str, Any] = {"manifest": ", ".join(map(str, paths)), "utterances": len(utterances), "method": model.config.method}
    result.update(evaluate_conversion(
        utterances, [m.numpy() for m in mels], data.normalise, data.denormalise,
        model, data.hop_length / data.sample_rate, recipe.eval, pitch,
    ))
    return result


@torch.no_grad()
def figures(model: nn.Module, recipe: Recipe, prepared: Prepared | None, out_dir: Path) -> list[Path]:
    """A conversion (source, target reference, converted) and, for AdaIN-VC, a map of the speaker codes
    of the evaluation manifests (seen and unseen speakers)."""
    from seqae import plots

    model.eval()
    data = recipe.data
    device = model_device(model)
    utterances = manifest_utterances(resolve_manifests(recipe, None))
    speakers = sorted({u.speaker for u in utterances})
    picked = []
    for name in speakers:  # up to 6 utterances of each speaker, for the map
        picked += [u for u in utterances if u.speaker == name][:6]
    mels, pitch = log_mels_and_pitch(picked, data.mel(), "log-mel", model.config.pitch != "none")
    mels = [data.normalise(m) for m in mels]
    source = mels[0]
    target_index = next(i for i, u in enumerate(picked)
                        if u.speaker != picked[0].speaker and (model.config.method == "adain" or u.speaker in model.config.speakers))
    references = [mels[target_index]] if model.config.method == "adain" else None
    tracks = None if pitch is None else [pitch[0], pitch[target_index]]
    converted = convert_mel(model, source, references, picked[target_index].speaker, tracks, recipe.eval.pitch_range,
                            recipe.eval.adapt_steps, recipe.eval.adapt_rate)
    hop = data.hop_length / data.sample_rate
    paths = [plots.spectrograms(
        [data.denormalise(m).numpy() for m in (source, mels[target_index], converted)],
        [f"source: {picked[0].speaker}", f"target reference: {picked[target_index].speaker}", "converted"],
        out_dir / "conversion.png", hop_seconds=hop)]
    if model.config.method == "adain":
        codes = np.stack([model.speaker_code(m[None].to(device))[0].cpu().numpy() for m in mels])
        labels = np.array([speakers.index(u.speaker) for u in picked])
        unseen = {n for n in speakers if n not in model.config.speakers}
        paths.append(plots.speaker_map(codes, labels, speakers, unseen, out_dir / "speaker_map.png",
                                       title="speaker codes of held-out sentences"))
        paths.append(plots.projector(codes, out_dir / "speaker_codes.npz", speaker=[u.speaker for u in picked],
                                     unseen=[u.speaker in unseen for u in picked], text=[u.text for u in picked]))
    return paths + conversion_clips(model, recipe, picked, mels, pitch, out_dir)


def conversion_clips(model: nn.Module, recipe: Recipe, picked: list, mels: list[torch.Tensor], pitch: list | None,
                     out_dir: Path, pairs: int = 3) -> list[Path]:
    """Up to ``pairs`` conversions to listen to, each between a different pair of speakers (the next speaker
    in name order that the run can convert to): ``clip_N_source.wav`` and ``clip_N_target.wav`` (the files as
    read, at the run's sample rate) and ``clip_N_converted.wav`` (through the Griffin-Lim vocoder with
    ``eval.griffin_lim_iters`` iterations), which ``seqae report`` shows as a table of players."""
    from seqae.datasets.audio import read_audio

    data, speakers = recipe.data, list(dict.fromkeys(u.speaker for u in picked))
    targets_allowed = [s for s in speakers if model.config.method == "adain" or s in model.config.speakers]
    paths = []
    for n, name in enumerate(speakers[:pairs]):
        order = speakers[n + 1:] + speakers[:n]
        target_name = next((s for s in order if s in targets_allowed), None)
        if target_name is None:
            break
        i = next(k for k, u in enumerate(picked) if u.speaker == name)
        j = next(k for k, u in enumerate(picked) if u.speaker == target_name)
        references = [mels[j]] if model.config.method == "adain" else None
        tracks = None if pitch is None else [pitch[i], pitch[j]]
        converted = convert_mel(model, mels[i], references, target_name, tracks, recipe.eval.pitch_range,
                                recipe.eval.adapt_steps, recipe.eval.adapt_rate)
        stem = out_dir / f"clip_{n + 1}"
        for role, k in (("source", i), ("target", j)):
            wave = read_audio(picked[k].audio, data.sample_rate, min_samples=data.win_length, max_seconds=ONE_PIECE_SECONDS)
            paths.append(write_wave(wave.reshape(-1).numpy(), data.sample_rate, Path(f"{stem}_{role}.wav")))
        out = Path(f"{stem}_converted.wav")
        convert.write_outputs(model, data.denormalise(converted), out, "griffin_lim")
        out.with_suffix(".npy").unlink(missing_ok=True)
        paths.append(out)
    return paths


@torch.no_grad()
def codes(model: nn.Module, recipe: Recipe, path: Path, kind: str = "content") -> np.ndarray:
    """Codes of one audio file: the content code ``(frames, content_dim)`` or the speaker code ``(speaker_dim,)``."""
    from seqae.audio import LogMel
    from seqae.datasets.audio import read_audio

    if kind not in ("content", "speaker"):
        raise ConfigError(f"--kind {kind}: a voice_conversion run has the codes 'content' and 'speaker'")
    model.eval()
    data = recipe.data
    wave = read_audio(path, data.sample_rate, min_samples=data.win_length, max_seconds=ONE_PIECE_SECONDS)
    mel = data.normalise(LogMel(data.mel())(wave)[0])
    x = mel[None].to(model_device(model))
    if kind == "speaker":
        return model.speaker_code(x)[0].cpu().numpy()
    return model.content(x)[0].t().cpu().numpy()


def search_items(model: nn.Module, recipe: Recipe, path: Path) -> tuple[list[str], np.ndarray]:
    """Search by voice: each utterance's speaker code (an audio file, folder or manifest)."""
    if model.config.method != "adain":
        raise ConfigError(f"{path}: a '{model.config.method}' voice-conversion run has no speaker encoder to search by voice")
    return utterance_items(path, lambda audio: codes(model, recipe, audio, "speaker"))


FAMILY = Family(
    "voice_conversion", VoiceConversionConfig, VoiceDataConfig, ConversionEvalConfig,
    prepare, lambda r: VoiceConversion(r.model, r.data.mel()), evaluate, figures, codes,
    eval_needs_training_data=False, code_kinds=CODE_KINDS["voice_conversion"], eval_options=("manifest", "records"),
    search_items=search_items,
    commands=(Command(command_line.NAME, command_line.HELP, command_line.add_arguments, convert.run),),
)
