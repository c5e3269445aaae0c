"""Matplotlib figures written as PNG: training curves, confusion matrix, digit grids.

Uses the non-interactive Agg backend so it works on servers and in tests without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def save_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Accuracy and loss per epoch, training vs validation, side by side."""
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for axis, metric in ((accuracy_axis, "accuracy"), (loss_axis, "loss")):
        axis.plot(epochs, history.get(metric, []), "o-", label=f"training {metric}")
        if history.get(f"val_{metric}"):
            axis.plot(epochs, history[f"val_{metric}"], "s-", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(f"model {metric}")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_confusion(confusion: list[list[int]], path: Path, title: str = "") -> Path:
    """Confusion matrix (rows true, columns predicted) with counts in the cells."""
    matrix = np.asarray(confusion)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    # Log scale so the few mistakes stay visible next to ~1000 correct answers per digit.
    image = axis.imshow(np.log1p(matrix), cmap="Blues")
    for true_digit in range(10):
        for predicted in range(10):
            count = matrix[true_digit, predicted]
            if count:
                colour = "white" if true_digit == predicted else "black"
                axis.text(
                    predicted,
                    true_digit,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colour,
                )
    axis.set_xticks(range(10))
    axis.set_yticks(range(10))
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    axis.set_title(title or "confusion matrix (MNIST test set)")
    figure.colorbar(image, ax=axis, label="log(1 + count)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_digit_grid(images: np.ndarray, labels: np.ndarray, path: Path, columns: int = 7) -> Path:
    """A grid of digits with their labels, as the notebook showed them."""
    rows = int(np.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.5))
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index], cmap="gray")
            axis.set_title(f"label: {int(labels[index])}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_digit_with_colorbar(image: np.ndarray, label: int, path: Path) -> Path:
    """One digit with its pixel-value colour bar (0-255)."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    shown = axis.imshow(image, cmap="gray")
    figure.colorbar(shown, ax=axis)
    axis.set_title(f"label: {label}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_crops(crops: list[np.ndarray], path: Path, titles: list[str] | None = None) -> Path:
    """The 28x28 crops the model saw, enlarged side by side (for /debug and the CLI)."""
    count = max(len(crops), 1)
    figure, axes = plt.subplots(1, count, figsize=(2.2 * count, 2.5), squeeze=False)
    for index, axis in enumerate(axes[0]):
        axis.axis("off")
        if index < len(crops):
            axis.imshow(crops[index], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles:
                axis.set_title(titles[index], fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
