"""Sentence-encoder throughput, all measured in one run on the bundled Austen corpus:

1. the machine's matrix throughput: FLOP/s of a large fp32 torch matmul (2048 x 2048 by default);
2. training: sentences per second of quick-thought and of skip-thought with encoders of the same size
   (one optimizer step = one batch of 128 sentences; for skip-thought, 128 middle sentences with their
   neighbours as targets), and their ratio;
3. embedding: ``model.encode`` on held-out sentences, tokenisation included, in sentences per second and
   as a share of the matmul's FLOP/s (model FLOPs counted from the layer sizes and the real token counts).

``--encoders recurrent,transformer,bag`` measures 2 and 3 for each encoder option (``[model] encoder``);
a bag of n-grams does additions only, so it has no FLOP share.

    .venv/bin/python benchmarks/sentence_throughput.py [--steps 20] [--hidden 512] [--embed-sentences 4000]
        [--encoders recurrent,transformer,bag] [--layers 2] [--heads 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from machine import matmul_flops  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


def gru_flops_per_token(input_dim: int, hidden: int) -> int:
    """Multiply-adds x 2 of one GRU step: three gates, input and recurrent matrices."""
    return 2 * 3 * (input_dim * hidden + hidden * hidden)


def build(family: str, args, encoder: str = "recurrent"):
    from seqae.config import load_recipe
    from seqae.families.base import prepare
    from seqae.registry import get_family

    readout = args.readout if encoder == "recurrent" or args.readout != "last" else "mean"
    recipe = load_recipe(ROOT / "recipes" / f"{family}_austen.toml", [f"model.hidden={args.hidden}", f"model.embed_dim={args.embed}",
                                                                        f"model.readout={readout}", f"model.encoder={encoder}",
                                                                        f"model.layers={args.layers}", f"model.heads={args.heads}"])
    if family == "skip_thought":
        recipe.model.tie_embeddings = args.tie
    fam = get_family(family)
    prepared = prepare(fam, recipe)
    torch.manual_seed(0)
    model = fam.build_model(recipe)
    model.attach_tokenizer(prepared.extra.tokenizer, recipe.data.max_tokens)
    return recipe, prepared, model


def training_rate(model, source, steps: int, batch_size: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = source.epoch_batches(0, 0, batch_size)[: steps + 2]
    model.train()
    for i, idx in enumerate(batches):
        if i == 2:  # two warm-up steps
            start = time.perf_counter()
        batch = source.collate(idx)
        opt.zero_grad()
        model(batch).loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - start)


def transformer_flops(lengths: list[int], width: int, hidden: int, layers: int) -> int:
    """Multiply-adds x 2 of a Transformer encoder over sentences of ``lengths`` tokens (plus [CLS]):
    the four attention projections, the scores and their weighted sum, and the feed-forward layer."""
    total = 0
    for n in lengths:
        n += 1
        total += layers * 2 * (4 * n * width * width + 2 * n * n * width + 2 * n * width * hidden)
    return total


def embedding_rate(model, sentences: list[str], encoders: int, args, encoder: str = "recurrent") -> dict:
    from seqae.datasets.text import encode_batch

    model.encode(sentences[:256])  # warm-up
    start = time.perf_counter()
    model.encode(sentences, batch_size=args.embed_batch, show_progress_bar=False)
    seconds = time.perf_counter() - start
    lengths = [max(1, len(ids)) for ids in encode_batch(model.tokenizer, sentences, model.max_tokens)]
    tokens = sum(lengths)
    directions = 2 if args.bidirectional else 1
    if encoder == "recurrent":
        flops = encoders * directions * tokens * gru_flops_per_token(args.embed, args.hidden)
    elif encoder == "transformer":
        flops = encoders * transformer_flops(lengths, args.embed, args.hidden, args.layers)
    else:
        flops = float("nan")  # a bag of n-grams adds rows; it multiplies nothing
    return {"sentences_per_s": len(sentences) / seconds, "tokens": tokens, "model_flops_per_s": flops / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--embed", type=int, default=256)
    parser.add_argument("--readout", default="last")
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--tie", action="store_true", help="skip-thought output embeddings tied (default: untied, as in the paper)")
    parser.add_argument("--embed-sentences", type=int, default=4000)
    parser.add_argument("--embed-batch", type=int, default=512)
    parser.add_argument("--matmul", type=int, default=2048)
    parser.add_argument("--encoders", default="recurrent", help="comma-separated: recurrent, transformer, bag")
    parser.add_argument("--layers", type=int, default=2, help="transformer layers")
    parser.add_argument("--heads", type=int, default=4, help="transformer heads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    result = {"threads": torch.get_num_threads(), "hidden": args.hidden, "embed_dim": args.embed}
    result["matmul_flops_per_s"] = matmul_flops(args.matmul)
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    for encoder in encoders:
        prefix = "" if encoder == "recurrent" else f"{encoder}_"
        _, qt_prepared, qt = build("quick_thought", args, encoder)
        _, st_prepared, st = build("skip_thought", args, encoder)
        qt_rate = training_rate(qt, qt_prepared.train, args.steps, args.batch)
        st_rate = training_rate(st, st_prepared.train, args.steps, args.batch)
        result[f"{prefix}quick_thought_train_sentences_per_s"] = qt_rate
        result[f"{prefix}skip_thought_train_sentences_per_s"] = st_rate
        result[f"{prefix}train_ratio_qt_over_st"] = qt_rate / st_rate
        corpus, test_idx = qt_prepared.extra.corpus, qt_prepared.extra.test_idx
        sentences = corpus.texts(np.sort(test_idx))
        sentences = (sentences * (args.embed_sentences // len(sentences) + 1))[: args.embed_sentences]
        qt.eval()
        embedding = embedding_rate(qt, sentences, encoders=2, args=args, encoder=encoder)
        result[f"{prefix}embed_sentences_per_s"] = embedding["sentences_per_s"]
        result[f"{prefix}embed_model_flops_per_s"] = embedding["model_flops_per_s"]
    # the matmul again at the end, so a machine that sped up or slowed down shows; the share is taken
    # against the faster of the two measurements (the conservative figure)
    result["matmul_flops_per_s_after"] = matmul_flops(args.matmul)
    best = max(result["matmul_flops_per_s"], result["matmul_flops_per_s_after"])
    for encoder in encoders:
        prefix = "" if encoder == "recurrent" else f"{encoder}_"
        result[f"{prefix}embed_share_of_matmul"] = result[f"{prefix}embed_model_flops_per_s"] / best
    if args.json:
        print(json.dumps(result))
        return
    print(f"torch threads: {result['threads']}; hidden {args.hidden}, word embeddings {args.embed}")
    print(f"matmul {args.matmul}x{args.matmul} fp32: {result['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
          f"(after: {result['matmul_flops_per_s_after'] / 1e9:.1f})")
    for encoder in encoders:
        prefix = "" if encoder == "recurrent" else f"{encoder}_"
        print(f"{encoder}: training quick-thought {result[prefix + 'quick_thought_train_sentences_per_s']:.1f} sentences/s, "
              f"skip-thought {result[prefix + 'skip_thought_train_sentences_per_s']:.1f} sentences/s "
              f"(ratio {result[prefix + 'train_ratio_qt_over_st']:.1f}x); encode {result[prefix + 'embed_sentences_per_s']:.0f} "
              f"sentences/s, {100 * result[prefix + 'embed_share_of_matmul']:.0f} % of the faster matmul's FLOP/s")

if __name__ == "__main__":
    main()
