"""Recipes: TOML files read into dataclasses, with ``--set`` overrides and strict validation.

A recipe has the sections ``[model]``, ``[data]``, ``[train]`` and optionally ``[eval]``. The model
section names its ``family``; the family decides which dataclasses the other sections are read into
(see :mod:`seqae.registry`). Every problem is reported as a :class:`ConfigError` that names the file and
the key, before any training starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqae.errors import ConfigError
from seqae.registry import get_family

__all__ = ["ConfigError", "Recipe", "TrainConfig", "load_recipe", "recipe_from_dict", "choice", "path_field", "dumps_toml"]

SECTIONS = ("model", "data", "train", "eval")


def choice(default: str, *choices: str, doc: str = "") -> Any:
    """A string field restricted to ``choices``."""
    assert default in choices
    return field(default=default, metadata={"choices": choices, "doc": doc})


def path_field(default: str = "", special: tuple[str, ...] = (), doc: str = "", may_be_created: bool = False) -> Any:
    """A file or folder path; relative paths are resolved against the recipe's folder.

    Values in ``special`` (built-in data set names such as ``"digits"``) are kept as they are. A path that
    ``may_be_created`` (a download folder) need not exist yet.
    """
    return field(default=default, metadata={"path": True, "special": special, "doc": doc, "may_be_created": may_be_created})


@dataclass
class TrainConfig:
    """How to train: the same fields for every family."""

    steps: int = 2000  # optimizer steps (of the last stage, for families that train in stages)
    batch_size: int = 64  # global batch per optimizer step, over all processes and accumulation steps
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled L2 weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 100
    schedule: str = choice("cosine", "cosine", "constant", "linear")
    min_lr_ratio: float = 0.0  # the learning rate decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    grad_accum: int = 1  # micro-batches per optimizer step
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:1, ...
    precision: str = choice("fp32", "fp32", "bf16")  # bf16 autocast, CUDA only
    log_every: int = 10
    checkpoint_every: int = 500
    eval_every: int = 0  # 0: no evaluation loss during training
    # the next batch collated in a background thread while a step computes (same weights either way); "auto": on
    # an accelerator only (on a 2-core CPU the thread slowed 7 of 11 recipes' steps: benchmarks/RESULTS.md)
    prefetch: str = choice("auto", "auto", "on", "off")
    # torch.compile the model for the training steps (evaluation stays eager): 1.25x faster steps for infomax and
    # quick-thought on a 2-core CPU, none for the VAE and the VQ-VAE, after 5-30 s of compiling (benchmarks/RESULTS.md);
    # on the CPU it needs a C++ compiler; random draws inside the model come from Inductor's own generator
    compile: bool = False
    tensorboard: bool = False  # every logged number also as a TensorBoard scalar in RUN/tensorboard/ (seqae[tensorboard])

    def validate(self, where: str) -> None:
        positive = ("steps", "batch_size", "grad_accum", "log_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}: train.{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ConfigError(f"{where}: train.lr must be a positive number, got {self.lr}")
        for name in ("warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}: train.{name} must be >= 0, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError(f"{where}: train.weight_decay and train.grad_clip must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"{where}: train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"{where}: train.betas must be two numbers in [0, 1), got {self.betas}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(
                f"{where}: train.batch_size ({self.batch_size}) must be divisible by "
                f"train.grad_accum ({self.grad_accum})"
            )


@dataclass
class Recipe:
    """A resolved recipe: one dataclass per section, and the file it came from."""

    model: Any
    data: Any
    train: TrainConfig
    eval: Any
    source: str = ""

    @property
    def family(self) -> str:
        return self.model.family

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


# ---------------------------------------------------------------------------------------------
# reading


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such recipe file")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file; a recipe is a TOML file")
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not part of the TOML
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {err.start}); a recipe is a TOML file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: malformed TOML: {err}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as TOML (``3``, ``1e-3``, ``[1, 2]``, ``true``)
    and, if that fails, taken as a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.steps=100")
    key, raw = text.split("=", 1)
    keys = key.strip().split(".")
    if len(keys) != 2 or keys[0] not in SECTIONS or not keys[1]:
        raise ConfigError(
            f"--set {text!r}: the key must be SECTION.NAME with SECTION one of {', '.join(SECTIONS)}"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return keys, value


class CommandLineValue(str):
    """A string given with ``--set`` (or ``overrides=``): if its key is a path field, a relative value is
    taken from the current folder, not the recipe's; any other key keeps it as it is."""


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Return a copy of ``raw`` with overrides applied (``{"train.steps": 10}`` or ``["train.steps=10"]``)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if not overrides:
        return out
    items: list[tuple[list[str], Any]]
    if isinstance(overrides, dict):
        items = []
        for key, value in overrides.items():
            keys = key.split(".")
            if len(keys) != 2 or keys[0] not in SECTIONS:
                raise ConfigError(f"override {key!r}: the key must be SECTION.NAME, e.g. train.steps")
            items.append((keys, value))
    else:
        items = [parse_override(text) for text in overrides]
    for (section, name), value in items:
        if isinstance(value, str):
            value = CommandLineValue(value)  # a path among them is relative to the current folder (build_dataclass)
        target = out.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"override {section}.{name}: [{section}] is not a table")
        target[name] = value
    return out


def load_recipe(
    path: str | os.PathLike,
    overrides: dict[str, Any] | list[str] | None = None,
    check_paths: bool = True,
) -> Recipe:
    """Read a recipe file, apply overrides, and validate every section.

    Raises :class:`ConfigError` naming the file and the key for unknown keys, wrong types, bad values
    and missing files.
    """
    path = Path(path)
    raw = apply_overrides(read_toml(path), overrides)
    return recipe_from_dict(raw, str(path), base_dir=path.resolve().parent, check_paths=check_paths)


def recipe_from_dict(
    raw: dict[str, Any], where: str, base_dir: Path | None = None, check_paths: bool = True
) -> Recipe:
    """Validate a recipe dictionary. ``check_paths=False`` (reading a run's saved config) skips the
    check that data files still exist, so a trained model loads without its training data."""
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown section [{unknown[0]}]; a recipe has the sections "
            + ", ".join(f"[{s}]" for s in SECTIONS)
        )
    for name in SECTIONS:
        if name in raw and not isinstance(raw[name], dict):
            raise ConfigError(f"{where}: '{name}' must be a table ([{name}])")
    model_raw = raw.get("model")
    if not model_raw or "family" not in model_raw:
        raise ConfigError(f"{where}: [model] needs a 'family' key (e.g. family = \"autoencoder\")")
    family_name = model_raw["family"]
    family = get_family(family_name, where)
    base = base_dir or Path.cwd()
    args = (where, base, check_paths)
    model = build_dataclass(family.model_config, model_raw, "model", *args)
    data_config = family.data_config_for(model) if family.data_config_for else family.data_config
    data = build_dataclass(data_config, raw.get("data", {}), "data", *args)
    train = build_dataclass(TrainConfig, raw.get("train", {}), "train", *args)
    evals = build_dataclass(family.eval_config, raw.get("eval", {}), "eval", *args)
    recipe = Recipe(model=model, data=data, train=train, eval=evals, source=where)
    for section in (model, data, train, evals):
        if hasattr(section, "validate"):
            section.validate(where)
    return recipe


def build_dataclass(
    cls: type, values: dict[str, Any], section: str, where: str, base_dir: Path, check_paths: bool = True
) -> Any:
    """Build ``cls`` from a TOML table, checking every key and type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key '{section}.{key}'; [{section}] takes: {known}")
        f = fields[key]
        value = check_type(value, hints[key], f"{section}.{key}", where)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(
                f"{where}: {section}.{key} = {value!r} is not one of: {', '.join(map(repr, choices))}"
            )
        if f.metadata.get("path") and value and value not in f.metadata.get("special", ()):
            resolved = Path(value).expanduser()
            if not resolved.is_absolute():
                base = Path.cwd() if isinstance(values[key], CommandLineValue) else base_dir
                resolved = (base / resolved).resolve()
            if check_paths and not resolved.exists() and not f.metadata.get("may_be_created"):
                raise ConfigError(f"{where}: {section}.{key}: no such file or folder: {resolved}")
            value = str(resolved)
        kwargs[key] = value
    return cls(**kwargs)


def check_type(value: Any, hint: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__} {value!r}")
        return [check_type(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {type(value).__name__} {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {hint} for {key}")  # a bug in a config class


# ---------------------------------------------------------------------------------------------
# writing


def dumps_toml(tables: dict[str, dict[str, Any]]) -> str:
    """Write a recipe dictionary (tables of scalars and lists) as TOML."""
    lines: list[str] = []
    for name, table in tables.items():
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
