"""What makes sentence-encoder training transfer: train one recipe under several settings, evaluate
each run on the built-in held-out tasks (and on a user's task files or SentEval folder, when given),
and record trained minus untrained for every figure, with the passes over the training sentences.
``--reevaluate`` evaluates the finished runs again (after the evaluation changed); ``--table`` prints
the study as a markdown table (each figure: trained; gain over untrained and over the bag of words,
each ± two paired standard errors).

Every variant is a list of ``--set`` overrides; each run is appended to ``--out/study.jsonl`` as soon as
it is evaluated, so a study can be stopped and continued (finished variants are skipped), and
``--out/study.png`` plots each built-in figure's gain over the untrained encoder against passes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sentence_study.py --out runs/study \
        --variant "steps400:train.steps=400" --variant "steps1600:train.steps=1600" \
        [--recipe recipes/quick_thought_austen.toml] [--task my_task.tsv] [--senteval DIR --tasks MR,STS12]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("book_accuracy", "author_accuracy", "next_recall_at_1", "next_mrr", "order_accuracy")


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, sets = text.partition(":")
    return name, [s for s in sets.split(",") if s.strip()]


def passes(run_dir: Path, result: dict) -> float:
    """Training sentences seen / training sentences in the corpus (one quick-thought batch = batch_size)."""
    from seqae.config import load_recipe

    recipe = load_recipe(run_dir / "config.toml", check_paths=False)
    train_sentences = result.get("train_sentences")
    return recipe.train.steps * recipe.train.batch_size / train_sentences if train_sentences else float("nan")


def evaluate_record(name: str, overrides: list[str], run_dir: Path, seconds: float, args) -> dict:
    import seqae
    from seqae.families.base import prepare
    from seqae.registry import get_family

    result = seqae.evaluate(run_dir, tasks=args.task or None, senteval=args.senteval, senteval_tasks=args.tasks)
    model = seqae.load(run_dir)
    prepared = prepare(get_family(model.recipe.family), model.recipe)
    record = {"variant": name, "overrides": overrides, "train_seconds": round(seconds, 1),
              "train_sentences": len(prepared.train), **{k: v for k, v in result.items() if not isinstance(v, str)}}
    record["passes"] = passes(run_dir, record)
    for figure in FIGURES:
        if f"{figure}_trained" in record:
            record[f"{figure}_gain"] = record[f"{figure}_trained"] - record[f"{figure}_untrained"]
    return record


def run_variant(name: str, overrides: list[str], args) -> dict:
    import seqae

    run_dir = Path(args.out) / name
    start = time.time()
    seqae.train(args.recipe, out=run_dir, overrides=overrides, resume=(run_dir / "run.json").exists())
    return evaluate_record(name, overrides, run_dir, time.time() - start, args)


def markdown_table(records: list[dict]) -> str:
    """One row per run: each built-in figure as trained (gain over untrained ± 2 paired standard errors;
    gain over the bag of words ± 2 SE)."""
    figures = [f for f in FIGURES if any(f"{f}_trained" in r for r in records)]
    lines = ["| run | training sentences | passes | minutes | " + " | ".join(figures) + " |",
             "|---|---|---|---|" + "---|" * len(figures)]
    for r in records:
        cells = []
        for f in figures:
            if f"{f}_trained" not in r:
                cells.append("")
                continue
            parts = [f"{r[f + '_trained']:.3f}"]
            for other in ("untrained", "bow_trained"):
                gain, se = r.get(f"{f}_gain_over_{other}"), r.get(f"{f}_gain_over_{other}_se")
                if gain is not None:
                    parts.append(f"{gain:+.3f}±{2 * se:.3f}")
            cells.append(" / ".join(parts))
        lines.append(f"| {r['variant']} | {r['train_sentences']:,} | {r['passes']:.1f} | {r['train_seconds'] / 60:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    """Each built-in figure's gain over the untrained encoder (with two standard errors) against passes
    over the training sentences (top row) and against the number of training sentences (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = [f for f in FIGURES if any(f"{f}_gain" in r for r in records)]
    fig, axes = plt.subplots(2, len(figures), figsize=(3.6 * len(figures), 6.4), squeeze=False)
    for column, figure in enumerate(figures):
        for row, (x_key, label) in enumerate((("passes", "passes over the training sentences"),
                                              ("train_sentences", "training sentences"))):
            ax = axes[row][column]
            for r in records:
                if f"{figure}_gain" not in r:
                    continue
                se = r.get(f"{figure}_gain_over_untrained_se")  # paired, on the same items
                if se is None:  # runs evaluated before paired errors: the unpaired error
                    se = (r.get(f"{figure}_se_trained", 0.0) ** 2 + r.get(f"{figure}_se_untrained", 0.0) ** 2) ** 0.5
                ax.errorbar(r[x_key], r[f"{figure}_gain"], yerr=2 * se, fmt="o", capsize=3)
                ax.annotate(r["variant"], (r[x_key], r[f"{figure}_gain"]), fontsize=6)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set(xlabel=label, ylabel="trained - untrained", title=figure)
            if row == 1:
                ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "quick_thought_austen.toml"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,KEY=VALUE")
    parser.add_argument("--task", action="append", default=[])
    parser.add_argument("--senteval")
    parser.add_argument("--tasks")
    parser.add_argument("--reevaluate", action="store_true",
                        help="evaluate every finished run of the study again (after the evaluation changed)")
    parser.add_argument("--table", action="store_true", help="print the study as a markdown table")
    parser.add_argument("--with", dest="others", action="append", default=[], metavar="OUT",
                        help="another study folder whose runs join this one's table and figure (e.g. another corpus)")
    parser.add_argument("--figure", help="where to write the figure (default: OUT/study.png)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "study.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if args.reevaluate:
        records = [evaluate_record(r["variant"], r["overrides"], out / r["variant"], r["train_seconds"], args) for r in records]
        log.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = {r["variant"] for r in records}
    for text in args.variant:
        name, overrides = parse_variant(text)
        if name in done:
            continue
        record = run_variant(name, overrides, args)
        with open(log, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        records.append(record)
        print(json.dumps({k: record[k] for k in record if k.endswith("_gain") or k in ("variant", "passes", "train_seconds")}),
              file=sys.stderr)
    for other in args.others:
        records += [json.loads(line) for line in (Path(other) / "study.jsonl").read_text().splitlines()]
    if records:
        plot(records, Path(args.figure) if args.figure else out / "study.png")
    if args.table:
        print(markdown_table(records))
    return 0

if __name__ == "__main__":
    sys.exit(main())
