"""Audio corpora of 1, 10 and 100 hours through CPC and voice conversion: the features are cached once
(seqae.datasets.audio_store) and stream from disk, so memory stays bounded and a second run starts at once.

The benchmark makes its own corpus: one hour of synthetic speech-like audio (harmonic tones whose pitch
glides, with noise bursts between them, in 8 "speakers", 30 s a file), then manifests that list those
files again and again until they reach each size (the cache is keyed by the manifest's lines, so every
copy is read, analysed and stored: a 100-hour manifest makes a 100-hour cache). For each family and size:

- a cold run (``seqae train RECIPE --set train.steps=1``, an empty cache): wall time (the cache's making
  included) and peak resident memory;
- a warm run (the same, the cache made): wall time from the process's start to its exit after one step
  (importing torch, reading the manifest, opening the cache, building the model, the step, the
  checkpoint): the time to the first step, at most; and peak resident memory;
- the cache's size on disk.

Peak memory is ``run.json``'s ``peak_rss_mb`` (getrusage of the training process). A size whose cold
run would take longer than ``--limit`` seconds (estimated from the sizes before it) is skipped and said so.

    .venv/bin/python benchmarks/audio_streaming.py [--hours 1,10,100] [--families cpc,vc] [--work /tmp/seqae-stream]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"cpc": "cpc_speech", "vc": "adain_vc_source_filter"}
RATE = 16000


def make_base(folder: Path, files: int = 120, seconds: float = 30.0) -> list[dict]:
    """``files`` wav files of synthetic speech-like audio, 8 speakers; their manifest rows."""
    rng = np.random.default_rng(0)
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        speaker = i % 8
        out = []
        while sum(len(p) for p in out) < seconds * RATE:
            n = int(rng.uniform(0.15, 0.6) * RATE)
            f0 = (110 + 20 * speaker) * 2 ** np.cumsum(rng.normal(0, 0.002, n))
            phase = 2 * np.pi * np.cumsum(f0) / RATE
            tone = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.hanning(n)
            out += [0.2 * tone, rng.normal(0, 0.02, int(rng.uniform(0.02, 0.1) * RATE))]
        path = folder / f"s{speaker}_{i:03d}.wav"
        sf.write(path, np.concatenate(out)[: int(seconds * RATE)].astype(np.float32), RATE, subtype="PCM_16")
        rows.append({"audio": str(path), "speaker": f"s{speaker}"})
    return rows


def manifest(rows: list[dict], hours: float, seconds_per_file: float, path: Path) -> Path:
    copies = int(round(hours * 3600 / seconds_per_file))
    with open(path, "w") as fh:
        for i in range(copies):
            fh.write(json.dumps(rows[i % len(rows)]) + "\n")
    return path


def train_once(recipe: str, train: Path, test: Path, cache: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    command = [str(ROOT / ".venv/bin/seqae"), "train", str(ROOT / "recipes" / f"{recipe}.toml"), "--out", str(out),
               "--set", f"data.source={train}", "--set", f"data.test_source={test}", "--set", f"data.cache_dir={cache}",
               "--set", f"eval.manifest={test}", "--set", "train.steps=1", "--set", "train.log_every=1"]
    if recipe == RECIPES["vc"]:
        command += ["--set", f"eval.unseen_manifest={test}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    session = json.loads((out / "run.json").read_text())["sessions"][-1]
    return {"wall_s": round(wall, 1), "peak_rss_mb": session["peak_rss_mb"]}


def folder_size(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", default="1,10,100")
    parser.add_argument("--families", default="cpc,vc")
    parser.add_argument("--work", default="/tmp/seqae-stream")
    parser.add_argument("--limit", type=float, default=1800.0, help="skip a size whose cold run would take longer (s)")
    parser.add_argument("--out", default="audio_streaming.json")
    args = parser.parse_args()
    work = Path(args.work)
    rows = make_base(work / "wavs")
    test = work / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    results = []
    for family in args.families.split(","):
        rate = None  # cold-run seconds per hour, from the last size
        for hours in [float(h) for h in args.hours.split(",")]:
            if rate is not None and rate * hours > args.limit:
                print(f"{family} {hours:g} h: skipped (a cold run would take about {rate * hours / 60:.0f} min)", flush=True)
                results.append({"family": family, "hours": hours, "skipped": f"cold run estimated {rate * hours:.0f} s"})
                continue
            train = manifest(rows, hours, 30.0, work / f"train_{hours:g}h.jsonl")
            cache = work / f"cache_{family}_{hours:g}h"
            if cache.exists():
                shutil.rmtree(cache)
            cold = train_once(RECIPES[family], train, test, cache, work / "run")
            warm = train_once(RECIPES[family], train, test, cache, work / "run")
            row = {"family": family, "hours": hours, "cold": cold, "warm": warm, "cache_gb": round(folder_size(cache), 2)}
            results.append(row)
            rate = cold["wall_s"] / hours
            print(f"{family} {hours:g} h: cold {cold['wall_s']:.0f} s, {cold['peak_rss_mb']:.0f} MB; warm (to the first step and "
                  f"exit) {warm['wall_s']:.1f} s, {warm['peak_rss_mb']:.0f} MB; cache {row['cache_gb']} GB", flush=True)
            shutil.rmtree(cache)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
