"""Shared fixtures: the real MNIST (from MNIST_PATH), small digit images, a copy of the models."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from core.data import Mnist

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The default DATA_DIR and feedback store are the checkout's data/: tests (and the
    commands they start) use a folder of their own instead."""
    folder = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(folder))
        patch.setenv("DATABASE_URL", f"sqlite:///{folder / 'feedback.sqlite3'}")
        yield folder


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """The real MNIST; CI sets MNIST_PATH=../shared/data/mnist.npz. Missing means a failure."""
    value = os.environ.get("MNIST_PATH")
    if not value:
        pytest.fail("MNIST_PATH is not set: point it at ../shared/data/mnist.npz")
    path = Path(value)
    if not path.is_absolute():
        path = (ROOT / path).resolve()
    if not path.exists():
        pytest.fail(f"MNIST_PATH={value} does not exist")
    return path


@pytest.fixture(scope="session")
def real_digits() -> Path:
    """The real-digits folder (REAL_DIGITS_PATH, default ../shared/data/real-digits, beside
    MNIST); it is never committed. Missing means a failure, as for MNIST."""
    value = os.environ.get("REAL_DIGITS_PATH")
    path = Path(value) if value else ROOT.parent / "shared" / "data" / "real-digits"
    if not (path / "labels.csv").is_file():
        pytest.fail(f"no real-digits folder at {path}: set REAL_DIGITS_PATH")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_path: Path) -> Mnist:
    from core.data import load_mnist

    return load_mnist(mnist_path)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped model folder (tests may promote or break it)."""
    target = tmp_path / "models"
    shutil.copytree(ROOT / "models", target)
    return target


def digit_photo(
    digit: np.ndarray,
    *,
    size: tuple[int, int] = (400, 300),
    scale: int = 140,
    offset: tuple[int, int] = (130, 80),
    dark_on_light: bool = True,
    image_format: str = "PNG",
) -> bytes:
    """An MNIST digit drawn on a plain page, as image bytes (core.bench.photos.flat_photo)."""
    from core.bench.photos import flat_photo

    return flat_photo(
        digit,
        size=size,
        scale=scale,
        offset=offset,
        dark_on_light=dark_on_light,
        image_format=image_format,
    )
