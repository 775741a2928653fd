"""The Python API: ``train``, ``load``, ``evaluate``, ``plot``. The command line is a thin layer over it."""

from __future__ import annotations

import importlib.util
import json
import os
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqae import checkpoint
from seqae.checkpoint import CheckpointError
from seqae.config import ConfigError, Recipe, apply_overrides, dumps_toml, load_recipe, read_toml, recipe_from_dict
from seqae.datasets.base import DataError
from seqae.families.base import prepare
from seqae.registry import get_family
from seqae.runtime import (
    TENSORBOARD_MISSING,
    provenance,
    quantize_int8,
    resolve_device,
    seed_everything,
    session_end,
    session_start,
    tensorboard_at_evaluation,
)
from seqae.trainer import Trainer

# Keys that may differ between a run's saved config and the recipe it is resumed with.
RESUMABLE_CHANGES = {"train.steps", "train.device", "train.log_every", "train.checkpoint_every", "train.eval_every",
                     "train.tensorboard", "train.prefetch", "train.compile", "data.tokenizer_file"}


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def resolve_recipe(recipe: str | os.PathLike | Recipe, overrides=None) -> Recipe:
    if isinstance(recipe, Recipe):
        if overrides:
            raise ValueError("overrides apply to a recipe file; change the Recipe object directly instead")
        return recipe
    return load_recipe(recipe, overrides)


def config_differences(saved: dict[str, dict], new: dict[str, dict]) -> list[str]:
    keys = []
    for section in saved.keys() | new.keys():
        a, b = saved.get(section, {}), new.get(section, {})
        for key in a.keys() | b.keys():
            if a.get(key) != b.get(key):
                keys.append(f"{section}.{key}")
    return sorted(keys)


def train(
    recipe: str | os.PathLike | Recipe,
    out: str | os.PathLike | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    resume: bool = False,
    device: str | None = None,
) -> Path:
    """Train a recipe into a run directory and return its path.

    ``out`` defaults to ``runs/<recipe name>``. A directory that already holds a run is never
    overwritten: pass ``resume=True`` to continue it, or choose another ``out``. ``out`` must be a new
    or empty folder or a seqae run; while training, the run directory is locked against a second
    process (:class:`seqae.checkpoint.RunLock`).
    """
    source = Path(recipe.source) if isinstance(recipe, Recipe) else Path(recipe)
    recipe = resolve_recipe(recipe, overrides)
    if device is not None:
        recipe.train.device = device
    family = get_family(recipe.family, recipe.source)
    if recipe.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"{recipe.source}: {TENSORBOARD_MISSING}")  # before any work
    run_dir = Path(out) if out is not None else Path("runs") / source.stem
    main = is_main_process()
    # only the main process judges the folder: the others would see its files (and their temporaries)
    # appear while it writes them
    if main:
        checkpoint.check_run_dir(run_dir, resume)  # a file, another's folder, a typo with --resume: before any work
    seed_everything(recipe.train.seed)
    prepared = prepare(family, recipe)
    model = family.build_model(recipe)
    if family.initialise is not None:
        family.initialise(model, prepared)  # a resumed run's checkpoint replaces it
    with checkpoint.RunLock(run_dir) if main else nullcontext():
        if main:
            has_run = checkpoint.check_run_dir(run_dir, resume)  # again, now that no other process can write it
        else:  # a resumed run's checkpoint was there before any process started
            has_run = resume and ((run_dir / checkpoint.STATE_FILE).exists() or (run_dir / checkpoint.MODEL_FILE).exists())
        if main:
            if has_run:
                check_resumable(run_dir, recipe, model, prepared)
            write_run_files(run_dir, recipe, prepared)
        # with train.tensorboard: the curves and the family's figures of the model in memory, at evaluation steps and at the end
        data = prepared if family.eval_needs_training_data else None
        drawn = tensorboard_at_evaluation(
            run_dir, model, lambda out: training_figures(run_dir, recipe.family, out) + family.figures(model, recipe, data, out))
        trainer = Trainer(model, prepared.train, recipe.train, run_dir, recipe.family, eval_data=prepared.test,
                          on_evaluation=drawn if main and recipe.train.tensorboard else None)
        session = session_start(trainer.device, trainer.dist.world)
        done = trainer.fit(resume=resume and has_run)
        if main and not done.get("already_finished"):  # what ran, where and how long: one entry per training session
            record = checkpoint.read_run_file(run_dir) or {}
            sessions = record.get("sessions", []) + [session_end(session, trainer.device, trainer.step)]
            checkpoint.write_run_file(run_dir, provenance=provenance(), sessions=sessions)
            if recipe.train.tensorboard:
                drawn(trainer.step)  # nothing new when the last step was an evaluation step
    return run_dir


def check_resumable(run_dir: Path, recipe: Recipe, model: nn.Module, prepared) -> None:
    """Before anything in ``run_dir`` is written: the recipe may differ from the run's only in
    :data:`RESUMABLE_CHANGES`, the data must be the data it was trained on, the checkpoint must be
    whole, and ``train.steps`` must not end before the checkpoint's step."""
    from seqae.models.base import training_plan

    config_path = run_dir / checkpoint.CONFIG_FILE
    if config_path.exists():
        saved = read_toml(config_path)
        changed = [k for k in config_differences(saved, recipe.to_dict()) if k not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(
                f"{config_path}: the recipe differs from the run being resumed in {', '.join(changed)}; "
                "resume with the same recipe, or train into another --out"
            )
    check_same_data(run_dir, prepared)
    _, state = checkpoint.load_for_resume(run_dir, recipe.family)  # a damaged checkpoint is reported here
    total = sum(stage.steps for stage in training_plan(model, recipe.train.steps))
    if int(state["step"]) > total:
        raise ConfigError(
            f"{config_path}: the run is at step {state['step']}, but train.steps = {recipe.train.steps} ends at step {total}; "
            "ask for more steps to continue it (nothing was changed)"
        )


def check_same_data(run_dir: Path, prepared) -> None:
    """The data fingerprint recorded in ``run.json`` at training must match the data read now."""
    record = checkpoint.read_run_file(run_dir) or {}
    recorded, now = record.get("data_fingerprint"), getattr(prepared, "fingerprint", "")
    if recorded and now and recorded != now:
        raise DataError(
            f"{prepared.data_name}: the data differ from those {run_dir} was trained on (the fingerprint in "
            f"{run_dir / checkpoint.RUN_FILE} does not match), so its held-out split would not be the one it held out. "
            "Restore the data, or train a new run"
        )


def write_run_files(run_dir: Path, recipe: Recipe, prepared) -> None:
    """``run.json``, ``config.toml`` and the family's run files (``tokenizer.json``)."""
    from seqae import __version__

    check_same_run_files(run_dir, prepared)  # before anything of the run is rewritten
    record = checkpoint.read_run_file(run_dir)
    if record is None:
        checkpoint.write_run_file(run_dir, family=recipe.family, seqae_version=__version__,
                                  data_fingerprint=getattr(prepared, "fingerprint", ""))
    elif not record.get("data_fingerprint") and getattr(prepared, "fingerprint", ""):
        checkpoint.write_run_file(run_dir, data_fingerprint=prepared.fingerprint)
    checkpoint.atomic_write(run_dir / checkpoint.CONFIG_FILE, dumps_toml(recipe.to_dict()))
    for name, path in prepared.run_files.items():
        checkpoint.atomic_write(run_dir / name, Path(path).read_bytes())


def read_run_config(run_dir: Path) -> Recipe:
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    path = run_dir / checkpoint.CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; {run_dir} is not a seqae run directory")
    return recipe_from_dict(read_toml(path), str(path), base_dir=run_dir, check_paths=False)


def load(run_dir: str | os.PathLike, device: str | torch.device = "cpu", family: str | None = None,
         quantize: str | None = None) -> nn.Module:
    """Rebuild the trained model of any family from its run directory, in eval mode; ``quantize="int8"``:
    its linear and recurrent layers quantised for CPU inference (:func:`seqae.runtime.quantize_int8`).

    The model carries its resolved recipe as ``model.recipe``. A run of another family than ``family``
    (when given), corrupt weights, or a config that does not match the weights raise
    :class:`~seqae.checkpoint.CheckpointError` naming the file.
    """
    run_dir = Path(run_dir)
    recipe = read_run_config(run_dir)
    if family is not None and recipe.family != family:
        raise CheckpointError(f"{run_dir}: a '{recipe.family}' run, but a '{family}' model was asked for")
    model_path = run_dir / checkpoint.MODEL_FILE
    tensors, meta = checkpoint.read_model_file(model_path)
    if meta.get("family") != recipe.family:
        raise CheckpointError(
            f"{model_path}: weights of family '{meta.get('family')}', but {checkpoint.CONFIG_FILE} says '{recipe.family}'"
        )
    target = resolve_device(str(device))
    build = get_family(recipe.family).build_model
    try:
        with torch.device("meta"):  # the config's shapes, checked against the weights before anything is allocated
            expected = build(recipe).state_dict()
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{run_dir / checkpoint.CONFIG_FILE}: cannot build the model: {err}") from None
    checkpoint.check_weights_match(run_dir, expected, tensors)
    model = build(recipe)
    model.load_state_dict(tensors)
    family_entry = get_family(recipe.family)
    if family_entry.on_load is not None:
        family_entry.on_load(model, recipe, run_dir)
    model.recipe = recipe
    model.run_dir = run_dir
    model.trained_steps = int(meta.get("step", 0))
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize: 'int8' or None, got {quantize!r}")
    model = model.to(target).eval()
    if quantize:
        quantize_int8(model)
    return model


def prepared_for_evaluation(recipe: Recipe, run_dir: Path | None = None):
    """The recipe's data for the family's evaluation and figures (None for families that read their own
    manifests), checked to be the data ``run_dir`` was trained on."""
    family = get_family(recipe.family)
    if not family.eval_needs_training_data:
        return None
    if run_dir is None:
        return prepare(family, recipe)
    prepared = prepare(family, with_run_tokenizer(recipe, run_dir))
    check_same_data(run_dir, prepared)
    check_same_run_files(run_dir, prepared)
    return prepared


def with_run_tokenizer(recipe: Recipe, run_dir: Path) -> Recipe:
    """A text run's data read with its own ``tokenizer.json`` (a vocabulary trained again would differ)."""
    own = (run_dir / "tokenizer.json").is_file() and getattr(recipe.data, "tokenizer_file", None) == ""
    return replace(recipe, data=replace(recipe.data, tokenizer_file=str(run_dir / "tokenizer.json"))) if own else recipe


def check_same_run_files(run_dir: Path, prepared) -> None:
    """The data's run files (the tokenizer) must be the run's: text tokenised by another vocabulary would reach the
    model as other words, and its figures would be wrong without a sign of it."""
    for name, path in prepared.run_files.items():
        if (run_dir / name).is_file() and (run_dir / name).read_bytes() != Path(path).read_bytes():
            raise DataError(f"{run_dir / name}: the data were tokenised with another {name} ({path}), so the text would "
                            f"reach the model as other words; set data.tokenizer_file = \"{run_dir / name}\"")


EVAL_OPTIONS = {"tasks": ("--task", "task files"), "manifest": ("--manifest", "evaluation manifests"),
                "senteval": ("--senteval", "SentEval data folder"), "senteval_tasks": ("--tasks", "SentEval tasks"),
                "discriminator": ("--discriminator", "discriminator evaluation"), "inputs": ("--inputs", "texts to summarise"),
                "references": ("--references", "reference summaries"), "records": ("--records", "per-item records file")}


def check_eval_options(family, given: dict[str, Any]) -> None:
    """An evaluation option the family does not take is an error, never silently ignored."""
    for name, value in given.items():
        if value and name not in family.eval_options:
            flag, what = EVAL_OPTIONS[name]
            takes = [EVAL_OPTIONS[o][0] for o in family.eval_options]
            raise ConfigError(f"{flag}: a '{family.name}' run takes no {what}"
                              + (f" (it takes {', '.join(takes)})" if takes else " (its evaluation uses the recipe's data)"))


def evaluate(
    run_dir: str | os.PathLike, device: str = "cpu", write: bool = True, tasks: list[str] | None = None,
    manifest: str | list[str] | None = None, overrides: list[str] | None = None,
    senteval: str | os.PathLike | None = None, senteval_tasks: str | list[str] | None = None, discriminator: bool = False,
    inputs: str | os.PathLike | None = None, references: str | os.PathLike | None = None, quantize: str | None = None, *,
    records: str | os.PathLike | None = None) -> dict[str, Any]:
    """The family's evaluation of a trained run; also written to ``RUN_DIR/eval.json``. ``quantize``: as
    :func:`load` (the accuracy of an int8 model; write=False keeps the float model's eval.json).

    ``tasks``: task files for the sentence encoders (``label<TAB>sentence`` or
    ``score<TAB>sentence1<TAB>sentence2`` or ``label<TAB>sentence1<TAB>sentence2`` per line).
    ``senteval``: the ``data/downstream`` folder of SentEval's download script; ``senteval_tasks``: which
    of its tasks ("MR,CR,STSBenchmark" or a list; default every task found there). ``manifest``: the audio families' evaluation manifest(s).
    ``discriminator``: also judge the codes with a fresh discriminator (families with codes of their inputs).
    ``inputs``, ``references``: the summariser's texts (one per line) and their reference summaries, for ROUGE.
    ``overrides``: ``["eval.KEY=VALUE", ...]``, settings of the recipe's ``[eval]`` section for this
    evaluation (the other sections are fixed by training). Per-item records (voice conversion: one per
    conversion) go to ``records`` (default ``RUN_DIR/eval_records.jsonl``), or under ``"records"`` with write=False and no records.
    """
    run_dir = Path(run_dir)
    model = load(run_dir, device=device, quantize=quantize)
    recipe = model.recipe
    given = {"tasks": tasks, "manifest": manifest, "senteval": str(senteval) if senteval else None,
             "senteval_tasks": senteval_tasks, "discriminator": discriminator, "records": str(records) if records else None,
             "inputs": str(inputs) if inputs else None, "references": str(references) if references else None}
    check_eval_options(get_family(recipe.family), given)
    records_file = Path(records) if records else run_dir / "eval_records.jsonl"
    if records and (records_file.is_dir() or not records_file.parent.is_dir()):  # found before the evaluation, not after it
        raise ConfigError(f"--records {records}: give a file in an existing folder ({records_file.parent}: create it first)")
    if overrides:
        other = [text for text in overrides if not text.strip().startswith("eval.")]
        if other:
            raise ConfigError(f"--set {other[0]!r}: seqae eval takes eval.* settings only; the others are fixed by training")
        config_path = run_dir / checkpoint.CONFIG_FILE
        raw = apply_overrides(read_toml(config_path), overrides)
        recipe.eval = recipe_from_dict(raw, f"{config_path} with --set", base_dir=run_dir, check_paths=False).eval
    family = get_family(recipe.family)
    prepared = prepared_for_evaluation(recipe, run_dir)
    result = {"run_dir": str(run_dir), "family": recipe.family, "step": model.trained_steps} | ({"quantize": quantize} if quantize else {})
    if overrides:
        result["eval_overrides"] = list(overrides)
    options: dict[str, Any] = {key: value for key, value in given.items() if value and key != "records"}
    result.update(family.evaluate(model, recipe, prepared, **options))
    # per-item records (voice conversion: one per conversion) go to their own file, not into the figures
    items = result.pop("records", None)
    if write:
        checkpoint.atomic_write(run_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    if items is not None and (write or records):
        checkpoint.atomic_write(records_file, "".join(json.dumps(r) + "\n" for r in items))
        result["records_file"] = str(records_file)
    elif items is not None:
        result["records"] = items
    return result


def search(model_or_run, queries: list[str], corpus: list[str], top_k: int = 5, device: str = "cpu",
           batch_size: int = 256) -> list[list[dict]]:
    """Semantic search with a sentence encoder (a loaded model or its run directory): for each query the
    ``top_k`` sentences of ``corpus`` with the highest cosine similarity, best first, as
    ``{"corpus_id": index into corpus, "score": cosine}`` (sentence-transformers' contract)."""
    from seqae.retrieval import semantic_search

    model = load(model_or_run, device=device) if isinstance(model_or_run, (str, os.PathLike)) else model_or_run
    if not hasattr(model, "encode_sentences"):
        raise ConfigError(f"a '{model.recipe.family}' run is not a sentence encoder; search takes a quick_thought or "
                          "skip_thought run")
    return semantic_search(model.encode(list(queries), batch_size=batch_size), model.encode(list(corpus), batch_size=batch_size),
                           top_k=top_k)


def search_collection(run_dir: str | os.PathLike, index: str | os.PathLike, queries: str | os.PathLike | list[str], top_k: int = 5,
                      metric: str = "cosine", index_file: str | os.PathLike | None = None, rebuild: bool = False,
                      device: str = "cpu") -> tuple[list[dict], bool]:
    """Search by code with any run whose family gives one vector per item (images and arrays, sentences,
    audio files): the ``top_k`` items of the collection ``index`` nearest to each query, by ``metric``
    ("cosine" or "euclidean").

    ``queries``: a file or folder of the same kind as the collection (or a list holding one), or
    (sentence encoders) a list of sentences. The collection's vectors are kept in ``index_file`` (default: beside the collection,
    ``NAME.seqae-index.npz``) and reused while the run's weights and the collection are unchanged.
    Returns ``(results, built)``: one ``{"query", "hits": [{"item", "name", "score"}]}`` per query (score:
    cosine, or minus the distance; higher is nearer) and whether the index was (re)built."""
    from seqae.retrieval import METRICS, cached_index, collection_digest, nearest

    if metric not in METRICS:
        raise ConfigError(f"--metric {metric}: choose one of {', '.join(METRICS)}")
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k}: give a positive number of results")
    run_dir, index = Path(run_dir), Path(index)
    model = load(run_dir, device=device)
    family = get_family(model.recipe.family)
    if family.search_items is None:
        raise ConfigError(f"{run_dir}: a '{family.name}' run gives no one vector per item to search by")
    if not index.exists():
        raise DataError(f"{index}: no such collection file or folder")
    index_file = Path(index_file) if index_file else index.with_name(index.name + ".seqae-index.npz")
    weights = collection_digest(run_dir / checkpoint.MODEL_FILE)
    try:
        names, vectors, built = cached_index(index, index_file, str(run_dir.resolve()), weights,
                                             lambda: family.search_items(model, model.recipe, index), rebuild)
        if isinstance(queries, list) and not family.embeds:
            if len(queries) != 1:
                raise ConfigError(f"--query: a '{family.name}' run searches with one file or folder of queries")
            queries = queries[0]
        query_names, query_vectors = family.search_items(model, model.recipe, queries if isinstance(queries, list) else Path(queries))
        hits = nearest(query_vectors, vectors, top_k, metric)
    except ValueError as err:
        raise DataError(str(err)) from None
    return [{"query": q, "hits": [{"item": h["corpus_id"], "name": names[h["corpus_id"]], "score": h["score"]} for h in found]}
            for q, found in zip(query_names, hits)], built


def plot(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, device: str = "cpu") -> list[Path]:
    """Training curves and the family's own figures as PNG files, with its clips (WAV) and vectors for TensorBoard's
    projector (.npz) where it has them (default folder: ``RUN_DIR/plots``)."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "plots"
    model = load(run_dir, device=device)
    recipe = model.recipe
    return training_figures(run_dir, recipe.family, out) + get_family(recipe.family).figures(
        model, recipe, prepared_for_evaluation(recipe, run_dir), out)


def training_figures(run_dir: Path, family: str, out: Path) -> list[Path]:
    """The training curves and every logged metric, from ``metrics.jsonl`` (none before its first line)."""
    from seqae import plots

    records = checkpoint.read_metrics(run_dir)
    if not records:
        return []
    return [plots.training_curves(records, out / "training_curves.png", title=f"{run_dir.name} ({family})"),
            plots.logged_metrics(records, out / "metrics.png", title=f"{run_dir.name}: every logged metric")]
