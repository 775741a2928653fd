"""What every family provides (:class:`Family`) and what its data preparation returns (:class:`Prepared`),
with the helpers several families share for reading evaluation manifests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from seqae.config import ConfigError, Recipe
from seqae.datasets.audio import list_utterances
from seqae.datasets.base import BatchSource


@dataclass(frozen=True)
class Inferred:
    """What data preparation learns from the data and the recipe records (``config.toml`` keeps it, so a
    trained model rebuilds without its data). ``None``: not inferred by this family."""

    input_dim: int | None = None  # model.input_dim: features per example, or mel bands
    vocab_size: int | None = None  # model.vocab_size: the tokenizer's
    speakers: list[str] | None = None  # model.speakers: the training speakers, sorted
    image_shape: list[int] | None = None  # data.image_shape; also model.image_shape where the model has one left empty
    scale: float | None = None  # data.scale: what the inputs were divided by
    mel_mean: float | None = None  # data.mel_mean, data.mel_std: the training files' log-mel statistics
    mel_std: float | None = None
    model_fields: dict[str, Any] | None = None  # other [model] fields a family records (the summariser's LM prior's shape)


MODEL_FIELDS = ("input_dim", "vocab_size", "speakers")
DATA_FIELDS = ("image_shape", "scale", "mel_mean", "mel_std")


def apply_inferred(recipe: Recipe, inferred: Inferred) -> None:
    """Write ``inferred`` into ``recipe``: the one place where data preparation changes a recipe."""
    for section, names in ((recipe.model, MODEL_FIELDS), (recipe.data, DATA_FIELDS)):
        for name in names:
            value = getattr(inferred, name)
            if value is not None:
                setattr(section, name, value)
    for name, value in (inferred.model_fields or {}).items():
        setattr(recipe.model, name, value)
    if inferred.image_shape is not None and hasattr(recipe.model, "image_shape") and not recipe.model.image_shape:
        recipe.model.image_shape = list(inferred.image_shape)


@dataclass(frozen=True)
class Utterances:
    """The audio families' extra data: the utterances of each split."""

    train: list[Any]
    test: list[Any]


@dataclass
class Prepared:
    """The data of a recipe, ready for the Trainer and the evaluation; ``extra`` is the family's typed
    rest (:class:`Utterances`, the text families' corpus, the arrays), ``inferred`` what the recipe records."""

    train: BatchSource
    test: BatchSource
    extra: Any = None
    inferred: Inferred = field(default_factory=Inferred)
    run_files: dict[str, Path] = field(default_factory=dict)  # copied into the run directory (tokenizer.json)
    fingerprint: str = ""  # of the data read; recorded in run.json, checked on resume and evaluation
    data_name: str = ""  # the data's file or folder, for messages


@dataclass(frozen=True)
class Command:
    """A command a family adds to ``seqae`` (``seqae convert``): its name, help line, a function adding
    its arguments to an ``argparse`` parser, and one running it (``run(args) -> exit status``)."""

    name: str
    help: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int]


@dataclass(frozen=True)
class Family:
    """Everything about one family that the Trainer, the API and the command line use."""

    name: str
    model_config: type
    data_config: type
    eval_config: type
    prepare: Callable[[Recipe], Prepared]  # loads data and fills inferred fields (input_dim, scale) in the recipe
    build_model: Callable[[Recipe], nn.Module]
    evaluate: Callable[..., dict[str, Any]]  # (model, recipe, prepared, **options)
    figures: Callable[[nn.Module, Recipe, Prepared, Path], list[Path]]
    codes: Callable[[nn.Module, Recipe, Path], np.ndarray]
    scores: Callable[[nn.Module, Recipe, Path], np.ndarray] | None = None
    data_config_for: Callable[[Any], type] | None = None  # when [data] depends on [model] (vqvae: images or mel)
    on_load: Callable[[nn.Module, Recipe, Path], None] | None = None  # attach run files (the tokenizer)
    # before training (not on resume): weights the family brings from elsewhere (the summariser's LM prior)
    initialise: Callable[[nn.Module, Prepared], None] | None = None
    eval_needs_training_data: bool = True  # False: evaluate/figures get prepared=None (they read their own manifests)
    eval_options: tuple[str, ...] = ()  # what evaluate takes beyond the recipe: "tasks" (--task), "manifest" (--manifest)
    code_kinds: tuple[str, ...] = ()  # the choices of `codes(..., kind=)`, the first the default (seqae codes --kind)
    codes_by_file: Callable[[nn.Module, Recipe, Path], dict[str, np.ndarray]] | None = None  # `seqae codes -o X.npz`
    commands: tuple[Command, ...] = ()  # commands the family adds to `seqae`
    embeds: bool = False  # a sentence encoder: `seqae embed` instead of `seqae codes`
    # `seqae search`: (names, vectors (items, dim)) of a collection file or folder (sentence encoders: also a list of texts)
    search_items: Callable[[nn.Module, Recipe, Any], tuple[list[str], np.ndarray]] | None = None


def resolve_manifests(recipe: Recipe, manifest: str | list[str] | None) -> list[Path]:
    """``--manifest`` (one or several), else the recipe's ``eval.manifest`` (and ``eval.unseen_manifest``),
    else ``data.test_source``."""
    if isinstance(manifest, (str, Path)):
        manifest = [manifest]
    chosen = list(manifest or [])
    if not chosen:
        chosen = [m for m in (recipe.eval.manifest, getattr(recipe.eval, "unseen_manifest", "")) if m] or (
            [recipe.data.test_source] if recipe.data.test_source else [])
    if not chosen:
        raise ConfigError("no manifest to evaluate on: pass --manifest test.jsonl (or set eval.manifest)")
    return [Path(m) for m in chosen]


def manifest_utterances(paths: list[Path]):
    return [u for path in paths for u in list_utterances(path)]


def prepare(family: Family, recipe: Recipe) -> Prepared:
    """``family``'s data for ``recipe``, with what it inferred written into the recipe (before the
    model is built from it)."""
    prepared = family.prepare(recipe)
    apply_inferred(recipe, prepared.inferred)
    return prepared


def utterance_items(path: Path, vector: Callable[[Path], np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Search items of an audio file, folder or manifest: the audio paths and ``vector(audio_path)`` of each."""
    utterances = list_utterances(path)
    return [str(u.audio) for u in utterances], np.stack([vector(u.audio) for u in utterances])
