"""int8 dynamic quantisation against float32 for trained runs: inference speed and the evaluation's figures.

For each RUN with its INPUT file (what ``seqae embed`` / ``seqae codes`` would read: sentences one per line,
an array file, an audio file or manifest), in one process: the time of the family's inference on INPUT
(the function behind ``seqae embed``/``codes``; float32 and int8 alternated, ``--repeats`` times each,
medians), the speed-up, how close the int8 outputs are (cosine per row, median and minimum), and
``seqae.evaluate(RUN, write=False)`` with and without ``quantize="int8"``: every figure the evaluation
reports, side by side (the run's eval.json is not touched).

    .venv/bin/python benchmarks/int8_inference.py RUN INPUT [RUN INPUT ...] [--repeats 5] [--out int8.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import seqae
from seqae.registry import get_family


def inference(model, path: Path) -> np.ndarray:
    family = get_family(model.recipe.family)
    with torch.inference_mode():
        return np.asarray(family.codes(model, model.recipe, path))


def timed(model, path: Path) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = inference(model, path)
    return time.perf_counter() - start, out


def compare(run: str, path: Path, repeats: int) -> dict:
    fp32, int8 = seqae.load(run), seqae.load(run, quantize="int8")
    inference(fp32, path), inference(int8, path)  # warm-up
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, model in (("fp32", fp32), ("int8", int8)):
            seconds, out = timed(model, path)
            times[name].append(seconds)
            outputs[name] = out.reshape(len(out), -1)
    a, b = outputs["fp32"], outputs["int8"]
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    row = {"run": run, "family": fp32.recipe.family, "input": str(path), "items": len(a),
           "fp32_s": statistics.median(times["fp32"]), "int8_s": statistics.median(times["int8"]),
           "cosine_median": float(np.median(cos)), "cosine_min": float(cos.min())}
    row["speedup"] = row["fp32_s"] / row["int8_s"]
    evaluations = {q or "fp32": seqae.evaluate(run, write=False, quantize=q) for q in (None, "int8")}
    row["evaluation"] = {key: [value, evaluations["int8"].get(key)] for key, value in evaluations["fp32"].items()
                         if isinstance(value, float) and isinstance(evaluations["int8"].get(key), float)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="RUN INPUT [RUN INPUT ...]")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="int8_inference.json")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give each RUN with its INPUT")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, quantized engine {torch.backends.quantized.engine}")
    rows = []
    for run, path in zip(args.pairs[::2], args.pairs[1::2]):
        row = compare(run, Path(path), args.repeats)
        rows.append(row)
        print(f"\n{run} ({row['family']}): {row['items']} items, fp32 {row['fp32_s']:.3f} s, int8 {row['int8_s']:.3f} s, "
              f"speed-up {row['speedup']:.2f}x, cosine to fp32 median {row['cosine_median']:.4f} min {row['cosine_min']:.4f}")
        print(f"  {'figure':<44} {'fp32':>10} {'int8':>10}")
        for key, (a, b) in row["evaluation"].items():
            print(f"  {key:<44} {a:>10.4f} {b:>10.4f}")
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
