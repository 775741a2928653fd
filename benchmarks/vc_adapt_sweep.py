"""Conversion to one group of targets with the speaker vector as the encoder gives it and fitted to the
reference (``eval.adapt_steps``), for several step counts and learning rates, on the same conversions and
the same judges: the evaluation of ``seqae eval`` (the judge and the phone probe fitted once on the first
half of the sentences of every manifest), its plan of one-shot conversions, then only the conversions
whose target is in a ``--targets`` manifest (e.g. the held-out variants; repeatable, each a group of its
own), each converted once per setting. Prints one row per group and setting: the share labelled as the
target (95 % Wilson interval), as the source, the phone ratio on these conversions, the seconds a
conversion took.

    .venv/bin/python benchmarks/vc_adapt_sweep.py RUN --manifest a.jsonl [--manifest b.jsonl ...] \\
        --targets held_out_test.jsonl [--targets unseen_test.jsonl] [--settings 0,20:0.1,50:0.1] [--conversions 300]
"""

import argparse
import json
import time

import torch

import seqae
from seqae.datasets.audio import log_mels_and_pitch
from seqae.families.base import manifest_utterances
from seqae.families.voice_conversion.evaluate import ConversionEvaluation, label_shares, phone_ratio


def settings(text: str) -> list[tuple[int, float]]:
    out = []
    for item in text.split(","):
        steps, _, rate = item.partition(":")
        out.append((int(steps), float(rate or 0.1)))
    return out


def convert_and_judge(run: ConversionEvaluation, plan: list) -> dict:
    """Each planned conversion with the run's current settings, scored as ``seqae eval`` scores it
    (:meth:`ConversionEvaluation.score`: the judge's label and the phone probe; no MCD)."""
    started = time.perf_counter()
    records = [run.score(conv, parallel={}) for conv in plan]
    figures = {"phone_ratio": phone_ratio(records).get("phone_accuracy_ratio", float("nan")),
               "seconds": (time.perf_counter() - started) / max(len(plan), 1),
               "hits": [r["labelled_as"] == r["target_speaker"] for r in records]}
    label_shares(figures, "all", records)  # all_conversions, all_labelled_target (with its interval), all_labelled_source
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--manifest", action="append", required=True)
    parser.add_argument("--targets", action="append", required=True, help="a manifest whose speakers are the targets converted to")
    parser.add_argument("--settings", default="0,20:0.1,50:0.1", help="STEPS[:RATE],...")
    parser.add_argument("--conversions", type=int, default=300)
    parser.add_argument("--out", help="JSON of every setting's figures and labels")
    args = parser.parse_args()
    model = seqae.load(args.run).eval()
    recipe = model.recipe
    data = recipe.data
    utterances = manifest_utterances(args.manifest)
    groups = {path: {u.speaker for u in manifest_utterances([path])} for path in args.targets}
    mels, pitch = log_mels_and_pitch(utterances, data.mel(), "log-mel", model.config.pitch != "none")
    config = recipe.eval
    config.conversions = args.conversions
    run = ConversionEvaluation(utterances, [m.numpy() for m in mels], data.normalise, data.denormalise, model,
                               data.hop_length / data.sample_rate, config, pitch)
    run.fit_judges({})
    planned = run.plan({})
    print(f"{args.run}: {len(set(u.speaker for u in utterances))} speakers")
    print("| targets | steps | rate | as target | as source | phone ratio | s a conversion |\n|---|---|---|---|---|---|---|")
    rows = []
    for path, targets in groups.items():
        plan = [c for c in planned if c.target_speaker in targets]
        for steps, rate in settings(args.settings):
            config.adapt_steps, config.adapt_rate = steps, rate
            figures = convert_and_judge(run, plan)
            figures.update(targets=path, steps=steps, rate=rate)
            rows.append(figures)
            print(f"| {path} (n {len(plan)}) | {steps} | {rate:g} | {figures['all_labelled_target']:.3f} "
                  f"[{figures['all_labelled_target_ci_low']:.2f}, {figures['all_labelled_target_ci_high']:.2f}] | "
                  f"{figures['all_labelled_source']:.3f} | {figures['phone_ratio']:.3f} | {figures['seconds']:.2f} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"run": args.run, "manifests": args.manifest, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    with torch.no_grad():
        main()
