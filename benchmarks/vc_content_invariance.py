"""What a voice-conversion run's content encoder sees of a change to its input: the frame-wise cosine
similarity between the content codes of a manifest's utterances and of changed copies of them. The changes:
whisper's tilt alone (an equaliser rising 7 dB of energy per octave about 1 kHz), noise's fine structure alone
(:func:`seqae.datasets.augment.whisper` at slope 0), both (``data.whisper``'s rendering), and, for scale, the
codes of another utterance frame by frame. 1 means the change is invisible to the encoder.

    .venv/bin/python benchmarks/vc_content_invariance.py RUN MANIFEST [--utterances 20]
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import seqae
from seqae.audio import mel_bands
from seqae.datasets.audio import log_mels_and_pitch
from seqae.datasets.augment import equalise, noise_bank, whisper
from seqae.families.base import manifest_utterances

SLOPE_DB = 7.0  # the middle of data.whisper's 4-10 dB per octave


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("manifest")
    parser.add_argument("--utterances", type=int, default=20, help="every other utterance of the manifest, up to this many")
    args = parser.parse_args()
    model = seqae.load(args.run).eval()
    data = model.recipe.data
    mel = data.mel()
    utterances = manifest_utterances([args.manifest])[: 2 * args.utterances : 2]
    mels = [torch.as_tensor(m).float() for m in log_mels_and_pitch(utterances, mel, "log-mel", False)[0]]
    bank = noise_bank(mel)
    centres, _ = mel_bands(mel)
    tilt = SLOPE_DB * torch.log2(centres.clamp_min(20.0) / 1000.0).float()

    def code(m: torch.Tensor) -> torch.Tensor:
        return model.content(data.normalise(m)[None])[0]

    def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
        n = min(a.shape[1], b.shape[1])
        return float(F.cosine_similarity(a[:, :n], b[:, :n], dim=0).mean())

    rows: dict[str, list[float]] = {"tilt alone": [], "noise fine structure alone": [], "whisper (both)": [], "another utterance": []}
    for i, m in enumerate(mels):
        noise, clean = bank[0][:, : m.shape[1]], code(m)
        rows["tilt alone"].append(cosine(clean, code(equalise(m, tilt, mel.power))))
        rows["noise fine structure alone"].append(cosine(clean, code(whisper(m, noise, 0.0, mel))))
        rows["whisper (both)"].append(cosine(clean, code(whisper(m, noise, SLOPE_DB, mel))))
        rows["another utterance"].append(cosine(clean, code(mels[(i + 1) % len(mels)])))
    print(f"{args.run}, {len(mels)} utterances of {args.manifest}: mean frame-wise cosine of the content codes")
    for name, values in rows.items():
        print(f"  {name}: {np.mean(values):.3f}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
