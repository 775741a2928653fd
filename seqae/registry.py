"""The registry of model families: a table of names to ``"module:attribute"`` strings, each naming the
:class:`~seqae.families.base.Family` that holds everything about one family (its config classes, data
preparation, model, evaluation, figures, codes and commands).

The table is read lazily: a family's folder is imported the first time its name is looked up, so the
modules below the families (the recipe reader among them) never import a family. Adding a family is one
folder under ``seqae/families/`` and one line here (``docs/DESIGN.md``, "Adding a family").
"""

from __future__ import annotations

import importlib
from typing import Any

from seqae.errors import ConfigError

FAMILIES: dict[str, str] = {
    "autoencoder": "seqae.families.autoencoder.family:FAMILY",
    "vae": "seqae.families.vae.family:FAMILY",
    "vqvae": "seqae.families.vqvae.family:FAMILY",
    "infomax": "seqae.families.infomax.family:FAMILY",
    "cpc": "seqae.families.cpc.family:FAMILY",
    "voice_conversion": "seqae.families.voice_conversion.family:FAMILY",
    "quick_thought": "seqae.families.quick_thought.family:FAMILY",
    "skip_thought": "seqae.families.skip_thought.family:FAMILY",
    "summarizer": "seqae.families.summarizer.family:FAMILY",
    "language_model": "seqae.families.language_model.family:FAMILY",
}

# What the command line shows before any family is imported (so ``seqae --help`` imports no torch): the
# commands the families add, each the light module (argparse only) that holds its NAME, HELP and
# add_arguments, and each family's code kinds (``seqae codes --kind``; the first the default). The
# families take their code kinds from here and their commands' help from those modules.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("voice_conversion", "seqae.families.voice_conversion.command_line"),
    "summarize": ("summarizer", "seqae.families.summarizer.command_line"),
}
CODE_KINDS: dict[str, tuple[str, ...]] = {"cpc": ("c", "z"), "voice_conversion": ("content", "speaker")}

_loaded: dict[str, Any] = {}


def family_names() -> list[str]:
    """Every registered family, in the table's order."""
    return list(FAMILIES)


def get_family(name: Any, where: str = "recipe") -> Any:
    """The family registered as ``name`` (imported on first use); a :class:`ConfigError` naming
    ``where`` and the known families otherwise."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ConfigError(f"{where}: model.family = {name!r} is not one of: {', '.join(FAMILIES)}")
    if name not in _loaded:
        module, attribute = FAMILIES[name].split(":")
        _loaded[name] = getattr(importlib.import_module(module), attribute)
    return _loaded[name]


def command_modules() -> dict[str, Any]:
    """The families' commands' light modules (NAME, HELP, add_arguments), by command name."""
    return {name: importlib.import_module(module) for name, (_, module) in COMMANDS.items()}


def all_families() -> list[Any]:
    """Every registered family, loaded (the command line collects their commands and code kinds)."""
    return [get_family(name) for name in FAMILIES]
