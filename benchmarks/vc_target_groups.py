"""Voice-conversion shares by target group from a run's eval_records.jsonl: seen speakers, unseen speakers
and the held-out variants of a corpus made with `seqae data speech --held-out-variants` (its corpus.json
names them), each with its 95 % Wilson interval.

    .venv/bin/python benchmarks/vc_target_groups.py CORPUS_DIR EVAL_JSON [EVAL_JSON ...]
"""

import json
import sys

from scipy.stats import binomtest


def main():
    info = json.load(open(f"{sys.argv[1]}/corpus.json"))
    held, unseen = set(info["held_out_speakers"]), set(info["unseen_speakers"])
    for path in sys.argv[2:]:
        result = json.load(open(path))
        records = [json.loads(line) for line in open(result["records_file"])]
        print(f"{result['run_dir']}: {result['speakers']} speakers (chance {result['chance']:.3f}), phone ratio "
              f"{result.get('phone_accuracy_ratio', float('nan')):.3f}")
        groups = (("seen", lambda r: r["seen"]), ("unseen voices", lambda r: r["target_speaker"] in unseen),
                  ("held-out variants", lambda r: r["target_speaker"] in held))
        for name, keep in groups:
            rows = [r for r in records if keep(r)]
            if not rows:
                continue
            hits = sum(r["labelled_as"] == r["target_speaker"] for r in rows)
            as_source = sum(r["labelled_as"] == r["source_speaker"] for r in rows) / len(rows)
            ci = binomtest(hits, len(rows)).proportion_ci(method="wilson")
            print(f"  {name}: n={len(rows)} as target {hits / len(rows):.3f} [{ci.low:.3f}, {ci.high:.3f}], as source {as_source:.3f}")


if __name__ == "__main__":
    main()
