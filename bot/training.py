"""The records of a /retrain: the user digits it trains on, what the training process is asked
for, the running job that BotState holds (bot/handlers/retrain.py runs it), and what a replica
asks of the queue when the training runs on `digitbot worker` (bot/cluster/jobs.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot import admin_replies
from core.recipes import EpochReport, ExtraSamples

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from telegram import Bot, Message


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
    stopping_reason: str = "the bot is stopping, so the training was interrupted"
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


class SharedTraining(Protocol):
    """/retrain on another machine (RETRAIN_ON_WORKER): bot/cluster/jobs.py's QueuedTraining."""

    async def open(self) -> None:
        """Connect to the queue and the shared model registry (the bot's post_init)."""

    async def close(self) -> None:
        """Let go of both (the bot's post_shutdown)."""

    async def submit(self, bot: Bot, message: Message, action: str, epochs: int) -> None:
        """Answer a /retrain: enqueue it for the worker, or say one is already running."""

    async def cancel(self, bot: Bot, message: Message) -> None:
        """Answer /retrain cancel: cancel the queued job or stop the running one."""
