"""The token never reaches stdout or stderr, on any path: log records, error lines, and the
tracebacks of failures at start-up (run as `digitbot run` in a child process, as people do)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.conftest import TOKEN, environment_without, spawn_digitbot, started_url
from tests.conftest import ROOT

WRONG_TOKEN = "123456:WRONG-Secret_token-value"


def environment(**values: str) -> dict[str, str]:
    return environment_without(
        "TELEGRAM_", "WEBHOOK_", "ADMIN_", "LOG_", HEARTBEAT_FILE="", LOG_LEVEL="DEBUG", **values
    )


async def run_bot(cwd: Path, **values: str) -> tuple[int, str]:
    process = await spawn_digitbot(
        "run", cwd=cwd, env=environment(MODEL_DIR=str(ROOT / "models"), **values)
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


async def test_a_rejected_token_is_not_shown(emulator: BotApiEmulator, tmp_path: Path) -> None:
    assert WRONG_TOKEN != TOKEN
    code, output = await run_bot(
        tmp_path, TELEGRAM_BOT_TOKEN=WRONG_TOKEN, TELEGRAM_API_URL=started_url(emulator)
    )
    assert code != 0
    assert "WRONG-Secret_token-value" not in output
    assert "WRONG-Secret_token-value".replace("_", "%5F") not in output
    assert "<redacted>" in output or "rejected" in output.lower()


async def test_a_bot_api_url_without_a_scheme_is_one_line_without_the_token(
    tmp_path: Path,
) -> None:
    code, output = await run_bot(
        tmp_path, TELEGRAM_BOT_TOKEN=WRONG_TOKEN, TELEGRAM_API_URL="127.0.0.1:9"
    )
    assert code == 2
    assert "WRONG-Secret" not in output
    assert "TELEGRAM_API_URL='127.0.0.1:9' is not allowed: must start with https://" in output
    assert "Traceback" not in output


def test_an_uncaught_traceback_is_redacted_on_stderr() -> None:
    script = (
        "from bot.redaction import redact_output\n"
        f"redact_output([{WRONG_TOKEN!r}])\n"
        "print('token is', " + repr(WRONG_TOKEN) + ")\n"
        f"raise RuntimeError('GET https://host/bot{WRONG_TOKEN}/getMe')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError" in result.stderr
    assert "WRONG-Secret" not in result.stderr + result.stdout
    assert result.stdout.strip() == "token is <redacted>"
