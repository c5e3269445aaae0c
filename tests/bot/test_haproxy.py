"""HAProxy in front of webhook replicas (bot/cluster/haproxy.py): the generated configuration is
one HAProxy accepts, and the emulator's webhook posts reach two replicas of the real bot through
it, secret header included, each update answered once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bot.cluster.haproxy import haproxy_config, main, parse_backend
from bot.cluster.replica import get_replica
from bot.sandbox.emulator import BotApiEmulator
from bot.tools.cluster import Haproxy, find_haproxy, free_port
from bot.transport.webhook import HEALTH_PATH, SECRET_HEADER
from tests.bot.conftest import OTHER_USER_ID, USER_ID
from tests.bot.test_bot_e2e import answered_digit, replies_to, settle
from tests.bot.test_cluster import start_replicas
from tests.conftest import ROOT, digit_photo


def haproxy_or_skip() -> str:
    """The haproxy executable, or fail (CI installs it) / skip (elsewhere)."""
    try:
        return find_haproxy()
    except ValueError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))


def test_replicas_are_host_and_port() -> None:
    assert parse_backend("10.0.0.5:8443") == ("10.0.0.5", 8443)
    assert parse_backend("[::1]:8443") == ("::1", 8443)
    for wrong in ("10.0.0.5", "host:http", "host:70000", ":8443"):
        with pytest.raises(ValueError, match="host:port"):
            parse_backend(wrong)
    with pytest.raises(ValueError, match="at least one replica"):
        haproxy_config([])


def test_haproxy_accepts_the_configuration_with_and_without_tls(tmp_path: Path) -> None:
    executable = haproxy_or_skip()
    backends = ["127.0.0.1:8001", "[::1]:8002"]
    plain = haproxy_config(backends, bind="127.0.0.1:8000", resolver="127.0.0.1:53")
    assert "server replica2 [::1]:8002 check" in plain and "ssl" not in plain
    (tmp_path / "plain.cfg").write_text(plain)
    result = subprocess.run(
        [executable, "-c", "-f", str(tmp_path / "plain.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tls = haproxy_config(backends, certificate=tmp_path / "bot.pem")
    assert f"bind *:443 ssl crt {tmp_path / 'bot.pem'}" in tls


def test_the_compose_files_haproxy_configuration_is_the_generators() -> None:
    shipped = (ROOT / "deploy" / "haproxy.cfg").read_text()
    backends = [f"replica{index}:8443" for index in (1, 2, 3)]
    certificate = Path("/etc/haproxy/certs/bot.pem")
    assert shipped == haproxy_config(backends, certificate=certificate, resolver="127.0.0.11:53")


def test_the_module_prints_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["10.0.0.5:8443", "10.0.0.6:8443", "--certificate", "/etc/bot.pem"]) == 0
    assert capsys.readouterr().out == haproxy_config(
        ["10.0.0.5:8443", "10.0.0.6:8443"], certificate=Path("/etc/bot.pem")
    )
    assert main(["10.0.0.5"]) == 2
    assert "a replica is host:port" in capsys.readouterr().err


@pytest.fixture
def haproxy_in_front() -> Iterator[Haproxy]:
    haproxy_or_skip()
    balancer = Haproxy([("127.0.0.1", free_port()), ("127.0.0.1", free_port())])
    balancer.start()
    yield balancer
    balancer.stop()


@pytest.mark.postgres
async def test_the_emulator_delivers_through_haproxy_to_both_replicas(
    postgres_url: str,
    haproxy_in_front: Haproxy,
    start_bot: Any,
    emulator: BotApiEmulator,
    mnist: Any,
) -> None:
    public = f"{haproxy_in_front.url}/hook"
    ports = [port for _, port in haproxy_in_front.backends]
    replicas = await start_replicas(start_bot, postgres_url, public_url=public, ports=ports)
    for _, running in replicas:
        assert running.settings.webhook_url == public
    assert emulator.webhook is not None and emulator.webhook["url"] == public
    async with aiohttp.ClientSession() as session:
        for port in ports:  # what HAProxy asks: the bot runs, and which model it serves
            async with session.get(f"http://127.0.0.1:{port}{HEALTH_PATH}") as response:
                assert response.status == 200
                version = replicas[0][1].state.classifier.version
                assert await response.text() == f"ok {version}"
    await settle(1.0)
    photos = [
        (emulator.send_photo(user, user, digit_photo(mnist.x_test[index])), index)
        for index, user in enumerate([USER_ID, OTHER_USER_ID] * 6)
    ]
    for photo, index in photos:
        chat = photo["chat"]["id"]
        reply = await emulator.wait_for_reply(chat, photo["message_id"], timeout=60)
        assert answered_digit(reply) == str(int(mnist.y_test[index]))
    await settle(1.0)
    for photo, _ in photos:
        assert len(replies_to(emulator, photo["chat"]["id"], photo["message_id"])) == 1
    replica = get_replica(replicas[0][1].application.bot_data)
    assert replica is not None
    with replica.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT owner, count(*) FROM cluster_updates GROUP BY owner")
        ).all()
    owners = {str(row[0]): int(row[1]) for row in rows}
    assert set(owners) == {"replica-1", "replica-2"} and sum(owners.values()) == 12
    async with aiohttp.ClientSession() as session:
        forged = {"update_id": 999, "message": photos[0][0]}
        async with session.post(public, json=forged) as response:
            assert response.status == 403  # HAProxy passes the request on; the replica refuses
        headers = {SECRET_HEADER: "wrong"}
        async with session.post(public, json=forged, headers=headers) as response:
            assert response.status == 403
        replicas[0][1].state.webhook_serving = False  # as while it stops: out of rotation
        async with session.get(f"http://127.0.0.1:{ports[0]}{HEALTH_PATH}") as response:
            assert response.status == 503
