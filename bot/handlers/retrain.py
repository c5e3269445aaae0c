"""/retrain: fine-tune (or train from scratch) a candidate in a spawned process, then judge it.

TensorFlow must not be forked, so the training runs in a `spawn`-context process that sends
`("epoch", EpochReport)` messages and finally `("done", staging_path)` or `("error", text)` over a
spawn-context queue. The event loop never waits on that process: the queue is read in a worker
thread with a short timeout, so photos keep being answered while the model trains.

`/retrain [epochs]` fine-tunes the served model (its `model.keras`) with `core.train.FINE_TUNE`;
`/retrain full [epochs]` trains `RETRAIN_ARCH` (default: the served architecture) from scratch;
`/retrain cancel` stops a running one. Confirmed user digits from the feedback store go to the
process with the request (small arrays): the training part is mixed into MNIST with
`settings.retrain_user_weight`, the held-out part and the digits users corrected are the evidence
`core.promotion` weighs for both models before `registry.promote` and `Classifier.reload`.
The process dies with the bot (PR_SET_PDEATHSIG on Linux); a staging folder whose writer is gone is
removed when the bot starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import queue
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, TelegramError

from bot import admin_replies
from bot.settings import MAX_EPOCHS, MIN_EPOCHS, Settings
from bot.state import BotState
from bot.training import RetrainJob, TrainingRequest
from core import registry
from core.model import DEFAULT_ARCH
from core.promotion import Comparison, Rule, UserDigits, compare, measure
from core.recipes import ExtraSamples
from core.serving import Classifier, load_model

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from bot.feedback.store import FeedbackStore

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how long one queue read may block its worker thread
JOIN_SECONDS = 10.0
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


@dataclass(frozen=True)
class RetrainCommand:
    """What `/retrain ...` asked for: fine-tune (default), a full training, or cancel."""

    action: str  # "fine-tune", "full" or "cancel"
    epochs: int = 0


class TrainingFailed(Exception):
    """The training process raised or died; the message is shown to the admin."""


class TrainingCancelled(Exception):
    """An admin sent /retrain cancel."""


def parse_command(arguments: list[str], default: int, full_default: int) -> RetrainCommand:
    """`/retrain [full] [epochs]` or `/retrain cancel`; ValueError with the reply text if bad."""
    words = [word.lower() for word in arguments]
    if words == ["cancel"]:
        return RetrainCommand("cancel")
    action = "fine-tune"
    if words[:1] == ["full"]:
        action, words, default = "full", words[1:], full_default
    if not words:
        return RetrainCommand(action, default)
    try:
        epochs = int(words[0])
    except ValueError:
        epochs = 0
    if len(words) > 1 or not MIN_EPOCHS <= epochs <= MAX_EPOCHS:
        raise ValueError(
            admin_replies.retrain_usage(" ".join(arguments), MIN_EPOCHS, MAX_EPOCHS, default)
        )
    return RetrainCommand(action, epochs)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the bot dies, even by SIGKILL (no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the bot died before prctl
        os._exit(1)


def training_process(request: TrainingRequest, messages: Any) -> None:
    """Entry point of the spawned process: train one candidate and report over `messages`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Ctrl-C in a terminal reaches the whole process group; the bot decides when training stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(10)  # training yields the CPU to the bot's inference threads
    try:
        from core.train import train_candidate

        staging = train_candidate(
            mnist_path=request.mnist_path,
            model_dir=Path(request.model_dir),
            arch=request.arch,
            epochs=request.epochs,
            seed=request.seed,
            train_limit=request.train_limit,
            extra_samples=request.user_data,
            progress=lambda report: messages.put(("epoch", report)),
            command=request.command,
            verbose=0,
            fine_tune_from=None if request.fine_tune_from is None else Path(request.fine_tune_from),
        )
    except BaseException as error:  # report everything, including KeyboardInterrupt
        messages.put(("error", f"{type(error).__name__}: {error}"))
        raise SystemExit(1) from None
    messages.put(("done", str(staging)))


def collect_user_data(state: BotState) -> ExtraSamples | None:
    """The confirmed user digits to train with and to measure on (None: no store, no digits)."""
    store = state.feedback
    if store is None:
        return None
    train = store.training_samples()
    holdout = store.holdout_samples()
    if len(train.y) == 0 and len(holdout.y) == 0:
        return None
    return ExtraSamples(
        images=train.x,
        labels=train.y,
        holdout_images=holdout.x,
        holdout_labels=holdout.y,
        weight=state.settings.retrain_user_weight,
        corrected=train.corrected,
        share=state.settings.retrain_user_share,
        corrected_share=state.settings.retrain_corrected_share,
    )


def evidence_digits(user: ExtraSamples) -> UserDigits:
    """What both models are judged on: the held-out digits and the corrected ones."""
    corrected = np.zeros(len(user.labels), bool) if user.corrected is None else user.corrected
    return UserDigits(
        holdout_images=user.holdout_images,
        holdout_labels=user.holdout_labels,
        corrected_images=user.images[corrected],
        corrected_labels=user.labels[corrected],
    )


def stored_user_digits(store: FeedbackStore) -> UserDigits:
    """The evidence digits of a feedback store: its held-out slice and the corrected digits."""
    train, holdout = store.training_samples(), store.holdout_samples()
    return UserDigits(
        holdout_images=holdout.x,
        holdout_labels=holdout.y,
        corrected_images=train.x[train.corrected],
        corrected_labels=train.y[train.corrected],
    )


def judge_candidate(
    classifier: Classifier,
    staging: Path,
    digits: UserDigits,
    rule: Rule,
    *,
    user_digits: int = 0,
    user_weight: float = 1.0,
) -> Comparison:
    """Measure the served model and the candidate in `staging` alike, and apply the rule."""
    candidate_metadata = registry.read_metadata(staging.parent, staging.name)
    candidate_model, _ = load_model(staging, classifier.requested_backend, threads=1)
    current_mnist = classifier.metadata.get("test_accuracy")
    return compare(
        measure(candidate_model, float(candidate_metadata["test_accuracy"]), digits),
        measure(
            classifier.predict, None if current_mnist is None else float(current_mnist), digits
        ),
        rule,
        digits,
        user_digits=user_digits,
        user_weight=user_weight,
    )


def judge(state: BotState, staging: Path, request: TrainingRequest) -> Comparison:
    """The verdict on a /retrain candidate, judged on the request's user digits."""
    user = request.user_data
    return judge_candidate(
        state.classifier,
        staging,
        UserDigits.empty() if user is None else evidence_digits(user),
        promotion_rule(state.settings),
        user_digits=request.user_digits,
        user_weight=1.0 if user is None else user.weight,
    )


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


def promotion_rule(settings: Settings) -> Rule:
    """The tolerances of the promotion rule, from the settings (also used by `digitbot train`)."""
    return Rule(
        mnist_tolerance=settings.retrain_tolerance,
        user_tolerance=settings.retrain_user_tolerance,
        user_min_holdout=settings.retrain_user_min_holdout,
    )


def served_arch(state: BotState) -> str:
    return str(state.classifier.metadata.get("arch", DEFAULT_ARCH))


async def start_retrain(
    state: BotState,
    bot: Bot,
    *,
    chat_id: int,
    command_message_id: int,
    user_id: int,
    command: RetrainCommand,
    mnist_path: Path | None,
    status_message_id: int | None = None,
) -> RetrainJob:
    """Send the status message (or edit `status_message_id`'s: a queued /retrain's), spawn the
    training process and supervise it in a task."""
    settings = state.settings
    full = command.action == "full"
    arch = (settings.retrain_arch or served_arch(state)) if full else served_arch(state)
    served_folder = registry.version_dir(settings.model_dir, state.classifier.version)
    user_data = await asyncio.to_thread(collect_user_data, state)
    words = "full " if full else ""
    request = TrainingRequest(
        mnist_path=None if mnist_path is None else str(mnist_path),
        model_dir=str(settings.model_dir),
        arch=arch,
        epochs=command.epochs,
        train_limit=settings.retrain_train_limit,
        seed=secrets.randbelow(2**31),
        command=f"/retrain {words}{command.epochs} (by an admin)",  # no user id in metadata.json
        user_data=user_data,
        fine_tune_from=None if full else str(served_folder),
    )
    queued = status_message_id is not None
    if status_message_id is None:
        status = await bot.send_message(
            chat_id,
            request.started_text(),
            reply_parameters=ReplyParameters(command_message_id),
        )
        status_message_id = status.message_id
    context = multiprocessing.get_context("spawn")  # TensorFlow must not be forked
    messages = context.Queue()
    process = context.Process(
        target=training_process, args=(request, messages), name="digitbot-retrain", daemon=True
    )
    job = RetrainJob(
        chat_id=chat_id,
        command_message_id=command_message_id,
        status_message_id=status_message_id,
        request=request,
        process=process,
        messages=messages,
        staging_before=_staging_names(settings.model_dir),
    )
    state.retrain = job
    if queued:  # the queued message now says what is trained
        await _edit_status(bot, job)
    try:
        # In the event loop's own thread (a few ms): Linux sends PR_SET_PDEATHSIG when the
        # *thread* that started the child ends, and pool threads may end before the bot does.
        process.start()
    except BaseException:
        state.retrain = None
        raise
    logger.info(
        "retrain %s started: %s, %d epochs, %d user digits (+%d held out), pid %s",
        command.action,
        arch,
        command.epochs,
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
    except TrainingCancelled:
        logger.info("retrain cancelled by an admin")
        text = admin_replies.retrain_cancelled()
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
                    raise TrainingFailed(job.stopping_reason) from None
                if job.cancelled:
                    raise TrainingCancelled from None
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
    """Promote the candidate if the evidence allows (then reload), else discard it; -> reply."""
    loop = asyncio.get_running_loop()
    try:
        comparison = await loop.run_in_executor(state.executor, judge, state, staging, request)
    except BaseException:
        registry.discard(staging)
        raise
    if not comparison.promote:
        registry.discard(staging)
        logger.info("retrain rejected: %s", comparison)
        return admin_replies.retrain_rejected(comparison)
    if state.publish_model is not None:  # on a worker: where every replica finds it, first
        try:
            await state.publish_model(staging)
        except BaseException:
            registry.discard(staging)
            raise
    version = await asyncio.to_thread(registry.promote, state.settings.model_dir, staging)
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


async def cancel_retrain(
    state: BotState, *, stopping: bool = True, reason: str | None = None
) -> bool:
    """Stop a running training and clean up after it; the admin is told by its supervisor.

    `stopping`: the bot (or worker) shuts down, and `reason` says so to the admin; else an admin
    sent `/retrain cancel`. Returns whether a training was running.
    """
    job = state.retrain
    if job is None:
        return False
    job.stopping, job.cancelled = stopping, not stopping
    if reason is not None:
        job.stopping_reason = reason
    await asyncio.to_thread(stop_process, job.process)
    if job.task is not None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(job.task), timeout=JOIN_SECONDS)
    await _finish(state, job)  # idempotent; covers a task that never got that far
    return True


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
            reply_parameters=ReplyParameters(job.command_message_id),
        )
    except TelegramError as error:
        logger.error("cannot send the retrain result: %s", error)
