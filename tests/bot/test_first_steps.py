"""A newcomer's first ten minutes (issue 16): the welcome, settings, start-up failures, defaults."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.cli import build_parser, main
from bot.sandbox.emulator import BotApiEmulator
from bot.settings import DEFAULT_MNIST_FILE, ENV_FILES, Settings
from tests.bot.conftest import ADMIN_ID, USER_ID, run_digitbot
from tests.conftest import ROOT, digit_photo


async def test_start_is_a_short_welcome_and_help_has_the_details(
    start_bot: Any, emulator: BotApiEmulator
) -> None:
    await start_bot()
    start = emulator.send_text(USER_ID, USER_ID, "/start")
    welcome = (await emulator.wait_for_reply(USER_ID, start["message_id"]))["text"]
    assert welcome.startswith("Hello, Bob!")
    assert len(welcome.splitlines()) <= 4 and len(welcome) < 400, welcome
    assert "photo" in welcome and "for example a 7" in welcome and "/help" in welcome
    help_message = emulator.send_text(USER_ID, USER_ID, "/help")
    details = (await emulator.wait_for_reply(USER_ID, help_message["message_id"]))["text"]
    assert len(details) > 3 * len(welcome)
    assert "Corrections" in details and "/forget" in details and "debug" in details


# --- settings: the template as shipped, one-line errors ------------------------------------------


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from this test run's environment (MNIST_PATH, ...) leaks into a comparison."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_the_env_template_loads_as_shipped_and_means_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean_environment(monkeypatch)
    template = Settings(_env_file=ROOT / ".env.example")
    assert template.model_dump() == Settings(_env_file=None).model_dump()
    assert template.retrain_train_limit is None and template.telegram_bot_token is None


def test_defaults_point_into_the_project_folder_wherever_the_command_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean_environment(monkeypatch)
    defaults = Settings(_env_file=None)
    assert defaults.model_dir == ROOT / "models" and (ROOT / "models" / "CURRENT").is_file()
    assert defaults.database_url == f"sqlite:///{ROOT / 'data' / 'feedback.sqlite3'}"
    assert defaults.data_dir == ROOT / "data"
    assert defaults.sandbox_data_dir == ROOT / "data" / "sandbox"
    assert DEFAULT_MNIST_FILE == ROOT / "data" / "mnist.npz"
    assert ENV_FILES[0] == ROOT / ".env"


def test_a_bad_setting_is_one_line_with_the_variable_the_value_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        ("RETRAIN_TRAIN_LIMIT", "abc", "a whole number, at least 10"),
        ("GROUP_MODE", "some", "one of 'mention' or 'all'"),
        ("CONFIDENCE_THRESHOLD", "2", "at least 0.0, at most 1.0"),
        ("TELEGRAM_API_URL", "api.telegram.org", "must start with https://"),
        ("ADMIN_USER_IDS", "bob", "comma-separated numeric user ids"),
    ]
    for name, value, allowed in cases:
        with monkeypatch.context() as patched:
            patched.setenv(name, value)
            assert main(["health"]) == 2
        expected = f"{name}={value!r} is not allowed: {allowed}"
        error = capsys.readouterr().err
        assert error.startswith(f"error: {expected}"), error
        assert error.count("\n") == 1 and "retrain_train_limit" not in error, error


# --- commands run from any folder ----------------------------------------------------------------


def digitbot(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`digitbot ARGUMENTS` in `cwd` as a new process, with none of this run's settings but the
    tests' data folder."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in Settings.model_fields and key != "TF_CPP_MIN_LOG_LEVEL"
    }
    environment["PYTHONPATH"] = str(ROOT)
    for name in ("DATA_DIR", "DATABASE_URL"):  # the tests' own folder (tests/conftest.py)
        environment[name] = os.environ[name]
    environment.update(env or {})
    return run_digitbot(*arguments, cwd=cwd, env=environment, timeout=timeout)


def test_predict_works_from_any_folder_and_is_quiet(tmp_path: Path, mnist: Any) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(digit_photo(mnist.x_test[0]))
    (tmp_path / "notes.png").write_text("not an image")
    result = digitbot("predict", "photo.png", "notes.png", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # one file failed
    assert result.stdout.startswith(f"photo.png: {mnist.y_test[0]}"), result.stdout
    assert result.stdout.count("\n") == 1  # only answers on stdout, to pipe
    assert result.stderr.startswith("notes.png: error: This file is not an image")
    assert "XNNPACK" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    verbose = digitbot("predict", "-v", "photo.png", cwd=tmp_path)
    assert verbose.returncode == 0 and "settings:" in verbose.stderr


def test_feedback_stats_elsewhere_creates_no_store(tmp_path: Path) -> None:
    missing = tmp_path / "feedback.sqlite3"
    result = digitbot(
        "feedback", "stats", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{missing}"}
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: no feedback store at {missing}"), result.stderr
    assert not missing.exists() and not (tmp_path / "data").exists()


def test_the_env_file_of_the_current_folder_is_read_and_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("RETRAIN_TRAIN_LIMIT=5\n")
    result = digitbot("health", "-v", cwd=tmp_path)
    assert f"settings: the environment, then {tmp_path / '.env'}" in result.stderr
    assert "RETRAIN_TRAIN_LIMIT='5' is not allowed: at least 10" in result.stderr


def test_train_help_takes_the_defaults_from_the_recipe_table() -> None:
    from core.recipes import RECIPES

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    help_text = commands.choices["train"].format_help()
    flat = " ".join(help_text.split())
    for arch, recipe in RECIPES.items():
        assert f"{recipe.epochs} {arch}" in flat and f"{recipe.batch_size} {arch}" in flat


# --- start-up failures: one or two lines, no traceback, never the token --------------------------


def check_failure(result: subprocess.CompletedProcess[str], token: str, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 2, result.stderr  # "settings: ..." and the error
    assert lines[-1].startswith("error: ") and expected in lines[-1], result.stderr
    assert "Traceback" not in result.stderr and token not in result.stderr + result.stdout


async def test_a_wrong_token_is_one_line_without_the_token(tmp_path: Path) -> None:
    emulator = BotApiEmulator(token="111:RIGHT-token", bot_username="first_steps_bot")
    url = await emulator.start(host="127.0.0.1", port=0)
    try:
        token = "222:WRONG-secret-value"
        result = await asyncio.to_thread(
            digitbot,
            "run",
            cwd=tmp_path,
            env={"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": url},
        )
    finally:
        await emulator.stop()
    check_failure(
        result, token, "rejected TELEGRAM_BOT_TOKEN: copy the token again from @BotFather"
    )


def test_an_unreachable_bot_api_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed
    token = "333:SOME-secret-value"
    result = digitbot(
        "run",
        cwd=tmp_path,
        env={"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": f"http://127.0.0.1:{port}"},
    )
    check_failure(result, token, f"cannot reach the Bot API at http://127.0.0.1:{port}")


async def test_a_bad_database_url_stops_the_start_in_one_line(tmp_path: Path) -> None:
    token = "444:RIGHT-secret-value"
    emulator = BotApiEmulator(token=token, bot_username="first_steps_bot")
    url = await emulator.start(host="127.0.0.1", port=0)
    try:
        result = await asyncio.to_thread(
            digitbot,
            "run",
            cwd=tmp_path,
            env={
                "TELEGRAM_BOT_TOKEN": token,
                "TELEGRAM_API_URL": url,
                "DATABASE_URL": "mysql://nobody@nowhere/db",
                "HEARTBEAT_FILE": str(tmp_path / "beat"),
            },
        )
    finally:
        await emulator.stop()
    check_failure(result, token, "DATABASE_URL must be sqlite:///PATH or postgresql")


async def test_retrain_without_mnist_says_that_it_needs_mnist(
    start_bot: Any, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    missing = tmp_path / "mnist.npz"
    bot = await start_bot(mnist_path=missing)
    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
    reply = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
    assert reply["text"].startswith(
        f"MNIST is not at {missing}. /retrain needs MNIST: set MNIST_PATH"
    )
    assert bot.state.retrain is None  # nothing started
