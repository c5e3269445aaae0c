"""Several webhook replicas sharing PostgreSQL (bot/cluster/): the update ledger, the takeover of a
dead replica's updates, and the shared flood counters; on the real server of TEST_DATABASE_URL
(CI always has one; elsewhere these tests skip without it)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.cluster.flood import SharedFloodCounter, verdict
from bot.cluster.ledger import UpdateLedger, postgres_engine
from bot.cluster.replica import Replica, get_replica
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import Settings
from bot.state import FloodVerdict
from bot.transport.webhook import SECRET_HEADER
from tests.bot.conftest import USER_ID, RunningBot
from tests.bot.test_bot_e2e import answered_digit, free_port, replies_to, settle
from tests.conftest import digit_photo

pytestmark = pytest.mark.postgres
SECRET = "cluster-s3cret"


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = postgres_engine(postgres_url, "the test")
    yield engine
    engine.dispose()


def ledger_of(engine: Engine, lease_seconds: float = 30.0) -> UpdateLedger:
    ledger = UpdateLedger(engine, timedelta(seconds=lease_seconds))
    ledger.create()
    return ledger


# --- the ledger ----------------------------------------------------------------------------------


def test_an_update_is_accepted_once_whoever_delivers_it_again(engine: Engine) -> None:
    ledger = ledger_of(engine)
    assert ledger.accept(10, '{"update_id": 10}', "replica-1")
    assert not ledger.accept(10, '{"update_id": 10}', "replica-1")  # Telegram redelivers
    assert not ledger.accept(10, '{"update_id": 10}', "replica-2")  # or it reaches another
    ledger.finish(10)
    assert not ledger.accept(10, '{"update_id": 10}', "replica-2")  # done, still known
    counts = ledger.counts()
    assert (counts.handling, counts.done, counts.taken_over) == (0, 1, 0)
    with engine.connect() as connection:
        body = connection.execute(text("SELECT body FROM cluster_updates")).scalar_one()
    assert body is None  # a handled update's content is not kept


def test_expired_leases_are_taken_over_once_and_renewed_ones_are_not(engine: Engine) -> None:
    ledger = ledger_of(engine, lease_seconds=0.5)
    ledger.accept(1, '{"update_id": 1}', "dead")
    ledger.accept(2, '{"update_id": 2}', "alive")
    assert ledger.take_over("other") == []  # leases still running
    for _ in range(4):
        threading.Event().wait(0.2)
        ledger.renew("alive")  # "alive" keeps its lease, "dead" does not
    assert ledger.take_over("other") == [(1, '{"update_id": 1}')]
    assert ledger.take_over("third") == []  # now "other"'s, with a fresh lease
    assert ledger.counts().taken_over == 1
    assert ledger.release("alive") == 1  # stopping: hands update 2 back at once
    assert ledger.take_over("other") == [(2, '{"update_id": 2}')]


def test_two_replicas_taking_over_at_once_never_claim_the_same_update(engine: Engine) -> None:
    ledger = ledger_of(engine, lease_seconds=30)
    for update_id in range(1, 201):
        ledger.accept(update_id, json.dumps({"update_id": update_id}), "dead")
    ledger.release("dead")
    claimed: dict[str, list[int]] = {}

    def take(owner: str) -> None:
        found: list[int] = []
        while batch := ledger.take_over(owner, limit=7):
            found += [update_id for update_id, _ in batch]
        claimed[owner] = found

    threads = [threading.Thread(target=take, args=(f"r{index}",)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [update_id for found in claimed.values() for update_id in found]
    assert sorted(everything) == list(range(1, 201))  # each exactly once


def test_a_replica_needs_a_webhook_postgresql_and_a_shared_secret(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="REPLICA_ID is for webhook replicas"):
        Replica(Settings(_env_file=None, replica_id="r1"))
    hook = "https://bot.example.org/hook"
    with pytest.raises(ValueError, match="WEBHOOK_SECRET_TOKEN"):
        Replica(Settings(_env_file=None, replica_id="r1", webhook_url=hook))
    sqlite = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    with pytest.raises(ValueError, match="REPLICA_ID needs DATABASE_URL on PostgreSQL"):
        Replica(
            Settings(
                _env_file=None,
                replica_id="r1",
                webhook_url=hook,
                webhook_secret_token=SECRET,
                database_url=sqlite,
            )
        )


# --- shared flood counters -------------------------------------------------------------------


def test_the_verdicts_are_those_of_the_in_memory_gate() -> None:
    assert [verdict(count, 2) for count in (1, 2, 3, 4, 5)] == [
        FloodVerdict.ALLOW,
        FloodVerdict.ALLOW,
        FloodVerdict.WARN,
        FloodVerdict.DROP,
        FloodVerdict.DROP,
    ]


async def test_two_replicas_count_one_users_requests_together(postgres_url: str) -> None:
    first, second = (postgres_engine(postgres_url, "the test") for _ in range(2))
    try:
        counters = [SharedFloodCounter(first), SharedFloodCounter(second)]
        counters[0].create()
        seen = [await counters[index % 2].count("images", 42, 3, 60.0) for index in range(5)]
        verdicts = [found for found, _ in seen]
        assert verdicts == [FloodVerdict.ALLOW] * 3 + [FloodVerdict.WARN, FloodVerdict.DROP]
        assert seen[0][1] == 0.0 and 0.0 < seen[3][1] <= 60.0  # the wait until the window ends
        other = await counters[1].count("images", 43, 3, 60.0)  # another user: own counter
        keyed = await counters[1].count("group_shares", (42, -100), 3, 60.0)
        assert other[0] is FloodVerdict.ALLOW and keyed[0] is FloodVerdict.ALLOW
    finally:
        first.dispose()
        second.dispose()


# --- the real bot as two replicas ------------------------------------------------------------


async def start_replicas(
    start_bot: Any,
    postgres_url: str,
    count: int = 2,
    *,
    public_url: str | None = None,
    ports: list[int] | None = None,
    **overrides: Any,
) -> list[tuple[str, RunningBot]]:
    """Webhook replicas of the real bot on one ledger (`count`, or one per port of `ports`),
    registering `public_url` (a load balancer's) or each its own; each one's URL and bot."""
    started = []
    for index, port in enumerate(ports or [free_port() for _ in range(count)]):
        url = f"http://127.0.0.1:{port}/hook"
        running = await start_bot(
            webhook=True,
            webhook_url=public_url or url,
            webhook_listen="127.0.0.1",
            webhook_port=port,
            webhook_secret_token=SECRET,
            database_url=postgres_url,
            replica_id=f"replica-{index + 1}",
            replica_lease_seconds=1.0,
            **overrides,
        )
        started.append((url, running))
    return started


async def post(url: str, update: dict[str, Any]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response,
    ):
        return response.status


async def test_an_update_posted_to_two_replicas_is_answered_once(
    postgres_url: str, start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    emulator.deliver_webhooks = False  # the test plays Telegram (and a load balancer)
    (first_url, first), (second_url, second) = await start_replicas(start_bot, postgres_url)
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[0]))
    (update,) = emulator.pending_updates()
    assert await post(first_url, update) == 200
    assert await post(second_url, update) == 200  # acknowledged, not handled
    assert await post(first_url, update) == 200  # a redelivery: the same
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=30)
    assert answered_digit(reply) == str(int(mnist.y_test[0]))
    await settle(1.0)
    assert len(replies_to(emulator, USER_ID, photo["message_id"])) == 1
    replicas = [get_replica(bot.application.bot_data) for bot in (first, second)]
    assert [replica.duplicates for replica in replicas if replica] == [1, 1]
    counts = replicas[0].ledger.counts() if replicas[0] else None
    assert counts is not None and counts.done == 1 and counts.handling == 0


async def test_an_update_a_dead_replica_accepted_is_taken_over_and_answered(
    postgres_url: str, start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    emulator.deliver_webhooks = False
    ((url, running),) = await start_replicas(start_bot, postgres_url, count=1)
    photo = emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[1]))
    (update,) = emulator.pending_updates()
    replica = get_replica(running.application.bot_data)
    assert replica is not None
    # A replica that acknowledged the update, then died before handling it:
    replica.ledger.accept(update["update_id"], json.dumps(update), "replica-that-died")
    assert await post(url, update) == 200  # Telegram's redelivery is not handled here...
    await settle(0.5)
    assert replies_to(emulator, USER_ID, photo["message_id"]) == []
    # ...until the dead replica's lease (1 s) runs out and this one takes the update over.
    reply = await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=30)
    assert answered_digit(reply) == str(int(mnist.y_test[1]))
    await settle(1.5)
    assert len(replies_to(emulator, USER_ID, photo["message_id"])) == 1
    assert replica.taken_over == 1
    assert replica.ledger.counts().done == 1


async def test_the_flood_limit_counts_a_users_photos_on_every_replica(
    postgres_url: str, start_bot: Any, emulator: BotApiEmulator, mnist: Any
) -> None:
    emulator.deliver_webhooks = False
    replicas = await start_replicas(start_bot, postgres_url, flood_limit=2)
    photos = [
        emulator.send_photo(USER_ID, USER_ID, digit_photo(mnist.x_test[index]))
        for index in range(3)
    ]
    for index, update in enumerate(emulator.pending_updates()):
        url = replicas[index % 2][0]  # alternating, as a load balancer would
        assert await post(url, update) == 200
        await asyncio.sleep(0.3)  # in order
    texts = [
        (await emulator.wait_for_reply(USER_ID, photo["message_id"], timeout=30))["text"]
        for photo in photos
    ]
    # Whichever replica counted it third (handling order may differ from posting order):
    warned = [text for text in texts if "faster than I read them" in text]
    assert len(warned) == 1, texts
    assert sum(text.split()[0].isdigit() for text in texts) == 2
