"""The pitch level (YIN, median over voiced frames; the median over a speaker's first utterances) of
every speaker in voice-conversion manifests, and for each espeak-ng variant spoken at two pitch settings
the distance between them in semitones. Speaker names are ``ACCENT_VARIANT_pPITCH_rRATE``.

    .venv/bin/python benchmarks/vc_voice_levels.py [--manifest data/vc/test.jsonl data/vc/unseen_test.jsonl] [--per-speaker 4]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from seqae.audio import MelConfig, pitch_contour, track_pitch
from seqae.datasets.audio import iter_audio, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", nargs="+", default=[str(ROOT / "data" / "vc" / "test.jsonl"), str(ROOT / "data" / "vc" / "unseen_test.jsonl")])
    parser.add_argument("--per-speaker", type=int, default=4)
    args = parser.parse_args()
    by_speaker = collections.defaultdict(list)
    for manifest in args.manifest:
        for utt in read_manifest(manifest):
            by_speaker[utt.speaker].append(utt)
    picked = [u for s in sorted(by_speaker) for u in by_speaker[s][: args.per_speaker]]
    config = MelConfig(sample_rate=16000)  # the voice-conversion recipes' rate; audio is resampled to it
    levels = collections.defaultdict(list)
    for utt, wave in zip(picked, iter_audio(picked, config.sample_rate, config.win_length, "pitch")):
        levels[utt.speaker].append(pitch_contour(*track_pitch(wave, config))[1])
    by_variant = collections.defaultdict(dict)
    for speaker, values in levels.items():
        values = [v for v in values if not np.isnan(v)]
        if values:  # whispered voices have no level
            by_variant[speaker.rsplit("_", 3)[1]][speaker] = float(np.median(values))
    gaps = []
    for variant, speakers in sorted(by_variant.items()):
        print(variant, "  ".join(f"{s}: {1200 * l:+.0f} cents re 100 Hz" for s, l in sorted(speakers.items())))
        if len(speakers) == 2:
            gaps.append(12 * abs(np.subtract(*speakers.values())))
    print(f"{len(gaps)} variants at two pitch settings: {np.median(gaps):.1f} semitones apart at the median "
          f"({min(gaps):.1f} to {max(gaps):.1f})")


if __name__ == "__main__":
    main()
