"""CPC training throughput on the CPU: seconds of audio per second, and the share of the machine's matrix
throughput that the training step reaches (model FLOP/s over a large fp32 matmul's FLOP/s, both measured
in this run). The model is built from a recipe (default: recipes/cpc_speech.toml); inputs are random
waveforms of the recipe's segment length, since throughput does not depend on what is said.

    .venv/bin/python benchmarks/cpc_throughput.py [--recipe recipes/cpc_speech.toml] [--steps 5] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from machine import matmul_flops  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


def forward_flops(config, batch: int, samples: int) -> float:
    """Multiply-adds x 2 of one forward pass: convolutions, GRU, predictors, InfoNCE scores."""
    flops, length, in_ch = 0.0, samples, 1
    for k, s in zip(config.kernels, config.strides):
        length = (length - k) // s + 1
        flops += 2 * batch * length * config.channels * in_ch * k
        in_ch = config.channels
    frames = length
    d, c = config.context_dim, config.channels
    flops += 2 * batch * frames * 3 * (c * d + d * d)  # GRU
    flops += 2 * batch * frames * config.prediction_steps * d * c  # W_k c_t
    flops += 2 * batch * frames * config.prediction_steps * (config.negatives + 1) * c  # scores
    return flops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "cpc_speech.toml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=0, help="default: the recipe's train.batch_size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from seqae.config import load_recipe
    from seqae.families.cpc.model import CPC

    recipe = load_recipe(args.recipe, check_paths=False)
    batch = args.batch or recipe.train.batch_size
    samples = recipe.data.segment_samples
    torch.manual_seed(0)
    model = CPC(recipe.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = {"wave": 0.1 * torch.randn(batch, samples), "speaker": torch.arange(batch) % 4}
    before = matmul_flops()
    for i in range(args.steps + 1):
        if i == 1:
            start = time.perf_counter()
        opt.zero_grad()
        model(data).loss.backward()
        opt.step()
    seconds = (time.perf_counter() - start) / args.steps
    after = matmul_flops()
    step_flops = 3 * forward_flops(recipe.model, batch, samples)  # backward ~ 2x forward
    result = {
        "threads": torch.get_num_threads(),
        "batch": batch,
        "segment_seconds": samples / recipe.data.sample_rate,
        "seconds_per_step": seconds,
        "audio_seconds_per_second": batch * samples / recipe.data.sample_rate / seconds,
        "model_flops_per_s": step_flops / seconds,
        "matmul_flops_per_s": max(before, after),
    }
    result["share_of_matmul"] = result["model_flops_per_s"] / result["matmul_flops_per_s"]
    if args.json:
        print(json.dumps(result))
        return
    print(f"CPC {recipe.model.channels} channels, batch {batch} x {result['segment_seconds']:.2f} s, {result['threads']} threads: "
          f"{seconds:.2f} s/step, {result['audio_seconds_per_second']:.1f} s of audio per second, "
          f"{result['model_flops_per_s'] / 1e9:.1f} GFLOP/s = {100 * result['share_of_matmul']:.0f} % of a "
          f"{result['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s matmul")


if __name__ == "__main__":
    main()
