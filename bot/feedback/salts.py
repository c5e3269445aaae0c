"""The feedback store's salt: a secret made on first start and kept in the data folder.

The store keeps HMAC-SHA256 hashes of user and chat ids, never the ids; with a salt everyone knows
(the old default `change-me`) anyone could recompute them. So unless FEEDBACK_SALT is set, a random
salt is generated once and kept in `DATA_DIR/feedback-salts` (mode 0600). The file also keeps
every earlier salt, one per line, the current one last: when FEEDBACK_SALT changes, the new value
is appended, and /forget looks a user up under each of them (and under the old public default,
which every store made before this file existed used).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings

logger = logging.getLogger(__name__)

SALTS_FILE = "feedback-salts"
LEGACY_DEFAULT_SALT = "change-me"  # FEEDBACK_SALT's default before salts were generated


@dataclass(frozen=True)
class Salts:
    current: str
    earlier: tuple[str, ...]  # oldest first, never the current one


def salts_path(settings: Settings) -> Path:
    return settings.data_dir / SALTS_FILE


def load_salts(settings: Settings) -> Salts:
    """The salt to hash with and the earlier ones; creates or extends the salts file."""
    path = salts_path(settings)
    try:
        known = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        known = []
    except OSError as error:
        raise ValueError(f"cannot read the feedback salts in {path}: {error}") from error
    configured = settings.feedback_salt.get_secret_value() if settings.feedback_salt else None
    if configured is not None and not configured.strip():
        raise ValueError("FEEDBACK_SALT must not be blank (leave it unset for a generated one)")
    if configured is None and not known:
        if settings.database_url.split(":", 1)[0].startswith("postgresql"):
            # Replicas would each make their own salt and not find each other's users.
            raise ValueError(
                "set FEEDBACK_SALT (a long random secret, the same for every replica) "
                "for a PostgreSQL feedback store"
            )
        known = [secrets.token_urlsafe(32)]
        _write(path, known)
        logger.info("made a new feedback salt in %s", path)
    elif configured is not None and (not known or known[-1] != configured):
        if configured in known:
            known.remove(configured)
        known.append(configured)
        _write(path, known)
    current = known[-1]
    earlier = tuple(salt for salt in [LEGACY_DEFAULT_SALT, *known[:-1]] if salt != current)
    return Salts(current, tuple(dict.fromkeys(earlier)))


def _write(path: Path, salts: list[str]) -> None:
    """Replace the file atomically, readable by its owner only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{salt}\n" for salt in salts))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise ValueError(f"cannot write the feedback salts to {path}: {error}") from error
