"""/retrain end to end on real exam digits: a user corrects the bot's mistakes, an admin retrains,
the bot reads what it was taught. The same scenario as `digitbot bench retrain`, with the
default training budget (the bench's figures are in docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from bot import settings as settings_module
from bot.sandbox.emulator import BotApiEmulator
from bot.sandbox.runner import ADMIN_USER_ID, start_sandbox, stop_sandbox
from bot.settings import Settings
from bot.tools.retrainbench import load_exam_digits, retrain_and_wait, run_scenario
from core import registry
from tests.bot.conftest import (
    ADMIN_ID,
    TOKEN,
    USER_ID,
    environment_without,
    spawn_digitbot,
    started_url,
)

RETRAIN_TIMEOUT = 600


async def test_retrain_on_exam_digits_users_corrected_is_judged_on_that_evidence(
    start_bot: Any,
    emulator: BotApiEmulator,
    model_dir: Path,
    real_digits: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The story with the default /retrain (3 epochs on all of MNIST): the candidate learns some
    of the corrections and reads the store's held-out digits no worse; the verdict shows both
    models' figures and the folder follows it, and the bench's own count of the held-out slice
    agrees with the verdict's."""
    # One training run, the same every time (seed 0; training is deterministic per seed). With
    # 2 epochs on 6,000 MNIST images, since the faint-ink preprocessing, the candidate read one
    # of the 113 held-out digits worse (96.5 against 97.3 %, with a drawn seed and with seed 0);
    # the default budget does not (measured 2026-12-02 with seed 0, 101 s).
    monkeypatch.setattr("bot.handlers.retrain.secrets.randbelow", lambda _: 0)
    sent, held_out = load_exam_digits(real_digits)
    bot = await start_bot(retrain_train_limit=None, retrain_epochs=3)
    shipped = registry.current_version(model_dir)
    report = await run_scenario(
        emulator,
        bot.state,
        sent,
        held_out,
        admin_id=ADMIN_ID,
        user_id=USER_ID,
        timeout=RETRAIN_TIMEOUT,
    )
    # The real-ink preprocessing reads most of these exam digits (96.7 % of nsysu): only a few
    # are misread and corrected now, so the premise is "some", no longer "20 or more".
    assert report.corrected_trained >= 5, "the shipped model misreads some of these exam digits"
    assert report.before.version == shipped and report.before.corrected_right == 0
    learned = re.search(
        rf"Digits users corrected, now read right: new (\d+) of {report.corrected_trained}, "
        r"(current|previous) 0\.",
        report.verdict,
    )
    assert learned is not None, report.verdict
    assert int(learned[1]) > 0, report.verdict
    users = re.search(
        r"users' photos \((\d+) held-out digits\): new ([\d.]+)%, \w+ ([\d.]+)%", report.verdict
    )
    assert users is not None and int(users[1]) == len(bot.state.feedback.holdout_samples().y)
    assert float(users[2]) >= float(users[3]), report.verdict
    assert report.slice_count == int(users[1])
    # After a promotion the served model is the candidate ("new"), else still the current one.
    served, figure = (report.after, users[2]) if report.promoted else (report.before, users[3])
    assert f"{served.slice_right / report.slice_count:.1%}" == f"{float(figure):.1f}%"
    assert "MNIST test accuracy: new " in report.verdict
    if report.promoted:
        assert report.after.version == registry.current_version(model_dir) != shipped
        assert registry.read_metadata(model_dir)["fine_tuned_from"] == shipped
    else:
        assert report.after.version == registry.current_version(model_dir) == shipped
        assert registry.list_versions(model_dir) == [shipped]


# --- cancel, and a bot stopped mid-training ----------------------------------------------------


def staging_folders(model_dir: Path) -> list[Path]:
    return list(model_dir.glob(f"{registry.STAGING_PREFIX}*"))


async def test_retrain_cancel_stops_the_training_and_leaves_nothing(
    start_bot: Any, emulator: BotApiEmulator, model_dir: Path
) -> None:
    bot = await start_bot()
    nothing = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain cancel")
    reply = await emulator.wait_for_reply(ADMIN_ID, nothing["message_id"])
    assert reply["text"] == "No retraining is running; nothing to cancel."
    served = bot.state.classifier.version
    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 20")
    status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
    assert "/retrain cancel stops it" in status["text"]
    await emulator.wait_for(
        lambda m: m["message_id"] == status["message_id"] and "Epoch 1/20" in m["text"],
        timeout=RETRAIN_TIMEOUT,
    )
    process = bot.state.retrain.process
    assert staging_folders(model_dir)
    cancel = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain cancel")
    told = await emulator.wait_for(
        lambda m: (
            m.get("reply_to_message", {}).get("message_id") == command["message_id"]
            and "cancelled" in m.get("text", "")
        ),
        timeout=30,
    )
    assert told[0]["text"].startswith("Retraining cancelled.")
    assert not process.is_alive() and bot.state.retrain is None
    assert not staging_folders(model_dir)
    assert registry.current_version(model_dir) == served
    assert replies_to(emulator, cancel["message_id"]) == []  # the verdict answers /retrain
    # The next /retrain starts normally.
    again = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 1")
    status = await emulator.wait_for_reply(ADMIN_ID, again["message_id"])
    assert status["text"].startswith("Retraining: fine-tuning")


def replies_to(emulator: BotApiEmulator, message_id: int) -> list[dict[str, Any]]:
    return [
        m
        for m in emulator.messages(ADMIN_ID)
        if m.get("reply_to_message", {}).get("message_id") == message_id
    ]


def training_children(pid: int) -> list[int]:
    """The bot's spawned training processes (multiprocessing's spawn_main), alive or zombie."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return [child for child in children if "spawn_main" in _cmdline(child)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def start_digitbot_run(
    emulator: BotApiEmulator, model_dir: Path, mnist_path: Path, tmp_path: Path
) -> asyncio.subprocess.Process:
    """`digitbot run` in its own process, polling the emulator; answers /start once it is up."""
    environment = environment_without(
        "TELEGRAM_",
        "WEBHOOK_",
        "ADMIN_",
        "RETRAIN_",
        "MNIST_",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=started_url(emulator),
        ADMIN_USER_IDS=str(ADMIN_ID),
        MODEL_DIR=str(model_dir),
        MNIST_PATH=str(mnist_path),
        RETRAIN_TRAIN_LIMIT="2000",
        IMAGE_PROCESSES="0",
        HEARTBEAT_FILE=str(tmp_path / "beat"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        DATA_DIR=str(tmp_path / "data"),
    )
    process = await spawn_digitbot("run", cwd=tmp_path, env=environment, output=False)
    start = emulator.send_text(ADMIN_ID, ADMIN_ID, "/start")
    await emulator.wait_for_reply(ADMIN_ID, start["message_id"], timeout=60)
    return process


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
async def test_a_bot_stopped_mid_training_ends_its_training_process(
    emulator: BotApiEmulator,
    model_dir: Path,
    mnist_path: Path,
    tmp_path: Path,
    stop_signal: signal.Signals,
) -> None:
    """Ctrl-C or SIGTERM stop the training with the bot and remove its staging folder; after
    SIGKILL the training dies with it (PR_SET_PDEATHSIG) and the next start removes the folder."""
    process = await start_digitbot_run(emulator, model_dir, mnist_path, tmp_path)
    try:
        command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain 20")
        status = await emulator.wait_for_reply(ADMIN_ID, command["message_id"], timeout=30)
        await emulator.wait_for(
            lambda m: m["message_id"] == status["message_id"] and "Epoch 1/20" in m["text"],
            timeout=RETRAIN_TIMEOUT,
        )
        (child,) = training_children(process.pid)
        assert staging_folders(model_dir)
        process.send_signal(stop_signal)
        await asyncio.wait_for(process.wait(), timeout=60)
        for _ in range(100):  # SIGKILL: the child gets its SIGTERM from the kernel at once
            if not running(child):
                break
            await asyncio.sleep(0.1)
        assert not running(child), "the training process outlived the bot"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if stop_signal == signal.SIGKILL:
        assert staging_folders(model_dir), "nothing could clean up after a SIGKILL"
        process = await start_digitbot_run(emulator, model_dir, mnist_path, tmp_path)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=60)
    else:
        assert process.returncode == 0
    assert not staging_folders(model_dir)


# --- the sandbox -----------------------------------------------------------------------------


def listing(folder: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(path.relative_to(folder)), path.stat().st_size) for path in folder.rglob("*")
    )


async def test_retrain_in_the_sandbox_never_changes_the_shipped_model(
    model_dir: Path, mnist_path: Path, tmp_path: Path
) -> None:
    shipped = listing(model_dir)
    settings = Settings(
        _env_file=None,
        sandbox_port=0,
        model_dir=model_dir,
        mnist_path=mnist_path,
        heartbeat_file=None,
        sandbox_data_dir=tmp_path / "sandbox",
        retrain_train_limit=2000,
        retrain_tolerance=100.0,  # promote whatever it trains
    )
    sandbox = await start_sandbox(settings)
    try:
        own = tmp_path / "sandbox" / "models"
        assert sandbox.bot_settings.model_dir == own
        assert (
            sandbox.bot_settings.database_url
            == f"sqlite:///{tmp_path / 'sandbox'}/feedback.sqlite3"
        )
        verdict, _ = await retrain_and_wait(
            sandbox.emulator, ADMIN_USER_ID, RETRAIN_TIMEOUT, "/retrain 1"
        )
        assert "now serving" in verdict, verdict
        assert registry.current_version(own) in verdict
        assert len(registry.list_versions(own)) == 2
    finally:
        await stop_sandbox(sandbox)
    assert listing(model_dir) == shipped  # not one byte of the shipped folder changed


async def test_retrain_without_mnist_says_in_one_line_what_to_do(
    start_bot: Any, emulator: BotApiEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnist = Path(os.environ["MNIST_PATH"]).resolve()
    # The project's data/mnist.npz, here in a folder of the test's own: not there yet.
    default_file = tmp_path / "data" / "mnist.npz"
    monkeypatch.setattr(settings_module, "DEFAULT_MNIST_FILE", default_file)
    monkeypatch.setattr(settings_module, "KERAS_MNIST_CACHE", tmp_path / "no-keras-cache.npz")
    bot = await start_bot(mnist_path=None)
    command = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain")
    reply = await emulator.wait_for_reply(ADMIN_ID, command["message_id"])
    assert reply["text"] == (
        "Retraining needs MNIST: put mnist.npz at data/mnist.npz in the project folder, or set "
        "MNIST_PATH in .env, then /retrain again."
    )
    assert bot.state.retrain is None
    # With the documented default file in place, /retrain starts.
    default_file.parent.mkdir(exist_ok=True)
    default_file.symlink_to(mnist)
    assert settings_module.find_mnist(None) == default_file
    again = emulator.send_text(ADMIN_ID, ADMIN_ID, "/retrain")
    status = await emulator.wait_for_reply(ADMIN_ID, again["message_id"])
    assert status["text"].startswith("Retraining: fine-tuning")
    for _ in range(50):  # the job is registered right after the status message is sent
        if bot.state.retrain is not None:
            break
        await asyncio.sleep(0.1)
    assert bot.state.retrain is not None, "no retrain job was registered"
    assert bot.state.retrain.request.mnist_path == str(tmp_path / "data" / "mnist.npz")
