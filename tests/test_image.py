"""The Docker image leaves the bench tools and the offline sandbox out (.dockerignore): every
other module of core/ and bot/ still imports (the bot, /retrain, the CLI), and `digitbot bench`
and `digitbot sandbox` say why they cannot run there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Run with the image's tree first on the path and without the editable install's finder, which
# would find the checkout's core/bench, bot/tools and bot/sandbox anyway.
IMAGE_PROBE = """
import importlib, pkgutil, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path_importer_cache.clear()
sys.path.insert(0, sys.argv[1])
imported = []
for name in ("core", "bot"):
    package = importlib.import_module(name)
    if not package.__file__.startswith(sys.argv[1]):
        sys.exit(f"{name} came from {package.__file__}, not from the image's tree")
    for module in pkgutil.walk_packages(package.__path__, f"{name}."):
        importlib.import_module(module.name)
        imported.append(module.name)
print(" ".join(imported))
from bot.cli import main
sys.exit(main(sys.argv[2:]))
"""


def left_out() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line for line in lines if line.startswith(("core/", "bot/"))]


def test_the_image_leaves_out_the_bench_tools_and_the_sandbox() -> None:
    assert {"core/bench", "bot/tools", "bot/sandbox"} <= set(left_out())


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["bench"], "the bench tools (core/bench, bot/tools, bot/sandbox) are not installed here"),
        (["sandbox"], "the offline sandbox (bot/sandbox) is not installed here"),
        (["start"], "the offline sandbox (bot/sandbox) is not installed here"),
    ],
)
def test_the_bot_and_retrain_run_without_them(
    tmp_path: Path, command: list[str], message: str
) -> None:
    for package in ("core", "bot"):
        shutil.copytree(ROOT / package, tmp_path / package)
    for folder in left_out():
        shutil.rmtree(tmp_path / folder)
    # `start` without a token is the sandbox: no token may leak in from this environment.
    environment = {key: value for key, value in os.environ.items() if key != "TELEGRAM_BOT_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-c", IMAGE_PROBE, str(tmp_path), *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    imported = set(result.stdout.split())
    for module in ("bot.app", "bot.cli", "bot.handlers.retrain", "core.serving", "core.train"):
        assert module in imported
    assert not any(name.startswith(("core.bench", "bot.tools", "bot.sandbox")) for name in imported)
