"""How much a voice-conversion run's output follows the pitch contour it is given: convert held-out
utterances with their contour moved by -0.5, 0 and +0.5 octave (same content, same speaker code) and
report the mean absolute change of the converted log-mel, in nats per bin, against the unshifted one.
Near zero: the decoder ignores the contour. Runs trained without ``model.pitch`` have no contour to move.

    .venv/bin/python benchmarks/vc_pitch_response.py RUN_DIR [--manifest data/vc/test.jsonl] [--utterances 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import seqae
from seqae.audio import move_pitch
from seqae.datasets.audio import log_mels_and_pitch, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--manifest", default=str(ROOT / "data" / "vc" / "test.jsonl"))
    parser.add_argument("--utterances", type=int, default=20)
    args = parser.parse_args()
    model = seqae.load(args.run).eval()
    if model.config.pitch == "none":
        raise SystemExit(f"{args.run}: trained without model.pitch; its decoder takes no contour")
    data = model.recipe.data
    utterances = read_manifest(args.manifest)
    picked = [utterances[i] for i in np.random.default_rng(0).permutation(len(utterances))[: 2 * args.utterances]]
    mels, pitch = log_mels_and_pitch(picked, data.mel())
    changes = {-0.5: [], 0.5: []}
    with torch.no_grad():
        for k in range(args.utterances):  # utterance k in the voice of utterance k + n
            source, target = k, k + args.utterances
            mel = data.normalise(mels[source])[None]
            code = model.target_code([data.normalise(mels[target])])
            contour = move_pitch(pitch[source][0], pitch[source][1], [pitch[target][1]])[None]
            base = data.denormalise(model.convert(mel, code, contour))
            for shift in changes:
                moved = data.denormalise(model.convert(mel, code, contour + shift))
                changes[shift].append(float((moved - base).abs().mean()))
    print(f"{args.run}: {args.utterances} conversions of {args.manifest}; mean absolute change of the converted log-mel "
          f"(nats per bin) with the contour moved by -0.5 octave: {np.mean(changes[-0.5]):.3f}, by +0.5 octave: {np.mean(changes[0.5]):.3f}")


if __name__ == "__main__":
    main()
