"""The replicas bench in small: 3 replica processes of the real bot behind HAProxy on one
PostgreSQL, the emulator posting by webhook, replica 2 SIGKILLed mid-burst; nothing is lost and
nothing answered twice; then replica 2 is back, an admin's /retrain is trained and promoted by
`digitbot worker`, and all 3 replicas serve it (bot/tools/replicasbench.py)."""

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
    r"killed replica 2 mid-burst: (yes|no), /retrain on the worker promoted (\S+), "
    r"serving it: (\d) of 3$"
)


async def test_a_replica_killed_mid_burst_loses_nothing(
    model_dir: Path, mnist: Any, mnist_path: Path
) -> None:
    haproxy_or_skip()
    database_url = postgres_base_url()
    load = LoadSpec(photos=40, users=10, chats=5, private_chats=2, timeout=240.0)
    # The /retrain's tolerance lets any candidate through: this is the path, not the model.
    spec = ReplicasSpec(load=load, image_processes=0, kill_after=0.3, retrain_tolerance=100.0)
    settings = Settings(_env_file=None, model_dir=model_dir, mnist_path=mnist_path)
    photos = load_photos(mnist.x_test, mnist.y_test, load.photos, seed=1)
    report = await run_replicas(settings, photos, spec, database_url)
    lines = report.lines()
    assert report.ok, "\n".join(lines)
    found = LAST_LINE.match(lines[-1])
    assert found is not None, lines[-1]
    assert found.groups()[:3] == ("0", "0", "yes")
    assert found.group(4) == report.promoted and found.group(5) == "3"
    assert report.killed_at_answers < load.photos  # killed while photos were still waiting
    assert report.exit_codes["replica-2 (killed)"] == -9
    # Started again after the burst, it served the promoted version too, and stopped cleanly.
    assert report.exit_codes["replica-2"] == 0 and report.exit_codes["replica-1"] == 0
    assert report.exit_codes["worker"] == 0
    assert report.taken_over >= 1  # it died holding updates, and the others answered them
    assert sum(report.handled_by.values()) == load.photos
    assert report.repeated_by_killed <= report.taken_over
