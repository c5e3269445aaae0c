"""`digitbot bench replicas`: the rehearsal of several replicas, all on 127.0.0.1.

A fresh schema on the PostgreSQL server (DATABASE_URL when it is PostgreSQL, else
TEST_DATABASE_URL), HAProxy in front of `replicas` processes of `digitbot run --webhook`
(REPLICA_ID set, the real PTB bot), and the Bot API emulator, which posts every update to
HAProxy as Telegram would. Many users in a few chats send photos at once; once a share of them
is answered, one replica is SIGKILLed with its image workers (no goodbye: its leases are left
to run out). The run then checks every photo: lost (never answered), answered twice, or
repeated because the killed replica had sent its answer just before it died and had not yet
marked the update done (the ledger shows who accepted each update: those are counted apart).

Then the killed replica is started again (a deploy brings it back), an admin sends /retrain,
which the replicas only queue (RETRAIN_ON_WORKER); `digitbot worker`, a process of its own with
its own model folder, fine-tunes with a small budget (`retrain_images`, one epoch) and promotes
by the usual rule; the run checks which replicas serve the promoted version (their /healthz).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from bot.cluster.ledger import postgres_engine
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.tools.cluster import (
    Haproxy,
    ReplicaProcess,
    free_port,
    postgres_schema,
    replica_environment,
    wait_healthy,
)
from bot.tools.loadtest import LoadSpec, add_chats, load_photos

TOKEN = "123456:REPLICAS-BENCH"
ADMIN_ID = 4242
HEALTH_TIMEOUT = aiohttp.ClientTimeout(total=5)
BOT_USERNAME = "digitbot_replicas_bot"
WEBHOOK_PATH = "/hook"


@dataclass(frozen=True)
class ReplicasSpec:
    """The rehearsal: `load` (photos, users, chats), `replicas` processes, and which one is
    killed once `kill_after` of the photos are answered."""

    load: LoadSpec = field(default_factory=LoadSpec)
    replicas: int = 3
    killed: int = 2  # 1-based, as in the "killed replica 2"
    kill_after: float = 0.3
    lease_seconds: float = 3.0
    image_processes: int = 1
    start_timeout: float = 180.0
    retrain_images: int = 2000  # the /retrain budget: MNIST images, one epoch (0: no /retrain)
    retrain_tolerance: float | None = None  # RETRAIN_TOLERANCE for it (None: the setting's)
    retrain_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.replicas < 2:
            raise ValueError("the rehearsal needs at least 2 replicas (one is killed)")
        if not 1 <= self.killed <= self.replicas:
            raise ValueError(f"the killed replica must be 1 to {self.replicas}")
        if not 0 < self.kill_after < 1:
            raise ValueError("kill_after is a share of the photos, between 0 and 1")


@dataclass
class ReplicasReport:
    """What the rehearsal found."""

    spec: ReplicasSpec
    photos: int = 0
    lost: int = 0
    answered_twice: int = 0  # a failure: not explained by the killed replica's death
    repeated_by_killed: int = 0  # the killed replica answered, then died before "done"
    wrong_digit: int = 0
    killed: bool = False
    killed_at_answers: int = 0
    seconds: float = 0.0
    taken_over: int = 0
    handled_by: dict[str, int] = field(default_factory=dict)
    posts: int = 0
    failed_posts: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    retrain_verdict: str = "not run"  # the admin's last message about the /retrain
    promoted: str | None = None  # the version the worker promoted
    serving_promoted: int = 0  # replicas whose /healthz names it

    @property
    def ok(self) -> bool:
        retrained = self.spec.retrain_images == 0 or (
            self.promoted is not None and self.serving_promoted == self.spec.replicas
        )
        return (
            self.killed
            and self.lost == 0
            and self.answered_twice == 0
            and retrained
            and not self.problems
        )

    def lines(self) -> list[str]:
        spec = self.spec
        handled = ", ".join(f"{name} {count}" for name, count in sorted(self.handled_by.items()))
        statuses = ", ".join(
            f"{status}: {count}" for status, count in sorted(self.statuses.items())
        )
        lines = [
            f"{spec.load.photos} photos from {spec.load.users} users in {spec.load.chats} chats, "
            f"{spec.replicas} replicas (`digitbot run --webhook`, REPLICA_LEASE_SECONDS="
            f"{spec.lease_seconds:g}), all answered in {self.seconds:.1f} s",
            f"replica {spec.killed} SIGKILLed after {self.killed_at_answers} answers; "
            f"{self.taken_over} updates it had accepted were taken over by the others",
            f"handled (ledger, final owner): {handled}",
            f"webhook posts: {self.posts} ({self.failed_posts} failed and retried; "
            f"HTTP statuses {statuses})",
            f"wrong digits: {self.wrong_digit}; answers repeated because replica {spec.killed} "
            f"died after answering and before marking them done: {self.repeated_by_killed}",
            f"replicas' exit: {self.exit_codes}",
        ]
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        lines.append(
            f"replicas: {spec.replicas} replicas behind haproxy, {self.photos} photos, "
            f"lost {self.lost}, answered twice {self.answered_twice}, killed replica "
            f"{spec.killed} mid-burst: {'yes' if self.killed else 'no'}, /retrain on the worker "
            + (
                f"promoted {self.promoted}, serving it: {self.serving_promoted} of {spec.replicas}"
                if self.promoted
                else f"{self.retrain_verdict}, serving it: -"
            )
        )
        return lines


def postgres_url_for_bench(settings: Settings) -> str:
    """DATABASE_URL when it is PostgreSQL, else TEST_DATABASE_URL; ValueError without either."""
    if settings.database_url.startswith(("postgresql", "postgres:")):
        return settings.database_url
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        raise ValueError(
            "digitbot bench replicas needs a PostgreSQL server: set DATABASE_URL (or "
            "TEST_DATABASE_URL) to postgresql+psycopg://user:password@127.0.0.1/db; "
            "the bench works in a schema of its own and drops it"
        )
    return url


async def run_replicas(
    settings: Settings,
    photos: Sequence[tuple[bytes, int]],
    spec: ReplicasSpec,
    database_url: str,
) -> ReplicasReport:
    """Start everything, send the burst, kill a replica mid-way, check every answer, stop."""
    report = ReplicasReport(spec)
    emulator = BotApiEmulator(
        token=TOKEN,
        bot_username=BOT_USERNAME,
        max_pending_updates=spec.load.photos * 2 + 1000,
        max_messages_per_chat=spec.load.photos * 2 + 1000,
        max_calls=spec.load.photos * 20 + 1000,
        webhook_timeout=15.0,
        webhook_retry_seconds=0.2,
    )
    await emulator.start(host="127.0.0.1", port=0)
    haproxy = Haproxy([("127.0.0.1", free_port()) for _ in range(spec.replicas)])
    scratch = tempfile.TemporaryDirectory(prefix="digitbot-replicas-")
    folder = Path(scratch.name)
    replicas: list[ReplicaProcess] = []
    try:
        with postgres_schema(database_url) as schema_url:
            haproxy.start()
            model_dir = folder / "models"
            shutil.copytree(settings.model_dir, model_dir, ignore=shutil.ignore_patterns(".*"))
            common = {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": str(emulator.url),
                "WEBHOOK_URL": f"{haproxy.url}{WEBHOOK_PATH}",
                "WEBHOOK_LISTEN": "127.0.0.1",
                "WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(32),
                "REPLICA_LEASE_SECONDS": str(spec.lease_seconds),
                "DATABASE_URL": schema_url,
                "FEEDBACK_SALT": secrets.token_hex(16),
                "MODEL_DIR": str(model_dir),
                "IMAGE_PROCESSES": str(spec.image_processes),
                # The emulator has no flood limits; Telegram's are switched off (see loadtest).
                "RATE_LIMIT_OVERALL": "0",
                "RATE_LIMIT_GROUP_PER_MINUTE": "0",
                "GROUP_USER_SHARE_PER_MINUTE": str(spec.load.photos),
                "FLOOD_LIMIT": str(spec.load.photos),
                "LOG_LEVEL": "WARNING",
                "RETRAIN_ON_WORKER": "true",
                "MODEL_POLL_SECONDS": "2",
                "ADMIN_USER_IDS": str(ADMIN_ID),
            }
            for number, (_, port) in enumerate(haproxy.backends, start=1):
                name = f"replica-{number}"
                environment = replica_environment(
                    os.environ,
                    **common,
                    REPLICA_ID=name,
                    WEBHOOK_PORT=str(port),
                    DATA_DIR=str(folder / name),
                    HEARTBEAT_FILE=str(folder / name / "heartbeat"),
                )
                replicas.append(ReplicaProcess(name, port, environment, folder / f"{name}.log"))
            for replica in replicas:
                replica.start()
            for replica in replicas:
                await wait_healthy(replica.health_url, spec.start_timeout, replica.process)
            # HAProxy puts a replica in rotation after two good checks in a row.
            await asyncio.sleep(haproxy.check_interval_ms * 3 / 1000)
            repeated, killed_at = await _burst(
                emulator, photos, spec, report, replicas[spec.killed - 1]
            )
            _read_ledger(schema_url, spec, report, repeated, killed_at)
            if spec.retrain_images:
                # A deploy brings the killed replica back; it starts on the database's model.
                victim = replicas[spec.killed - 1]
                if victim.process is not None:
                    report.exit_codes[f"{victim.name} (killed)"] = victim.process.returncode
                replicas[spec.killed - 1] = ReplicaProcess(
                    victim.name, victim.port, victim.environment, folder / "restarted.log"
                )
                replicas[spec.killed - 1].start()
                await wait_healthy(
                    replicas[spec.killed - 1].health_url,
                    spec.start_timeout,
                    replicas[spec.killed - 1].process,
                )
                worker_dir = folder / "worker-models"
                shutil.copytree(model_dir, worker_dir)
                tolerance = spec.retrain_tolerance
                worker_settings = {
                    **common,
                    "MODEL_DIR": str(worker_dir),
                    "DATA_DIR": str(folder / "worker"),
                    "HEARTBEAT_FILE": "",
                    "RETRAIN_EPOCHS": "1",
                    "RETRAIN_TRAIN_LIMIT": str(spec.retrain_images),
                    "RETRAIN_TOLERANCE": str(
                        settings.retrain_tolerance if tolerance is None else tolerance
                    ),
                }
                if settings.mnist_path is not None:
                    worker_settings["MNIST_PATH"] = str(settings.mnist_path)
                worker = ReplicaProcess(
                    "worker",
                    0,
                    replica_environment(os.environ, **worker_settings),
                    folder / "worker.log",
                    command=("worker",),
                )
                replicas.append(worker)  # stopped and killed with the replicas
                worker.start()
                await _retrain_on_worker(emulator, spec, report, replicas[: spec.replicas])
            stats = emulator.webhook_stats
            if stats is not None:
                report.posts, report.failed_posts = stats.posts, stats.failures
                report.statuses = dict(stats.statuses)
            for replica in replicas:
                report.exit_codes[replica.name] = replica.stop()
    finally:
        for replica in replicas:
            replica.kill()
        haproxy.stop()
        await emulator.stop()
        for replica in replicas:
            if not report.ok and replica.log_path.exists():
                tail = replica.log_path.read_text(errors="replace")[-2000:]
                report.problems.append(f"{replica.name}'s log ends: {tail}")
        scratch.cleanup()
    return report


async def _burst(
    emulator: BotApiEmulator,
    photos: Sequence[tuple[bytes, int]],
    spec: ReplicasSpec,
    report: ReplicasReport,
    victim: ReplicaProcess,
) -> tuple[dict[int, float], float | None]:
    """Send the photos, kill `victim` mid-way, collect the answers; the update_id of each photo
    answered more than once -> when its first answer came, and when `victim` was killed."""
    load = spec.load
    plan = add_chats(emulator, load, "Group")
    events = emulator.subscribe(max_events=load.photos * 6 + 1000)
    expected: dict[tuple[int, int], tuple[int, int]] = {}  # (chat, message) -> (label, update)
    for number in range(load.photos):
        chat_id, user_id = plan[number % len(plan)]
        data, label = photos[number]
        caption = None if chat_id > 0 else f"@{BOT_USERNAME} which digit?"
        message = emulator.send_photo(chat_id, user_id, data, caption=caption)
        expected[(chat_id, message["message_id"])] = (label, emulator.last_update_id)
    report.photos = load.photos
    started = time.perf_counter()
    answers: dict[tuple[int, int], list[tuple[float, str]]] = {}

    def take(event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        if event.get("type") != "new_message" or message["from"]["id"] != emulator.bot_id:
            return
        key = (message["chat"]["id"], message.get("reply_to_message", {}).get("message_id"))
        if key in expected:
            answers.setdefault(key, []).append((time.perf_counter(), message.get("text", "")))

    killed_at: float | None = None
    deadline = started + load.timeout
    while len(answers) < len(expected) and time.perf_counter() < deadline:
        if killed_at is None and len(answers) >= spec.kill_after * load.photos:
            victim.kill()
            killed_at = time.perf_counter()
            report.killed, report.killed_at_answers = True, len(answers)
        with contextlib.suppress(TimeoutError):
            take(await asyncio.wait_for(events.get(), timeout=0.5))
    report.seconds = time.perf_counter() - started
    # A repeated answer comes once the dead replica's lease ran out: wait for it to count it.
    end = time.perf_counter() + spec.lease_seconds * 2 + 3
    while time.perf_counter() < end:
        with contextlib.suppress(TimeoutError):
            take(await asyncio.wait_for(events.get(), timeout=0.5))
    emulator.unsubscribe(events)
    report.lost = sum(1 for key in expected if key not in answers)
    if report.lost:
        report.problems.append(f"{report.lost} photos never answered")
    report.wrong_digit = sum(
        1 for key, texts in answers.items() if texts[0][1].split()[:1] != [str(expected[key][0])]
    )
    repeated = {expected[key][1]: texts[0][0] for key, texts in answers.items() if len(texts) > 1}
    return repeated, killed_at


async def _retrain_on_worker(
    emulator: BotApiEmulator,
    spec: ReplicasSpec,
    report: ReplicasReport,
    replicas: Sequence[ReplicaProcess],
) -> None:
    """An admin's /retrain, queued by a replica and trained by the worker; then which
    replicas serve what it promoted (each /healthz answers `ok <version>`)."""
    emulator.add_user(ADMIN_ID, "Admin")
    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain")
    status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"], timeout=60.0)
    try:
        verdict = await emulator.wait_for(
            lambda m: (
                m["chat"]["id"] == ADMIN_ID
                and m.get("reply_to_message", {}).get("message_id") == command["message_id"]
                and m["message_id"] != status["message_id"]
            ),
            timeout=spec.retrain_timeout,
        )
    except TimeoutError:
        report.retrain_verdict = f"no verdict within {spec.retrain_timeout:.0f} s"
        report.problems.append(report.retrain_verdict)
        return
    text_ = verdict[0]["text"]
    found = re.search(r"New model (\S+) is now serving", text_)
    if found is None:
        report.retrain_verdict = "not promoted: " + text_.splitlines()[0]
        return
    report.promoted = found.group(1)
    deadline = time.monotonic() + 30.0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            serving = 0
            for replica in replicas:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(replica.health_url, timeout=HEALTH_TIMEOUT) as response:
                        serving += (await response.text()).split()[-1:] == [report.promoted]
            report.serving_promoted = serving
            if serving == len(replicas):
                return
            await asyncio.sleep(0.5)


def _read_ledger(
    database_url: str,
    spec: ReplicasSpec,
    report: ReplicasReport,
    repeated: dict[int, float],
    killed_at: float | None,
) -> None:
    """Who handled what, and which repeated answers the killed replica's death explains: it
    accepted the update, and the first answer came before it was killed."""
    killed_name = f"replica-{spec.killed}"
    engine = postgres_engine(database_url, "the bench")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT update_id, owner, accepted_by, attempts FROM cluster_updates")
            ).all()
    finally:
        engine.dispose()
    accepted_by = {int(row[0]): str(row[2]) for row in rows}
    for row in rows:
        report.handled_by[str(row[1])] = report.handled_by.get(str(row[1]), 0) + 1
    report.taken_over = sum(1 for row in rows if int(row[3]) > 1)
    for update_id, first_answer in repeated.items():
        by_killed = accepted_by.get(update_id) == killed_name
        if by_killed and killed_at is not None and first_answer <= killed_at + 0.5:
            report.repeated_by_killed += 1
        else:
            report.answered_twice += 1
    if report.answered_twice:
        report.problems.append(f"{report.answered_twice} photos answered twice")


def run_replicas_command(settings: Settings, arguments: argparse.Namespace) -> int:
    """`digitbot bench replicas`: print the report; exit 1 if a photo was lost or answered
    twice, or the replica could not be killed."""
    from core.data import load_mnist

    load = LoadSpec(
        photos=arguments.count or 500,
        users=arguments.users,
        chats=arguments.chats,
        private_chats=min(2, arguments.chats - 1),
        timeout=600.0,
    )
    spec = ReplicasSpec(load=load, image_processes=settings.image_processes)
    settings = settings.model_copy(update={"mnist_path": arguments.mnist_path})  # the worker's
    database_url = postgres_url_for_bench(settings)
    mnist = load_mnist(arguments.mnist_path)
    photos = load_photos(mnist.x_test, mnist.y_test, load.photos)
    report = asyncio.run(run_replicas(settings, photos, spec, database_url))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot.tools.replicasbench [--count 500] [--users 50] [--chats 5]`."""
    parser = argparse.ArgumentParser(prog="python -m bot.tools.replicasbench", description=__doc__)
    parser.add_argument("--count", type=int, help="photos sent (default 500)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--chats", type=int, default=5)
    arguments = parser.parse_args(argv)
    settings = Settings()
    arguments.mnist_path = settings.mnist_path
    try:
        return run_replicas_command(settings, arguments)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
