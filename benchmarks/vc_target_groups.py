"""Voice-conversion shares by target group from a run's eval_records.jsonl: seen speakers, unseen speakers
and the held-out variants of a corpus made with `seqae data speech --held-out-variants` (its corpus.json
names them), each with its 95 % Wilson interval; with --markdown, one table row per evaluation (the three
groups, held-out as source, the phone ratio over all conversions and over those to the held-out variants, and
the content code's speaker leak; a group's phone ratio needs records with phone counts, nan in older ones), and the
mean and spread (half the range) of each column over evaluations given the same label (LABEL=EVAL_JSON: the seeds
of one setting). Without --markdown, also the phone ratio of the conversions from each source voice variant, to
each target voice variant, and for each pair of them (rows the source's variant, columns the target's; the number
of conversions beside each), without each variant as the source or on either side, and the ratio against the target
voice's own real accuracy in place of the source's.

    .venv/bin/python benchmarks/vc_target_groups.py CORPUS_DIR EVAL_JSON [EVAL_JSON ...]
    .venv/bin/python benchmarks/vc_target_groups.py CORPUS_DIR --markdown LABEL=EVAL_JSON [LABEL=EVAL_JSON ...]
"""

import json
import sys

from seqae.datasets.speech_synth import variant_of
from seqae.families.voice_conversion.evaluate import label_shares, phone_ratio

MATRIX_VARIANTS = 8  # the source x target table only for corpora with at most this many variants on a side


def read_records(result: dict) -> list[dict]:
    return [json.loads(line) for line in open(result["records_file"])]


def groups(records: list[dict], info: dict) -> dict:
    held, unseen = set(info["held_out_speakers"]), set(info["unseen_speakers"])
    out = {}
    for name, keep in (("seen", lambda r: r["seen"]), ("unseen voices", lambda r: r["target_speaker"] in unseen),
                       ("held-out variants", lambda r: r["target_speaker"] in held)):
        rows = [r for r in records if keep(r)]
        if rows:
            shares: dict = {}
            label_shares(shares, "g", rows)
            out[name] = {"n": len(rows), "target": shares["g_labelled_target"], "low": shares["g_labelled_target_ci_low"],
                         "high": shares["g_labelled_target_ci_high"], "source": shares["g_labelled_source"],
                         "phone ratio": phone_ratio(rows).get("phone_accuracy_ratio", float("nan"))}
    return out


def markdown(info: dict, pairs: list[str]) -> None:
    print("| setting | eval | seen: as target | unseen voices: as target | held-out variants: as target | held-out: as source "
          "| phone ratio | held-out: phone ratio | speaker from content frames |")
    print("|---|---|---|---|---|---|---|---|---|")
    by_label: dict[str, list[list[float]]] = {}
    for pair in pairs:
        label, path = pair.split("=", 1)
        result = json.load(open(path))
        g = groups(read_records(result), info)
        cells = [g["seen"]["target"], g["unseen voices"]["target"], g["held-out variants"]["target"],
                 g["held-out variants"]["source"], result["phone_accuracy_ratio"], g["held-out variants"]["phone ratio"],
                 result["speaker_from_content_frames"]]
        by_label.setdefault(label, []).append(cells)
        shown = [f"{g[k]['target']:.3f} [{g[k]['low']:.2f}, {g[k]['high']:.2f}]" for k in ("seen", "unseen voices", "held-out variants")]
        print(f"| {label} | {result['run_dir']} (n {g['seen']['n']}/{g['unseen voices']['n']}/{g['held-out variants']['n']}) | "
              + " | ".join(shown + [f"{c:.3f}" for c in cells[3:]]) + " |")
    columns = ("seen", "unseen", "held-out", "held-out as source", "phone ratio", "held-out phone ratio", "leak")
    print("\n| setting | seeds | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for label, rows in by_label.items():
        columns = list(zip(*rows))
        print(f"| {label} | {len(rows)} | " + " | ".join(
            f"{sum(c) / len(c):.3f} +- {(max(c) - min(c)) / 2:.3f}" if len(c) > 1 else f"{c[0]:.3f}" for c in columns) + " |")


def main():
    info = json.load(open(f"{sys.argv[1]}/corpus.json"))
    if sys.argv[2] == "--markdown":
        return markdown(info, sys.argv[3:])
    for path in sys.argv[2:]:
        result = json.load(open(path))
        print(f"{result['run_dir']}: {result['speakers']} speakers (chance {result['chance']:.3f}), phone ratio "
              f"{result.get('phone_accuracy_ratio', float('nan')):.3f}")
        records = read_records(result)
        for name, g in groups(records, info).items():
            print(f"  {name}: n={g['n']} as target {g['target']:.3f} [{g['low']:.3f}, {g['high']:.3f}], as source {g['source']:.3f}, "
                  f"phone ratio {g['phone ratio']:.3f}")
        variant_matrix(records)
        print(f"  phone ratio against the target voice's own real accuracy: {target_relative_ratio(records):.3f}")


def target_relative_ratio(records: list[dict]) -> float:
    """The converted frames' phone accuracy over the accuracy the probe reaches on the target voice's real
    frames (each voice's from the records where it is the source), not the source's."""
    scored = [r for r in records if r.get("phone_frames")]
    real: dict[str, list[float]] = {}
    for r in scored:
        totals = real.setdefault(r["source_speaker"], [0.0, 0.0])
        totals[0] += r["phone_real"]
        totals[1] += r["phone_frames"]
    scored = [r for r in scored if r["target_speaker"] in real]  # a voice never a source has no real accuracy here
    expected = sum(real[r["target_speaker"]][0] / real[r["target_speaker"]][1] * r["phone_frames"] for r in scored)
    return sum(r["phone_converted"] for r in scored) / expected if expected else float("nan")


def variant_matrix(records: list[dict]) -> None:
    """The phone ratio by the source's voice variant, by the target's, and by the pair."""
    def ratio(rows: list[dict]) -> str:
        return f"{phone_ratio(rows).get('phone_accuracy_ratio', float('nan')):.3f} (n {len(rows)})"

    cells: dict[tuple[str, str], list] = {}
    for r in records:
        cells.setdefault((variant_of(r["source_speaker"]), variant_of(r["target_speaker"])), []).append(r)
    sources, targets = sorted({s for s, _ in cells}), sorted({t for _, t in cells})
    for side, names, pick in (("source", sources, 0), ("target", targets, 1)):
        print(f"  phone ratio by the {side}'s voice variant: " + ", ".join(
            f"{v} {ratio([r for k, rs in cells.items() if k[pick] == v for r in rs])}" for v in names))
    for side, keep in (("as source", lambda k, v: k[0] != v), ("on either side", lambda k, v: v not in k)):
        print(f"  phone ratio without each variant {side}: " + ", ".join(
            f"{v} {ratio([r for k, rs in cells.items() if keep(k, v) for r in rs])}" for v in sources))
    if max(len(sources), len(targets)) > MATRIX_VARIANTS:
        print(f"  (no source x target table: more than {MATRIX_VARIANTS} variants on a side)")
        return
    width = max(len(v) for v in sources + targets + ["source \\ target"]) + 2
    print("  " + "source \\ target".ljust(width) + "".join(t.rjust(16) for t in targets))
    for s in sources:
        print("  " + s.ljust(width) + "".join((ratio(cells[s, t]) if (s, t) in cells else "-").rjust(16) for t in targets))


if __name__ == "__main__":
    main()
