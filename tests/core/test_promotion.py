"""The promotion rule: MNIST within tolerance, held-out user digits not lower, corrections kept."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.promotion import Comparison, Evidence, Rule, UserDigits, measure

RULE = Rule(mnist_tolerance=0.2, user_tolerance=2.0, user_min_holdout=20)


def comparison(**changes: Any) -> Comparison:
    """Candidate 99.0 % / 80 % / 15 of 20 fixed against 99.1 % / 85 % / 0 of 20."""
    new: dict[str, Any] = {"mnist": 0.990, "user": 0.80, "corrected_right": 15}
    old: dict[str, Any] = {"mnist": 0.991, "user": 0.85, "corrected_right": 0}
    for key, value in changes.items():
        side, _, name = key.partition("_")
        if side == "new":
            new[name] = value
        elif side == "old":
            old[name] = value
    counts = {key: value for key, value in changes.items() if not key.startswith(("new_", "old_"))}
    return Comparison(
        candidate=Evidence(**new),
        current=Evidence(**old),
        rule=RULE,
        **{"holdout_count": 40, "corrected_count": 20, **counts},
    )


def test_promotion_needs_mnist_and_user_accuracy_within_tolerance_and_the_corrections() -> None:
    assert not comparison().promote  # users' photos: 80 % < 85 % - 2 points
    assert comparison(new_user=0.83).promote  # exactly at the tolerance
    assert not comparison(new_user=0.95, new_mnist=0.985).promote  # MNIST dropped 0.6 points
    assert comparison(new_user=0.95, new_mnist=0.989).promote  # 0.2 points: within tolerance
    assert comparison(holdout_count=19).promote  # too few held-out digits to judge
    assert comparison(old_user=None, new_user=None, holdout_count=0).promote
    assert not comparison(new_user=None).promote  # measured old, unmeasured new: no risk
    assert comparison(old_mnist=None, new_user=0.9).promote  # first model without metadata
    assert not comparison(new_mnist=None, new_user=0.9).promote
    # Fewer corrected digits read right than the served model: not better at what users taught.
    assert not comparison(new_user=0.9, old_corrected_right=16).promote
    assert comparison(new_user=0.9, old_corrected_right=15).promote
    verdict = comparison(new_user=0.9, old_corrected_right=16)
    assert verdict.mnist_ok and verdict.user_ok and not verdict.corrected_ok


def test_measure_counts_held_out_accuracy_and_fixed_corrections() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5], np.uint8)
    digits = UserDigits(images[:4], labels[:4], images[4:], labels[4:])

    def says_two(batch: np.ndarray) -> np.ndarray:
        assert batch.shape[1:] == (28, 28, 1) and batch.dtype == np.float32
        assert batch.max() <= 1.0
        return np.tile(np.eye(11, dtype=np.float32)[2], (len(batch), 1))  # any class count

    evidence = measure(says_two, 0.99, digits)
    assert evidence == Evidence(mnist=0.99, user=0.25, corrected_right=0)
    assert measure(says_two, None, UserDigits.empty()) == Evidence(None, None, 0)
