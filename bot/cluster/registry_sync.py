"""The model registry shared through PostgreSQL: each published version's files and CURRENT.

Why the database and not shared storage: the worker that trains may be another machine (a GPU
box) that reaches the database anyway, a version is a few MB (model.keras, model.tflite,
metadata.json, two plots), and one transaction writes the files, moves CURRENT and sends the
NOTIFY, so no replica can see a CURRENT whose files are not there yet. No NFS or bucket to run.

Every process keeps its own local model folder (core/registry.py's layout) as a cache:
- the worker `publish`es a promoted candidate (`digitbot worker`, bot/cluster/worker.py);
- `sync_current` makes the local folder's CURRENT the database's, downloading the version into a
  staging folder and renaming it into place as `registry.promote` does; a fresh database is
  seeded with the local CURRENT (the shipped model) by whoever comes first;
- `ModelFollower` (each replica) LISTENs for the NOTIFY, checks every `poll_seconds` as well
  (a lost LISTEN connection costs at most that long), and swaps the served model with
  `Classifier.reload`, as a local /retrain does, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import psycopg

from bot.cluster.database import MODELS_LOCK, SCHEMA_LOCK
from core import registry
from core.serving import Classifier

logger = logging.getLogger(__name__)

CHANNEL = "digitbot_models"  # NOTIFY payload: the new CURRENT version
KEEP_VERSIONS = registry.KEEP_VERSIONS  # published versions kept besides CURRENT
RETRY_SECONDS = 2.0  # wait before reconnecting a lost LISTEN connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS digitbot_model_versions (
    version text PRIMARY KEY,
    published_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS digitbot_model_files (
    version text NOT NULL REFERENCES digitbot_model_versions ON DELETE CASCADE,
    name text NOT NULL,
    content bytea NOT NULL,
    PRIMARY KEY (version, name)
);
CREATE TABLE IF NOT EXISTS digitbot_model_current (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version text NOT NULL REFERENCES digitbot_model_versions,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def create_tables(conninfo: str) -> None:
    """The registry's tables (idempotent; two replicas starting together take turns)."""
    with psycopg.connect(conninfo) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        connection.execute(SCHEMA)


def database_current(conninfo: str) -> str | None:
    """The version the database names as CURRENT (None: nothing published yet)."""
    with psycopg.connect(conninfo) as connection:
        row = connection.execute("SELECT version FROM digitbot_model_current").fetchone()
    return None if row is None else str(row[0])


def publish(conninfo: str, folder: Path, *, seed: bool = False) -> str:
    """Store a complete version folder (a promoted candidate's), make it CURRENT and NOTIFY
    every replica, all in one transaction; returns the version. `seed`: only if the database
    has no CURRENT yet (the first process to start publishes its shipped model)."""
    folder = Path(folder)
    missing = [name for name in registry.REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise registry.RegistryError(f"{folder} is incomplete (missing {missing}); not published")
    version = str(registry.read_metadata(folder.parent, folder.name)["version"])
    files = [(path.name, path.read_bytes()) for path in sorted(folder.iterdir()) if path.is_file()]
    with psycopg.connect(conninfo) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MODELS_LOCK,))
        inserted = connection.execute(
            "INSERT INTO digitbot_model_versions (version) VALUES (%s) "
            "ON CONFLICT DO NOTHING RETURNING version",
            (version,),
        ).fetchone()
        if inserted is not None:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO digitbot_model_files (version, name, content) VALUES (%s, %s, %s)",
                    [(version, name, content) for name, content in files],
                )
        _point_current(connection, version, replace=not seed)
        if not seed:
            _prune(connection, version)
    logger.info("published model %s to the database (%d files)", version, len(files))
    return version


def _point_current(
    connection: psycopg.Connection[tuple[object, ...]], version: str, *, replace: bool
) -> None:
    on_conflict = (
        "DO UPDATE SET version = excluded.version, updated_at = now()" if replace else "DO NOTHING"
    )
    connection.execute(
        "INSERT INTO digitbot_model_current (singleton, version) VALUES (true, %s) "
        f"ON CONFLICT (singleton) {on_conflict}",
        (version,),
    )
    connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, version))


def _prune(connection: psycopg.Connection[tuple[object, ...]], current: str) -> None:
    """Keep CURRENT and the KEEP_VERSIONS newest others (a few MB each)."""
    connection.execute(
        "DELETE FROM digitbot_model_versions WHERE version <> %s AND version NOT IN ("
        "SELECT version FROM digitbot_model_versions WHERE version <> %s "
        "ORDER BY published_at DESC, version DESC LIMIT %s)",
        (current, current, KEEP_VERSIONS),
    )


def download(conninfo: str, version: str, model_dir: Path) -> None:
    """Write a published version into `model_dir` (staging folder, then one rename)."""
    model_dir = Path(model_dir)
    with psycopg.connect(conninfo) as connection:
        files = connection.execute(
            "SELECT name, content FROM digitbot_model_files WHERE version = %s", (version,)
        ).fetchall()
    names = {str(name) for name, _ in files}
    missing = [name for name in registry.REQUIRED_FILES if name not in names]
    if missing:
        raise registry.RegistryError(
            f"the database's model {version} lacks {missing}; not downloaded"
        )
    staging = registry.staging_dir(model_dir)
    try:
        for name, content in files:
            (staging / Path(str(name)).name).write_bytes(bytes(content))
        for path in staging.iterdir():
            registry.fsync_path(path)
        registry.fsync_path(staging)
        target = model_dir / version
        if target.exists():  # an earlier, interrupted copy (complete ones are not downloaded)
            registry.discard(target)
        staging.rename(target)
    except BaseException:
        registry.discard(staging)
        raise


def sync_current(conninfo: str, model_dir: Path) -> str:
    """Make the local CURRENT the database's (downloading it if needed); seed an empty database
    with the local CURRENT. Returns the version CURRENT names now."""
    model_dir = Path(model_dir)
    wanted = database_current(conninfo)
    if wanted is None:  # seeded once, by whoever comes first
        publish(conninfo, model_dir / registry.current_version(model_dir), seed=True)
        wanted = database_current(conninfo)
        if wanted is None:
            raise registry.RegistryError("the shared registry has no CURRENT after seeding it")
    with contextlib.suppress(registry.RegistryError):
        if registry.current_version(model_dir) == wanted:
            return wanted
    if wanted not in registry.list_versions(model_dir):
        download(conninfo, wanted, model_dir)
        logger.info("downloaded model %s from the database", wanted)
    registry.set_current(model_dir, wanted)
    registry.prune(model_dir)
    return wanted


class ModelFollower:
    """A replica's watch on the shared CURRENT: LISTEN, plus a check every `poll_seconds`."""

    def __init__(self, conninfo: str, classifier: Classifier, poll_seconds: float) -> None:
        self.conninfo = conninfo
        self.classifier = classifier
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the tables, serve the database's CURRENT now, then follow it."""
        await asyncio.to_thread(create_tables, self.conninfo)
        await self.check()
        self._task = asyncio.create_task(self._follow(), name="digitbot-model-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> str:
        """Sync the local folder with the database; reload the served model if it changed."""
        version = await asyncio.to_thread(sync_current, self.conninfo, self.classifier.model_dir)
        if version != self.classifier.version:
            served = await asyncio.to_thread(self.classifier.reload)
            logger.info("the shared registry's CURRENT is %s; serving %s", version, served)
        return version

    async def _follow(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    await self._check_logged()  # what was published while not listening
                    while True:
                        async for _ in connection.notifies(timeout=self.poll_seconds, stop_after=1):
                            pass
                        await self._check_logged()
            except (psycopg.Error, OSError) as error:
                logger.warning("lost the shared registry's LISTEN connection: %s", error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _check_logged(self) -> None:
        try:
            await self.check()
        except (psycopg.Error, OSError, registry.RegistryError) as error:
            # The served model stays; the next notification or poll tries again.
            logger.error("cannot follow the shared model registry: %s", error)
