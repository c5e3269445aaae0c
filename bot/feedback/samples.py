"""What the feedback store hands out (confirmations, samples, training digits, figures) and the
pure conversions behind it: crops to bytes, the deterministic held-out split, confirmed digits to
MNIST-format arrays, and the /stats figures."""

from __future__ import annotations

import enum
import hashlib
import io
import itertools
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.feedback.schema import MAX_DIGITS

IMAGE_SIDE = 28
CHAT_TYPES = ("private", "group", "supergroup")


class ConfirmStatus(enum.StrEnum):
    """What `FeedbackStore.confirm` did."""

    CONFIRMED = "confirmed"  # this call's confirmation was stored
    ALREADY_CONFIRMED = "already_confirmed"  # someone confirmed first; `confirmed` is their value
    CAPPED = "capped"  # the confirming user reached a daily or total cap; nothing stored
    NOT_FOUND = "not_found"  # no such sample (never recorded, or deleted by /forget)


@dataclass(frozen=True)
class Confirmation:
    """The outcome of one confirm call."""

    status: ConfirmStatus
    sample_id: int | None
    predicted: str | None
    confirmed: str | None  # the stored confirmed number (the earlier one if ALREADY_CONFIRMED)
    correct: bool | None


@dataclass(frozen=True)
class Sample:
    """A stored sample as the bot needs it when a button is pressed."""

    sample_id: int
    predicted: str
    confidences: list[float]
    model_version: str
    chat_type: str
    confirmed: str | None
    correct: bool | None
    created_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True)
class UserSamples:
    """Confirmed digits for training or evaluation, in MNIST's format."""

    x: npt.NDArray[np.uint8]  # (n, 28, 28), ink = 255
    y: npt.NDArray[np.uint8]  # (n,)
    counts: npt.NDArray[np.int64]  # (n,) confirmations merged into each row (exact duplicates)
    corrected: npt.NDArray[np.bool_]  # (n,) the bot had read this digit wrong (a user corrected it)


@dataclass(frozen=True)
class FeedbackStats:
    """The figures `/stats` and `digitbot feedback stats` show."""

    collected: int  # answers recorded
    confirmed: int
    confirmed_right: int
    confirmed_wrong: int
    live_accuracy: float | None  # confirmed_right / confirmed (0-1); None before any confirmation
    confusion: list[list[int]]  # 10x10, rows = confirmed digit, columns = predicted digit


@dataclass(frozen=True)
class ExportCounts:
    """How many digits `export_npz` wrote to each part."""

    train: int
    test: int


def crop_to_bytes(crop: npt.ArrayLike) -> bytes:
    """One 28x28 crop as 784 uint8 bytes (ink = 255); floats are read as [0, 1] intensities."""
    array = np.asarray(crop)
    if array.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"each crop must be 28x28, got shape {array.shape}")
    if array.dtype == np.uint8:
        return bytes(np.ascontiguousarray(array).tobytes())
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"crops must be uint8 or float in [0, 1], got dtype {array.dtype}")
    if not np.isfinite(array).all() or array.min() < -1e-6 or array.max() > 1 + 1e-6:
        raise ValueError("float crops must hold finite values in [0, 1]")
    return bytes(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8).tobytes())


def check_number(number: str, what: str) -> str:
    if not (1 <= len(number) <= MAX_DIGITS) or not all(char in "0123456789" for char in number):
        raise ValueError(f"{what} must be 1 to {MAX_DIGITS} digits 0-9, got {number!r}")
    return number


def content_hash(confirmed: str, crops: Sequence[bytes]) -> str:
    digest = hashlib.sha256(confirmed.encode("ascii") + b"|")
    for crop in crops:
        digest.update(crop)
    return digest.hexdigest()


def in_holdout(crops: Sequence[bytes], fraction: float) -> bool:
    """Deterministic split on the crop bytes alone, so a duplicate never straddles both parts."""
    digest = hashlib.sha256(b"".join(crops)).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def empty_samples() -> UserSamples:
    return UserSamples(
        x=np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8),
        y=np.zeros((0,), dtype=np.uint8),
        counts=np.zeros((0,), dtype=np.int64),
        corrected=np.zeros((0,), dtype=np.bool_),
    )


def as_arrays(
    images: list[bytes], labels: list[int], counts: list[int], corrected: list[bool]
) -> UserSamples:
    if not images:
        return empty_samples()
    x = np.frombuffer(b"".join(images), dtype=np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return UserSamples(
        x=x.copy(),
        y=np.asarray(labels, dtype=np.uint8),
        counts=np.asarray(counts, dtype=np.int64),
        corrected=np.asarray(corrected, dtype=np.bool_),
    )


def split_confirmed(
    rows: Sequence[Any], holdout_fraction: float
) -> tuple[UserSamples, UserSamples]:
    """(train, holdout) from digit rows (id, predicted, confirmed, content_hash, crop) ordered by
    sample and position: one row per digit of each distinct confirmed content."""
    # Group the digit rows back into samples, then merge samples with equal content hashes.
    merged: dict[str, tuple[str, str, list[bytes]]] = {}
    counts: dict[str, int] = {}
    for _, group in itertools.groupby(rows, key=lambda row: row.id):
        sample_rows = list(group)
        key = sample_rows[0].content_hash
        if key in merged:
            counts[key] += 1
        else:
            first = sample_rows[0]
            merged[key] = (
                first.predicted,
                first.confirmed,
                [bytes(r.crop) for r in sample_rows],
            )
            counts[key] = 1

    parts: dict[bool, tuple[list[bytes], list[int], list[int], list[bool]]] = {
        False: ([], [], [], []),
        True: ([], [], [], []),
    }
    for key, (predicted, label, crops) in merged.items():
        images, labels, row_counts, corrected = parts[in_holdout(crops, holdout_fraction)]
        # A number read with the wrong length has no digit-by-digit answer: all corrected.
        read = predicted if len(predicted) == len(label) else "?" * len(label)
        for crop, digit, read_digit in zip(crops, label, read, strict=True):
            images.append(crop)
            labels.append(int(digit))
            row_counts.append(counts[key])
            corrected.append(read_digit != digit)
    return as_arrays(*parts[False]), as_arrays(*parts[True])


def joined(train: UserSamples, holdout: UserSamples) -> UserSamples:
    """Both parts in one (train first)."""
    if len(holdout.y) == 0:
        return train
    return UserSamples(
        x=np.concatenate([train.x, holdout.x]),
        y=np.concatenate([train.y, holdout.y]),
        counts=np.concatenate([train.counts, holdout.counts]),
        corrected=np.concatenate([train.corrected, holdout.corrected]),
    )


def feedback_stats(collected: int, pairs: Sequence[tuple[str, str]]) -> FeedbackStats:
    """The figures from the number of answers and the (predicted, confirmed) pairs."""
    confusion = [[0] * 10 for _ in range(10)]
    right = 0
    for predicted, confirmed in pairs:
        right += predicted == confirmed
        if len(predicted) == len(confirmed):
            for predicted_digit, confirmed_digit in zip(predicted, confirmed, strict=True):
                confusion[int(confirmed_digit)][int(predicted_digit)] += 1
    return FeedbackStats(
        collected=int(collected),
        confirmed=len(pairs),
        confirmed_right=right,
        confirmed_wrong=len(pairs) - right,
        live_accuracy=right / len(pairs) if pairs else None,
        confusion=confusion,
    )


def write_npz(path: Path, train: UserSamples, holdout: UserSamples) -> ExportCounts:
    """Write the digits as an MNIST-format `.npz` (holdout = test) atomically: a temporary file
    in the same folder, synced, then renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, x_train=train.x, y_train=train.y, x_test=holdout.x, y_test=holdout.y
    )
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return ExportCounts(train=len(train.y), test=len(holdout.y))
