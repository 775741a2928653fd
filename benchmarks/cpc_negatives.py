"""CPC's two ways of scoring the negatives, timed in turns in one process on the recipe's own batches:
the whole Trainer step (data, forward, backward, AdamW) with the negative frames gathered (``blocks=False``)
against the default choice (``blocks=None``: scoring by blocks of utterance pairs when the draw uses few
pairs, see ``seqae.families.cpc.model.negative_scores_of``). The two give the same scores.

    .venv/bin/python benchmarks/cpc_negatives.py [--recipe recipes/cpc_speech.toml] [--rounds 4] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import seqae.families.cpc.model as cpc_model
from seqae.config import load_recipe
from seqae.families.base import prepare
from seqae.registry import get_family
from seqae.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "cpc_speech.toml"))
    parser.add_argument("--rounds", type=int, default=4, help="turns of (gathered, default), each --steps steps")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    family = get_family(recipe.family)
    prepared = prepare(family, recipe)
    model = family.build_model(recipe)
    original = cpc_model.negative_scores_of
    times: dict[str, list[float]] = {"gathered": [], "default": []}
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, prepared.train, recipe.train, run_dir, recipe.family, device="cpu")
        stage = trainer.stages[-1]
        trainer.switch_data(len(trainer.stages) - 1)
        optimizers, schedulers = trainer.make_optimizers(stage)
        model.train()
        trainer.train_step(stage, optimizers, schedulers, model, nullcontext())  # warm-up
        for _ in range(args.rounds):
            for name, blocks in (("gathered", False), ("default", None)):
                cpc_model.negative_scores_of = lambda p, z, i, b=None, chosen=blocks: original(p, z, i, chosen)
                for _ in range(args.steps):
                    start = time.perf_counter()
                    trainer.train_step(stage, optimizers, schedulers, model, nullcontext())
                    times[name].append(time.perf_counter() - start)
    cpc_model.negative_scores_of = original
    gathered, default = (statistics.median(times[k]) for k in ("gathered", "default"))
    print(f"{torch.get_num_threads()} threads; median s/step over {len(times['default'])} steps each")
    print(f"negatives gathered: {gathered:.3f} s/step; default (blocks when few pairs): {default:.3f} s/step; "
          f"{gathered / default:.2f}x")


if __name__ == "__main__":
    main()
