"""Deep InfoMax training throughput on this machine: images per second, and the share of the machine's
matrix throughput that the training step reaches (model FLOP/s, counted by
``torch.utils.flop_counter.FlopCounterMode`` over one forward and backward pass, over a large fp32 matmul's
FLOP/s measured in the same run, before and after). Models come from the recipes (default: the digits and
MNIST ones); inputs are random images of the recipe's shape, since throughput does not depend on them.

    .venv/bin/python benchmarks/infomax_throughput.py [--recipe recipes/infomax_mnist.toml ...] [--steps 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from machine import matmul_flops  # benchmarks/machine.py, beside this script
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"digits": (8, 8), "mnist": (28, 28)}


def build(recipe_path: str):
    from seqae.config import load_recipe
    from seqae.families.infomax.model import InfoMax

    recipe = load_recipe(recipe_path, check_paths=False)
    shape = SHAPES.get(recipe.data.source) or tuple(recipe.model.image_shape)
    if not shape:
        raise SystemExit(f"{recipe_path}: give model.image_shape for data.source = {recipe.data.source!r}")
    recipe.model.image_shape, recipe.model.input_dim = list(shape), shape[0] * shape[1]
    torch.manual_seed(0)
    return recipe, InfoMax(recipe.model)


def step_flops(model, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        model(batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(recipe_path: str, steps: int) -> dict:
    recipe, model = build(recipe_path)
    size = recipe.train.batch_size
    batch = {"x": torch.rand(size, recipe.model.input_dim)}
    flops = step_flops(model, batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model(batch).loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"recipe": Path(recipe_path).name, "image_shape": recipe.model.image_shape, "batch": size,
            "seconds_per_step": seconds, "images_per_s": size / seconds, "flops_per_step": flops,
            "model_flops_per_s": flops / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", help="default: recipes/infomax_digits.toml and infomax_mnist.toml")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per recipe (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    recipes = args.recipe or [str(ROOT / "recipes" / n) for n in ("infomax_digits.toml", "infomax_mnist.toml")]
    before = matmul_flops()
    rows = [measure(r, args.steps) for r in recipes]
    reference = max(before, matmul_flops())
    for row in rows:
        row.update(threads=torch.get_num_threads(), matmul_flops_per_s=reference,
                   share_of_matmul=row["model_flops_per_s"] / reference)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"large fp32 matmul: {reference / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    print("| recipe | images | batch | s/step | images/s | GFLOP/step | GFLOP/s | share of matmul |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        h, w = r["image_shape"]
        print(f"| {r['recipe']} | {h}x{w} | {r['batch']} | {r['seconds_per_step']:.3f} | {r['images_per_s']:.0f} | "
              f"{r['flops_per_step'] / 1e9:.2f} | {r['model_flops_per_s'] / 1e9:.1f} | {100 * r['share_of_matmul']:.0f} % |")


if __name__ == "__main__":
    main()
