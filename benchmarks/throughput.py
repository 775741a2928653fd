"""Training throughput of every family's main recipe on this machine, in one run: for each recipe's model
at its batch size, on its own data, the median time of a whole Trainer step (``Trainer.train_step``: the
next batch, forward, backward, clipping and the optimizer for every phase), of the data alone (picking and
collating the batch) and of the compute alone (the same step on batches already made, as many as the timed
steps, so batches of every length count in both); items per second; model FLOPs per step counted by
``torch.utils.flop_counter.FlopCounterMode`` (forward and backward of every phase); FLOP/s as a share of a
large fp32 matmul's measured in the same process; the share of a step spent outside the compute (Trainer
and data overhead), without and with ``train.prefetch`` (the next batch made in a background thread); peak
resident memory; and the forward pass alone in evaluation mode under
``torch.inference_mode`` (items/s and its share of the matmul). Each recipe runs in its own process (so the
peak is its own); a recipe whose data is not there (the speech corpora that `seqae data speech` builds) is
reported as skipped.

    .venv/bin/python benchmarks/throughput.py [--recipes ae_digits,summarizer_austen] [--steps 10] [--out throughput.json]
        [--set train.batch_size=1024]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from machine import in_own_process, matmul_flops  # benchmarks/machine.py, beside this script
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["ae_digits", "vae_digits", "vqvae_digits", "gumbel_vae_digits", "infomax_digits", "quick_thought_austen",
           "skip_thought_austen", "summarizer_austen", "lm_austen", "cpc_speech", "adain_vc_source_filter"]


def compute_step(trainer, stage, optimizers, micro, module) -> None:
    """``Trainer.train_step`` without the data: every phase's forward, backward, clipping and update."""
    for phase in stage.phases:
        if hasattr(trainer.model, "set_phase"):
            trainer.model.set_phase(stage.name, phase.name)
        opt = optimizers[phase.name]
        opt.zero_grad(set_to_none=True)
        trainer.forward_backward(module, micro, "", nullcontext())
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], trainer.config.grad_clip or float("inf"))
        opt.step()


def median_time(fn, steps: int, warmup: int = 2, at_least_s: float = 2.0) -> float:
    """The median of ``steps`` timed calls after ``warmup``; more calls while they add up to less than
    ``at_least_s`` (a 3 ms step timed 10 times is mostly noise)."""
    times = []
    i = 0
    while i < steps + warmup or sum(times) < at_least_s:
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        i += 1
    return statistics.median(times)


def forward_only(model, batch: dict, steps: int) -> tuple[float, float]:
    """``(seconds, FLOPs)`` of the model's forward pass on a training batch in evaluation mode under
    ``torch.inference_mode`` (the last phase's; no backward, no optimizer): the network's inference cost,
    not a command's (no file reading, tokenising or decoding)."""
    model.eval()
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(batch)
        seconds = median_time(lambda: model(batch), steps)
    model.train()
    return seconds, counter.get_total_flops()


def measure(name: str, steps: int, overrides: list[str] | None = None) -> dict:
    """One recipe's figures (run in a process of its own)."""
    from seqae.config import ConfigError, load_recipe
    from seqae.families.base import prepare
    from seqae.prefetch import Prefetch
    from seqae.registry import get_family
    from seqae.runtime import seed_everything
    from seqae.trainer import Trainer

    try:
        recipe = load_recipe(ROOT / "recipes" / f"{name}.toml", overrides or None)
    except ConfigError as err:
        return {"recipe": name, "skipped": str(err)}
    seed_everything(recipe.train.seed)
    family = get_family(recipe.family)
    prepared = prepare(family, recipe)
    model = family.build_model(recipe)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, prepared.train, recipe.train, run_dir, recipe.family, device="cpu")
        index = len(trainer.stages) - 1  # the main stage
        stage = trainer.stages[index]
        trainer.switch_data(index)
        optimizers, schedulers = trainer.make_optimizers(stage)
        model.train()
        nothing = nullcontext()
        micro = trainer.next_micro_batches()
        with FlopCounterMode(display=False) as counter:
            for phase in stage.phases:
                if hasattr(model, "set_phase"):
                    model.set_phase(stage.name, phase.name)
                model(micro[0]).loss.backward()
        flops = counter.get_total_flops()
        reference = matmul_flops()
        full = median_time(lambda: trainer.train_step(stage, optimizers, schedulers, model, nothing), steps)
        trainer.prefetch = Prefetch(True)  # the same steps with the next batch made in the background (train.prefetch)
        ahead = median_time(lambda: trainer.train_step(stage, optimizers, schedulers, model, nothing), steps)
        trainer.prefetch.close()
        trainer.prefetch = Prefetch(False)
        made = [trainer.next_micro_batches() for _ in range(steps + 2)]  # batches of every length
        batches = iter(made * 1000)
        data = median_time(trainer.next_micro_batches, steps)
        compute = median_time(lambda: compute_step(trainer, stage, optimizers, next(batches), model), steps)
        forward = forward_only(model, micro[0], steps)
        reference = max(reference, matmul_flops())
    batch = recipe.train.batch_size
    return {"recipe": name, "family": recipe.family, "phases": [p.name for p in stage.phases], "batch": batch,
            "step_s": full, "step_prefetch_s": ahead, "overhead_share_prefetch": max(0.0, 1 - compute / ahead),
            "data_s": data, "compute_s": compute, "items_per_s": batch / full, "flops_per_step": flops,
            "model_flops_per_s": flops / full, "matmul_flops_per_s": reference, "share_of_matmul": flops / full / reference,
            "compute_share_of_matmul": flops / compute / reference, "overhead_share": max(0.0, 1 - compute / full),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads(),
            "forward_s": forward[0], "forward_items_per_s": batch / forward[0],
            "forward_share_of_matmul": forward[1] / forward[0] / reference}


def table(rows: list[dict]) -> str:
    lines = ["| recipe | batch | step (s) | items/s | GFLOP/step | share of matmul | overhead | step with prefetch (s) | "
             "overhead with prefetch | data (s) | peak RSS (MB) | forward items/s | forward share |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['recipe']} | skipped: {r['skipped'][:90]} |||||||||| ")
            continue
        lines.append(f"| {r['recipe']} | {r['batch']} | {r['step_s']:.3f} | {r['items_per_s']:.0f} | {r['flops_per_step'] / 1e9:.2f} | "
                     f"{100 * r['share_of_matmul']:.0f} % | {100 * r['overhead_share']:.1f} % | {r['step_prefetch_s']:.3f} | "
                     f"{100 * r['overhead_share_prefetch']:.1f} % | {r['data_s']:.4f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['forward_items_per_s']:.0f} | {100 * r['forward_share_of_matmul']:.0f} % |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names (recipes/NAME.toml)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after two warm-up steps)")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for every recipe, e.g. --set train.batch_size=1024 (repeatable)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # measure one recipe in this process (JSON on stdout)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.overrides)))
        return
    sets = [f"--set={o}" for o in args.overrides]
    rows = [in_own_process(__file__, "recipe", name, ["--steps", str(args.steps), *sets]) for name in args.recipes.split(",")]
    print(f"{torch.get_num_threads()} threads, fp32, CPU")
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
