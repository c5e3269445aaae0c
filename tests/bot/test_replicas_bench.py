"""The replicas bench in small: 3 replica processes of the real bot behind HAProxy on one
PostgreSQL, the emulator posting by webhook, replica 2 SIGKILLed mid-burst; nothing is lost and
nothing answered twice (bot/tools/replicasbench.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from bot.tools.loadtest import LoadSpec, load_photos
from bot.tools.replicasbench import ReplicasSpec, run_replicas
from tests.bot.conftest import postgres_base_url
from tests.bot.test_haproxy import haproxy_or_skip

pytestmark = pytest.mark.postgres

LAST_LINE = re.compile(
    r"^replicas: 3 replicas behind haproxy, 40 photos, lost (\d+), answered twice (\d+), "
    r"killed replica 2 mid-burst: (yes|no), /retrain on the worker: not run "
)


async def test_a_replica_killed_mid_burst_loses_nothing(model_dir: Path, mnist: Any) -> None:
    haproxy_or_skip()
    database_url = postgres_base_url()
    load = LoadSpec(photos=40, users=10, chats=5, private_chats=2, timeout=240.0)
    spec = ReplicasSpec(load=load, image_processes=0, kill_after=0.3)
    settings = Settings(_env_file=None, model_dir=model_dir)
    photos = load_photos(mnist.x_test, mnist.y_test, load.photos, seed=1)
    report = await run_replicas(settings, photos, spec, database_url)
    lines = report.lines()
    assert report.ok, "\n".join(lines)
    found = LAST_LINE.match(lines[-1])
    assert found is not None, lines[-1]
    assert found.groups() == ("0", "0", "yes")
    assert report.killed_at_answers < load.photos  # killed while photos were still waiting
    assert report.exit_codes["replica-2"] == -9 and report.exit_codes["replica-1"] == 0
    assert report.taken_over >= 1  # it died holding updates, and the others answered them
    assert sum(report.handled_by.values()) == load.photos
    assert report.repeated_by_killed <= report.taken_over
