"""The summariser's language-model prior: a ``language_model`` run read once at training (its shape is
recorded in the summariser's ``[model]``, its weights travel in the summariser's checkpoint), checked to
share the summariser's tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch

from seqae.checkpoint import CONFIG_FILE, MODEL_FILE, read_model_file
from seqae.config import ConfigError, read_toml

SHAPE = ("embed_dim", "hidden", "layers")  # the LM's model fields the summariser records as lm_<name>


def read_prior(path: str, tokenizer: Path, where: str, key: str = "model.lm_prior") -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """``({"lm_embed_dim": .., "lm_hidden": .., "lm_layers": ..}, the RecurrentLM's weights)`` of the
    ``language_model`` run at ``path``; a ConfigError naming ``key`` (the recipe key that gave it) when it is not one, or
    when its tokenizer is not ``tokenizer`` (the summariser's)."""
    run = Path(path)
    hint = "train one first: seqae train recipes/lm_austen.toml (or the same recipe on your readable sentences)"
    if not (run / CONFIG_FILE).is_file():
        raise ConfigError(f"{where}: {key} = {run}: not a seqae run directory (no {CONFIG_FILE}); {hint}")
    model = read_toml(run / CONFIG_FILE).get("model", {})
    if model.get("family") != "language_model":
        raise ConfigError(f"{where}: {key} = {run} is a '{model.get('family')}' run, not a 'language_model' run; {hint}")
    theirs = run / "tokenizer.json"
    if not theirs.is_file() or theirs.read_bytes() != Path(tokenizer).read_bytes():
        raise ConfigError(f"{where}: {key} = {run}: its tokenizer ({theirs}) is not the one data.corpus gives this "
                          f"summariser; set data.tokenizer_file = \"{theirs}\" (its words, numbered alike), or train "
                          "the language model on the same corpus with the same data.tokenizer, vocab_size, lowercase and max_tokens")
    tensors, _ = read_model_file(run / MODEL_FILE)
    shape = {f"lm_{name}": int(model[name]) for name in SHAPE}
    return shape, {k[len("lm."):]: v for k, v in tensors.items() if k.startswith("lm.")}
