"""Matplotlib figures written as PNG: training curves, confusion matrix, digit grids.

Uses the non-interactive Agg backend so it works on servers and in tests without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

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


def save_crops(
    crops: list[np.ndarray], path: Path | IO[bytes], titles: list[str] | None = None
) -> None:
    """The 28x28 crops the model saw, enlarged side by side, into a file or a buffer."""
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


# Short labels for the reasons segmentation gives (core.segmentation.Rejected), drawn in red.
REASON_CODES = {
    "speck": "speck",
    "page edge or shadow at the border": "edge",
    "cut by the frame": "frame",
    "far smaller than the writing": "small",
    "small mark beside the digits": "mark",
    "small mark away from the writing": "stray",
    "over the digit limit": "limit",
    "read as no digit": "none",  # core.serving.NOT_A_DIGIT: the model's "no digit" class
}


def pieces_picture(
    gray: np.ndarray,
    digits: list[tuple[tuple[int, int, int, int], int, str]],
    rejected: list[tuple[tuple[int, int, int, int], str]],
    original_size: tuple[int, int],
) -> np.ndarray:
    """The picture with every piece of ink boxed: digits in green with their number's line and
    reading, the pieces left out in red with why (REASON_CODES). Boxes are in `original_size`
    pixels; `gray` may be smaller. Returns an RGB uint8 image (a legend strip at the bottom)."""
    import cv2

    scale = gray.shape[1] / original_size[0]
    picture = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    thickness = max(1, round(max(gray.shape) / 600))
    font = max(0.35, max(gray.shape) / 1600)

    def corners(box: tuple[int, int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        left, top, right, bottom = (round(value * scale) for value in box)
        return (left, top), (max(left + 1, right - 1), max(top + 1, bottom - 1))

    for box, reason in rejected:
        first, last = corners(box)
        cv2.rectangle(picture, first, last, (220, 30, 30), thickness)
        code = REASON_CODES.get(reason, reason)
        cv2.putText(
            picture,
            code,
            (first[0], last[1] + round(12 * font)),
            0,
            font * 0.8,
            (220, 30, 30),
            1,
            cv2.LINE_AA,
        )
    for box, line, reading in digits:
        first, last = corners(box)
        cv2.rectangle(picture, first, last, (20, 170, 40), thickness)
        cv2.putText(
            picture,
            f"{line + 1}:{reading}",
            (first[0], max(10, first[1] - 3)),
            0,
            font,
            (20, 140, 40),
            1,
            cv2.LINE_AA,
        )
    legend = np.full((round(22 * max(1.0, font * 2)), picture.shape[1], 3), 255, np.uint8)
    text = (
        "green: line:digit   red: left out ("
        + ", ".join(f"{code}={reason}" for reason, code in REASON_CODES.items())
        + ")"
    )
    cv2.putText(
        legend, text, (4, legend.shape[0] - 6), 0, max(0.3, font * 0.6), (0, 0, 0), 1, cv2.LINE_AA
    )
    return np.vstack([picture, legend])


def pieces_png(data: bytes, classification: Any, longest_side: int = 1600) -> bytes:
    """`pieces_picture` for an image and its core.serving.Classification, as PNG bytes (at
    most `longest_side` pixels wide or tall, plus the legend)."""
    import cv2

    from core.decode import decode

    gray: np.ndarray = np.asarray(decode(data, size=longest_side), dtype=np.uint8)
    if max(gray.shape) > longest_side:
        factor = longest_side / max(gray.shape)
        size = (max(1, round(gray.shape[1] * factor)), max(1, round(gray.shape[0] * factor)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    picture = pieces_picture(
        gray,
        [(digit.box, digit.line, str(digit.digit)) for digit in classification.digits],
        [(item.box, item.reason) for item in classification.rejected],
        classification.size,
    )
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the pieces picture as PNG")
    return encoded.tobytes()
