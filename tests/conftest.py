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


WORDS = "the a ship sea whale captain house sister letter ball dance walk rain garden horse money".split()


def book_corpus(folder: Path, chapters: int = 6, sentences: int = 40) -> Path:
    """Two 'books' with their own vocabularies, chapter headings and 40 sentences a chapter."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for book in range(2):
        parts = []
        for chapter in range(chapters):
            parts.append(f"Chapter {chapter + 1}")
            lines = [" ".join(rng.choice(WORDS[book * 6 : book * 6 + 10], size=rng.integers(3, 9))).capitalize() + "."
                     for _ in range(sentences)]
            parts.append(" ".join(lines))
        (folder / f"book{book}.txt").write_text("\n\n".join(parts) + "\n")
    return folder
