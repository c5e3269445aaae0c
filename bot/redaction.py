"""Keep secrets (the bot token, the webhook secret, the feedback salt) out of every output.

Two layers, because output takes two paths: log records (redacted when they are created, by a
record factory, whichever handler formats them later) and text written straight to stdout/stderr
(an uncaught exception's traceback, a library's warning, an error line), redacted by wrapping the
two streams. Both know the same secrets; `redact_output` adds one to both.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote


class RedactSecrets(logging.Filter):
    """Replace secrets (the bot token, raw and URL-encoded) in a record's message and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret:
                self.secrets.update({secret, quote(secret, safe="")})

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours
            return True
        # Always freeze the rendered text: the arguments may be objects that change after the
        # call (PTB logs getFile's result dict, then writes the token-bearing download URL into
        # it), and a handler that formats later (a queue, pytest, an error tracker) would see that.
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(secrets: Iterable[str]) -> RedactSecrets:
    """Redact `secrets` from every log record created from now on, whichever handler gets it.

    Installed as a record factory rather than on handlers so that handlers added later (pytest's
    capture, a library's own) see only redacted records too. Calling it again adds secrets.
    """
    factory: Any = logging.getLogRecordFactory()
    existing = getattr(factory, "redactor", None)
    if isinstance(existing, RedactSecrets):
        existing.add(secrets)
        return existing
    redactor = RedactSecrets(secrets)

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        redactor.filter(record)
        return record

    redacting_factory.redactor = redactor  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)
    return redactor


class RedactingStream(io.TextIOBase):
    """A text stream that writes to `stream` with every secret of `redactor` replaced."""

    def __init__(self, stream: TextIO, redactor: RedactSecrets) -> None:
        super().__init__()
        self.stream = stream
        self.redactor = redactor

    def write(self, text: str) -> int:
        self.stream.write(self.redactor.redact(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def redact_output(secrets: Iterable[str]) -> RedactSecrets:
    """Redact `secrets` from log records and from everything written to stdout and stderr."""
    redactor = install_redaction(secrets)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream, redactor))
    return redactor
