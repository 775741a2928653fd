"""Summariser training throughput on this machine: texts per second, and the share of the machine's
matrix throughput that a training step reaches (model FLOPs of the discriminator phase and the main phase,
forward and backward, counted by ``torch.utils.flop_counter.FlopCounterMode``, over a large fp32 matmul's
FLOP/s measured in the same run). The model comes from a recipe (default: recipes/summarizer_austen.toml)
with its vocabulary size; inputs are random token ids of ``--length`` tokens (the Austen texts are 20 words
or more, about 30 tokens) with readable sentences of 12, since throughput does not depend on the words.

    .venv/bin/python benchmarks/summarizer_throughput.py [--recipe recipes/summarizer_austen.toml] [--steps 10] [--length 32]
        [--through-words reinforce]
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


def batch(size: int, length: int, vocab: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"tokens": torch.randint(4, vocab, (size, length), generator=g), "lengths": torch.full((size,), length),
            "readable": torch.randint(4, vocab, (size, 12), generator=g), "readable_lengths": torch.full((size,), 12)}


def one_step(model, data, phases, optimizers) -> None:
    for phase in phases:
        model.set_phase("main", phase)
        optimizers[phase].zero_grad(set_to_none=True)
        model(data).loss.backward()
        optimizers[phase].step()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "summarizer_austen.toml"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--length", type=int, default=32, help="tokens per text")
    parser.add_argument("--through-words", choices=("gumbel", "reinforce"), help="default: the recipe's")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from seqae.config import load_recipe
    from seqae.families.summarizer.model import Summarizer

    recipe = load_recipe(args.recipe, check_paths=False)
    recipe.model.vocab_size = recipe.data.vocab_size
    recipe.model.through_words = args.through_words or recipe.model.through_words
    torch.manual_seed(0)
    model = Summarizer(recipe.model)
    stage = [s for s in model.training_stages(recipe.train.steps) if s.name == "main"][0]
    phases = [p.name for p in stage.phases]
    optimizers = {p.name: torch.optim.AdamW(p.parameters, lr=1e-4) for p in stage.phases}
    data = batch(recipe.train.batch_size, args.length, recipe.model.vocab_size)
    with FlopCounterMode(display=False) as counter:
        for phase in phases:
            model.set_phase("main", phase)
            model(data).loss.backward()
    flops = counter.get_total_flops()
    before = matmul_flops()
    times = []
    for i in range(args.steps + 2):  # two warm-up steps
        start = time.perf_counter()
        one_step(model, data, phases, optimizers)
        if i >= 2:
            times.append(time.perf_counter() - start)
    reference = max(before, matmul_flops())
    seconds = statistics.median(times)
    result = {"recipe": Path(args.recipe).name, "through_words": recipe.model.through_words, "phases": phases,
              "batch": recipe.train.batch_size, "tokens_per_text": args.length, "seconds_per_step": seconds,
              "texts_per_s": recipe.train.batch_size / seconds, "flops_per_step": flops, "model_flops_per_s": flops / seconds,
              "matmul_flops_per_s": reference, "share_of_matmul": flops / seconds / reference, "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['recipe']} ({result['through_words']}; phases {', '.join(phases)}), batch {result['batch']} x "
          f"{args.length} tokens, {result['threads']} threads: {seconds:.3f} s/step, {result['texts_per_s']:.1f} texts/s, "
          f"{flops / 1e9:.2f} GFLOP/step, {result['model_flops_per_s'] / 1e9:.1f} GFLOP/s = "
          f"{100 * result['share_of_matmul']:.0f} % of a {reference / 1e9:.1f} GFLOP/s matmul")


if __name__ == "__main__":
    main()
