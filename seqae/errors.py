"""The errors a user can fix, at the bottom of the package (everything above may raise them, and the command
line catches them without importing torch): each message names the file, line or key and says what to do."""


class ConfigError(ValueError):
    """A recipe or a run directory's config is wrong; the message names the file and the key."""


class DataError(ValueError):
    """Input data that cannot be used; the message names the file (and line or key)."""


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, say); the message says why and what was kept."""
