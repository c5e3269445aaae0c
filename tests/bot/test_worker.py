"""/retrain on `digitbot worker` (RETRAIN_ON_WORKER): the queue, the worker and the shared model
registry, on the real PostgreSQL (TEST_DATABASE_URL) with the real bot against the emulator.

Each test gets a schema of its own on the server; the worker is `python -m bot.cli worker` in a
process of its own, with a model folder of its own (another machine, as far as it can tell).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.app import build_application
from bot.cluster import registry_sync
from bot.cluster.database import postgres_conninfo
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.state import BotApplication, get_state
from bot.transport.lifecycle import ALLOWED_UPDATES, stop_application
from core import registry
from core.serving import Classifier
from tests.bot.conftest import (
    ADMIN_ID,
    TOKEN,
    environment_without,
    spawn_digitbot,
    started_url,
)

pytestmark = pytest.mark.postgres

TRAINING_TIMEOUT = 600
SWAP_SECONDS = 10  # "within seconds": a replica serves the promoted version this soon


@pytest.fixture
def shared_url(postgres_url: str) -> str:
    """DATABASE_URL of a fresh schema on the PostgreSQL server (every connection lands in it)."""
    return postgres_url


def fresh_model_dir(model_dir: Path, name: str) -> Path:
    """Another machine's copy of the shipped model folder."""
    target = model_dir.parent / name
    shutil.copytree(model_dir, target)
    return target


# --- the shared registry ---------------------------------------------------------------------


def publish_copy(conninfo: str, source: Path, version: str, into: Path) -> str:
    """Publish the model in `source` again under the name `version` (a "new" version)."""
    staging = registry.staging_dir(into)
    for path in source.iterdir():
        shutil.copy(path, staging / path.name)
    metadata = registry.read_metadata(source.parent, source.name)
    registry.write_json_atomic(staging / registry.METADATA_FILE, {**metadata, "version": version})
    return registry_sync.publish(conninfo, staging)


def test_the_first_process_seeds_the_registry_and_the_others_download_what_is_published(
    shared_url: str, model_dir: Path
) -> None:
    conninfo = postgres_conninfo(shared_url, "the test")
    registry_sync.create_tables(conninfo)
    registry_sync.create_tables(conninfo)  # a second replica starting: nothing changes
    shipped = registry.current_version(model_dir)
    assert registry_sync.database_current(conninfo) is None
    assert registry_sync.sync_current(conninfo, model_dir) == shipped
    assert registry_sync.database_current(conninfo) == shipped
    # A "new version" published by the worker: the shipped files under another name.
    worker_dir = fresh_model_dir(model_dir, "worker-models")
    assert publish_copy(conninfo, worker_dir / shipped, "v2", worker_dir) == "v2"
    # A replica's folder gets it, complete, and CURRENT names it; so does an empty one's.
    fresh = model_dir.parent / "fresh-replica-models"
    for folder in (model_dir, fresh):
        assert registry_sync.sync_current(conninfo, folder) == "v2"
        assert registry.current_version(folder) == "v2"
        assert (folder / "v2" / registry.TFLITE_FILE).read_bytes() == (
            worker_dir / shipped / registry.TFLITE_FILE
        ).read_bytes()
        assert not list(folder.glob(f"{registry.STAGING_PREFIX}*"))
    assert registry.list_versions(fresh) == ["v2"]
    # A seed never replaces a published CURRENT.
    assert registry_sync.publish(conninfo, model_dir / shipped, seed=True) == shipped
    assert registry_sync.database_current(conninfo) == "v2"
    # An incomplete folder is refused, with its name.
    staging = worker_dir / "incomplete"
    shutil.copytree(worker_dir / shipped, staging)
    (staging / registry.KERAS_FILE).unlink()
    with pytest.raises(registry.RegistryError, match="incomplete"):
        registry_sync.publish(conninfo, staging)


async def served_version(classifier: Classifier, version: str, seconds: float) -> float:
    started = time.monotonic()
    while classifier.version != version:
        if time.monotonic() - started > seconds:
            raise AssertionError(f"still serving {classifier.version} after {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_follower_swaps_on_notify_and_polls_for_what_it_missed(
    shared_url: str, model_dir: Path
) -> None:
    conninfo = postgres_conninfo(shared_url, "the test")
    shipped = registry.current_version(model_dir)
    classifier = Classifier(model_dir)
    worker_dir = fresh_model_dir(model_dir, "worker-models")
    # LISTEN: a poll a minute apart, yet the NOTIFY brings the new version within seconds.
    follower = registry_sync.ModelFollower(conninfo, classifier, poll_seconds=60)
    await follower.start()  # seeds the empty database with the shipped model
    await asyncio.sleep(0.5)  # let it LISTEN
    try:
        publish_copy(conninfo, worker_dir / shipped, "v2", worker_dir)
        print(f"NOTIFY to served: {await served_version(classifier, 'v2', SWAP_SECONDS):.2f} s")
    finally:
        await follower.stop()
    # A change without NOTIFY (a notification lost with its connection): the poll finds it.
    follower = registry_sync.ModelFollower(conninfo, classifier, poll_seconds=1)
    await follower.start()
    try:
        with psycopg.connect(conninfo) as connection:
            connection.execute("UPDATE digitbot_model_current SET version = %s", (shipped,))
        await served_version(classifier, shipped, SWAP_SECONDS)
    finally:
        await follower.stop()
    assert registry.current_version(model_dir) == shipped


# --- the replica's side: queue, "already running", cancel ------------------------------------


@pytest.fixture
async def replicas(
    emulator: BotApiEmulator, bot_settings: dict[str, Any], shared_url: str
) -> AsyncIterator[Callable[..., Awaitable[BotApplication]]]:
    """A factory of replicas with RETRAIN_ON_WORKER on the shared schema: the first polls the
    emulator; the others (`polling=False`) only serve and follow the shared registry."""
    started: list[BotApplication] = []

    async def start(*, polling: bool = True, **overrides: Any) -> BotApplication:
        fields = {
            **bot_settings,
            "retrain_on_worker": True,
            "database_url": shared_url,
            "model_poll_seconds": 2.0,
            **overrides,
        }
        application = build_application(Settings(_env_file=None, **fields))
        await application.initialize()
        started.append(application)
        if application.post_init is not None:
            await application.post_init(application)
        if polling and application.updater is not None:
            await application.updater.start_polling(
                poll_interval=0.0, timeout=1, allowed_updates=ALLOWED_UPDATES
            )
        await application.start()
        return application

    try:
        yield start
    finally:
        for application in started:
            await stop_application(application)


def job_statuses(shared_url: str) -> list[str]:
    with psycopg.connect(postgres_conninfo(shared_url, "the test")) as connection:
        rows = connection.execute("SELECT status FROM procrastinate_jobs ORDER BY id").fetchall()
    return [str(row[0]) for row in rows]


async def statuses_become(shared_url: str, expected: list[str], timeout: float = 10) -> None:
    """The jobs' statuses reach `expected` (a replica enqueues just after it answers)."""
    deadline = time.monotonic() + timeout
    while (found := job_statuses(shared_url)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"job statuses {found}, expected {expected}")
        await asyncio.sleep(0.1)


async def test_a_replica_only_queues_refuses_a_second_and_cancels_a_queued_one(
    replicas: Any, emulator: BotApiEmulator, shared_url: str
) -> None:
    await replicas()
    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 2")
    status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
    assert status["text"].startswith("Retraining queued: a training worker takes it")
    await statuses_become(shared_url, ["todo"])  # no worker: it waits, nothing trains here
    second = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain full")
    busy = await emulator.wait_for_reply(ADMIN_ID, second["message_id"])
    assert busy["text"].startswith("A retraining is already running; one at a time.")
    assert "Retraining queued" in busy["text"]
    assert job_statuses(shared_url) == ["todo"]
    cancel = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain cancel")
    told = await emulator.wait_for(
        lambda m: (
            m.get("reply_to_message", {}).get("message_id") == command["message_id"]
            and m["message_id"] != status["message_id"]
        )
    )
    assert told[0]["text"].startswith("Retraining cancelled.")
    assert job_statuses(shared_url) == ["cancelled"]
    nothing = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain cancel")
    reply = await emulator.wait_for_reply(ADMIN_ID, nothing["message_id"])
    assert reply["text"] == "No retraining is running; nothing to cancel."
    assert not [
        m
        for m in emulator.messages(ADMIN_ID)
        if m.get("reply_to_message", {}).get("message_id") == cancel["message_id"]
    ]


def test_retrain_on_worker_without_postgresql_says_so_in_one_line(
    bot_settings: dict[str, Any],
) -> None:
    settings = Settings(_env_file=None, **{**bot_settings, "retrain_on_worker": True})
    with pytest.raises(ValueError, match="RETRAIN_ON_WORKER=true needs DATABASE_URL on Postgre"):
        build_application(settings)


# --- the worker --------------------------------------------------------------------------------


async def start_worker(
    emulator: BotApiEmulator, shared_url: str, model_dir: Path, mnist_path: Path, tmp_path: Path
) -> asyncio.subprocess.Process:
    """`digitbot worker` in its own process with its own model folder, once it waits for jobs."""
    environment = environment_without(
        "TELEGRAM_",
        "RETRAIN_",
        "MNIST_",
        "DATABASE_",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=started_url(emulator),
        DATABASE_URL=shared_url,
        FEEDBACK_SALT="test-salt",
        MODEL_DIR=str(model_dir),
        MNIST_PATH=str(mnist_path),
        RETRAIN_TRAIN_LIMIT="2000",
        RETRAIN_TOLERANCE="100",  # promote what it trains: the test is the path, not the model
        HEARTBEAT_FILE="",
        DATA_DIR=str(tmp_path / "worker-data"),
    )
    process = await spawn_digitbot("worker", cwd=tmp_path, env=environment)
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        lines.append(line)
        if "waiting for /retrain jobs" in line:
            asyncio.get_running_loop().create_task(drain(process))
            return process
        if not line:
            break
    raise AssertionError("the worker did not start:\n" + "".join(lines))


async def drain(process: asyncio.subprocess.Process) -> None:
    """Keep reading the worker's output so that it never blocks on a full pipe."""
    if process.stdout is not None:
        while await process.stdout.readline():
            pass


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def served_within(application: BotApplication, version: str, seconds: float) -> float:
    """How long until the replica serves `version` (fails after `seconds`)."""
    started = time.monotonic()
    while get_state(application.bot_data).classifier.version != version:
        if time.monotonic() - started > seconds:
            raise AssertionError(f"the replica still serves its old model after {seconds} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_the_worker_trains_a_queued_retrain_and_every_replica_serves_it(
    replicas: Any,
    emulator: BotApiEmulator,
    shared_url: str,
    model_dir: Path,
    mnist_path: Path,
    tmp_path: Path,
) -> None:
    first = await replicas(image_processes=0)
    other_dir = fresh_model_dir(model_dir, "replica-2-models")
    second = await replicas(polling=False, model_dir=other_dir, image_processes=0)
    shipped = get_state(first.bot_data).classifier.version
    worker_dir = fresh_model_dir(model_dir, "worker-models")
    worker = await start_worker(emulator, shared_url, worker_dir, mnist_path, tmp_path)
    try:
        command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
        status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
        assert status["text"].startswith("Retraining queued")
        # The worker edits the replica's status message: what it trains, then the epochs.
        await emulator.wait_for(
            lambda m: m["message_id"] == status["message_id"] and "Epoch 1/1" in m["text"],
            timeout=TRAINING_TIMEOUT,
        )
        verdict = await emulator.wait_for(
            lambda m: (
                m.get("reply_to_message", {}).get("message_id") == command["message_id"]
                and m["message_id"] != status["message_id"]
            ),
            timeout=TRAINING_TIMEOUT,
        )
        text = verdict[0]["text"]
        assert "is now serving" in text, text
        version = registry.current_version(worker_dir)
        assert version != shipped and version in text
        conninfo = postgres_conninfo(shared_url, "the test")
        assert registry_sync.database_current(conninfo) == version
        # Both replicas swap to it without a restart, within seconds of the verdict.
        for name, application in (("polling", first), ("second", second)):
            seconds = await served_within(application, version, SWAP_SECONDS)
            print(f"the {name} replica served {version} {seconds:.2f} s after the verdict")
        assert registry.current_version(other_dir) == version
        assert registry.read_metadata(other_dir)["fine_tuned_from"] == shipped
        await statuses_become(shared_url, ["succeeded"])
    finally:
        await stop(worker)
    assert worker.returncode == 0


async def test_cancel_busy_and_a_killed_worker_on_the_queue(
    replicas: Any,
    emulator: BotApiEmulator,
    shared_url: str,
    model_dir: Path,
    mnist_path: Path,
    tmp_path: Path,
) -> None:
    """A running job: a second /retrain is refused, /retrain cancel stops it on the worker; a
    worker killed mid-job: the next worker marks the job failed and tells the admin."""
    await replicas(image_processes=0)
    worker_dir = fresh_model_dir(model_dir, "worker-models")
    worker = await start_worker(emulator, shared_url, worker_dir, mnist_path, tmp_path)
    try:
        command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 20")
        status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
        await emulator.wait_for(
            lambda m: m["message_id"] == status["message_id"] and "Epoch 1/20" in m["text"],
            timeout=TRAINING_TIMEOUT,
        )
        second = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
        busy = await emulator.wait_for_reply(ADMIN_ID, second["message_id"])
        assert busy["text"].startswith("A retraining is already running; one at a time.")
        assert "(running for" in busy["text"]
        emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain cancel")
        told = await emulator.wait_for(
            lambda m: (
                m.get("reply_to_message", {}).get("message_id") == command["message_id"]
                and m["message_id"] != status["message_id"]
            ),
            timeout=60,
        )
        assert told[0]["text"].startswith("Retraining cancelled."), told[0]["text"]
        await statuses_become(shared_url, ["aborted"])
        assert not list(worker_dir.glob(f"{registry.STAGING_PREFIX}*"))
        assert worker.returncode is None  # the worker goes on, ready for the next job
        # Killed mid-job: nothing can tell the admin until someone sees the heartbeat stop.
        command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 20")
        status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
        await emulator.wait_for(
            lambda m: m["message_id"] == status["message_id"] and "Epoch 1/20" in m["text"],
            timeout=TRAINING_TIMEOUT,
        )
        worker.kill()
        killed = time.monotonic()
        await worker.wait()
        worker = await start_worker(emulator, shared_url, worker_dir, mnist_path, tmp_path)
        lost = await emulator.wait_for(
            lambda m: (
                m.get("reply_to_message", {}).get("message_id") == command["message_id"]
                and m["message_id"] != status["message_id"]
            ),
            timeout=90,
        )
        print(
            f"the killed worker's job was failed {time.monotonic() - killed:.1f} s after the kill"
        )
        assert lost[0]["text"].startswith(
            "⚠ Retraining failed: the worker running it stopped mid-training"
        ), lost[0]["text"]
        await statuses_become(shared_url, ["aborted", "failed"])
        assert not list(worker_dir.glob(f"{registry.STAGING_PREFIX}*"))  # removed at start
    finally:
        await stop(worker)
