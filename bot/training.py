"""The records of a /retrain: the user digits it trains on, what the training process is asked
for, and the running job that BotState holds (bot/handlers/retrain.py runs it)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import admin_replies
from core.recipes import EpochReport, ExtraSamples

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess


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
    user_data: ExtraSamples | None = None  # the confirmed user digits, and those held out
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
