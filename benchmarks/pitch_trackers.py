"""Pitch tracking for voice conversion: seqae's YIN (seqae.audio.track_pitch) against torchaudio's
``detect_pitch_frequency`` (normalised cross-correlation over single frames, median-smoothed), on
harmonic tones of known pitch shaped by two formants (80 to 400 Hz, 1 s each, a little noise) and,
when the voice-conversion corpus is there, on its voices: each voice's level (the median over 6
utterances of the per-utterance median), and whether it orders the two pitch settings of one espeak-ng
variant (pitch 25 below pitch 50) as espeak-ng made them.

Accuracy is the gross pitch error rate: the share of frames (voiced frames, away from the ends) more
than 20 % from the true pitch. Speed is milliseconds per second of audio, one thread.

    .venv/bin/python benchmarks/pitch_trackers.py [--corpus data/vc/train.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio

from seqae.audio import MelConfig, pitch_contour, track_pitch

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000


def tone(f0: float, rng: np.random.Generator, seconds: float = 1.0) -> torch.Tensor:
    t = np.arange(int(RATE * seconds)) / RATE
    wave = np.zeros_like(t)
    formants = rng.uniform(300, 900), rng.uniform(1000, 2600)
    for h in range(1, int(7000 / f0)):
        f = h * f0
        gain = sum(np.exp(-((f - c) / 250.0) ** 2) for c in formants) + 0.02
        wave += gain * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    wave = 0.5 * wave / np.abs(wave).max() + 0.005 * rng.standard_normal(len(t))
    return torch.from_numpy(wave).float()


def torchaudio_hz(wave: torch.Tensor, frames: int) -> torch.Tensor:
    hz = torchaudio.functional.detect_pitch_frequency(wave, RATE, frame_time=0.01, win_length=3, freq_low=60, freq_high=500)
    return torch.nn.functional.pad(hz[None], (0, max(0, frames - hz.shape[0])), mode="replicate")[0, :frames]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(ROOT / "data" / "vc" / "train.jsonl"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    mel = MelConfig(sample_rate=RATE)
    rng = np.random.default_rng(0)
    pitches = np.geomspace(80, 400, 25)
    errors = {"yin": [], "torchaudio": []}
    seconds = {"yin": 0.0, "torchaudio": 0.0}
    for f0 in pitches:
        wave = tone(float(f0), rng)
        start = time.perf_counter()
        octaves, voiced = track_pitch(wave, mel)
        seconds["yin"] += time.perf_counter() - start
        frames = octaves.shape[0]
        start = time.perf_counter()
        ta = torchaudio_hz(wave, frames)
        seconds["torchaudio"] += time.perf_counter() - start
        inner = slice(5, frames - 5)
        yin_hz = torch.where(voiced, 100 * 2 ** octaves, torch.zeros_like(octaves))  # unvoiced counts as an error
        for name, hz in (("yin", yin_hz), ("torchaudio", ta)):
            errors[name].append(float(((hz[inner] / f0 - 1).abs() > 0.2).float().mean()))
    result = {
        "tones": len(pitches),
        "gross_error_yin": float(np.mean(errors["yin"])),
        "gross_error_torchaudio": float(np.mean(errors["torchaudio"])),
        "ms_per_audio_second_yin": 1000 * seconds["yin"] / len(pitches),
        "ms_per_audio_second_torchaudio": 1000 * seconds["torchaudio"] / len(pitches),
    }
    corpus = Path(args.corpus)
    if corpus.is_file():
        from seqae.datasets.audio import read_audio

        records = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
        by_speaker: dict[str, list[dict]] = {}
        for r in records:
            by_speaker.setdefault(r["speaker"], []).append(r)
        voice_level = {"yin": {}, "torchaudio": {}}  # each voice's median level over 6 utterances
        for speaker, utts in sorted(by_speaker.items()):
            levels = {"yin": [], "torchaudio": []}
            for r in utts[:6]:
                wave = read_audio(corpus.parent / r["audio"], RATE)
                contour, level, _ = pitch_contour(*track_pitch(wave, mel))
                if np.isnan(level):  # whisper
                    continue
                levels["yin"].append(level)
                levels["torchaudio"].append(float(np.log2(np.median(torchaudio_hz(wave, contour.shape[0]).numpy()) / 100)))
            for name in levels:
                if levels[name]:
                    voice_level[name][speaker] = float(np.median(levels[name]))
        # speaker names ACCENT_VARIANT_pPITCH_rRATE: pairs of one espeak-ng variant at a lower and a higher
        # pitch setting, which a tracker should order the same way
        pairs = [(a, b) for a in voice_level["yin"] for b in voice_level["yin"]
                 if a.split("_")[1] == b.split("_")[1] and int(a.split("_")[2][1:]) < int(b.split("_")[2][1:])]
        result["corpus_voices"] = len(voice_level["yin"])
        result["corpus_pitch_pairs"] = len(pairs)
        for name in voice_level:
            result[f"pairs_ordered_{name}"] = (
                float(np.mean([voice_level[name][a] < voice_level[name][b] for a, b in pairs])) if pairs else float("nan")
            )
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"harmonic tones, 80-400 Hz ({result['tones']}): gross pitch error YIN {result['gross_error_yin']:.1%}, "
        f"torchaudio {result['gross_error_torchaudio']:.1%}"
    )
    print(
        f"speed: YIN {result['ms_per_audio_second_yin']:.1f} ms per second of audio, torchaudio "
        f"{result['ms_per_audio_second_torchaudio']:.1f} ms "
        f"({result['ms_per_audio_second_torchaudio'] / result['ms_per_audio_second_yin']:.1f}x)"
    )
    if "corpus_voices" in result:
        print(f"{args.corpus}: {result['corpus_pitch_pairs']} pairs of one espeak-ng variant at two pitch settings "
              f"({result['corpus_voices']} voiced voices), the higher setting given the higher level: "
              f"YIN {result['pairs_ordered_yin']:.1%}, torchaudio {result['pairs_ordered_torchaudio']:.1%}")


if __name__ == "__main__":
    main()
