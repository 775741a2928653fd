"""What each envelope smoothing of the source-filter decoder removes from real speech: the mean squared
difference (nats^2 per bin) between log-mel frames and their smoothed envelope, in three band ranges,
for the cepstral cut (the first K DCT coefficients along the mel axis) and for the pitch-adaptive
triangle of half-width f0 at each frame's YIN pitch (optionally floored at --min-width Hz).

    .venv/bin/python benchmarks/vc_envelope_smoothing.py [--manifest data/vc/test.jsonl] [--utterances 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchaudio

from seqae.audio import MelConfig, nearest_smoothers, pitch_adaptive_smoothers, smoother_grid
from seqae.datasets.audio import log_mels_and_pitch, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default=str(ROOT / "data" / "vc" / "test.jsonl"))
    parser.add_argument("--utterances", type=int, default=20, help="spread evenly over the manifest")
    parser.add_argument("--coefficients", type=int, nargs="+", default=[20, 30, 40])
    parser.add_argument("--min-width", type=float, nargs="+", default=[0.0, 300.0])
    args = parser.parse_args()
    mel = MelConfig()
    utterances = read_manifest(args.manifest)
    step = max(1, len(utterances) // args.utterances)
    mels, pitches = log_mels_and_pitch(utterances[::step][: args.utterances], mel)
    ranges = [(0, 20), (20, 40), (40, mel.n_mels)]

    def report(name, smooth):
        residual = torch.stack([(x - smooth(x, contour)).pow(2).mean(1) for x, (contour, _) in zip(mels, pitches)]).mean(0)
        print(f"{name:34s}" + "".join(f"  bands {a}-{b}: {float(residual[a:b].mean()):.3f}" for a, b in ranges))

    print(f"{len(mels)} utterances of {args.manifest}; mean squared difference between the log-mel and its envelope (nats^2 per bin)")
    for k in args.coefficients:
        dct = torchaudio.functional.create_dct(k, mel.n_mels, "ortho")
        projection = dct @ dct.T
        report(f"cepstral, {k} coefficients", lambda x, contour, p=projection: p @ x)
    grid = smoother_grid(40.0, 2500.0)
    for width in args.min_width:
        table = pitch_adaptive_smoothers(mel, grid, width)

        def adaptive(x, contour, table=table):
            return torch.einsum("tmn,nt->mt", nearest_smoothers(table, float(grid[0]), contour), x)

        report("pitch-adaptive" + (f", at least {width:.0f} Hz" if width else ""), adaptive)


if __name__ == "__main__":
    main()
