"""The MNIST loader on tiny generated .npz and IDX files, broken ones, and the real file."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.data import IDX_FILES, DataError, load_mnist

REAL_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"


def tiny_arrays(train: int = 12, test: int = 5) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, test, dtype=np.uint8),
    }


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_npz_round_trip(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    mnist = load_mnist(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(mnist.x_train, arrays["x_train"])
    np.testing.assert_array_equal(mnist.y_test, arrays["y_test"])
    assert mnist.source == str(tmp_path / "mnist.npz")
    assert not mnist.complete


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder(tmp_path: Path, compress: bool) -> None:
    arrays = tiny_arrays()
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / (stem + (".gz" if compress else "")), arrays[key], compress)
    mnist = load_mnist(tmp_path)
    np.testing.assert_array_equal(mnist.x_test, arrays["x_test"])
    np.testing.assert_array_equal(mnist.y_train, arrays["y_train"])
    # The checksum covers contents, so .npz and IDX copies of the same data agree.
    np.savez(tmp_path / "same.npz", **arrays)
    assert load_mnist(tmp_path / "same.npz").sha256 == mnist.sha256


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.npz"):
        load_mnist(tmp_path / "nowhere.npz")


def test_npz_missing_key(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    del arrays["y_test"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(DataError, match=r"partial\.npz.*y_test"):
        load_mnist(tmp_path / "partial.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match=r"junk\.npz"):
        load_mnist(tmp_path / "junk.npz")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("x_train", np.zeros((12, 28, 27), np.uint8), "shape"),
        ("x_test", np.zeros((5, 28, 28), np.float32), "uint8"),
        ("y_train", np.full(12, 11, np.uint8), "0-9"),
        ("y_test", np.zeros(4, np.uint8), "y_test"),
    ],
)
def test_invalid_arrays(tmp_path: Path, key: str, value: np.ndarray, message: str) -> None:
    arrays = tiny_arrays()
    arrays[key] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_mnist(tmp_path / "bad.npz")


def test_truncated_idx(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / stem, arrays[key], compress=False)
    images = tmp_path / IDX_FILES["x_train"]
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="IDX header says"):
        load_mnist(tmp_path)


def test_bad_magic(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / stem, arrays[key], compress=False)
    (tmp_path / IDX_FILES["y_test"]).write_bytes(b"\x12\x34\x56\x78" + bytes(5))
    with pytest.raises(DataError, match="magic"):
        load_mnist(tmp_path)


def test_missing_idx_file(tmp_path: Path) -> None:
    arrays = tiny_arrays()
    for key, stem in list(IDX_FILES.items())[:3]:
        write_idx(tmp_path / stem, arrays[key], compress=False)
    with pytest.raises(DataError, match="t10k-labels"):
        load_mnist(tmp_path)


def test_real_mnist(mnist_path: Path) -> None:
    assert hashlib.sha256(mnist_path.read_bytes()).hexdigest() == REAL_SHA256
    mnist = load_mnist(mnist_path)
    assert mnist.complete
    assert mnist.x_train.shape == (60_000, 28, 28)
    assert mnist.x_test.shape == (10_000, 28, 28)
    assert np.bincount(mnist.y_test).tolist()[:2] == [980, 1135]
