"""The records of a /retrain: the user digits it trains on, what the training process is asked
for, and the running job that BotState holds (bot/handlers/retrain.py runs it)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot import admin_replies
from core.promotion import UserDigits
from core.recipes import EpochReport

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess


@dataclass(frozen=True)
class UserData:
    """Confirmed user digits for one training run, in MNIST's format (uint8, ink = 255)."""

    images: np.ndarray  # (n, 28, 28): mixed into training
    labels: np.ndarray  # (n,)
    holdout_images: np.ndarray  # (m, 28, 28): only for measuring accuracy on users' photos
    holdout_labels: np.ndarray  # (m,)
    weight: float
    corrected: np.ndarray  # (n,) bool: which training digits users corrected
    share: float = 0.0  # of each epoch, at least (see core.train.ExtraSamples)
    corrected_share: float = 0.0  # of each epoch made of the corrected digits, at least

    def evidence_digits(self) -> UserDigits:
        """What both models are judged on: the held-out digits and the corrected ones."""
        return UserDigits(
            holdout_images=self.holdout_images,
            holdout_labels=self.holdout_labels,
            corrected_images=self.images[self.corrected],
            corrected_labels=self.labels[self.corrected],
        )


@dataclass(frozen=True)
class TrainingRequest:
    """What the spawned process needs (plain, picklable values only)."""

    mnist_path: str | None
    model_dir: str
    arch: str
    epochs: int
    train_limit: int | None
    seed: int
    command: str
    user_data: UserData | None = None
    fine_tune_from: str | None = None  # the served version folder; None: from scratch

    @property
    def user_digits(self) -> int:
        return 0 if self.user_data is None else len(self.user_data.labels)

    @property
    def holdout_digits(self) -> int:
        return 0 if self.user_data is None else len(self.user_data.holdout_labels)

    def started_text(self) -> str:
        weight = 1.0 if self.user_data is None else self.user_data.weight
        base = None if self.fine_tune_from is None else Path(self.fine_tune_from).name
        return admin_replies.retrain_started(
            self.arch,
            self.epochs,
            self.train_limit,
            self.user_digits,
            self.holdout_digits,
            weight,
            fine_tune_from=base,
        )


@dataclass
class RetrainJob:
    """One running /retrain: its process, its queue and the status message it keeps editing."""

    chat_id: int
    command_message_id: int
    status_message_id: int
    request: TrainingRequest
    process: BaseProcess
    messages: Any  # a spawn-context multiprocessing Queue
    staging_before: set[str]
    started: float = field(default_factory=time.monotonic)
    last_report: EpochReport | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False  # set when the bot shuts down
    cancelled: bool = False  # set by /retrain cancel
    finished: bool = False

    def progress_text(self) -> str:
        """What the status message says now (also shown to a second /retrain)."""
        if self.last_report is None:
            return (
                self.request.started_text()
                + "\n"
                + admin_replies.retrain_running_for(time.monotonic() - self.started)
            )
        return admin_replies.retrain_progress(
            self.request.arch, self.last_report, self.request.train_limit, self.request.user_digits
        )
