"""MNIST quality runs (slow: ``python -m pytest -m slow -s tests/test_quality_mnist.py``). They need the four
MNIST files in ``$SEQAE_DATA/mnist`` (or ``~/.cache/seqae/mnist``); offline without them they are skipped.
Each trains its recipe (about 15 min for infomax on one core) and checks the figures of docs/RESULTS.md,
"MNIST"."""

import pytest

import seqae
from seqae.datasets.mnist import FILES, mnist_folder

from conftest import ROOT

pytestmark = pytest.mark.slow


def need_mnist():
    folder = mnist_folder("")
    if not all((folder / f"{f.name}.gz").exists() or (folder / f.name).exists() for f in FILES.values()):
        pytest.skip(f"the MNIST files are not in {folder}; put them there (or set $SEQAE_DATA) to run this test")


def test_infomax_beats_the_autoencoder_and_the_pixels_with_ten_labels_per_class(tmp_path):
    """Deep InfoMax's 64-d code: 0.838 +- 0.017 at 10 labels per class; the stacked autoencoder's 128-d
    code 0.730 +- 0.014 and the pixels 0.720 +- 0.014 (5 labelled draws)."""
    need_mnist()
    infomax = seqae.evaluate(seqae.train(ROOT / "recipes" / "infomax_mnist.toml", out=tmp_path / "infomax"))
    ae = seqae.evaluate(seqae.train(ROOT / "recipes" / "ae_mnist.toml", out=tmp_path / "ae"))
    margin = 2 * infomax["infomax_linear_10_sd"]
    assert infomax["infomax_linear_10"] > ae["codes_linear_10"] + margin
    assert infomax["infomax_linear_10"] > infomax["pixels_linear_10"] + margin
