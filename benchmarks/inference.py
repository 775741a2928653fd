"""Inference through the commands' own functions, every family that has one, in one run: the function
behind ``seqae embed`` (sentence encoders), ``seqae codes`` (the digit models and CPC), ``seqae convert``
(voice conversion: ``convert_mel``, reading both files, their log-mels and pitch tracks and the network; and
``convert_file``, the whole command, which adds the Griffin-Lim vocoder, the WAV and the figure) and ``seqae
summarize``, on a fixed input each: file reading, tokenising and decoding included, model loading not. For
each: the median time of ``--repeats`` calls after one warm-up, items per second, the FLOPs of one call
counted by ``torch.utils.flop_counter.FlopCounterMode``, and FLOP/s as a share of a large fp32 matmul's
measured in the same process.

The weights do not change the cost: each recipe is trained for one step (``train.steps=1``) into a
temporary run directory, which is then loaded as a user's run is (``seqae.load``). Each case runs in its own
process; a case whose data is not there (the speech corpus that ``seqae data speech`` builds) is skipped.

    .venv/bin/python benchmarks/inference.py [--cases embed:quick_thought_austen,...] [--repeats 3] [--out inference.json]
        [--profile]   (also torch.profiler's table of one more call of each case, by self CPU time)
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from machine import in_own_process, matmul_flops  # benchmarks/machine.py, beside this script
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "data" / "speech"
VC_DATA = [f"data.source={SPEECH}/train.jsonl", f"data.test_source={SPEECH}/test.jsonl", f"eval.manifest={SPEECH}/test.jsonl",
           f"eval.unseen_manifest={SPEECH}/unseen_test.jsonl"]
# command, recipe, recipe overrides for the one-step run
CASES = {
    "embed:quick_thought_austen": [], "embed:skip_thought_austen": [],
    "codes:ae_digits": [], "codes:vqvae_digits": [], "codes:gumbel_vae_digits": [],
    "codes:cpc_speech": [],
    "convert_mel:adain_vc_source_filter": VC_DATA, "convert_file:adain_vc_source_filter": VC_DATA,
    "summarize:summarizer_austen": ["model.pretrain_copy_steps=0"],
}
SENTENCES, TEXTS, CONVERSIONS, UTTERANCES = 2000, 1000, 8, 100


def sentences(min_words: int, count: int) -> list[str]:
    """The first ``count`` sentences of ``min_words`` words or more of the bundled Austen novels."""
    out = []
    for path in sorted((ROOT / "data" / "austen").glob("*.txt.gz")):
        text = re.sub(r"\s+", " ", gzip.decompress(path.read_bytes()).decode("utf-8"))
        out += [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= min_words]
    return out[:count]


def workload(command: str, recipe, folder: Path):
    """``(items, call)``: the command's function on this case's input, as a user's command would run it."""
    from seqae.registry import get_family

    family = get_family(recipe.family)
    if command in ("embed", "summarize"):
        lines = sentences(1 if command == "embed" else 20, SENTENCES if command == "embed" else TEXTS)
        path = folder / "input.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if command == "summarize":
            from seqae.families.summarizer.texts import summarize

            return len(lines), lambda model: summarize(model, path.read_text(encoding="utf-8").splitlines(), where=str(path))
        return len(lines), lambda model: family.codes(model, model.recipe, path)
    if command == "codes" and recipe.family == "cpc":  # `seqae codes RUN -i FILE.wav` on each of 100 utterances
        files = [SPEECH / json.loads(r)["audio"] for r in (SPEECH / "test.jsonl").read_text().splitlines()[:UTTERANCES]]
        return len(files), lambda model: [family.codes(model, model.recipe, f) for f in files]
    if command == "codes":
        from sklearn.datasets import load_digits

        path = folder / "digits.npy"
        np.save(path, load_digits().data.astype(np.float32))
        return 1797, lambda model: family.codes(model, model.recipe, path)
    rows = [json.loads(r) for r in (SPEECH / "unseen_test.jsonl").read_text().splitlines()]
    pairs = [(SPEECH / rows[i]["audio"], SPEECH / rows[-1 - i]["audio"]) for i in range(CONVERSIONS)]
    from seqae.families.voice_conversion.convert import AudioReader, convert_file, convert_mel

    if command == "convert_file":
        return len(pairs), lambda model: [convert_file(model, s, [t], folder / f"converted{i}.wav") for i, (s, t) in enumerate(pairs)]

    def network(model):
        data = model.recipe.data
        for source, target in pairs:
            read = AudioReader(model)  # one per conversion, as convert_file's (it keeps the pitch tracks it read)
            source_mel, target_mel = read(source, "speech"), read(target, "voice")
            convert_mel(model, data.normalise(source_mel), [data.normalise(target_mel)], None, read.pitch,
                        model.recipe.eval.pitch_range)
    return len(pairs), network


def measure(case: str, repeats: int, profile: bool = False) -> dict:
    """One case's figures (in a process of its own)."""
    import seqae
    from seqae.config import ConfigError

    command, name = case.split(":")
    overrides = ["train.steps=1", "train.log_every=1", *CASES[case]]
    if name in ("cpc_speech", "adain_vc_source_filter") and not (SPEECH / "test.jsonl").exists():
        return {"case": case, "skipped": f"no {SPEECH}/test.jsonl: build it with `seqae data speech`"}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        try:
            run = seqae.train(ROOT / "recipes" / f"{name}.toml", out=folder / "run", overrides=overrides)
        except ConfigError as err:
            return {"case": case, "skipped": str(err)}
        model = seqae.load(run)
        items, call = workload(command, model.recipe, folder)
        with torch.inference_mode() if command in ("embed", "codes", "summarize") else nullcontext():  # as each command runs
            call(model)  # warm-up
            with FlopCounterMode(display=False) as counter:
                call(model)
            times = []
            while len(times) < repeats or sum(times) < 2.0:  # a 10 ms call timed three times is mostly noise
                start = time.perf_counter()
                call(model)
                times.append(time.perf_counter() - start)
            if profile:
                with torch.profiler.profile() as prof:
                    call(model)
        reference = matmul_flops()
    seconds, flops = statistics.median(times), counter.get_total_flops()
    return {"case": case, "command": command, "recipe": name, "items": items, "seconds": seconds, "items_per_s": items / seconds,
            "flops": flops, "matmul_flops_per_s": reference, "share_of_matmul": flops / seconds / reference,
            "threads": torch.get_num_threads(),
            **({"profile": prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)} if profile else {})}


def table(rows: list[dict]) -> str:
    lines = ["| command | recipe | items | time (s) | items/s | GFLOP | share of matmul |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | skipped: {r['skipped'][:90]} ||||||")
            continue
        lines.append(f"| {r['command']} | {r['recipe']} | {r['items']} | {r['seconds']:.2f} | {r['items_per_s']:.1f} | "
                     f"{r['flops'] / 1e9:.2f} | {100 * r['share_of_matmul']:.0f} % |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated COMMAND:RECIPE cases")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (after one warm-up)")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's table of one call of each case")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # measure one case in this process (JSON on stdout)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeats, args.profile)))
        return
    cases = args.cases.split(",")
    if unknown := [c for c in cases if c not in CASES]:
        parser.error(f"--cases: unknown case {unknown[0]!r}; the cases: {', '.join(CASES)}")
    options = ["--repeats", str(args.repeats)] + (["--profile"] if args.profile else [])
    rows = [in_own_process(__file__, "case", case, options) for case in cases]
    print(f"{torch.get_num_threads()} threads, fp32, CPU")
    print(table(rows))
    for row in rows:
        if "profile" in row:
            print(f"\n{row['case']}: one call, torch.profiler (self CPU time)\n{row.pop('profile')}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
