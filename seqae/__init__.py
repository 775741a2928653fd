"""seqae: sequence and discrete representation learning with autoencoders and their relatives."""

from seqae.api import evaluate, load, plot, search, train
from seqae.config import ConfigError, Recipe, load_recipe

__version__ = "0.1.0"

__all__ = ["train", "load", "evaluate", "plot", "search", "load_recipe", "Recipe", "ConfigError", "__version__"]
