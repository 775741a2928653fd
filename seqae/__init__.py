"""seqae: sequence and discrete representation learning with autoencoders and their relatives."""

from seqae.config import ConfigError, Recipe, load_recipe

__version__ = "0.1.0"

__all__ = ["train", "load", "evaluate", "plot", "search", "load_recipe", "Recipe", "ConfigError", "__version__"]

_API = ("train", "load", "evaluate", "plot", "search")


def __getattr__(name: str):
    """``seqae.train`` and the rest of the API, imported on first use: ``import seqae`` (and ``seqae --help``)
    does not import torch."""
    if name in _API:
        from seqae import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
