"""The model folder: versions, metadata, atomic promotion, and a fall-back to the last good version.

Layout:
    models/CURRENT                 the served version's name (replaced atomically)
    models/<version>/model.keras   the trained Keras model
    models/<version>/model.tflite  the LiteRT export that serving uses
    models/<version>/metadata.json test metrics, training parameters, history, command
    models/<version>/curves.png, confusion.png

A version folder is written complete under `models/.staging-*` and then renamed into place, so an
interrupted run never leaves a half-written version and never touches the served one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CURRENT_FILE = "CURRENT"
METADATA_FILE = "metadata.json"
KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
REQUIRED_FILES = (KERAS_FILE, TFLITE_FILE, METADATA_FILE)
STAGING_PREFIX = ".staging-"
KEEP_VERSIONS = 3


class RegistryError(ValueError):
    """The model folder is missing, empty or damaged."""


def current_version(model_dir: Path) -> str:
    """Name of the version that CURRENT points at."""
    pointer = Path(model_dir) / CURRENT_FILE
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError as error:
        raise RegistryError(
            f"{pointer} is missing: train a model with `digitbot train` or restore models/"
        ) from error
    if not version or not (Path(model_dir) / version).is_dir():
        raise RegistryError(f"{pointer} names {version!r}, which is not a folder in {model_dir}")
    return version


def version_dir(model_dir: Path, version: str | None = None) -> Path:
    return Path(model_dir) / (version or current_version(model_dir))


def read_metadata(model_dir: Path, version: str | None = None) -> dict[str, Any]:
    path = version_dir(model_dir, version) / METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RegistryError(f"{path}: cannot read model metadata ({error})") from error


def list_versions(model_dir: Path) -> list[str]:
    """Complete versions, newest first (names sort by creation time)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    versions = [
        entry.name
        for entry in model_dir.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(".")
        and all((entry / name).is_file() for name in REQUIRED_FILES)
    ]
    return sorted(versions, reverse=True)


def new_version_name(arch: str) -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{arch}"


def staging_dir(model_dir: Path) -> Path:
    """A fresh private folder inside model_dir (same filesystem, so the final rename is atomic),
    named after the writing process (`.staging-<pid>-*`) so that a leftover can be recognised."""
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=model_dir))


def write_json_atomic(path: Path, payload: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def promote(model_dir: Path, staging: Path, keep: int = KEEP_VERSIONS) -> str:
    """Move a complete staging folder into place and point CURRENT at it; return the version."""
    model_dir, staging = Path(model_dir), Path(staging)
    missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
    if missing:
        raise RegistryError(f"{staging} is incomplete (missing {missing}); not promoted")
    metadata = json.loads((staging / METADATA_FILE).read_text(encoding="utf-8"))
    version = metadata["version"]
    target = model_dir / version
    if target.exists():
        raise RegistryError(f"{target} already exists; not overwriting a version")
    # Every file and the folder reach the disk before CURRENT can name them (a power cut must
    # not leave CURRENT pointing at an empty model file), and each rename is made durable.
    for path in sorted(staging.rglob("*"), reverse=True):
        fsync_path(path)
    fsync_path(staging)
    os.replace(staging, target)
    set_current(model_dir, version)
    prune(model_dir, keep)
    return version


def set_current(model_dir: Path, version: str) -> None:
    """Point CURRENT at a complete version folder, atomically and durably."""
    model_dir = Path(model_dir)
    if version not in list_versions(model_dir):
        raise RegistryError(f"{model_dir / version} is not a complete version; CURRENT unchanged")
    pointer_tmp = model_dir / f".{CURRENT_FILE}.tmp"
    pointer_tmp.write_text(version + "\n", encoding="utf-8")
    fsync_path(pointer_tmp)
    os.replace(pointer_tmp, model_dir / CURRENT_FILE)
    fsync_path(model_dir)


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def committed_versions(model_dir: Path) -> set[str]:
    """Versions whose files are tracked by git (the one shipped in the repository); none when
    the folder is not in a git checkout or git is missing."""
    model_dir = Path(model_dir)
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", f"*/{METADATA_FILE}"],
            cwd=model_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    names = {Path(line).parent.name for line in listed.splitlines() if "/" in line}
    return {name for name in names if (model_dir / name).is_dir()}


def kept_versions(model_dir: Path, keep: int = KEEP_VERSIONS) -> dict[str, list[str]]:
    """The versions `prune` keeps, newest first, each with why: "serving" (CURRENT), "newest",
    "in the repository" (tracked by git), "recent" (one of the `keep` newest others)."""
    versions = list_versions(model_dir)
    try:
        served: str | None = current_version(model_dir)
    except RegistryError:
        served = None
    committed = committed_versions(model_dir)
    kept: dict[str, list[str]] = {}
    recent = [version for version in versions if version != served][:keep]
    for index, version in enumerate(versions):
        reasons = []
        if version == served:
            reasons.append("serving")
        if index == 0:
            reasons.append("newest")
        if version in committed:
            reasons.append("in the repository")
        if version in recent:
            reasons.append("recent")
        if reasons:
            kept[version] = reasons
    return kept


def prune(model_dir: Path, keep: int = KEEP_VERSIONS) -> list[str]:
    """Delete the versions `kept_versions` does not keep; return their names."""
    kept = kept_versions(model_dir, keep)
    removed = [version for version in list_versions(model_dir) if version not in kept]
    for version in removed:
        shutil.rmtree(Path(model_dir) / version, ignore_errors=True)
    return removed


def _writer_alive(name: str) -> bool:
    """Whether the process named in `.staging-<pid>-*` still runs (older names: no)."""
    pid_text = name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    try:  # Linux: a zombie (dead, not reaped by whoever adopted it) is not a writer
        return Path(f"/proc/{pid_text}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphaned_staging(model_dir: Path) -> int:
    """Delete staging folders whose writing process is gone (a killed bot or training)."""
    removed = 0
    for entry in Path(model_dir).glob(f"{STAGING_PREFIX}*"):
        if not _writer_alive(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def remove_stale_staging(model_dir: Path) -> int:
    """Delete staging folders left by killed runs (call when no training is running)."""
    removed = 0
    for entry in Path(model_dir).glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed
