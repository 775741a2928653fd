"""A 1 GB text corpus: peak resident memory and time to the first training step, on a first run
(tokenising into the cache) and a second (the cache reused).

The corpus is built offline from the bundled Austen novels: their paragraphs, shuffled with a fixed seed
and split into documents with chapter headings, repeated until the target size. Each run is
``seqae train recipes/quick_thought_austen.toml`` in a child process, measured with ``os.wait4`` (peak
resident set size of that process) and by polling for its first line of ``metrics.jsonl``. The peer in
the same run: the resident memory of simply holding the corpus's text in memory (the size of the text
read with ``Path.read_text``, measured in a child process too).

    python benchmarks/text_corpus_scale.py [--size-mb 1024] [--work /tmp/seqae-scale] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def build_corpus(folder: Path, size_mb: int, seed: int = 0) -> int:
    """Documents of shuffled Austen paragraphs, a chapter heading every 40 paragraphs; returns bytes."""
    paragraphs = []
    for path in sorted((ROOT / "data" / "austen").glob("*.txt.gz")):
        text = gzip.open(path, "rt", encoding="utf-8").read()
        paragraphs += [p.strip() for p in text.split("\n\n") if len(p.split()) >= 8]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    target, written, doc = size_mb * 1024 * 1024, 0, 0
    while written < target:
        order = rng.permutation(len(paragraphs))
        parts = []
        for k, i in enumerate(order):
            if k % 40 == 0:
                parts.append(f"Chapter {k // 40 + 1}")
            parts.append(paragraphs[i])
        data = ("\n\n".join(parts) + "\n").encode("utf-8")
        (folder / f"doc{doc:04d}.txt").write_bytes(data)
        written += len(data)
        doc += 1
    return written


def run_measured(cmd: list[str], metrics: Path, env: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first_step = None
    while True:  # os.wait4 reaps the child itself, so its resource usage (peak RSS) is its own
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if first_step is None and metrics.exists() and metrics.stat().st_size > 0:
            first_step = time.perf_counter() - start
        time.sleep(0.2)
    total = time.perf_counter() - start
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return {"seconds_to_first_step": round(first_step, 1), "seconds_total": round(total, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def peak_rss_of(code: str) -> float:
    """Peak RSS (MB) of a child Python running ``code``."""
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--work", default="/tmp/seqae-scale")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and cache afterwards")
    args = parser.parse_args()
    work = Path(args.work)
    corpus, cache = work / "corpus", work / "cache"
    if not corpus.exists():
        t = time.perf_counter()
        size = build_corpus(corpus, args.size_mb)
        print(f"built a {size / 2**20:.0f} MB corpus in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    size = sum(p.stat().st_size for p in corpus.iterdir())
    env = dict(os.environ, SEQAE_CACHE=str(cache), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    results = {"corpus_mb": round(size / 2**20, 1), "files": len(list(corpus.iterdir()))}
    for name in ("first_run", "cache_reused"):
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "seqae.cli", "train", str(ROOT / "recipes" / "quick_thought_austen.toml"), "--out", str(out),
               "--set", f"data.corpus=\"{corpus}\"", "--set", f"train.steps={args.steps}", "--set", "train.log_every=1",
               "--set", f"train.checkpoint_every={args.steps}"]
        results[name] = run_measured(cmd, out / "metrics.jsonl", env)
        print(json.dumps({name: results[name]}), file=sys.stderr)
    meta = next(cache.glob("text-*/meta.json"))
    info = json.loads(meta.read_text())
    results["sentences"], results["tokens"] = info["sentences"], info["tokens"]
    results["peer_peak_rss_mb_text_in_memory"] = peak_rss_of(
        f"from pathlib import Path\ntexts = [p.read_text() for p in sorted(Path({str(corpus)!r}).iterdir())]")
    worst = max(results["first_run"]["peak_rss_mb"], results["cache_reused"]["peak_rss_mb"])
    results["peak_rss_vs_goal_2048mb"] = round(worst / 2048, 3)
    results["peak_rss_vs_text_in_memory"] = round(worst / results["peer_peak_rss_mb_text_in_memory"], 3)
    print(json.dumps(results, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
