import gzip
import struct

import numpy as np
import pytest

from seqae.datasets.arrays import ArrayDataConfig, as_feature_matrix, build_splits, read_array_file, read_idx, read_input
from seqae.datasets.base import DataError


def write_idx(path, array):
    codes = {np.uint8: 0x08, np.float32: 0x0D}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + payload)


def test_idx_images_and_labels_round_trip(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), images)
    floats = np.random.default_rng(0).random((2, 5)).astype(np.float32)
    write_idx(tmp_path / "x.idx", floats)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), floats)


def test_truncated_idx_file_is_reported(tmp_path):
    write_idx(tmp_path / "a-idx3-ubyte", np.zeros((3, 4, 4), dtype=np.uint8))
    data = (tmp_path / "a-idx3-ubyte").read_bytes()
    (tmp_path / "a-idx3-ubyte").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"a-idx3-ubyte: IDX header promises 48 bytes of data, file has 43"):
        read_idx(tmp_path / "a-idx3-ubyte")
    (tmp_path / "b-idx3-ubyte").write_bytes(b"hello world")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "b-idx3-ubyte")


def test_idx_data_set_trains_with_bytes_scaled_to_unit_range(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 6), dtype=np.uint8)
    labels = np.repeat(np.arange(4, dtype=np.uint8), 10)
    write_idx(tmp_path / "img-idx3-ubyte", images)
    write_idx(tmp_path / "lab-idx1-ubyte", labels)
    config = ArrayDataConfig(source=str(tmp_path / "img-idx3-ubyte"), labels=str(tmp_path / "lab-idx1-ubyte"))
    train, test, data = build_splits(config)
    assert data.image_shape == (6, 6) and data.scale == pytest.approx(1 / 255)
    assert len(train) == 32 and len(test) == 8
    assert float(train.x.max()) <= 1.0
    # stratified: two test examples of each class
    assert np.bincount(test.y.numpy()).tolist() == [2, 2, 2, 2]


def test_digits_split_is_fixed_and_stratified():
    train, test, data = build_splits(ArrayDataConfig())
    assert data.x.shape == (1797, 64) and 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert len(test) == 360
    train2, test2, _ = build_splits(ArrayDataConfig())
    np.testing.assert_array_equal(test.x.numpy(), test2.x.numpy())
    shares = np.bincount(test.y.numpy()) / len(test)
    assert np.all(np.abs(shares - 0.1) < 0.01)


def test_excluded_classes_leave_the_training_split_only():
    train, test, _ = build_splits(ArrayDataConfig(exclude_classes=[3]))
    assert 3 not in set(train.y.tolist())
    assert 3 in set(test.y.tolist())


def test_nan_and_inf_are_reported_with_their_position(tmp_path):
    x = np.zeros((4, 3), dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(DataError, match=r"bad\.npy: 1 values are NaN or infinite \(first at index \(2, 1\)\)"):
        as_feature_matrix(x, "bad.npy")
    np.save(tmp_path / "inf.npy", np.full((2, 2), np.inf, dtype=np.float32))
    with pytest.raises(DataError, match="inf.npy: 4 values are NaN or infinite"):
        read_input(tmp_path / "inf.npy", 1.0, 2)


def test_bad_array_files_are_named(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match="junk.npy: cannot read array file"):
        read_array_file(tmp_path / "junk.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(DataError, match="empty.npy: the array is empty"):
        read_input(tmp_path / "empty.npy", 1.0, 4)
    np.save(tmp_path / "wide.npy", np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(DataError, match="wide.npy: examples have 5 features, the model was trained on 4"):
        read_input(tmp_path / "wide.npy", 1.0, 4)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unknown array format"):
        read_array_file(tmp_path / "x.csv")


def test_npz_with_x_and_y(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((10, 2, 2), dtype=np.float32), y=np.arange(10) % 2)
    train, test, data = build_splits(ArrayDataConfig(source=str(tmp_path / "d.npz")))
    assert data.image_shape == (2, 2) and len(train) + len(test) == 10
    assert data.y is not None
