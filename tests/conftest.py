"""Fixtures shared by the test modules; the tiny corpora and recipes they train on live in ``tiny.py``."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tiny import ROOT, TINY_AE, TINY_CPC, TINY_QT, TINY_VC, book_corpus, parallel_corpus, synthetic_corpus, write_recipe

__all__ = ["ROOT", "TINY_AE", "book_corpus", "write_recipe", "run_cli", "expect_error"]

THREADS_SET = "OMP_NUM_THREADS" in os.environ  # the user's own choice, kept for every test
os.environ.setdefault("OMP_NUM_THREADS", "1")  # small models: threads cost more than they save
# the tokenised-corpus cache of the tests lives in a fresh folder, not in the user's ~/.cache
CACHE = tempfile.mkdtemp(prefix="seqae-test-cache-")
os.environ["SEQAE_CACHE"] = CACHE


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """The slow quality runs (``-m slow -n 0``) train for real: every core, unless OMP_NUM_THREADS was set."""
    if item.get_closest_marker("slow") is not None and not THREADS_SET and "PYTEST_XDIST_WORKER" not in os.environ:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(CACHE, ignore_errors=True)


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A fast autoencoder recipe on the bundled digits."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_AE)
    return path


def run_cli(argv, capsys):
    """``seqae`` in this process: (exit status, stderr)."""
    from seqae.cli import main

    capsys.readouterr()  # only this command's output
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


@pytest.fixture(scope="session")
def vc_corpus(tmp_path_factory):
    """:func:`tiny.parallel_corpus`: (training manifest, unseen-speaker manifest), made once a session."""
    return parallel_corpus(tmp_path_factory.mktemp("vc"))


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Tiny trained runs (2 steps) of an array, a sentence, a speech and a voice-conversion family, with
    their data, shared by the hostile-input and run-directory suites."""
    import seqae

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
        "vc": TINY_VC.replace("METHOD", "adain")
        .replace("TRAIN", str(vc_train))
        .replace("UNSEEN", str(vc_unseen))
        .replace("steps = 12", short),
    }
    out = {name: seqae.train(write_recipe(root, text, f"{name}.toml"), out=root / name) for name, text in recipes.items()}
    out.update(corpus=corpus, speech=speech, manifest=manifest, wav=speech / "low_0.wav", vc_wav=vc / "low_0.wav", root=root)
    return out
