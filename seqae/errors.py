"""The recipe-level error, at the bottom of the package: everything above may raise it."""


class ConfigError(ValueError):
    """A recipe or a run directory's config is wrong; the message names the file and the key."""
