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
    """A fresh private folder inside model_dir (same filesystem, so the final rename is atomic)."""
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir))


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
    pointer_tmp = model_dir / f".{CURRENT_FILE}.tmp"
    pointer_tmp.write_text(version + "\n", encoding="utf-8")
    fsync_path(pointer_tmp)
    os.replace(pointer_tmp, model_dir / CURRENT_FILE)
    fsync_path(model_dir)
    prune(model_dir, keep)
    return version


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def prune(model_dir: Path, keep: int = KEEP_VERSIONS) -> None:
    """Keep the served version and the `keep` newest others; remove stale staging folders."""
    served = current_version(model_dir)
    for version in list_versions(model_dir)[keep:]:
        if version != served:
            shutil.rmtree(Path(model_dir) / version, ignore_errors=True)


def remove_stale_staging(model_dir: Path) -> int:
    """Delete staging folders left by killed runs (call when no training is running)."""
    removed = 0
    for entry in Path(model_dir).glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed
