"""How well a voice-conversion run's output follows the pitch it is given.

1. Response: convert held-out utterances with their contour moved by -0.5, 0 and +0.5 octave (same
   content, same speaker code) and report the mean absolute change of the converted log-mel, in nats
   per bin, against the unshifted one. Near zero: the decoder ignores the contour.
2. Level: the pitch level of each converted log-mel (the median, over the source's voiced frames, of the
   harmonic template that best matches each frame's fine structure: the log-mel minus its first 20 DCT
   coefficients along the mel axis) against the level it was asked for (the target's); the same
   estimator on the real target utterances against their YIN level calibrates it. Reported as the
   median absolute error in semitones (templates from 50 to 400 Hz) and the share of conversions more than 1 semitone off.

Runs trained without ``model.pitch`` have no contour to move.

    .venv/bin/python benchmarks/vc_pitch_response.py RUN_DIR [--manifest data/vc/test.jsonl] [--utterances 20] [--pitch-range target]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torchaudio

import seqae
from seqae.audio import PITCH_RANGES, LogMel, harmonic_templates, pitch_contour, target_contour, track_pitch
from seqae.datasets.audio import iter_audio, read_manifest

ROOT = Path(__file__).resolve().parents[1]


class LevelFromMel:
    """The pitch level of a log-mel, from the harmonic templates its fine structure matches best."""

    def __init__(self, mel, envelope: int = 20):
        self.grid = torch.arange(math.log2(0.5), math.log2(4.0), 1 / 96)  # 50 to 400 Hz: the voices' range, no higher
        dct = torchaudio.functional.create_dct(envelope, mel.n_mels, "ortho")  # (n_mels, envelope)
        self.rough = torch.eye(mel.n_mels) - dct @ dct.T
        fine = harmonic_templates(mel, self.grid) @ self.rough
        self.templates = fine / fine.norm(dim=1, keepdim=True)

    def __call__(self, log_mel: torch.Tensor, voiced: torch.Tensor) -> float:
        """``log_mel`` ``(n_mels, T)`` (natural log), ``voiced`` ``(T,)`` -> octaves re 100 Hz (NaN if none voiced)."""
        frames = (log_mel.T @ self.rough)[voiced]
        if len(frames) == 0:
            return float("nan")
        return float(self.grid[(frames @ self.templates.T).argmax(1)].median())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--manifest", default=str(ROOT / "data" / "vc" / "test.jsonl"))
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--pitch-range", choices=PITCH_RANGES, default="target",
                        help="scale the source's contour to the target's range (seqae's default) or keep the source's")
    args = parser.parse_args()
    model = seqae.load(args.run).eval()
    if model.config.pitch == "none":
        raise SystemExit(f"{args.run}: trained without model.pitch; its decoder takes no contour")
    data = model.recipe.data
    config = data.mel()
    utterances = read_manifest(args.manifest)
    picked = [utterances[i] for i in np.random.default_rng(0).permutation(len(utterances))[: 2 * args.utterances]]
    front_end, level_of = LogMel(config), LevelFromMel(config)
    mels, tracks = [], []
    with torch.no_grad():
        for wave in iter_audio(picked, config.sample_rate, config.win_length, "log-mel and pitch"):
            mels.append(front_end(wave)[0])
            tracks.append(track_pitch(wave, config))
    pitch = [pitch_contour(*track) for track in tracks]
    changes = {-0.5: [], 0.5: []}
    errors = {"converted": [], "real target": []}
    with torch.no_grad():
        for k in range(args.utterances):  # utterance k in the voice of utterance k + n
            source, target = k, k + args.utterances
            mel = data.normalise(mels[source])[None]
            code = model.target_code([data.normalise(mels[target])])
            contour = target_contour(pitch[source], [pitch[target]], args.pitch_range)[None]
            base = data.denormalise(model.convert(mel, code, contour))
            for shift in changes:
                moved = data.denormalise(model.convert(mel, code, contour + shift))
                changes[shift].append(float((moved - base).abs().mean()))
            if not (math.isnan(pitch[source][1]) or math.isnan(pitch[target][1])):
                errors["converted"].append(level_of(base[0], tracks[source][1]) - pitch[target][1])
                errors["real target"].append(level_of(mels[target], tracks[target][1]) - pitch[target][1])
    print(
        f"{args.run}: {args.utterances} conversions of {args.manifest}; mean absolute change of the converted log-mel "
        f"(nats per bin) with the contour moved by -0.5 octave: {np.mean(changes[-0.5]):.3f}, by +0.5 octave: {np.mean(changes[0.5]):.3f}"
    )
    for name, error in errors.items():
        semitones = 12 * np.abs(np.array(error))
        print(f"pitch level of the {name} log-mel against the target's (YIN) level, {len(semitones)} voiced pairs: median "
              f"absolute error {np.median(semitones):.2f} semitones, {100 * np.mean(semitones > 1):.0f} % more than 1 semitone off")


if __name__ == "__main__":
    main()
