"""The shared PostgreSQL database of the replicas and the training worker (DATABASE_URL).

SQLAlchemy's URL (`postgresql+psycopg://...`, what the feedback store takes) becomes psycopg's
conninfo for the connections SQLAlchemy does not make: procrastinate's pool and LISTEN.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from bot.feedback.store import normalize_url

# pg_advisory_lock keys of digitbot (any 64-bit number; spelled out so that no two collide).
SCHEMA_LOCK = 0x6469_6769_0001  # creating the queue's or the registry's tables
ENQUEUE_LOCK = 0x6469_6769_0002  # checking "a /retrain is already running" and enqueuing one
TRAINING_LOCK = 0x6469_6769_0003  # held by the worker for as long as it trains
MODELS_LOCK = 0x6469_6769_0004  # writing versions and CURRENT of the shared registry
LEDGER_SCHEMA_LOCK = 0x6469_6769_0010  # replicas starting together: the ledger's tables, once


def postgres_url(database_url: str, what: str) -> URL:
    """DATABASE_URL as a SQLAlchemy URL; ValueError naming `what` needs it if not PostgreSQL."""
    url = normalize_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"{what} needs DATABASE_URL on PostgreSQL (postgresql+psycopg://user:password@"
            f"host/db), shared by every replica and the worker; it is {url.get_backend_name()}"
        )
    return url


def postgres_conninfo(database_url: str, what: str) -> str:
    """psycopg's conninfo for DATABASE_URL; ValueError naming `what` needs it if not PostgreSQL."""
    url = postgres_url(database_url, what)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
