"""`digitbot bench --load`: the real bot against the Bot API emulator on 127.0.0.1, under a burst.

Many users in a few chats (private chats and groups) send photos at the same moment; the bot,
built by `bot.app.build_application` exactly as `digitbot run` builds it, polls the emulator and
answers. The run checks that every photo is answered exactly once, as a reply to that photo, with
that photo's digit, and measures:
- photos per second, from the moment every photo is waiting for the bot to its last answer;
- how long a /start waits for its answer meanwhile (one queued in the middle of the burst, then
  one every `probe_interval` seconds while the photos are being answered).

The emulator has no flood limits, so the rate limiter's limits are switched off for the run (see
`LoadSpec.rate_limits_off`): against real Telegram, a bot may send about 30 messages a second in
all and 20 a minute into one group, which caps any bot far below what this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from bot.app import CONCURRENT_IMAGES, build_application
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.state import get_state
from bot.transport.lifecycle import start_polling, stop_application

TOKEN = "123456:LOAD-TEST-TOKEN"
BOT_USERNAME = "digitbot_load_bot"
FIRST_USER_ID = 10_000
PROBE_USER_ID = 9_999
FIRST_GROUP_ID = -1_000_000_000_001
PHOTO_SIZE = (800, 600)  # Telegram stores it as 90, 320 and 800 px renditions


@dataclass(frozen=True)
class LoadSpec:
    """What to send: `photos` photos from `users` users in `chats` chats (the first
    `private_chats` are private chats of one user each, the rest are groups)."""

    photos: int = 500
    users: int = 50
    chats: int = 5
    private_chats: int = 2
    probe_interval: float = 0.1  # seconds between /start probes while photos are answered
    timeout: float = 300.0  # give up waiting for answers after this many seconds
    rate_limits_off: bool = True  # the emulator has no flood limits; Telegram does

    def __post_init__(self) -> None:
        if self.photos < 1 or self.users < 1 or self.chats < 1:
            raise ValueError("--count, --users and --chats must be at least 1")
        if not 0 <= self.private_chats <= self.chats:
            raise ValueError(f"private chats must be from 0 to {self.chats}")
        groups = self.chats - self.private_chats
        if self.users < self.chats or (groups == 0 and self.users != self.private_chats):
            raise ValueError(
                f"{self.users} users cannot fill {self.private_chats} private chats (one user "
                f"each) and {groups} groups (at least one user each)"
            )
        if self.probe_interval <= 0 or self.timeout <= 0:
            raise ValueError("probe interval and timeout must be positive")


@dataclass
class LoadReport:
    """What `run_load` measured and found."""

    spec: LoadSpec
    settings_line: str
    send_seconds: float = 0.0  # the users' side: putting every photo into the emulator
    answer_seconds: float = 0.0  # all photos waiting -> the last one answered
    answered: int = 0
    right_digit: int = 0
    start_delays: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # CPU seconds spent while the photos were answered: the bot's event-loop thread (PTB, the
    # HTTP client, handlers), the bot's whole process (adds its other threads; the image workers
    # are processes of their own), the emulator's process (Telegram's side, and these users), and
    # the whole machine.
    loop_cpu_seconds: float = 0.0
    process_cpu_seconds: float = 0.0
    emulator_cpu_seconds: float = 0.0
    machine_cpu_seconds: float | None = None  # every process (the image workers too); Linux
    load_average: float = 0.0  # of the machine, at the start (other work competes for the CPU)

    @property
    def photos_per_second(self) -> float:
        return self.answered / self.answer_seconds if self.answer_seconds > 0 else 0.0

    @property
    def max_start_delay(self) -> float:
        return max(self.start_delays, default=float("nan"))

    @property
    def ok(self) -> bool:
        return not self.problems and self.answered == self.spec.photos

    def lines(self) -> list[str]:
        spec = self.spec
        delays = sorted(self.start_delays)
        median = delays[len(delays) // 2] if delays else float("nan")
        groups = spec.chats - spec.private_chats
        machine = []
        if self.machine_cpu_seconds is not None and self.answer_seconds > 0:
            machine.append(
                f"machine CPU per photo (bot, image workers, emulator): "
                f"{self.machine_cpu_seconds / spec.photos * 1000:.1f} ms, "
                f"{self.machine_cpu_seconds / self.answer_seconds:.2f} of {os.cpu_count()} "
                f"cores busy"
            )
        lines = [
            f"load: {spec.photos} photos ({PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG) from {spec.users} "
            f"users in {spec.chats} chats ({spec.private_chats} private, {groups} "
            f"group{'' if groups == 1 else 's'}), sent at once",
            f"bot: {self.settings_line}",
            f"queued by the users in {self.send_seconds:.2f} s (not counted)",
            f"answered {self.answered}/{spec.photos} in {self.answer_seconds:.2f} s: "
            f"{self.photos_per_second:.0f} photos/s",
            f"right digit (MNIST label) in {self.right_digit}/{self.answered} answers",
            f"CPU per photo: bot process {self.process_cpu_seconds / spec.photos * 1000:.1f} ms "
            f"(its event loop {self.loop_cpu_seconds / spec.photos * 1000:.1f} ms), emulator "
            f"{self.emulator_cpu_seconds / spec.photos * 1000:.1f} ms; machine load average "
            f"{self.load_average:.1f} at the start",
            *machine,
            f"/start answered in at most {self.max_start_delay * 1000:.0f} ms "
            f"(median {median * 1000:.0f} ms, {len(delays)} sent during the burst)",
        ]
        if spec.rate_limits_off:
            lines.append(
                "rate limiter: off for this run (the emulator has no flood limits); "
                "real Telegram allows ~30 messages/s per bot and 20/min per group"
            )
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        lines.append(
            "every photo answered exactly once, to the right message" if self.ok else "FAILED"
        )
        return lines


def load_photos(
    x_test: np.ndarray, y_test: np.ndarray, count: int, seed: int = 0
) -> list[tuple[bytes, int]]:
    """`count` (JPEG, label) pairs: distinct MNIST test digits as plain photos, so that an
    answer sent to the wrong photo shows up as a wrong digit."""
    from core.bench.benchmarks import plain_photo

    rng = np.random.default_rng(seed)
    indexes = rng.permutation(len(x_test))[:count]
    if len(indexes) < count:
        raise ValueError(f"MNIST has only {len(x_test)} test digits, {count} asked")
    return [
        (plain_photo(x_test[index], rng, size=PHOTO_SIZE), int(y_test[index])) for index in indexes
    ]


def chat_plan(spec: LoadSpec) -> list[tuple[int, int]]:
    """(chat_id, user_id) of each user: one user per private chat, the rest spread over groups."""
    plan = [(FIRST_USER_ID + index, FIRST_USER_ID + index) for index in range(spec.private_chats)]
    groups = [FIRST_GROUP_ID - index for index in range(spec.chats - spec.private_chats)]
    for number, user in enumerate(
        range(FIRST_USER_ID + spec.private_chats, FIRST_USER_ID + spec.users)
    ):
        plan.append((groups[number % len(groups)], user))
    return plan


def add_chats(emulator: BotApiEmulator, spec: LoadSpec, group_title: str) -> list[tuple[int, int]]:
    """The users and groups of chat_plan(spec) in the emulator (groups in privacy mode, the
    bot not an admin); returns the plan."""
    plan = chat_plan(spec)
    groups: set[int] = set()
    for chat_id, user_id in plan:
        emulator.add_user(user_id, f"User {user_id}")
        if chat_id < 0 and chat_id not in groups:
            groups.add(chat_id)
            emulator.add_group(
                chat_id, f"{group_title} {-chat_id}", privacy=True, bot_is_admin=False
            )
    return plan


async def run_load(
    settings: Settings, photos: Sequence[tuple[bytes, int]], spec: LoadSpec | None = None
) -> LoadReport:
    """Start an emulator here and the bot in its own process, send the burst, wait for every
    answer, stop both.

    The bot runs in a process of its own, as `digitbot run` does in production, so that the
    emulator (Telegram's side) does not share its interpreter lock; both share the machine's cores.
    """
    spec = spec or LoadSpec(photos=len(photos))
    if len(photos) < spec.photos:
        raise ValueError(f"{spec.photos} photos asked, {len(photos)} given")
    emulator = BotApiEmulator(
        token=TOKEN,
        bot_username=BOT_USERNAME,
        max_pending_updates=spec.photos * 2 + 1000,
        max_messages_per_chat=spec.photos * 2 + 1000,
        max_calls=spec.photos * 10 + 1000,
    )
    await emulator.start(host="127.0.0.1", port=0)
    scratch = tempfile.TemporaryDirectory(prefix="digitbot-load-")
    overrides: dict[str, Any] = {
        "telegram_bot_token": SecretStr(TOKEN),
        "telegram_api_url": emulator.url,
        "admin_user_ids": [],
        "heartbeat_file": None,
        "group_mode": "mention",
        # Answers are recorded as in production, but in a throwaway feedback store.
        "database_url": f"sqlite:///{Path(scratch.name) / 'feedback.sqlite3'}",
        "feedback_salt": SecretStr(secrets.token_hex(16)),
        "data_dir": Path(scratch.name),
    }
    if spec.rate_limits_off:
        # ... and so is each user's share of a group's limit (bot/handlers/flood.py).
        overrides |= {
            "rate_limit_overall": 0,
            "rate_limit_group_per_minute": 0,
            "group_user_share_per_minute": spec.photos,
        }
    settings = settings.model_copy(update=overrides)  # (model_copy does not validate)
    report = LoadReport(spec, settings_summary(settings))
    bot = BotProcess(settings)
    try:
        await bot.start(timeout=spec.timeout)
        await _burst(emulator, photos, spec, report, bot)
        served = await bot.stop()
        if served != report.answered:
            report.problems.append(
                f"the bot counted {served} predictions, {report.answered} answers arrived"
            )
    finally:
        bot.kill()
        await emulator.stop()
        scratch.cleanup()
    return report


class BotProcess:
    """The bot, built by `build_application` as `digitbot run` builds it, in a child process that
    reports its CPU time when asked and stops when told."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, as in production
        self._connection, child_end = context.Pipe()
        # Not a daemon: the bot starts processes of its own (IMAGE_PROCESSES); kill() ends it.
        self._process = context.Process(
            target=_bot_process_main, args=(settings, child_end), name="digitbot-load-bot"
        )

    async def _receive(self, expected: str, timeout: float) -> Any:
        if not await asyncio.to_thread(self._connection.poll, timeout):
            raise RuntimeError(
                f"the bot process sent nothing for {timeout:.0f} s (waiting for {expected!r})"
            )
        kind, payload = self._connection.recv()
        if kind == "error":
            raise RuntimeError(f"the bot process failed:\n{payload}")
        if kind != expected:
            raise RuntimeError(f"the bot process sent {kind!r}, expected {expected!r}")
        return payload

    async def start(self, timeout: float) -> None:
        """Start the process and wait until the bot polls."""
        self._process.start()
        await self._receive("ready", timeout)

    async def cpu_seconds(self) -> tuple[float, float]:
        """(event-loop thread, whole process) CPU seconds the bot has used so far."""
        self._connection.send("cpu")
        return await self._receive("cpu", 30.0)

    async def stop(self) -> int:
        """Stop the bot as `digitbot run` does on exit; returns the predictions it counted."""
        self._connection.send("stop")
        served = await self._receive("stopped", 30.0)
        await asyncio.to_thread(self._process.join, 10.0)
        return served

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)
        self._connection.close()


def _bot_process_main(settings: Settings, connection: Connection) -> None:
    """The child process: run the bot until the parent says "stop"."""
    try:
        asyncio.run(_serve_until_stopped(settings, connection))
    except BaseException:  # the parent gets the traceback instead of a silent hang
        connection.send(("error", traceback.format_exc()))
        raise


async def _serve_until_stopped(settings: Settings, connection: Connection) -> None:
    application = build_application(settings)
    await application.initialize()
    try:
        await start_polling(application, timeout=10)
        # Read the parent's requests on the event loop (a thread blocked in recv() would take
        # one of the bot's default-executor threads away for the whole run).
        requests: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(connection.fileno(), lambda: requests.put_nowait(connection.recv()))
        connection.send(("ready", None))
        while await requests.get() == "cpu":
            # thread_time() here is the event loop's thread.
            connection.send(("cpu", (time.thread_time(), time.process_time())))
        loop.remove_reader(connection.fileno())
        served = get_state(application.bot_data).predictions_served
    finally:
        await stop_application(application)
    connection.send(("stopped", served))


def settings_summary(settings: Settings) -> str:
    """The settings that shape throughput, in one line."""
    overall, group = settings.rate_limit_overall, settings.rate_limit_group_per_minute
    limits = (
        "rate limits off"
        if not overall and not group
        else f"rate limits {overall or 'off'}/s overall, {group or 'off'}/min per group"
    )
    processes = settings.image_processes
    images = (
        f"images classified in {processes} worker process{'es' if processes > 1 else ''}"
        if processes
        else f"images classified in {settings.worker_threads} threads"
    )
    return (
        f"{images}, {CONCURRENT_IMAGES} images at once, "
        f"{settings.bot_api_client} with {settings.bot_api_connections} Bot API connections, "
        f"{limits}"
    )


async def _burst(
    emulator: BotApiEmulator,
    photos: Sequence[tuple[bytes, int]],
    spec: LoadSpec,
    report: LoadReport,
    bot: BotProcess,
) -> None:
    """Send everything, then collect answers (and /start probes) from the emulator's events."""
    plan = add_chats(emulator, spec, "Load group")
    emulator.add_user(PROBE_USER_ID, "Probe")
    events = emulator.subscribe(max_events=spec.photos * 4 + 1000)
    expected: dict[tuple[int, int], int] = {}  # (chat, message) -> label
    probes: dict[int, float] = {}  # /start message id -> when it could first be seen
    bot_cpu = await bot.cpu_seconds()
    started = time.perf_counter()
    # One synchronous block: the emulator answers the bot's waiting getUpdates only after it,
    # so the bot sees every photo at once, like a burst that arrives between two getUpdates.
    for number in range(spec.photos):
        chat_id, user_id = plan[number % len(plan)]
        data, label = photos[number]
        caption = (
            None if chat_id > 0 else ("/predict" if number % 2 else f"@{BOT_USERNAME} which digit?")
        )
        message = emulator.send_photo(chat_id, user_id, data, caption=caption)
        expected[(chat_id, message["message_id"])] = label
        if number == spec.photos // 2:
            middle = emulator.send_text(PROBE_USER_ID, PROBE_USER_ID, "/start")
            probes[middle["message_id"]] = -1.0  # set when the burst is complete
    queued = time.perf_counter()
    report.send_seconds = queued - started
    report.load_average = os.getloadavg()[0]
    emulator_cpu, machine_cpu = time.process_time(), machine_busy_seconds()
    probes = dict.fromkeys(probes, queued)
    answers: dict[tuple[int, int], list[str]] = {}
    last_answer = queued
    next_probe = queued + spec.probe_interval
    deadline = queued + spec.timeout
    while len(answers) < len(expected) or probes:
        now = time.perf_counter()
        if now > deadline:
            report.problems.append(
                f"gave up after {spec.timeout:.0f} s: {len(expected) - len(answers)} photos "
                "unanswered"
            )
            break
        if now >= next_probe and len(answers) < len(expected):
            probe = emulator.send_text(PROBE_USER_ID, PROBE_USER_ID, "/start")
            probes[probe["message_id"]] = time.perf_counter()
            next_probe = now + spec.probe_interval
        try:
            event = await asyncio.wait_for(events.get(), timeout=spec.probe_interval)
        except TimeoutError:
            continue
        message = event.get("message") or {}
        if (
            event.get("type") != "new_message"
            or message.get("from", {}).get("id") != emulator.bot_id
        ):
            continue
        chat_id = message["chat"]["id"]
        replied = message.get("reply_to_message", {}).get("message_id")
        if chat_id == PROBE_USER_ID and replied in probes:
            report.start_delays.append(time.perf_counter() - probes.pop(replied))
            continue
        key = (chat_id, replied)
        if key not in expected:
            report.problems.append(
                f"unexpected bot message in chat {chat_id} "
                f"(reply to {replied}): {message.get('text', '')[:60]!r}"
            )
            continue
        answers.setdefault(key, []).append(message.get("text", ""))
        last_answer = time.perf_counter()
    emulator.unsubscribe(events)
    report.answer_seconds = last_answer - queued
    report.emulator_cpu_seconds = time.process_time() - emulator_cpu
    machine_now = machine_busy_seconds()
    if machine_cpu is not None and machine_now is not None:
        report.machine_cpu_seconds = machine_now - machine_cpu
    bot_cpu_now = await bot.cpu_seconds()
    report.loop_cpu_seconds = bot_cpu_now[0] - bot_cpu[0]
    report.process_cpu_seconds = bot_cpu_now[1] - bot_cpu[1]
    await asyncio.sleep(0.3)  # anything sent twice arrives now
    _check_answers(emulator, expected, answers, report)


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (Linux's /proc/stat), else None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _check_answers(
    emulator: BotApiEmulator,
    expected: dict[tuple[int, int], int],
    answers: dict[tuple[int, int], list[str]],
    report: LoadReport,
) -> None:
    """Exactly one answer per photo, in its chat, quoting it; count the right digits."""
    counts: dict[tuple[int, int], int] = {}
    for chat_id in {chat for chat, _ in expected}:
        for message in emulator.messages(chat_id):
            if message["from"]["id"] != emulator.bot_id:
                continue
            key = (chat_id, message.get("reply_to_message", {}).get("message_id"))
            counts[key] = counts.get(key, 0) + 1
    twice = [key for key, count in counts.items() if count > 1]
    missing = [key for key in expected if key not in counts]
    if twice:
        report.problems.append(f"{len(twice)} photos answered more than once, e.g. {twice[:3]}")
    if missing:
        report.problems.append(f"{len(missing)} photos never answered, e.g. {missing[:3]}")
    report.answered = sum(1 for key in expected if counts.get(key) == 1)
    report.right_digit = sum(
        1
        for key, texts in answers.items()
        if texts and texts[0].split()[:1] == [str(expected[key])]
    )


def run_load_command(settings: Settings, arguments: argparse.Namespace) -> int:
    """`digitbot bench --load`: print the report; exit status 1 if anything was lost."""
    from core.data import load_mnist

    spec = LoadSpec(
        photos=arguments.count or 500,
        users=arguments.users,
        chats=arguments.chats,
        private_chats=min(2, arguments.chats - 1),
    )
    mnist = load_mnist(arguments.mnist_path)
    photos = load_photos(mnist.x_test, mnist.y_test, spec.photos)
    report = asyncio.run(run_load(settings, photos, spec))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
