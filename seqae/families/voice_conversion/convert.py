"""Voice conversion of files: ``seqae convert`` and :func:`convert_file`.

One path turns a source and a target into a converted log-mel (:func:`convert_mel`): the target's
speaker code (the mean over reference utterances, or a training speaker's learned embedding), the
source's pitch contour moved to the target's level and range (models trained with ``model.pitch``),
then the decoder. The figures use it too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqae.audio import PITCH_RANGES, LogMel, PitchTrack, pitch_contour, target_contour, track_pitch
from seqae.checkpoint import atomic_write
from seqae.config import ConfigError
from seqae.datasets.audio import ONE_PIECE_SECONDS, read_audio, write_wave
from seqae.datasets.base import DataError
from seqae.runtime import model_device

MIN_FRAMES = 10


@torch.no_grad()
def convert_mel(model: nn.Module, source: torch.Tensor, references: list[torch.Tensor] | None = None,
                speaker: str | None = None, pitch: list[PitchTrack] | None = None, pitch_range: str = "target",
                adapt_steps: int = 0, adapt_rate: float = 0.1) -> torch.Tensor:
    """A normalised source log-mel ``(n_mels, T)`` in the target's voice ``(n_mels, T)``.

    The target: normalised reference log-mels ``(n_mels, T_i)`` (AdaIN-VC) or a training speaker's name
    (adversarial). ``pitch`` (models trained with ``model.pitch``): the source's track first, then the
    references'. ``adapt_steps`` > 0 (AdaIN-VC): the speaker vector is fitted to the references
    (:meth:`~seqae.families.voice_conversion.model.VoiceConversion.adapted_code`) before decoding.
    """
    device = model_device(model)
    if model.config.method == "adversarial":
        code = model.target_code(speaker=speaker)
    elif adapt_steps > 0:
        contours = None if model.config.pitch == "none" else [t.contour for t in pitch[1:]]
        code = model.adapted_code([r.to(device) for r in references or []], contours, adapt_steps, adapt_rate)
    else:
        code = model.target_code([r.to(device) for r in references or []])
    contour = None
    if model.config.pitch != "none":
        contour = target_contour(pitch[0], pitch[1:], pitch_range)[None].to(device)
    return model.convert(source[None].to(device), code, contour)[0].cpu()


class AudioReader:
    """Log-mel (and, for models with ``model.pitch``, the pitch track) of audio files, checked to be
    usable: not silent, at least :data:`MIN_FRAMES` frames."""

    def __init__(self, model: nn.Module):
        self.data = model.recipe.data
        self.front_end = LogMel(self.data.mel())
        self.with_pitch = model.config.pitch != "none"
        self.pitch: list[PitchTrack] = []

    def __call__(self, path, role: str) -> torch.Tensor:
        data = self.data
        wave = read_audio(path, data.sample_rate, min_samples=data.win_length, max_seconds=ONE_PIECE_SECONDS)
        peak = float(wave.abs().max())
        if peak < 1e-4:
            raise DataError(f"{path}: silent (peak amplitude {peak:.1e}); no {role} to take from it")
        mel = self.front_end(wave)[0]
        if mel.shape[1] < MIN_FRAMES:
            ms = 1000 * data.hop_length / data.sample_rate
            raise DataError(f"{path}: {mel.shape[1] * ms:.0f} ms of audio; conversion needs at least {MIN_FRAMES * ms:.0f} ms")
        if self.with_pitch:
            self.pitch.append(pitch_contour(*track_pitch(wave, data.mel())))
        return mel


def check_target(model: nn.Module, run_dir, targets: list, target_speaker: str | None) -> None:
    """The target fits the method: utterances for AdaIN-VC, a training speaker's name for adversarial runs."""
    speakers = model.config.speakers
    if model.config.method != "adversarial":
        if not targets:
            raise ConfigError("give at least one --target utterance of the target speaker")
        return
    if target_speaker is None:
        raise ConfigError(
            f"{run_dir}: an adversarial run converts to its training speakers only: pass --target-speaker NAME "
            f"(one of: {', '.join(speakers[:8])}{', ...' if len(speakers) > 8 else ''})"
        )
    if target_speaker not in speakers:
        raise ConfigError(f"{run_dir}: --target-speaker {target_speaker!r} is not one of its {len(speakers)} training speakers")


def convert_file(model: nn.Module, source, targets: list | None = None, out="converted.wav", target_speaker: str | None = None,
                 vocoder: str = "griffin_lim", pitch_range: str | None = None, adapt_steps: int | None = None) -> dict[str, Path]:
    """The content of ``source`` in the voice of ``targets`` (one or more utterances of the target
    speaker; AdaIN-VC runs) or of the training speaker ``target_speaker`` (adversarial runs).
    ``pitch_range`` (models trained with ``model.pitch``): ``"target"`` scales the source's pitch
    contour to the target utterances' range as well as their level, ``"source"`` keeps the source's
    range; default: the run's ``eval.pitch_range``. ``adapt_steps`` (AdaIN-VC): steps that fit the target's
    speaker vector to the targets before converting (:func:`convert_mel`); default: the run's ``eval.adapt_steps``.

    Writes ``out`` (.wav, through the vocoder with the mel settings saved with the model), the converted
    log-mel ``(n_mels, frames)`` as ``out`` with ``.npy``, and a figure of source, target and converted
    spectrograms as ``.png``. Returns the three paths.
    """
    out, targets = Path(out), list(targets or [])
    if pitch_range is not None and pitch_range not in PITCH_RANGES:
        raise ConfigError(f"pitch_range {pitch_range!r}: expected one of {', '.join(PITCH_RANGES)}")
    if out.suffix.lower() != ".wav":
        raise ConfigError(f"{out}: the output must be a .wav file")
    check_target(model, getattr(model, "run_dir", "the run"), targets, target_speaker)
    settings = model.recipe.eval
    adapt_steps = settings.adapt_steps if adapt_steps is None else adapt_steps
    if adapt_steps < 0:
        raise ConfigError(f"adapt_steps = {adapt_steps}: give a number of steps >= 0")
    data = model.recipe.data
    read = AudioReader(model)
    source_mel = read(source, "speech")
    target_mels = [] if model.config.method == "adversarial" else [read(t, "voice") for t in targets]
    converted = data.denormalise(convert_mel(model, data.normalise(source_mel), [data.normalise(m) for m in target_mels],
                                             target_speaker, read.pitch, pitch_range or settings.pitch_range,
                                             adapt_steps, settings.adapt_rate))
    write_outputs(model, converted, out, vocoder)
    figure = conversion_figure(model, source, source_mel, targets, target_mels, target_speaker, converted, out)
    return {"wav": out, "mel": out.with_suffix(".npy"), "figure": figure}


def write_outputs(model: nn.Module, converted: torch.Tensor, out: Path, vocoder: str) -> None:
    """The converted log-mel as audio (``out``) and as an array (``out`` with ``.npy``), each written atomically."""
    from seqae.vocoder import get_vocoder

    data = model.recipe.data
    wave = get_vocoder(vocoder, data.mel(), n_iter=model.recipe.eval.griffin_lim_iters)(converted)
    write_wave(wave.numpy(), data.sample_rate, out)
    array = io.BytesIO()
    np.save(array, converted.numpy())
    atomic_write(out.with_suffix(".npy"), array.getvalue())


def conversion_figure(model, source, source_mel, targets, target_mels, target_speaker, converted, out: Path) -> Path:
    """Source, (first) target and converted spectrograms, beside the output."""
    from seqae import plots

    def name(path) -> str:
        return f"{Path(path).parent.name}/{Path(path).name}"

    titles = [f"source: {name(source)}"]
    if target_mels:
        titles.append(f"target: {name(targets[0])}" + (f" (+{len(targets) - 1} more)" if len(targets) > 1 else ""))
    titles.append(f"converted (to {target_speaker or name(targets[0])})")
    shown = [source_mel.numpy()] + ([target_mels[0].numpy()] if target_mels else []) + [converted.numpy()]
    data = model.recipe.data
    return plots.spectrograms(shown, titles, out.with_suffix(".png"), hop_seconds=data.hop_length / data.sample_rate)


def run(model: nn.Module, args: Any) -> int:
    paths = convert_file(model, args.source, args.target, args.output, args.target_speaker, pitch_range=args.pitch_range,
                         adapt_steps=args.adapt_steps)
    for path in paths.values():
        print(path)
    return 0
