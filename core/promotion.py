"""When a trained candidate may replace the served model: the evidence and the rule, nothing else.

Both `/retrain` and `digitbot train` measure the current model and the candidate the same way
(`measure`) and decide with `compare`: the candidate is promoted only if
- its MNIST test accuracy is at most `mnist_tolerance` points below the current model's;
- its accuracy on the held-out user digits is at most `user_tolerance` points below (enforced
  once there are `user_min_holdout` of them; fewer are reported, too few to judge);
- it reads at least as many of the digits users corrected right as the current model does.
Pure functions of arrays and numbers: no TensorFlow, no files, no bot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # (n, 28, 28, 1) float32 in [0, 1] -> (n, classes)
EPSILON = 1e-12  # "equal within float noise" counts as equal


@dataclass(frozen=True)
class UserDigits:
    """The user digits both models are judged on, in MNIST's format (uint8, ink = 255)."""

    holdout_images: np.ndarray  # (m, 28, 28): never trained on
    holdout_labels: np.ndarray  # (m,)
    corrected_images: np.ndarray  # (k, 28, 28): digits users corrected (trained on)
    corrected_labels: np.ndarray  # (k,)

    @classmethod
    def empty(cls) -> UserDigits:
        images, labels = np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8)
        return cls(images, labels, images, labels)


@dataclass(frozen=True)
class Evidence:
    """What one model scores: MNIST test accuracy (0-1), held-out user accuracy, fixes."""

    mnist: float | None
    user: float | None  # None: no held-out user digits
    corrected_right: int  # of the corrected digits, how many it reads right


@dataclass(frozen=True)
class Rule:
    """The tolerances of `compare` (percentage points) and the held-out size that enforces."""

    mnist_tolerance: float
    user_tolerance: float
    user_min_holdout: int


def _right(predict: Predict, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if len(labels) == 0:
        return np.zeros((0,), bool)
    batch = (images.astype(np.float32) / 255.0)[..., np.newaxis]
    return np.argmax(predict(batch), axis=1) == labels.astype(np.int64)


def measure(predict: Predict, mnist_accuracy: float | None, digits: UserDigits) -> Evidence:
    """One model's evidence on the given user digits (`mnist_accuracy` from its metadata)."""
    holdout = _right(predict, digits.holdout_images, digits.holdout_labels)
    corrected = _right(predict, digits.corrected_images, digits.corrected_labels)
    return Evidence(
        mnist=mnist_accuracy,
        user=float(holdout.mean()) if len(holdout) else None,
        corrected_right=int(corrected.sum()),
    )


@dataclass(frozen=True)
class Comparison:
    """The candidate against the current model, and the verdict of the rule."""

    candidate: Evidence
    current: Evidence
    rule: Rule
    holdout_count: int
    corrected_count: int
    user_digits: int = 0  # user digits mixed into training
    user_weight: float = 1.0

    @property
    def mnist_ok(self) -> bool:
        old, new = self.current.mnist, self.candidate.mnist
        if old is None:
            return True
        return new is not None and new >= old - self.rule.mnist_tolerance / 100 - EPSILON

    @property
    def user_enforced(self) -> bool:
        return self.holdout_count >= self.rule.user_min_holdout

    @property
    def user_ok(self) -> bool:
        old, new = self.current.user, self.candidate.user
        if not self.user_enforced or old is None:
            return True
        return new is not None and new >= old - self.rule.user_tolerance / 100 - EPSILON

    @property
    def corrected_ok(self) -> bool:
        return self.candidate.corrected_right >= self.current.corrected_right

    @property
    def promote(self) -> bool:
        return self.mnist_ok and self.user_ok and self.corrected_ok


def compare(
    candidate: Evidence,
    current: Evidence,
    rule: Rule,
    digits: UserDigits,
    *,
    user_digits: int = 0,
    user_weight: float = 1.0,
) -> Comparison:
    """The verdict for `candidate` replacing `current`, judged on `digits`."""
    return Comparison(
        candidate=candidate,
        current=current,
        rule=rule,
        holdout_count=len(digits.holdout_labels),
        corrected_count=len(digits.corrected_labels),
        user_digits=user_digits,
        user_weight=user_weight,
    )
