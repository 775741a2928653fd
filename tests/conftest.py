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


def run_cli(argv, capsys):
    """``seqae`` in this process: (exit status, stderr)."""
    from seqae.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def expect_error(argv, capsys, *named):
    """A clear error: exit status 1, ``seqae: error:`` with every text in ``named`` and no traceback."""
    code, err = run_cli(argv, capsys)
    assert code == 1, err
    assert err.startswith("seqae: error:") and "Traceback" not in err, err
    for text in named:
        assert str(text) in err, (text, err)
    return err


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


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Tiny trained runs (2 steps) of an array, a sentence, a speech and a voice-conversion family, with
    their data, shared by the hostile-input and run-directory suites."""
    import seqae
    from test_cpc import TINY_CPC, synthetic_corpus
    from test_sentence_encoders import TINY_QT
    from test_voice_conversion import TINY_VC, parallel_corpus

    root = tmp_path_factory.mktemp("hostile")
    corpus = book_corpus(root / "corpus")
    speech = root / "speech"
    speech.mkdir()
    manifest = synthetic_corpus(speech)
    vc = root / "vc_data"
    vc.mkdir()
    vc_train, vc_unseen = parallel_corpus(vc)
    short = "steps = 2"
    recipes = {
        "ae": TINY_AE.replace("steps = 40", short),
        "qt": TINY_QT.replace("CORPUS", str(corpus)).replace("steps = 12", short),
        "cpc": TINY_CPC.replace("MANIFEST", str(manifest)).replace("steps = 8", short),
        "vc": TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(vc_train)).replace("UNSEEN", str(vc_unseen)).replace("steps = 12", short),
    }
    out = {name: seqae.train(write_recipe(root, text, f"{name}.toml"), out=root / name) for name, text in recipes.items()}
    out.update(corpus=corpus, speech=speech, manifest=manifest, wav=speech / "low_0.wav", vc_wav=vc / "low_0.wav", root=root)
    return out
