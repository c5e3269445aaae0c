"""Per-user flood counters shared by the replicas in PostgreSQL (the one-machine bot keeps them in
memory: bot/state.py's FloodGate).

Replicas behind a load balancer each see part of a user's photos, so each replica's own counter
would let a user send N times the limit. Here a counter is one row per (gate, key, window): a
fixed window of `window` seconds of the database's clock, incremented by one atomic upsert that
returns the new count. The request that makes the count limit + 1 is the one warned; later
ones in that window are dropped, the same verdicts as FloodGate. Fixed windows (not FloodGate's
sliding one) cost one statement per request, and a user may get up to twice the limit across a
window boundary: the price of not keeping every request's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, text
from sqlalchemy.engine import Engine

from bot.cluster.ledger import create_tables
from bot.state import FloodVerdict

metadata = MetaData()
flood_table = Table(
    "cluster_flood",
    metadata,
    Column("gate", String(32), primary_key=True),  # "images", "actions", "group_shares"
    Column("key", String(100), primary_key=True),  # a user id, or "user:chat"
    Column("window", BigInteger, primary_key=True),  # floor(epoch seconds / window length)
    Column("count", Integer, nullable=False),
    Column("ends_at", Float, nullable=False),  # epoch seconds of the window's end
    Index("cluster_flood_ends_at", "ends_at"),
)

_COUNT = text(
    """
    WITH clock AS (SELECT extract(epoch FROM now()) AS now)
    INSERT INTO cluster_flood (gate, key, "window", count, ends_at)
    SELECT :gate, :key, floor(clock.now / :length)::bigint, 1,
        (floor(clock.now / :length) + 1) * :length
    FROM clock
    ON CONFLICT (gate, key, "window") DO UPDATE SET count = cluster_flood.count + 1
    RETURNING count, ends_at - (SELECT now FROM clock) AS seconds_left
    """
)
_FORGET = text("DELETE FROM cluster_flood WHERE ends_at < extract(epoch FROM now())")


def verdict(count: int, limit: int) -> FloodVerdict:
    """ALLOW up to `limit`, WARN the one past it, DROP the rest (FloodGate's verdicts)."""
    if count <= limit:
        return FloodVerdict.ALLOW
    return FloodVerdict.WARN if count == limit + 1 else FloodVerdict.DROP


class SharedFloodCounter:
    """Counts requests per (gate, key) in PostgreSQL; `count` is what the handlers await."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        """Create the table if it is missing."""
        create_tables(self.engine, metadata)

    def count_now(self, gate: str, key: Hashable, limit: int, window: float) -> tuple[int, float]:
        """Count one request; the count in this window and the seconds until the next one."""
        if window <= 0 or limit < 1:
            raise ValueError(f"a flood gate needs limit >= 1 and window > 0, got {limit}, {window}")
        shown = ":".join(map(str, key)) if isinstance(key, tuple) else str(key)
        with self.engine.begin() as connection:
            row = connection.execute(_COUNT, {"gate": gate, "key": shown, "length": window}).one()
        return int(row[0]), max(0.0, float(row[1]))

    async def count(
        self, gate: str, key: Hashable, limit: int, window: float
    ) -> tuple[FloodVerdict, float]:
        """The verdict for one more request of `key` at `gate`, and the seconds until it may
        send again (0 when allowed)."""
        count, seconds_left = await asyncio.to_thread(self.count_now, gate, key, limit, window)
        allowed = verdict(count, limit)
        return allowed, 0.0 if allowed is FloodVerdict.ALLOW else seconds_left

    def forget_old(self) -> int:
        """Delete the counters of windows that have ended; returns how many."""
        with self.engine.begin() as connection:
            return connection.execute(_FORGET).rowcount
