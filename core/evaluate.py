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
    if probabilities.ndim != 2 or probabilities.shape[1] not in (10, 11):
        raise ValueError(f"expected (n, 10) or (n, 11) probabilities, got {probabilities.shape}")
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} predictions for {len(labels)} labels")
    labels = labels.astype(np.int64)
    # An eleventh column is "no digit": a digit answered so counts as wrong (and is left out
    # of the 10x10 confusion matrix).
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    answered = predicted < 10
    np.add.at(confusion, (labels[answered], predicted[answered]), 1)
    per_class_total = np.bincount(labels, minlength=10)
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


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that makes softmax(log p / T) best fit held-out labels (least
    negative log-likelihood, searched on a log grid from 0.5 to 5)."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0))
    rows = np.arange(len(labels))
    best, best_loss = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.5), np.log(5.0), 121)):
        scaled = logits / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        loss = float(np.mean(log_norm - scaled[rows, labels.astype(np.int64)]))
        if loss < best_loss:
            best, best_loss = float(temperature), loss
    return round(best, 4)


def top_k(probabilities: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The k most likely digits of one (10,) probability row, most likely first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(digit), float(probabilities[digit])) for digit in order]
