"""The seqae command: train, evaluate, plot and use representation-learning runs."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from seqae.atomic import CheckpointError
from seqae.config import ConfigError
from seqae.errors import DataError, TrainingError
from seqae.figures import text_table
from seqae.registry import CODE_KINDS, COMMANDS, command_modules

if TYPE_CHECKING:
    import numpy as np

# torch, numpy and the families are imported by the commands that use them, not here: `seqae --help` and
# argument errors answer without loading them (python -X importtime -m seqae.cli --help)
USER_ERRORS = (ConfigError, CheckpointError, DataError, TrainingError)


RUN_HELP = "a run directory (what seqae train wrote)"
DEVICE_HELP = "cpu (default), cuda, cuda:N"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqae", description=__doc__.strip() + " See README.md for recipes.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_train, add_eval, add_plot, add_report, add_compare, add_family_commands, add_search, add_data, add_outputs):
        add(sub)
    return parser


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a recipe into a run directory")
    p.add_argument("recipe", help="a recipe TOML file, e.g. recipes/ae_digits.toml")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set train.steps=500 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to RUN/tensorboard/ "
                   "(train.tensorboard = true; needs seqae[tensorboard])")


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run")
    p.add_argument("run_dir", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    p.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="audio families: a .jsonl manifest to evaluate on (repeatable; voice conversion: speakers "
                        "the model was not trained on are the unseen targets)")
    p.add_argument("--task", action="append", default=[], metavar="FILE",
                   help="sentence encoders: a task file, label<TAB>sentence, score<TAB>s1<TAB>s2 or label<TAB>s1<TAB>s2 "
                        "per line (repeatable)")
    p.add_argument("--senteval", metavar="DIR",
                   help="sentence encoders: SentEval's data folder (data/downstream of its download script)")
    p.add_argument("--tasks", dest="senteval_tasks", metavar="LIST",
                   help="SentEval tasks, e.g. MR,CR,SUBJ,MPQA,SST2,TREC,MRPC,SICKRelatedness,SICKEntailment,"
                        "STS12,...,STS16,STSBenchmark (default: every task found in --senteval)")
    p.add_argument("--discriminator", action="store_true",
                   help="also judge the run's codes with a fresh discriminator of (input, code) pairs: AUROC, accuracy and "
                        "the InfoNCE bound in nats, beside the untrained network and PCA")
    p.add_argument("--inputs", metavar="FILE", help="summariser: texts to summarise for ROUGE, one per line")
    p.add_argument("--references", metavar="FILE", help="summariser: their reference summaries, one per line")
    p.add_argument("--records", metavar="FILE", help="voice conversion: the per-conversion records file "
                   "(default RUN_DIR/eval_records.jsonl, which the run's next evaluation replaces)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="eval.KEY=VALUE",
                   help="an evaluation setting of the recipe's [eval] section, e.g. --set eval.seen_references=5 (repeatable)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def add_plot(sub) -> None:
    p = sub.add_parser("plot", help="training curves and the family's figures as PNG (clips as WAV, projector vectors as .npz)")
    p.add_argument("run_dir", help=RUN_HELP)
    p.add_argument("--out", help="folder for the PNG files (default: RUN_DIR/plots)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of a run (or a comparison of several): what was "
                       "trained, curves, figures beside baselines, the family's figures and audio")
    p.add_argument("run_dirs", nargs="+", metavar="RUN", help=RUN_HELP + "; several: a comparison page")
    p.add_argument("-o", "--out", help="the HTML file (default: RUN/report.html for one run, report.html for several)")
    p.add_argument("--no-figures", action="store_true",
                   help="leave out the family's figures and audio (they load the model and its evaluation data)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help="the evaluation figures of several runs side by side, with the settings that differ")
    p.add_argument("run_dirs", nargs="+", metavar="run_dir", help=RUN_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")


def add_family_commands(sub) -> None:
    for name, module in command_modules().items():
        p = sub.add_parser(name, help=module.HELP)
        p.add_argument("run_dir", help=RUN_HELP)
        module.add_arguments(p)
        p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def add_search(sub) -> None:
    p = sub.add_parser("search", help="search by code: the items of a collection nearest to each query (images and arrays, "
                                      "sentences, audio files)")
    p.add_argument("run_dir", help=RUN_HELP)
    p.add_argument("--index", "--corpus", dest="index", required=True, metavar="INPUT",
                   help="the collection: an array file (.npy/.npz/IDX), a text file of sentences, or an audio file, folder or manifest")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", action="append", metavar="INPUT",
                       help="queries: a file or folder like the collection; for a sentence encoder, a sentence (repeatable)")
    query.add_argument("--queries", metavar="FILE", help="a file of queries (for a sentence encoder, one sentence per line)")
    p.add_argument("-k", "--top-k", type=int, default=5, help="results per query (default 5)")
    p.add_argument("--metric", default="cosine", choices=("cosine", "euclidean"))
    p.add_argument("--index-file", metavar="FILE", help="where the collection's vectors are kept (default: INPUT.seqae-index.npz)")
    p.add_argument("--rebuild", action="store_true", help="encode the collection again, replacing --index-file")
    p.add_argument("-o", "--output", metavar="FILE", help="write the hits as JSON lines (one object per query)")
    p.add_argument("--json", action="store_true", help="one JSON object per query on stdout")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def add_data(sub) -> None:
    p = sub.add_parser("data", help="build data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("speech", help="synthesise a multi-speaker speech corpus with phone alignments (espeak-ng)")
    q.add_argument("--out", required=True, help="output folder (WAVs and train/test manifests)")
    q.add_argument("--speakers", type=int, default=12, help="training speakers")
    q.add_argument("--unseen-speakers", type=int, default=0, help="extra speakers held out entirely")
    q.add_argument("--utterances", type=int, default=100, help="sentences, spoken by every speaker")
    q.add_argument("--test-fraction", type=float, default=0.2, help="share of the sentences held out")
    q.add_argument("--corpus", default=str(Path(__file__).resolve().parents[1] / "data" / "austen"),
                   help="text to take sentences from (default: the bundled Austen)")
    q.add_argument("--sample-rate", type=int, default=16000)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--held-out-variants", default="", metavar="LIST",
                   help="espeak-ng variants no training or unseen speaker uses (e.g. klatt3,whisperf): two voices of each "
                        "go to held_out_train/held_out_test.jsonl, targets from outside the training voice space")
    timbres = q.add_mutually_exclusive_group()
    timbres.add_argument("--distinct-timbres", action="store_true",
                         help="every voice a different variant or pitch (accent at random): no two speakers differ by accent alone")
    timbres.add_argument("--wide-voices", action="store_true",
                         help="every voice a variant in turn with its own random pitch (5-95), pitch range (0-100) and rate "
                              "(120-230 wpm): more of espeak-ng's voice space")
    timbres.add_argument("--tract-voices", action="store_true", help="as --wide-voices, every second voice with a vocal tract "
                         "of its own (formant frequencies 80-125 %%, heights, widths, breathiness, roughness, flutter)")


def add_outputs(sub) -> None:
    for name, what in (("codes", "codes of new input"), ("score", "anomaly scores (reconstruction error) of new input"),
                       ("embed", "sentence embeddings of a text file (one sentence per line)")):
        p = sub.add_parser(name, help=f"write the {what} to a .npy file")
        p.add_argument("run_dir", help=RUN_HELP)
        p.add_argument("-i", "--input", required=True, help=(
            "a text file, one sentence per line" if name == "embed" else
            "input: .npy, .npz or IDX (array families); a text file, one item per line (text families); an audio file, "
            "folder or .jsonl manifest (audio families)"))
        p.add_argument("-o", "--output", required=True,
                       help="output .npy file" + ("" if name == "embed" else " (.npz: one array per audio file)"))
        if name == "codes":
            p.add_argument("--kind", choices=sorted({k for ks in CODE_KINDS.values() for k in ks}),
                           help="which code, by family (the first the default): "
                                + "; ".join(f"{name}: {', '.join(ks)}" for name, ks in CODE_KINDS.items()))
        p.add_argument("--device", default="cpu", help=DEVICE_HELP)
        p.add_argument("--quantize", choices=["int8"], help=(
            "int8: dynamic int8 quantisation of the model's linear and recurrent layers for CPU inference (faster, "
            "slightly different outputs; figures in benchmarks/RESULTS.md)"))


def run_family_command(args: argparse.Namespace) -> int:
    """A family's command on a run of that family; a clear error for a run of another family."""
    from seqae import api
    from seqae.registry import get_family

    if getattr(args, "output", None):
        check_output(args.output)
    model = api.load(args.run_dir, device=args.device)
    family = get_family(model.recipe.family)
    command = next((c for c in family.commands if c.name == args.command), None)
    if command is None:
        owner = COMMANDS[args.command][0]
        raise ConfigError(f"{args.run_dir}: a '{family.name}' run; seqae {args.command} takes a run of: {owner}")
    return command.run(model, args)


def save_npy(path: Path, array: np.ndarray) -> None:
    import numpy as np

    from seqae import checkpoint

    buffer = io.BytesIO()
    np.save(buffer, array)
    checkpoint.atomic_write(path, buffer.getvalue())


def run(args: argparse.Namespace) -> int:
    handlers = {"train": train, "eval": evaluate, "plot": plot, "report": report, "compare": compare, "data": make_speech_data,
                "search": search, "codes": write_output, "score": write_output, "embed": write_output}
    if args.command in COMMANDS:
        return run_family_command(args)
    return handlers[args.command](args)


def train(args: argparse.Namespace) -> int:
    from seqae import api, checkpoint

    overrides = args.overrides + (["train.tensorboard=true"] if args.tensorboard else [])
    run_dir = api.train(args.recipe, out=args.out, overrides=overrides, resume=args.resume, device=args.device)
    if not checkpoint.read_trainer_state(Path(run_dir) / checkpoint.STATE_FILE).get("finished", True):
        return 130  # interrupted (Ctrl-C): the checkpoint is saved and the Trainer said how to resume
    if api.is_main_process():
        print(f"trained: {run_dir}  (next: seqae eval {run_dir}; seqae plot {run_dir})", file=sys.stderr)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from seqae import api

    result = api.evaluate(args.run_dir, device=args.device, tasks=args.task, manifest=args.manifest or None,
                          overrides=args.overrides or None, senteval=args.senteval, senteval_tasks=args.senteval_tasks,
                          discriminator=args.discriminator, inputs=args.inputs, references=args.references, records=args.records)
    table = result.pop("senteval_table", None)
    if args.json:
        # NaN and infinity are not JSON: they are written as null
        clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.items()}
        print(json.dumps(clean, allow_nan=False))
        return 0
    print(text_table(result))
    if table:
        print("\n" + table)
    return 0


def compare(args: argparse.Namespace) -> int:
    from seqae import compare as comparing

    result = comparing.compare(args.run_dirs)
    print(json.dumps(result, allow_nan=False, default=str) if args.json else comparing.table(result))
    return 0


def report(args: argparse.Namespace) -> int:
    from seqae.report import write_report

    print(write_report(args.run_dirs, args.out, device=args.device, figures=not args.no_figures))
    return 0


def plot(args: argparse.Namespace) -> int:
    from seqae import api

    for path in api.plot(args.run_dir, args.out, device=args.device):
        print(path)
    return 0


def write_output(args: argparse.Namespace) -> int:
    """``seqae codes``, ``score`` and ``embed``: the family's function of the input, written to -o."""
    from seqae import api
    from seqae.registry import get_family

    check_output(args.output)
    if args.quantize and args.device != "cpu":
        raise ConfigError(f"--quantize {args.quantize} runs on the CPU; leave out --device {args.device}")
    model = api.load(args.run_dir, device=args.device)
    family = get_family(model.recipe.family)
    if (args.command == "embed") != family.embeds:
        hint = "seqae embed" if family.embeds else "seqae codes"
        raise ConfigError(f"{args.run_dir}: a '{family.name}' run; use {hint}")
    if args.quantize:
        from seqae.runtime import quantize_int8

        counts = quantize_int8(model)
        if not counts:
            raise ConfigError(f"--quantize int8: the '{family.name}' model has no linear or recurrent layer to quantise")
        print(f"int8: {', '.join(f'{n} {kind}' for kind, n in counts.items())} layer(s) quantised", file=sys.stderr)
    fn = family.scores if args.command == "score" else family.codes
    if fn is None:
        raise ConfigError(f"{args.run_dir}: family '{family.name}' has no '{args.command}' output")
    import torch

    if args.command == "codes" and args.output.endswith(".npz") and family.codes_by_file is not None:
        with torch.inference_mode():  # no autograd bookkeeping at all (the families' functions already skip gradients)
            by_file = family.codes_by_file(model, model.recipe, Path(args.input))
        if by_file is not None:
            return save_npz(Path(args.output), {k: check_finite(v, k) for k, v in by_file.items()})
    extra = {}
    if args.command == "codes" and args.kind is not None:
        kinds = family.code_kinds
        if args.kind not in kinds:
            have = f"the kinds {', '.join(kinds)}" if kinds else "no code kinds"
            raise ConfigError(f"--kind {args.kind}: a '{family.name}' run has {have}")
        extra = {"kind": args.kind}
    with torch.inference_mode():
        array = check_finite(fn(model, model.recipe, Path(args.input), **extra), args.input)
    save_npy(Path(args.output), array)
    print(f"{args.output}: {args.command} of shape {array.shape}", file=sys.stderr)
    return 0


def save_npz(path: Path, arrays: dict) -> int:
    import numpy as np

    from seqae import checkpoint

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    checkpoint.atomic_write(path, buffer.getvalue())
    print(f"{path}: codes of {len(arrays)} utterances", file=sys.stderr)
    return 0


def search(args: argparse.Namespace) -> int:
    from seqae import api, checkpoint

    queries = args.queries or args.query
    results, built = api.search_collection(args.run_dir, args.index, queries, top_k=args.top_k, metric=args.metric,
                                           index_file=args.index_file, rebuild=args.rebuild, device=args.device)
    if built:
        print(f"{args.index}: the collection encoded and its index written", file=sys.stderr)
    lines = [json.dumps(r, ensure_ascii=False) for r in results]
    if args.output:
        checkpoint.atomic_write(args.output, "".join(line + "\n" for line in lines))
        print(f"{args.output}: the hits of {len(results)} queries", file=sys.stderr)
    elif args.json:
        print("\n".join(lines))
    else:
        for result in results:
            print(f"query: {result['query']}")
            for rank, hit in enumerate(result["hits"], start=1):
                print(f"  {rank:>3}  {hit['score']:.4f}  item {hit['item']}: {hit['name']}")
    return 0


def make_speech_data(args: argparse.Namespace) -> int:
    """``seqae data speech``: the settings are checked before the folder is made; a folder this command
    made is removed again if synthesis fails, so nothing half-made is left."""
    import shutil

    from seqae.datasets.speech_synth import check_settings, synthesise_corpus

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder; choose a new --out (nothing is overwritten)")
    held_out = tuple(v.strip() for v in args.held_out_variants.split(",") if v.strip())
    check_settings(args.speakers, args.utterances, args.sample_rate, args.test_fraction, args.unseen_speakers, held_out)
    created = not out.exists()
    try:
        paths = synthesise_corpus(out, args.speakers, args.utterances, args.corpus, args.seed, args.sample_rate,
                                  args.test_fraction, args.unseen_speakers, args.distinct_timbres, held_out, args.wide_voices,
                                  args.tract_voices)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    for path in paths.values():
        print(path)
    return 0


def check_output(path: str) -> Path:
    """An output file: not a folder, in a folder that exists (checked before any work)."""
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{out}: is a folder; give an output file name (e.g. -o {out / 'out.npy'})")
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: the folder {out.parent} does not exist; create it first")
    return out


def check_finite(array: np.ndarray, source: str) -> np.ndarray:
    """Outputs that are not finite are never written: the input was far outside what the model saw."""
    import numpy as np

    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{source}: the model's output holds NaN or infinite values; the input's values are far outside "
                        "the range it was trained on")
    return array


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as err:
        print(f"seqae: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seqae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
