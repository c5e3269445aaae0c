"""Load and validate MNIST: one loader for training, evaluation, tests and the photo benchmark.

Where it reads from, in order: an explicit path (the `MNIST_PATH` setting) — an `.npz` with
`x_train y_train x_test y_test` or a folder with the four original IDX files, gzipped or not —
else Keras' cache / `keras.datasets.mnist.load_data()` download.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FULL_SIZES = {"train": 60_000, "test": 10_000}


class DataError(ValueError):
    """MNIST could not be found or is not what it claims to be."""


@dataclass(frozen=True)
class Mnist:
    """The four MNIST arrays, where they came from and a checksum of their contents."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str

    @property
    def complete(self) -> bool:
        return len(self.x_train) == FULL_SIZES["train"] and len(self.x_test) == FULL_SIZES["test"]


def load_mnist(path: Path | str | None = None) -> Mnist:
    """Load MNIST from `path` (.npz or IDX folder), or from Keras when no path is given."""
    if path is None:
        arrays, source = _load_keras(), "keras.datasets.mnist"
    else:
        path = Path(path).expanduser()
        if not path.exists():
            raise DataError(f"MNIST not found at {path}: set MNIST_PATH to an .npz or IDX folder")
        arrays = _load_idx_folder(path) if path.is_dir() else _load_npz(path)
        source = str(path)
    validate(arrays, source)
    return Mnist(**arrays, source=source, sha256=checksum(arrays))


def split_validation(
    images: np.ndarray, labels: np.ndarray, validation_split: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out the last fraction of the training set, exactly as Keras' validation_split does."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    cut = len(images) - round(len(images) * validation_split)
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def validate(arrays: dict[str, np.ndarray], source: str) -> None:
    """Raise DataError naming `source` unless the arrays look like MNIST."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{source}: x_{split} has shape {images.shape}, expected (n, 28, 28)")
        if images.dtype != np.uint8:
            raise DataError(f"{source}: x_{split} is {images.dtype}, expected uint8")
        if labels.shape != (len(images),):
            raise DataError(
                f"{source}: y_{split} has shape {labels.shape} for {len(images)} images"
            )
        if len(images) == 0:
            raise DataError(f"{source}: x_{split} is empty")
        if labels.min() < 0 or labels.max() > 9:
            raise DataError(f"{source}: y_{split} has labels outside 0-9")
    sizes = (len(arrays["x_train"]), len(arrays["x_test"]))
    # Exactly 60k/10k, or clearly a subset; a near-complete file means a truncated download.
    if sizes != (60_000, 10_000) and (sizes[0] > 60_000 or sizes[1] > 10_000):
        raise DataError(f"{source}: {sizes[0]}/{sizes[1]} images, more than MNIST's 60000/10000")


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the four arrays (contents, not the file), so .npz and IDX agree."""
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in IDX_FILES if key not in data.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; found {sorted(data.files)}")
            arrays = {key: data[key] for key in IDX_FILES}
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from error
    return {
        key: value.astype(np.uint8) if key.startswith("y") and value.dtype != np.uint8 else value
        for key, value in arrays.items()
    }


def _load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz", folder / stem.replace("-idx", ".idx")]
        candidates += [folder / f"{candidate.name}.gz" for candidate in candidates[2:]]
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            raise DataError(f"{folder}: no {stem} or {stem}.gz in this MNIST folder")
        arrays[key] = read_idx(found)
    return arrays


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or raw) of unsigned bytes."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read ({error})") from error
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    dimensions = raw[3]
    header = 4 + 4 * dimensions
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says {shape} ({expected} bytes) but holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _load_keras() -> dict[str, np.ndarray]:
    try:
        from keras.datasets import mnist

        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except Exception as error:
        raise DataError(
            "MNIST_PATH is not set and the Keras download failed "
            f"({type(error).__name__}: {error}); point MNIST_PATH at an .npz or IDX folder"
        ) from error
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
