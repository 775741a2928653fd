import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small models: threads cost more than they save
# the tokenised-corpus cache of the tests lives in a fresh folder, not in the user's ~/.cache
os.environ["SEQAE_CACHE"] = tempfile.mkdtemp(prefix="seqae-test-cache-")


TINY_AE = """
[model]
family = "autoencoder"
hidden = [32, 8]
activation = "sigmoid"

[data]
source = "digits"

[train]
steps = 40
batch_size = 32
lr = 3e-3
warmup_steps = 5
log_every = 5
checkpoint_every = 20
"""


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A fast autoencoder recipe on the bundled digits."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_AE)
    return path


def write_recipe(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
