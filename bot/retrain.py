"""/retrain: train a candidate in a spawned process, show its progress, then promote or discard it.

TensorFlow must not be forked, so the training runs in a `spawn`-context process that sends
`("epoch", EpochReport)` messages and finally `("done", staging_path)` or `("error", text)` over a
spawn-context queue. The event loop never waits on that process: the queue is read in a worker
thread with a short timeout, so photos keep being answered while the model trains.

Confirmed user digits from the feedback store go to the process with the request (small arrays):
the training part is mixed into MNIST with `settings.retrain_user_weight`, the held-out part gives
the candidate's accuracy on users' photos. The candidate replaces the served model (atomic
`registry.promote`, then `Classifier.reload`) only if neither figure drops too far below the
current model's: MNIST test accuracy by at most `retrain_tolerance` points, accuracy on the
held-out user digits by at most `retrain_user_tolerance` points. The current model's user figure is
measured at decision time on the very same held-out digits (older metadata does not have it); with
fewer than `retrain_user_min_holdout` of them it is reported but cannot block a promotion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, TelegramError

from bot import admin_replies
from bot.state import BotState
from core import registry
from core.model import DEFAULT_ARCH

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from core.train import EpochReport

logger = logging.getLogger(__name__)

MIN_EPOCHS = 1
MAX_EPOCHS = 100  # the bounds of Settings.retrain_epochs
POLL_SECONDS = 0.5  # how long one queue read may block its worker thread
JOIN_SECONDS = 10.0


@dataclass(frozen=True)
class UserData:
    """Confirmed user digits for one training run, in MNIST's format (uint8, ink = 255)."""

    images: np.ndarray  # (n, 28, 28): mixed into training
    labels: np.ndarray  # (n,)
    holdout_images: np.ndarray  # (m, 28, 28): only for measuring accuracy on users' photos
    holdout_labels: np.ndarray  # (m,)
    weight: float


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

    @property
    def user_digits(self) -> int:
        return 0 if self.user_data is None else len(self.user_data.labels)

    @property
    def holdout_digits(self) -> int:
        return 0 if self.user_data is None else len(self.user_data.holdout_labels)

    def started_text(self) -> str:
        weight = 1.0 if self.user_data is None else self.user_data.weight
        return admin_replies.retrain_started(
            self.arch, self.epochs, self.train_limit, self.user_digits, self.holdout_digits, weight
        )


@dataclass(frozen=True)
class Comparison:
    """The candidate against the current model on MNIST and on held-out user digits."""

    new_mnist: float
    old_mnist: float | None
    mnist_tolerance: float  # percentage points
    new_user: float | None
    old_user: float | None
    holdout_count: int
    user_tolerance: float  # percentage points
    user_min_holdout: int
    user_digits: int  # user digits mixed into training
    user_weight: float

    @property
    def mnist_ok(self) -> bool:
        # A tiny epsilon so that "equal within float noise" counts as equal.
        return (
            self.old_mnist is None
            or self.new_mnist >= self.old_mnist - self.mnist_tolerance / 100 - 1e-12
        )

    @property
    def user_enforced(self) -> bool:
        return self.holdout_count >= self.user_min_holdout

    @property
    def user_ok(self) -> bool:
        if not self.user_enforced or self.old_user is None:
            return True
        if self.new_user is None:  # the candidate was not measured: do not take the risk
            return False
        return self.new_user >= self.old_user - self.user_tolerance / 100 - 1e-12

    @property
    def promote(self) -> bool:
        return self.mnist_ok and self.user_ok


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


class TrainingFailed(Exception):
    """The training process raised or died; the message is shown to the admin."""


def parse_epochs(arguments: list[str], default: int) -> int:
    """`/retrain [epochs]` -> epochs; ValueError with the reply text when the argument is bad."""
    if not arguments:
        return default
    text = arguments[0]
    try:
        epochs = int(text)
    except ValueError:
        epochs = 0
    if len(arguments) > 1 or not MIN_EPOCHS <= epochs <= MAX_EPOCHS:
        raise ValueError(
            admin_replies.retrain_usage(" ".join(arguments), MIN_EPOCHS, MAX_EPOCHS, default)
        )
    return epochs


def training_process(request: TrainingRequest, messages: Any) -> None:
    """Entry point of the spawned process: train one candidate and report over `messages`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Ctrl-C in a terminal reaches the whole process group; the bot decides when training stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)  # training yields the CPU to the bot's inference threads
    try:
        from core.train import ExtraSamples, train_candidate

        user = request.user_data
        extra = (
            None
            if user is None
            else ExtraSamples(
                images=user.images,
                labels=user.labels,
                weight=user.weight,
                holdout_images=user.holdout_images,
                holdout_labels=user.holdout_labels,
            )
        )
        staging = train_candidate(
            mnist_path=request.mnist_path,
            model_dir=Path(request.model_dir),
            arch=request.arch,
            epochs=request.epochs,
            seed=request.seed,
            train_limit=request.train_limit,
            extra_samples=extra,
            progress=lambda report: messages.put(("epoch", report)),
            command=request.command,
            verbose=0,
        )
    except BaseException as error:  # report everything, including KeyboardInterrupt
        messages.put(("error", f"{type(error).__name__}: {error}"))
        raise SystemExit(1) from None
    messages.put(("done", str(staging)))


def collect_user_data(state: BotState) -> UserData | None:
    """The confirmed user digits to train with and to measure on (None: no store, no digits)."""
    store = state.feedback
    if store is None:
        return None
    train = store.training_samples()
    holdout = store.holdout_samples()
    if len(train.y) == 0 and len(holdout.y) == 0:
        return None
    return UserData(
        images=train.x,
        labels=train.y,
        holdout_images=holdout.x,
        holdout_labels=holdout.y,
        weight=state.settings.retrain_user_weight,
    )


def holdout_accuracy(state: BotState, user_data: UserData | None) -> float | None:
    """The served model's accuracy on the held-out user digits (None when there are none)."""
    if user_data is None or len(user_data.holdout_labels) == 0:
        return None
    batch = user_data.holdout_images.astype(np.float32) / 255.0
    probabilities = state.classifier.predict(batch)
    predicted = np.argmax(probabilities, axis=1)
    return float(np.mean(predicted == user_data.holdout_labels.astype(np.int64)))


def _staging_names(model_dir: Path) -> set[str]:
    return {entry.name for entry in model_dir.glob(f"{registry.STAGING_PREFIX}*")}


def remove_new_staging(model_dir: Path, before: set[str]) -> int:
    """Delete staging folders that appeared since `before` (a killed run leaves one behind).

    Only the new ones: a `digitbot train` writing into the same folder keeps its own.
    """
    removed = 0
    for name in _staging_names(model_dir) - before:
        registry.discard(model_dir / name)
        removed += 1
    return removed


async def start_retrain(
    state: BotState,
    bot: Bot,
    *,
    chat_id: int,
    command_message_id: int,
    user_id: int,
    epochs: int,
) -> RetrainJob:
    """Send the status message, spawn the training process and supervise it in a task."""
    settings = state.settings
    arch = settings.retrain_arch or str(state.classifier.metadata.get("arch", DEFAULT_ARCH))
    user_data = await asyncio.to_thread(collect_user_data, state)
    request = TrainingRequest(
        mnist_path=None if settings.mnist_path is None else str(settings.mnist_path),
        model_dir=str(settings.model_dir),
        arch=arch,
        epochs=epochs,
        train_limit=settings.retrain_train_limit,
        seed=secrets.randbelow(2**31),
        command=f"/retrain {epochs} (by an admin)",  # no user id in metadata.json
        user_data=user_data,
    )
    status = await bot.send_message(
        chat_id,
        request.started_text(),
        reply_parameters=ReplyParameters(command_message_id, allow_sending_without_reply=True),
    )
    context = multiprocessing.get_context("spawn")  # TensorFlow must not be forked
    messages = context.Queue()
    process = context.Process(
        target=training_process, args=(request, messages), name="digitbot-retrain", daemon=True
    )
    job = RetrainJob(
        chat_id=chat_id,
        command_message_id=command_message_id,
        status_message_id=status.message_id,
        request=request,
        process=process,
        messages=messages,
        staging_before=_staging_names(settings.model_dir),
    )
    state.retrain = job
    try:
        await asyncio.to_thread(process.start)
    except BaseException:
        state.retrain = None
        raise
    logger.info(
        "retrain started: %s, %d epochs, %d user digits (+%d held out), pid %s",
        arch,
        epochs,
        request.user_digits,
        request.holdout_digits,
        process.pid,
    )
    job.task = asyncio.create_task(supervise(state, bot, job), name="digitbot-retrain")
    return job


async def supervise(state: BotState, bot: Bot, job: RetrainJob) -> None:
    """Follow the training process to its end, act on the outcome, then tell the admin.

    The /retrain slot is freed and leftovers are removed before the admin hears the result, so
    "you can /retrain again" is true the moment it is read. Never raises (except cancellation).
    """
    try:
        staging = Path(await _follow(bot, job))
        text = await _decide(state, staging, job.request)
    except TrainingFailed as failure:
        logger.warning("retrain failed: %s", failure)
        text = admin_replies.retrain_failed(str(failure))
    except asyncio.CancelledError:
        logger.info("retrain cancelled (the bot is stopping)")
        raise
    except Exception as error:
        logger.exception("retrain supervision failed")
        text = admin_replies.retrain_failed(f"{type(error).__name__}: {error}")
    finally:
        await asyncio.shield(_finish(state, job))
    await _reply(bot, job, text)


async def _follow(bot: Bot, job: RetrainJob) -> str:
    """Relay epoch reports into the status message until the process says done (-> path)."""
    while True:
        try:
            kind, payload = await asyncio.to_thread(job.messages.get, True, POLL_SECONDS)
        except queue.Empty:
            if job.process.is_alive():
                continue
            try:  # the last message may still be in the pipe when the process exits
                kind, payload = await asyncio.to_thread(job.messages.get, True, POLL_SECONDS)
            except queue.Empty:
                if job.stopping:
                    raise TrainingFailed(
                        "the bot is stopping, so the training was interrupted"
                    ) from None
                raise TrainingFailed(
                    f"the training process stopped unexpectedly (exit code {job.process.exitcode})"
                ) from None
        if kind == "epoch":
            job.last_report = payload
            await _edit_status(bot, job)
        elif kind == "done":
            return str(payload)
        elif kind == "error":
            raise TrainingFailed(str(payload))
        else:
            raise TrainingFailed(f"unexpected message from the training process: {kind!r}")


async def _decide(state: BotState, staging: Path, request: TrainingRequest) -> str:
    """Promote the candidate if it is good enough (then reload), else discard it; -> reply."""
    settings = state.settings
    try:
        candidate = registry.read_metadata(staging.parent, staging.name)
        new_accuracy = float(candidate["test_accuracy"])
        new_user = candidate.get("user_accuracy")
        new_user = None if new_user is None else float(new_user)
    except (registry.RegistryError, KeyError, TypeError, ValueError):
        registry.discard(staging)
        raise
    current = state.classifier.metadata.get("test_accuracy")
    loop = asyncio.get_running_loop()
    old_user = await loop.run_in_executor(
        state.executor, holdout_accuracy, state, request.user_data
    )
    comparison = Comparison(
        new_mnist=new_accuracy,
        old_mnist=None if current is None else float(current),
        mnist_tolerance=settings.retrain_tolerance,
        new_user=new_user,
        old_user=old_user,
        holdout_count=request.holdout_digits,
        user_tolerance=settings.retrain_user_tolerance,
        user_min_holdout=settings.retrain_user_min_holdout,
        user_digits=request.user_digits,
        user_weight=1.0 if request.user_data is None else request.user_data.weight,
    )
    if not comparison.promote:
        registry.discard(staging)
        logger.info("retrain rejected: %s", comparison)
        return admin_replies.retrain_rejected(comparison)
    version = await asyncio.to_thread(registry.promote, settings.model_dir, staging)
    served = await asyncio.to_thread(state.classifier.reload)
    logger.info("retrain promoted %s (%s); serving %s", version, comparison, served)
    return admin_replies.retrain_promoted(version, comparison)


async def _finish(state: BotState, job: RetrainJob) -> None:
    """Stop the process if needed, remove what a failed run left, free the /retrain slot."""
    if job.finished:
        return
    job.finished = True
    try:
        await asyncio.to_thread(stop_process, job.process)
        removed = remove_new_staging(state.settings.model_dir, job.staging_before)
        if removed:
            logger.info("removed %d unfinished staging folder(s)", removed)
        job.messages.close()
        job.messages.cancel_join_thread()
    finally:
        if state.retrain is job:
            state.retrain = None


def stop_process(process: BaseProcess) -> None:
    """Join a finished process, or terminate (then kill) one that is still running."""
    process.join(JOIN_SECONDS if not process.is_alive() else 0.1)
    if process.is_alive():
        process.terminate()
        process.join(JOIN_SECONDS)
    if process.is_alive():
        process.kill()
        process.join(JOIN_SECONDS)


async def cancel_retrain(state: BotState) -> None:
    """On shutdown: stop a running training, tell the admin, clean up after it."""
    job = state.retrain
    if job is None:
        return
    job.stopping = True
    await asyncio.to_thread(stop_process, job.process)
    if job.task is not None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(job.task, timeout=JOIN_SECONDS)
    await _finish(state, job)  # idempotent; covers a task that never got that far


async def _edit_status(bot: Bot, job: RetrainJob) -> None:
    try:
        await bot.edit_message_text(
            job.progress_text(), chat_id=job.chat_id, message_id=job.status_message_id
        )
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            logger.warning("cannot edit the retrain status message: %s", error)
    except TelegramError as error:  # progress is best effort; the training goes on
        logger.warning("cannot edit the retrain status message: %s", error)


async def _reply(bot: Bot, job: RetrainJob, text: str) -> None:
    try:
        await bot.send_message(
            job.chat_id,
            text,
            reply_parameters=ReplyParameters(
                job.command_message_id, allow_sending_without_reply=True
            ),
        )
    except TelegramError as error:
        logger.error("cannot send the retrain result: %s", error)
