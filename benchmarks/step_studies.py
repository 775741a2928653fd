"""The small studies behind benchmarks/RESULTS.md's "Every family through the Trainer", one subcommand each:

    .venv/bin/python benchmarks/step_studies.py optimizer ae_digits lm_austen skip_thought_austen
        the AdamW step alone, per-tensor loop / foreach / fused, on each recipe's parameters (random gradients)
    .venv/bin/python benchmarks/step_studies.py profile cpc_speech [--steps 3]
        torch.profiler's table (self CPU time) of Trainer steps of a recipe
    .venv/bin/python benchmarks/step_studies.py compile vae_digits
        Trainer steps of the eager model against torch.compile's (the first compiled step includes compiling)
    .venv/bin/python benchmarks/step_studies.py negatives
        CPC's negative scores, forward and backward: gathered against scored by blocks, as the batch's
        speakers get fewer (B 16, T 128, K 12, C 256, N 128)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext

import torch

from seqae.config import load_recipe
from seqae.families.base import prepare
from seqae.registry import get_family
from seqae.trainer import Trainer


def built(name: str):
    recipe = load_recipe(f"recipes/{name}.toml")
    family = get_family(recipe.family)
    prepared = prepare(family, recipe)
    return recipe, prepared, family.build_model(recipe)


def median_ms(fn, n: int, skip: int = 3) -> float:
    times = []
    for _ in range(n + skip):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times[skip:]) * 1e3


def optimizer(names: list[str]) -> None:
    torch.manual_seed(0)
    for name in names:
        params = [p for p in built(name)[2].parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        for options in ({"foreach": False}, {"foreach": True}, {"fused": True}):
            opt = torch.optim.AdamW(params, lr=1e-3, **options)
            print(f"{name}: {len(params)} tensors, {options}: {median_ms(opt.step, 25):.3f} ms")


def trainer_steps(name: str, folder: str):
    recipe, prepared, model = built(name)
    trainer = Trainer(model, prepared.train, recipe.train, folder, recipe.family, device="cpu")
    trainer.switch_data(len(trainer.stages) - 1)
    stage = trainer.stages[-1]
    optimizers, schedulers = trainer.make_optimizers(stage)
    model.train()
    return lambda module: trainer.train_step(stage, optimizers, schedulers, module, nullcontext()), model


def profile(name: str, steps: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        step, model = trainer_steps(name, folder)
        for _ in range(3):
            step(model)
        with torch.profiler.profile() as prof:
            for _ in range(steps):
                step(model)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def compiled(name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        step, model = trainer_steps(name, folder)
        print(f"eager: {median_ms(lambda: step(model), 50):.2f} ms/step")
        fast = torch.compile(model)
        start = time.perf_counter()
        step(fast)
        print(f"first compiled step: {time.perf_counter() - start:.1f} s; compiled: {median_ms(lambda: step(fast), 50):.2f} ms/step")


def negatives() -> None:
    from seqae.families.cpc.model import negative_scores_of

    torch.manual_seed(0)
    b, t, k, c, n = 16, 128, 12, 256, 128
    for speakers in (16, 8, 4, 2, 1):
        predictions, z = torch.randn(b, t, k, c, requires_grad=True), torch.randn(b, t, c, requires_grad=True)
        speaker = torch.arange(b) % speakers
        same = speaker[:, None] == speaker[None, :]
        indices = torch.multinomial(same.float(), t * n, replacement=True).view(b, t, n) * t + torch.randint(0, t, (b, t, n))
        seconds = []
        for blocks in (False, True):
            def run(p=predictions, frames=z, i=indices, chosen=blocks):
                negative_scores_of(p, frames, i, chosen).sum().backward()

            seconds.append(median_ms(run, 3, 1) / 1e3)
        pairs = int(same.sum())
        print(f"{speakers} speakers: {pairs} pairs, ratio {pairs * t / (b * n):.0f}: gathered {seconds[0]:.3f} s, "
              f"blocks {seconds[1]:.3f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="study", required=True)
    sub.add_parser("optimizer").add_argument("recipes", nargs="+")
    p = sub.add_parser("profile")
    p.add_argument("recipe")
    p.add_argument("--steps", type=int, default=3)
    sub.add_parser("compile").add_argument("recipe")
    sub.add_parser("negatives")
    args = parser.parse_args()
    if args.study == "optimizer":
        optimizer(args.recipes)
    elif args.study == "profile":
        profile(args.recipe, args.steps)
    elif args.study == "compile":
        compiled(args.recipe)
    else:
        negatives()


if __name__ == "__main__":
    main()
