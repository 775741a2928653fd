"""The voice-conversion evaluation's phone probe on real speech, by voice: is a group of voices (e.g. the held-out
variants) harder for the probe itself? The judges of ``seqae eval`` (fitted on the first half of the sentences of
every manifest), then the probe's share of right frames on each real utterance of the second half, summed per
group of speakers (seen, unseen and held-out, from the corpus's corpus.json) and per held-out voice.

    .venv/bin/python benchmarks/vc_probe_by_voice.py RUN CORPUS_DIR --manifest a.jsonl [--manifest b.jsonl ...]
"""

import argparse
import json

import torch

import seqae
from seqae.datasets.audio import log_mels_and_pitch
from seqae.families.base import manifest_utterances
from seqae.families.voice_conversion.evaluate import ConversionEvaluation, phone_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("corpus", help="a folder of `seqae data speech --held-out-variants`, with its corpus.json")
    parser.add_argument("--manifest", action="append", required=True)
    args = parser.parse_args()
    info = json.load(open(f"{args.corpus}/corpus.json"))
    held, unseen = set(info["held_out_speakers"]), set(info["unseen_speakers"])
    model = seqae.load(args.run).eval()
    data = model.recipe.data
    utterances = manifest_utterances(args.manifest)
    mels, pitch = log_mels_and_pitch(utterances, data.mel(), "log-mel", model.config.pitch != "none")
    run = ConversionEvaluation(utterances, [m.numpy() for m in mels], data.normalise, data.denormalise, model,
                               data.hop_length / data.sample_rate, model.recipe.eval, pitch)
    run.fit_judges({})
    right: dict[str, list[float]] = {}
    for i in run.convert_idx.tolist():
        utt = utterances[i]
        x, y = phone_frames(run.normalised[i], utt, run.hop_s)
        group = "held-out variants" if utt.speaker in held else "unseen voices" if utt.speaker in unseen else "seen voices"
        for key in [group] + ([f"  {utt.speaker}"] if utt.speaker in held else []):
            counts = right.setdefault(key, [0.0, 0])
            counts[0] += run.phone_probe.accuracy(x, y) * len(y) if len(y) else 0.0
            counts[1] += len(y)
    for key, (hits, frames) in right.items():
        print(f"{key}: the probe right on {hits / max(frames, 1):.3f} of {frames} real frames")


if __name__ == "__main__":
    with torch.no_grad():
        main()
