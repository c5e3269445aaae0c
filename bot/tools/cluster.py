"""The pieces of a cluster on 127.0.0.1 for the replicas bench and the tests: a fresh
PostgreSQL schema, HAProxy in front of the replicas, and replicas as `digitbot run --webhook`
processes (each in a session of its own, so that SIGKILL takes its image workers too, as when a
machine dies)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import create_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from bot.cluster.haproxy import haproxy_config
from bot.feedback.store import normalize_url
from bot.settings import PROJECT_DIR
from bot.transport.webhook import HEALTH_PATH

HAPROXY_CANDIDATES = ("haproxy", "/usr/sbin/haproxy")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_haproxy() -> str:
    """The haproxy executable (Debian's package puts it in /usr/sbin); ValueError if none."""
    for candidate in HAPROXY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise ValueError("haproxy is not installed: `apt-get install haproxy` (Debian's package)")


@contextmanager
def postgres_schema(database_url: str, prefix: str = "bench") -> Iterator[str]:
    """A fresh schema (`prefix`_ and a random name) on the PostgreSQL server of `database_url`,
    dropped afterwards; yields a URL whose every connection lands in it."""
    base = normalize_url(database_url)
    if base.get_backend_name() != "postgresql":
        raise ValueError(f"the cluster needs PostgreSQL, got {base.get_backend_name()}")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(CreateSchema(schema))
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as connection:
                connection.execute(DropSchema(schema, cascade=True))
    finally:
        admin.dispose()


async def wait_healthy(url: str, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    """Wait until GET `url` answers 200; RuntimeError past `timeout` or if `process` ends."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the process behind {url} exited ({process.returncode})")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


@dataclass
class Haproxy:
    """HAProxy on 127.0.0.1:`port` in front of `backends`, in the foreground (-db)."""

    backends: list[tuple[str, int]]
    port: int = field(default_factory=free_port)
    check_interval_ms: int = 300
    process: subprocess.Popen[bytes] | None = None
    _folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="digitbot-haproxy-")
        config = Path(self._folder.name) / "haproxy.cfg"
        config.write_text(
            haproxy_config(
                [f"{host}:{port}" for host, port in self.backends],
                bind=f"127.0.0.1:{self.port}",
                check_interval_ms=self.check_interval_ms,
            )
        )
        executable = find_haproxy()
        checked = subprocess.run(
            [executable, "-c", "-f", str(config)], capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refused the configuration: {checked.stdout}")
        self.process = subprocess.Popen(
            [executable, "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


@dataclass
class ReplicaProcess:
    """`digitbot run --webhook` as replica `name`, listening on 127.0.0.1:`port` (or another
    digitbot `command`, such as the training worker)."""

    name: str
    port: int
    environment: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    command: tuple[str, ...] = ("run", "--webhook")

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HEALTH_PATH}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *self.command],
                cwd=PROJECT_DIR,  # this checkout's bot package first on sys.path
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL reaches its workers
            )

    def kill(self) -> None:
        """SIGKILL the replica and its image workers at once: no goodbye, no lease released."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a deploy); SIGKILL past `timeout`. The exit status, None if never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        with_workers_gone(self.process.pid)
        return self.process.returncode


def with_workers_gone(group: int) -> None:
    """End what is left of a process group (image workers of a replica that was stopped)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def replica_environment(base: Mapping[str, str], **settings: str) -> dict[str, str]:
    """This process's environment without digitbot's own settings' influence, plus `settings`."""
    dropped = ("TELEGRAM_", "WEBHOOK_", "REPLICA_", "DATABASE_URL", "ADMIN_", "LOG_")
    environment = {key: value for key, value in base.items() if not key.startswith(dropped)}
    environment.update(settings)
    return environment
