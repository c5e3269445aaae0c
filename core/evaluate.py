"""Test metrics from predicted probabilities: accuracy, loss, per-class accuracy, confusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # rows: true digit, columns: predicted digit
    count: int

    def as_dict(self) -> dict[str, object]:
        return {
            "test_accuracy": self.accuracy,
            "test_loss": self.loss,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion": self.confusion,
            "test_count": self.count,
        }


def evaluate_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Metrics for (n, 10) probabilities against (n,) integer labels."""
    if probabilities.ndim != 2 or probabilities.shape[1] != 10:
        raise ValueError(f"expected (n, 10) probabilities, got {probabilities.shape}")
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} predictions for {len(labels)} labels")
    labels = labels.astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class_total = confusion.sum(axis=1)
    per_class = np.divide(
        np.diag(confusion), per_class_total, out=np.zeros(10), where=per_class_total > 0
    )
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return Evaluation(
        accuracy=float((predicted == labels).mean()),
        loss=float(-np.log(picked).mean()),
        per_class_accuracy=[round(float(value), 6) for value in per_class],
        confusion=confusion.tolist(),
        count=len(labels),
    )


def top_k(probabilities: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The k most likely digits of one (10,) probability row, most likely first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(digit), float(probabilities[digit])) for digit in order]
