"""The Docker image leaves the bench tools out (.dockerignore): the bot, /retrain and the CLI
still import, and `digitbot bench` says why it cannot run there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# Run with the image's tree first on the path and without the editable install's finder, which
# would find the checkout's core/bench and bot/tools anyway.
IMAGE_PROBE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path_importer_cache.clear()
sys.path.insert(0, sys.argv[1])
import bot.app, bot.cli, bot.handlers.retrain, core.serving, core.train
from bot.cli import main
sys.exit(main(["bench"]))
"""


def left_out() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line for line in lines if line.startswith(("core/", "bot/"))]


def test_the_image_leaves_out_the_bench_tools() -> None:
    assert {"core/bench", "bot/tools"} <= set(left_out())


def test_the_bot_and_retrain_run_without_them(tmp_path: Path) -> None:
    for package in ("core", "bot"):
        shutil.copytree(ROOT / package, tmp_path / package)
    for folder in left_out():
        shutil.rmtree(tmp_path / folder)
    result = subprocess.run(
        [sys.executable, "-c", IMAGE_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "the bench tools (core/bench, bot/tools) are not installed here" in result.stderr
