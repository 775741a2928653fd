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
    .venv/bin/python benchmarks/step_studies.py layers vqvae_digits
        each weighted layer (convolution, linear, GRU) of a recipe's model alone, on the input one Trainer
        step gave it: forward and forward + backward FLOP/s as a share of the fp32 matmul's (same process)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext

import torch
from machine import matmul_flops  # benchmarks/machine.py, beside this script
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

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


WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear, nn.GRU, nn.GRUCell)


def layers(name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        step, model = trainer_steps(name, folder)
        seen: dict = {}

        def keep(module, inputs, output, key):
            if key not in seen and inputs and torch.is_tensor(inputs[0]) and inputs[0].is_floating_point():
                seen[key] = (module, inputs[0].detach().clone())

        hooks = [m.register_forward_hook(lambda m, i, o, key=k: keep(m, i, o, key))
                 for k, m in model.named_modules() if isinstance(m, WEIGHTED)]
        step(model)
        for hook in hooks:
            hook.remove()
    peak = matmul_flops()
    print(f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'layer':38} {'kind':16} {'input':22} {'fwd GFLOP':>9} {'fwd ms':>8} {'fwd share':>9} {'fwd+bwd ms':>10} {'fwd+bwd share':>13}")
    for key, (module, x) in seen.items():
        x.requires_grad_()

        def forward(m=module, inputs=x):
            out = m(inputs)
            return out[0] if isinstance(out, tuple) else out

        counts = []
        for backward in (False, True):
            with FlopCounterMode(display=False) as counter:
                out = forward()
                if backward:
                    out.sum().backward()
            counts.append(counter.get_total_flops())
        times = [median_ms(forward, 20), median_ms(lambda: forward().sum().backward(), 20)]
        shares = [f / (t / 1e3) / peak for f, t in zip(counts, times)]
        print(f"{key:38} {type(module).__name__:16} {str(tuple(x.shape)):22} {counts[0] / 1e9:9.3f} {times[0]:8.2f} "
              f"{shares[0]:9.0%} {times[1]:10.2f} {shares[1]:13.0%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="study", required=True)
    sub.add_parser("optimizer").add_argument("recipes", nargs="+")
    p = sub.add_parser("profile")
    p.add_argument("recipe")
    p.add_argument("--steps", type=int, default=3)
    sub.add_parser("compile").add_argument("recipe")
    sub.add_parser("negatives")
    sub.add_parser("layers").add_argument("recipe")
    args = parser.parse_args()
    if args.study == "optimizer":
        optimizer(args.recipes)
    elif args.study == "profile":
        profile(args.recipe, args.steps)
    elif args.study == "compile":
        compiled(args.recipe)
    elif args.study == "layers":
        layers(args.recipe)
    else:
        negatives()


if __name__ == "__main__":
    main()
