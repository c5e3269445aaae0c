"""The model folder's pruning and clean-up: what is kept, and staging folders of dead writers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core import registry


def make_version(model_dir: Path, name: str) -> None:
    folder = model_dir / name
    folder.mkdir(parents=True)
    for file_name in registry.REQUIRED_FILES:
        (folder / file_name).write_text(json.dumps({"version": name}))


def test_pruning_keeps_the_served_the_newest_the_committed_and_recent_versions(
    tmp_path: Path,
) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed to tell which version is committed in the repository")
    model_dir = tmp_path / "models"
    names = [f"2026010{day}-000000-compact" for day in range(1, 8)]  # oldest first
    for name in names:
        make_version(model_dir, name)
    (model_dir / registry.CURRENT_FILE).write_text(names[2] + "\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", f"models/{names[0]}"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "ship"], check=True)

    assert registry.committed_versions(model_dir) == {names[0]}
    kept = registry.kept_versions(model_dir, keep=1)
    assert kept == {
        names[6]: ["newest", "recent"],
        names[2]: ["serving"],
        names[0]: ["in the repository"],
    }
    removed = registry.prune(model_dir, keep=1)
    assert sorted(removed) == [names[1], names[3], names[4], names[5]]
    assert sorted(registry.list_versions(model_dir)) == [names[0], names[2], names[6]]


def test_outside_a_git_checkout_nothing_counts_as_committed(tmp_path: Path) -> None:
    make_version(tmp_path, "20260101-000000-compact")
    assert registry.committed_versions(tmp_path) == set()


def test_only_staging_folders_of_dead_writers_are_removed(tmp_path: Path) -> None:
    live = registry.staging_dir(tmp_path)  # this process: alive
    assert live.name.startswith(f"{registry.STAGING_PREFIX}{os.getpid()}-")
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    dead = tmp_path / f"{registry.STAGING_PREFIX}{dead_pid.pid}-abc"
    old_style = tmp_path / f"{registry.STAGING_PREFIX}k2j3h4"  # before names carried a pid
    dead.mkdir()
    old_style.mkdir()
    assert registry.remove_orphaned_staging(tmp_path) == 2
    assert live.is_dir() and not dead.exists() and not old_style.exists()
