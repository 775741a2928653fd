"""The pitch level (YIN, median over voiced frames; the median over a speaker's first utterances) of
every speaker in voice-conversion manifests, and for each espeak-ng variant spoken at two pitch settings
the distance between them in semitones; and the spread of pitch within an utterance (the PitchTrack
spread, interquartile range / 1.349 of the voiced frames; each speaker's median) across speakers.
Speaker names are ``ACCENT_VARIANT_pPITCH_rRATE``.

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
    parser.add_argument(
        "--manifest", nargs="+", default=[str(ROOT / "data" / "vc" / "test.jsonl"), str(ROOT / "data" / "vc" / "unseen_test.jsonl")]
    )
    parser.add_argument("--per-speaker", type=int, default=4)
    args = parser.parse_args()
    by_speaker = collections.defaultdict(list)
    for manifest in args.manifest:
        for utt in read_manifest(manifest):
            by_speaker[utt.speaker].append(utt)
    picked = [u for s in sorted(by_speaker) for u in by_speaker[s][: args.per_speaker]]
    config = MelConfig(sample_rate=16000)  # the voice-conversion recipes' rate; audio is resampled to it
    levels, spreads = collections.defaultdict(list), collections.defaultdict(list)
    for utt, wave in zip(picked, iter_audio(picked, config.sample_rate, config.win_length, "pitch")):
        track = pitch_contour(*track_pitch(wave, config))
        levels[utt.speaker].append(track.level)
        spreads[utt.speaker].append(track.spread)
    by_variant = collections.defaultdict(dict)
    for speaker, values in levels.items():
        values = [v for v in values if not np.isnan(v)]
        if values:  # whispered voices have no level
            by_variant[speaker.rsplit("_", 3)[1]][speaker] = float(np.median(values))
    gaps = []
    for variant, speakers in sorted(by_variant.items()):
        print(variant, "  ".join(f"{s}: {1200 * level:+.0f} cents re 100 Hz" for s, level in sorted(speakers.items())))
        if len(speakers) == 2:
            gaps.append(12 * abs(np.subtract(*speakers.values())))
    print(f"{len(gaps)} variants at two pitch settings: {np.median(gaps):.1f} semitones apart at the median "
          f"({min(gaps):.1f} to {max(gaps):.1f})")
    spread = np.array([12 * np.median(v) for v in ([x for x in s if not np.isnan(x)] for s in spreads.values()) if v])
    print(f"pitch spread within an utterance over {len(spread)} voiced speakers: median {np.median(spread):.1f} semitones, "
          f"narrowest {spread.min():.1f}, widest tenth above {np.percentile(spread, 90):.1f}, widest {spread.max():.1f}")


if __name__ == "__main__":
    main()
