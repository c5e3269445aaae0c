"""The shared update ledger: every update a webhook replica accepted, in PostgreSQL, so that each
is handled once across replicas and none is lost when one dies.

A replica writes the update (insert-if-absent, keyed by `update_id`) BEFORE it answers Telegram
200; the row says who handles it (`owner`) until when (`lease_until`). An update already there
(Telegram delivering it again, or to a second replica) is acknowledged and not handled again.
The owner renews its leases while it is alive and marks each update done once handled; every
replica takes over the updates whose lease ran out (their owner died after acknowledging them).
Times are the database's (`now()`), so the replicas' clocks need not agree.

A done update keeps its row (without its body) for `DONE_KEPT`, longer than Telegram keeps
retrying one, so a late redelivery is still recognised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from bot.cluster.database import LEDGER_SCHEMA_LOCK, postgres_url
from bot.feedback.schema import create_database_engine

DONE_KEPT = timedelta(hours=25)  # Telegram keeps an undelivered update for 24 hours
HANDLING, DONE = "handling", "done"

metadata = MetaData()
updates_table = Table(
    "cluster_updates",
    metadata,
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=True),  # the update's JSON; dropped once it is done
    Column("state", String(16), nullable=False),
    Column("owner", String(200), nullable=False),  # REPLICA_ID of the replica handling it
    Column("accepted_by", String(200), nullable=False),  # ... and of the one that acknowledged it
    Column("lease_until", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),  # 1, plus one per takeover after a lease ran out
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Index("cluster_updates_expiry", "state", "lease_until"),
)


@dataclass(frozen=True)
class LedgerCounts:
    """What the ledger holds (the bench and /stats-like checks read it)."""

    handling: int
    done: int
    taken_over: int  # updates handled by another replica than the one that accepted them


def postgres_engine(database_url: str, what: str) -> Engine:
    """An engine for DATABASE_URL; ValueError naming `what` if it is not PostgreSQL."""
    return create_database_engine(postgres_url(database_url, what))


def create_tables(engine: Engine, table_metadata: MetaData) -> None:
    """Create the tables of `table_metadata` that are missing, one replica at a time."""
    with engine.begin() as connection:
        connection.execute(select(func.pg_advisory_xact_lock(LEDGER_SCHEMA_LOCK)))
        table_metadata.create_all(connection)


class UpdateLedger:
    """The ledger's statements; each is one transaction. Synchronous: call via a thread."""

    def __init__(self, engine: Engine, lease: timedelta) -> None:
        if lease <= timedelta(0):
            raise ValueError(f"the lease must be positive, got {lease}")
        self.engine = engine
        self.lease = lease

    def create(self) -> None:
        """Create the table if it is missing."""
        create_tables(self.engine, metadata)

    def accept(self, update_id: int, body: str, owner: str) -> bool:
        """Record an update for `owner` to handle; False if it was recorded before (by anyone)."""
        statement = (
            insert(updates_table)
            .values(
                update_id=update_id,
                body=body,
                state=HANDLING,
                owner=owner,
                accepted_by=owner,
                lease_until=func.now() + self.lease,
                attempts=1,
            )
            .on_conflict_do_nothing(index_elements=["update_id"])
            .returning(updates_table.c.update_id)
        )
        with self.engine.begin() as connection:
            return connection.execute(statement).first() is not None

    def finish(self, update_id: int) -> None:
        """Mark an update handled (its body is no longer needed)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(updates_table)
                .where(updates_table.c.update_id == update_id)
                .values(state=DONE, body=None, done_at=func.now())
            )

    def renew(self, owner: str) -> int:
        """Extend the leases of every update `owner` is handling; returns how many."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(updates_table)
                .where(updates_table.c.owner == owner, updates_table.c.state == HANDLING)
                .values(lease_until=func.now() + self.lease)
            )
            return result.rowcount

    def take_over(self, owner: str, limit: int = 100) -> list[tuple[int, str]]:
        """Claim for `owner` up to `limit` updates whose lease ran out, oldest first; their ids
        and bodies. SKIP LOCKED: two replicas taking over at once never claim the same one."""
        statement = text(
            """
            UPDATE cluster_updates SET owner = :owner, lease_until = now() + :lease,
                attempts = attempts + 1
            WHERE update_id IN (
                SELECT update_id FROM cluster_updates
                WHERE state = :handling AND lease_until < now()
                ORDER BY update_id LIMIT :limit FOR UPDATE SKIP LOCKED
            )
            RETURNING update_id, body
            """
        )
        with self.engine.begin() as connection:
            rows = connection.execute(
                statement,
                {"owner": owner, "lease": self.lease, "handling": HANDLING, "limit": limit},
            ).all()
        return sorted((int(row.update_id), str(row.body)) for row in rows)

    def release(self, owner: str) -> int:
        """End `owner`'s leases now (it is stopping): other replicas take its updates over."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(updates_table)
                .where(updates_table.c.owner == owner, updates_table.c.state == HANDLING)
                .values(lease_until=func.now() - timedelta(seconds=1))
            )
            return result.rowcount

    def forget_old(self) -> int:
        """Delete the rows of updates done more than DONE_KEPT ago; returns how many."""
        with self.engine.begin() as connection:
            result = connection.execute(
                updates_table.delete().where(
                    updates_table.c.state == DONE,
                    updates_table.c.done_at < func.now() - DONE_KEPT,
                )
            )
            return result.rowcount

    def counts(self) -> LedgerCounts:
        """How many updates are being handled, are done, and were taken over."""
        table = updates_table
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    func.count().filter(table.c.state == HANDLING),
                    func.count().filter(table.c.state == DONE),
                    func.count().filter(table.c.attempts > 1),
                )
            ).one()
        return LedgerCounts(handling=int(row[0]), done=int(row[1]), taken_over=int(row[2]))
