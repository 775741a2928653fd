"""Array and image data: scikit-learn's bundled digits, MNIST (:mod:`seqae.datasets.mnist`), ``.npy``/``.npz``
files and MNIST-style IDX files.

Every source becomes a float32 matrix ``(examples, features)`` with values scaled to about [0, 1], an
optional integer label vector, and the image shape used for figures.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqae.config import ConfigError, path_field
from seqae.datasets.base import BatchSource, DataError, check_input_file

DIGITS = "digits"
MNIST = "mnist"

# IDX type codes (http://yann.lecun.com/exdb/mnist/ file format).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class ArrayDataConfig:
    """``[data]`` for array families (autoencoder, vae, vqvae on images)."""

    source: str = path_field(DIGITS, special=(DIGITS, MNIST), doc="'digits', 'mnist', or a .npy/.npz/IDX file")
    labels: str = path_field("", doc="optional labels file (.npy or IDX) for a .npy/IDX source")
    test_fraction: float = 0.2  # held-out share, stratified by label when labels exist
    split_seed: int = 0
    exclude_classes: list[int] = field(default_factory=list)  # left out of the training split (anomaly)
    scale: float = 0.0  # inputs are multiplied by this; 0 chooses it from the data (1/16 digits, 1/255 bytes)
    image_shape: list[int] = field(default_factory=list)  # for figures; [] infers it (8x8, 28x28, ...)
    path: str = path_field("", doc="mnist: the folder of its four IDX files ('': $SEQAE_DATA/mnist, else ~/.cache/seqae/mnist)",
                           may_be_created=True)
    download: bool = True  # mnist: download missing files from data.mirrors
    mirrors: list[str] = field(default_factory=list)  # mnist: base URLs tried in order ([]: the built-in list)
    labelled_per_class: int = 0  # > 0: a stage that trains on labels (fine-tuning) sees only this many per class
    labelled_seed: int = 0  # which labelled examples those are

    def validate(self, where: str) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{where}: data.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.scale < 0:
            raise ConfigError(f"{where}: data.scale must be >= 0, got {self.scale}")
        if self.labelled_per_class < 0:
            raise ConfigError(f"{where}: data.labelled_per_class must be >= 0 (0: every label), got {self.labelled_per_class}")
        if self.source != MNIST and (self.path or self.mirrors):
            raise ConfigError(f"{where}: data.path and data.mirrors are for source = 'mnist' (the source is {self.source!r})")
        for url in self.mirrors:
            if not url.startswith(("https://", "http://", "file://")):
                raise ConfigError(f"{where}: data.mirrors: {url!r} is not an https://, http:// or file:// URL")


@dataclass
class ArrayData:
    """A whole array data set in memory."""

    x: np.ndarray  # (examples, features) float32
    y: np.ndarray | None  # (examples,) int64
    image_shape: tuple[int, ...]
    scale: float
    name: str
    fixed_split: tuple[np.ndarray, np.ndarray] | None = None  # (train indices, test indices) of a standard split


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            header = fh.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in IDX_DTYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {header.hex() or 'empty'})")
            ndim = header[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
            dtype = np.dtype(IDX_DTYPES[header[2]])
            expected = int(np.prod(dims)) * dtype.itemsize
            payload = fh.read()
    except (OSError, EOFError, struct.error) as err:
        raise DataError(f"{path}: cannot read IDX file: {err}") from None
    if len(payload) != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes of data, file has {len(payload)}")
    return np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_array_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``.npy``, ``.npz`` (keys ``x`` and optional ``y``; else the first array) or IDX."""
    path = check_input_file(path)
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False), None
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if not keys:
                    raise DataError(f"{path}: the .npz file holds no arrays")
                x = npz["x"] if "x" in keys else npz[keys[0]]
                y = npz["y"] if "y" in keys else None
                return x, y
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read array file: {err}") from None
    if "idx" in name or name.endswith("-ubyte") or name.endswith("-ubyte.gz"):
        return read_idx(path), None
    raise DataError(f"{path}: unknown array format; use .npy, .npz (key 'x', optional 'y') or an IDX file")


def as_feature_matrix(raw: np.ndarray, where: str, scale: float = 0.0) -> tuple[np.ndarray, float, tuple]:
    """Flatten ``(N, ...)`` to ``(N, features)`` float32, check it is finite, and scale it.

    Returns the matrix, the scale used and the per-example shape (for figures).
    """
    if raw.dtype.kind not in "iuf" and raw.dtype.kind != "b":
        raise DataError(f"{where}: array of dtype {raw.dtype} is not numeric")
    if raw.ndim < 2:
        raise DataError(f"{where}: expected an array of shape (examples, features...), got shape {raw.shape}")
    if raw.shape[0] == 0 or raw[0].size == 0:
        raise DataError(f"{where}: the array is empty (shape {raw.shape})")
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw)
        if bad.any():
            first = np.argwhere(bad)[0]
            raise DataError(
                f"{where}: {int(bad.sum())} values are NaN or infinite (first at index {tuple(int(i) for i in first)}); "
                "clean the data first"
            )
    if scale == 0.0:
        scale = 1.0 / 255.0 if raw.dtype == np.uint8 else 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        x = raw.reshape(raw.shape[0], -1).astype(np.float32) * np.float32(scale)
    bad = ~np.isfinite(x)
    if bad.any():  # finite in float64, but beyond float32's range (about 3.4e38) once cast and scaled
        first = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), raw.shape)
        raise DataError(
            f"{where}: {int(bad.sum())} values are too large for 32-bit floats (first at index {tuple(int(i) for i in first)}, "
            f"{raw[first]!r}); rescale the data"
        )
    return x, float(scale), tuple(raw.shape[1:])


def guess_image_shape(per_example: tuple, width: int) -> tuple[int, ...]:
    if len(per_example) >= 2:
        return tuple(per_example)
    side = int(round(width**0.5))
    return (side, side) if side * side == width else (1, width)


def load_arrays(config: ArrayDataConfig) -> ArrayData:
    """Load the data set a ``[data]`` section names (the whole thing, before the split)."""
    if config.source == DIGITS:
        from sklearn.datasets import load_digits

        digits = load_digits()
        scale = config.scale or 1.0 / 16.0  # digits pixels are counts 0..16
        x = (digits.data * scale).astype(np.float32)
        return ArrayData(x, digits.target.astype(np.int64), (8, 8), scale, "digits")
    if config.source == MNIST:
        return load_mnist_arrays(config)
    raw, y = read_array_file(config.source)
    x, scale, per_example = as_feature_matrix(raw, config.source, config.scale)
    if config.labels:
        labels_raw, _ = read_array_file(config.labels)
        y = labels_raw
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise DataError(
                f"{config.labels or config.source}: {y.shape[0]} labels for {x.shape[0]} examples"
            )
        if y.dtype.kind not in "iub":
            raise DataError(f"{config.labels or config.source}: labels must be integers, got {y.dtype}")
        y = y.astype(np.int64)
    shape = tuple(config.image_shape) or guess_image_shape(per_example, x.shape[1])
    return ArrayData(x, y, shape, scale, Path(config.source).name)


def load_mnist_arrays(config: ArrayDataConfig) -> ArrayData:
    """MNIST's 70,000 images (:mod:`seqae.datasets.mnist`) with its standard 60,000/10,000 split."""
    from seqae.datasets.mnist import load_mnist

    train_x, train_y, test_x, test_y = load_mnist(config.path, config.mirrors, config.download)
    scale = config.scale or 1.0 / 255.0
    x = (np.concatenate([train_x, test_x]) * scale).astype(np.float32)
    split = (np.arange(len(train_x)), np.arange(len(train_x), len(x)))
    return ArrayData(x, np.concatenate([train_y, test_y]), (28, 28), scale, "mnist", fixed_split=split)


def split_indices(data: ArrayData, config: ArrayDataConfig) -> tuple[np.ndarray, np.ndarray]:
    """The train/test split: the data set's standard one (MNIST), else a fixed random one stratified by
    label where labels exist."""
    if data.fixed_split is not None:
        return exclude(data, config, *data.fixed_split)
    from sklearn.model_selection import train_test_split

    n = data.x.shape[0]
    if n < 2:
        raise DataError(f"{data.name}: {n} example(s); need at least 2 to split into train and test")
    stratify = data.y
    if stratify is not None:
        counts = np.unique(stratify, return_counts=True)[1]
        n_test = int(np.ceil(config.test_fraction * n))
        if counts.min() < 2 or n_test < len(counts) or n - n_test < len(counts):
            stratify = None  # too few examples of some class, or too few test examples, to stratify
    train_idx, test_idx = train_test_split(
        np.arange(n), test_size=config.test_fraction, random_state=config.split_seed, stratify=stratify
    )
    return exclude(data, config, np.sort(train_idx), np.sort(test_idx))


def exclude(data: ArrayData, config: ArrayDataConfig, train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data.exclude_classes`` left out of the training split."""
    if config.exclude_classes:
        if data.y is None:
            raise ConfigError("data.exclude_classes needs labelled data")
        train_idx = train_idx[~np.isin(data.y[train_idx], config.exclude_classes)]
    return train_idx, test_idx


def labelled_rows(y: np.ndarray, per_class: int, seed: int, name: str) -> np.ndarray:
    """``per_class`` rows of each label, drawn with ``seed``, sorted; a class with fewer is a DataError."""
    rng = np.random.default_rng([seed, per_class])
    picks = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        if len(rows) < per_class:
            raise DataError(f"{name}: class {label} has {len(rows)} training examples, fewer than data.labelled_per_class = "
                            f"{per_class}; lower it")
        picks.append(rng.choice(rows, per_class, replace=False))
    return np.sort(np.concatenate(picks))


class ArraySource(BatchSource):
    """Rows of an in-memory matrix; batches are ``{"x": (B, features), "y": (B,)}``."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, name: str = "arrays", labelled: np.ndarray | None = None):
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self.y = None if y is None else torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.name = name
        self.labelled = labelled  # rows whose labels a fine-tuning stage may see (None: every row)
        self.subsets: dict[str, BatchSource] = {}

    def subset(self, name: str) -> BatchSource:
        """``"labelled"``: the rows of ``data.labelled_per_class`` (the same object each call); else itself."""
        if name != "labelled" or self.labelled is None:
            return self
        if name not in self.subsets:
            rows = self.labelled
            self.subsets[name] = ArraySource(self.x[rows].numpy(), self.y[rows].numpy(),
                                             f"{self.name}, {len(rows)} labelled examples")
        return self.subsets[name]

    def __len__(self) -> int:
        return self.x.shape[0]

    def describe(self) -> str:
        return self.name

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        idx = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        batch = {"x": self.x[idx]}
        if self.y is not None:
            batch["y"] = self.y[idx]
        return batch


def build_splits(config: ArrayDataConfig) -> tuple[ArraySource, ArraySource, ArrayData]:
    """Train and test sources for a ``[data]`` section, plus the full data (for its shape and scale)."""
    data = load_arrays(config)
    train_idx, test_idx = split_indices(data, config)
    y = data.y
    labelled = None
    if config.labelled_per_class:
        if y is None:
            raise ConfigError(f"data.labelled_per_class = {config.labelled_per_class} needs labelled data "
                              "(data.labels, or 'y' in the .npz)")
        labelled = labelled_rows(y[train_idx], config.labelled_per_class, config.labelled_seed, data.name)
    train = ArraySource(data.x[train_idx], None if y is None else y[train_idx], f"{data.name} (train split)", labelled)
    test = ArraySource(data.x[test_idx], None if y is None else y[test_idx], f"{data.name} (test split)")
    return train, test, data


def read_input(path: str | Path, scale: float, input_dim: int) -> np.ndarray:
    """Read new input for ``seqae codes``/``score``: the same scaling the model was trained with."""
    raw, _ = read_array_file(path)
    if raw.ndim == 1:
        raw = raw[None, :]
    x, _, _ = as_feature_matrix(raw, str(path), scale)
    if x.shape[1] != input_dim:
        raise DataError(
            f"{path}: examples have {x.shape[1]} features, the model was trained on {input_dim}"
        )
    return x
