"""MNIST: the four IDX files read from a folder (gzip or not) and checked against their digests, downloaded
from a mirror list when absent (served here through file:// URLs from tiny files made in the test),
resumed from a partial download, and every failure a named error; the standard 60k/10k split."""

import gzip
import hashlib

import numpy as np
import pytest

import seqae
from seqae.datasets import mnist
from seqae.datasets.arrays import ArrayDataConfig, build_splits
from seqae.datasets.base import DataError

from conftest import write_recipe


def idx_bytes(array: np.ndarray, images: bool) -> bytes:
    dims = array.shape
    head = (2051 if images else 2049).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + array.astype(np.uint8).tobytes()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A folder of tiny MNIST-format files (24 training, 8 test images) served as file://, with the
    module's digests and counts replaced by theirs."""
    rng = np.random.default_rng(0)
    served = tmp_path / "mirror"
    served.mkdir()
    arrays = {"train_images": rng.integers(0, 256, (24, 28, 28)), "train_labels": np.arange(24) % 4,
              "test_images": rng.integers(0, 256, (8, 28, 28)), "test_labels": np.arange(8) % 4}
    files = {}
    for key, spec in mnist.FILES.items():
        raw = idx_bytes(arrays[key], "images" in key)
        packed = gzip.compress(raw, mtime=0)
        (served / f"{spec.name}.gz").write_bytes(packed)
        files[key] = mnist.MnistFile(spec.name, hashlib.sha256(packed).hexdigest(), hashlib.sha256(raw).hexdigest(),
                                     len(arrays[key]))
    monkeypatch.setattr(mnist, "FILES", files)
    return served, arrays


def config(folder, served, **kw) -> ArrayDataConfig:
    return ArrayDataConfig(source="mnist", path=str(folder), mirrors=[served.as_uri() + "/"], **kw)


def test_downloaded_from_a_mirror_checked_and_split_as_published(mirror, tmp_path):
    served, arrays = mirror
    train, test, data = build_splits(config(tmp_path / "data", served))
    assert len(train) == 24 and len(test) == 8 and data.image_shape == (28, 28)
    np.testing.assert_allclose(train.x.numpy()[3], arrays["train_images"][3].reshape(-1) / 255.0, rtol=1e-6)
    assert test.y.tolist() == arrays["test_labels"].tolist()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(f"{s.name}.gz" for s in mnist.FILES.values())
    for spec in mnist.FILES.values():  # uncompressed files are checked by their own digest
        gz = tmp_path / "data" / f"{spec.name}.gz"
        (tmp_path / "data" / spec.name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(build_splits(config(tmp_path / "data", served, download=False))[0]) == 24


def test_a_partial_download_is_resumed(mirror, tmp_path):
    served, _ = mirror
    folder = tmp_path / "data"
    folder.mkdir()
    name = mnist.FILES["train_images"].name
    whole = (served / f"{name}.gz").read_bytes()
    (folder / f"{name}.gz.part").write_bytes(whole[: len(whole) // 2])
    build_splits(config(folder, served))
    assert (folder / f"{name}.gz").read_bytes() == whole and not (folder / f"{name}.gz.part").exists()


def test_a_damaged_download_or_file_is_a_named_error_and_nothing_bad_is_kept(mirror, tmp_path):
    served, _ = mirror
    name = mnist.FILES["test_labels"].name
    good = (served / f"{name}.gz").read_bytes()
    (served / f"{name}.gz").write_bytes(good[:-3] + b"xyz")
    with pytest.raises(DataError, match=f"{name}.gz has SHA-256 .* not the published"):
        build_splits(config(tmp_path / "data", served))
    assert not (tmp_path / "data" / f"{name}.gz").exists() and not (tmp_path / "data" / f"{name}.gz.part").exists()
    (tmp_path / "data" / f"{name}.gz").write_bytes(good[:-1])  # a damaged file of the user's: named, kept
    with pytest.raises(DataError, match=f"{name}.gz: SHA-256 .* delete it"):
        build_splits(config(tmp_path / "data", served))
    assert (tmp_path / "data" / f"{name}.gz").read_bytes() == good[:-1]


def test_offline_the_error_says_which_files_to_put_where(mirror, tmp_path):
    empty = tmp_path / "nowhere"
    empty.mkdir()
    with pytest.raises(DataError, match="could not be downloaded.*Offline, put the four MNIST files") as err:
        build_splits(config(tmp_path / "data", empty))
    assert str(tmp_path / "data") in str(err.value) and "t10k-images-idx3-ubyte.gz" in str(err.value)
    with pytest.raises(DataError, match="data.download is false"):
        build_splits(config(tmp_path / "other", mirror[0], download=False))


def test_the_default_folder_is_under_seqae_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQAE_DATA", str(tmp_path))
    assert mnist.mnist_folder("") == tmp_path / "mnist"
    monkeypatch.delenv("SEQAE_DATA")
    assert mnist.mnist_folder("").parts[-3:] == (".cache", "seqae", "mnist")


def test_mnist_options_elsewhere_are_recipe_errors(tmp_path):
    from seqae.config import ConfigError

    with pytest.raises(ConfigError, match="data.path and data.mirrors are for source = 'mnist'"):
        ArrayDataConfig(source="digits", path="x").validate("r.toml")
    with pytest.raises(ConfigError, match="'ftp://m' is not an https"):
        ArrayDataConfig(source="mnist", mirrors=["ftp://m"]).validate("r.toml")


def test_an_autoencoder_trains_on_mnist_from_a_recipe(mirror, tmp_path):
    served, _ = mirror
    recipe = write_recipe(tmp_path, f"""
[model]
family = "autoencoder"
hidden = [16, 4]

[data]
source = "mnist"
path = "{tmp_path / 'data'}"
mirrors = ["{served.as_uri()}/"]

[train]
steps = 3
batch_size = 8
warmup_steps = 1
log_every = 1
checkpoint_every = 3
""")
    run = seqae.train(recipe, out=tmp_path / "run")
    result = seqae.evaluate(run)
    assert result["test_examples"] == 8 and np.isfinite(result["test_mse"])
