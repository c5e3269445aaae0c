"""The heartbeat file: the running bot touches it; `digitbot health` (the Docker HEALTHCHECK)
reads it.

For a polling bot "the process exists" says little; a file touched every few seconds by a job on
the bot's own event loop says that the loop is alive and the Application is running. Kept free of
heavy imports so that the health check starts in a fraction of a second.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
HEARTBEAT_STALE_SECONDS = 60.0


def touch_heartbeat(path: Path, problem: str | None = None) -> None:
    """Write the current time into `path`, and on a second line what is wrong, if anything (a
    stuck image); a failure is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{time.time():.0f}\n{problem or ''}\n", encoding="utf-8")
    except OSError as error:
        logger.warning("cannot write the heartbeat file %s: %s", path, error)


def heartbeat_problem(path: Path, max_age: float = HEARTBEAT_STALE_SECONDS) -> str | None:
    """None if the running bot touched `path` recently, else what is wrong."""
    try:
        age = time.time() - path.stat().st_mtime
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return f"no heartbeat file {path}: the bot is not running (or has not started yet)"
    if age > max_age:
        return f"heartbeat {path} is {age:.0f} s old: the bot's event loop is stuck or stopped"
    if len(lines) > 1 and lines[1].strip():
        return lines[1].strip()
    return None
