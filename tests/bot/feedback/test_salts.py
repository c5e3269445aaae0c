"""The feedback salt (bot/feedback/salts.py): generated on first start and kept in the data
folder, an explicit FEEDBACK_SALT wins, and /forget still finds what was stored under an earlier
salt."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path
from typing import Any

import pytest

from bot.feedback.salts import LEGACY_DEFAULT_SALT, SALTS_FILE
from bot.feedback.store import FeedbackStore, open_store
from bot.settings import Settings
from tests.bot.feedback.conftest import record
from tests.conftest import ROOT


def settings_for(tmp_path: Path, **values: Any) -> Settings:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
    }
    return Settings(_env_file=None, **{**defaults, **values})


def user_hash_with(salt: str, user_id: int) -> str:
    return hmac.new(salt.encode(), f"user:{user_id}".encode(), hashlib.sha256).hexdigest()


def test_without_a_setting_a_random_salt_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with open_store(settings) as store:
        first = store.user_hash(42)
    assert first != user_hash_with(LEGACY_DEFAULT_SALT, 42)  # not the public default
    path = tmp_path / "data" / SALTS_FILE
    (salt,) = path.read_text().split()
    assert len(salt) >= 32 and first == user_hash_with(salt, 42)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_store(settings) as store:  # the next start uses the same salt
        assert store.user_hash(42) == first
    with open_store(settings_for(tmp_path / "elsewhere")) as store:  # another bot: another salt
        assert store.user_hash(42) != first


def test_an_explicit_salt_wins(tmp_path: Path) -> None:
    with open_store(settings_for(tmp_path)) as store:
        generated = store.user_hash(42)
    with open_store(settings_for(tmp_path, feedback_salt="my-own-secret")) as store:
        assert store.user_hash(42) == user_hash_with("my-own-secret", 42) != generated


def test_forget_finds_samples_stored_under_earlier_salts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    with FeedbackStore(url, LEGACY_DEFAULT_SALT) as store:  # a store from before this change
        record(store, "1", user_id=7)
    with open_store(settings_for(tmp_path)) as store:  # generated salt
        record(store, "2", user_id=7)
    with open_store(settings_for(tmp_path, feedback_salt="rotated")) as store:
        record(store, "3", user_id=7)
        record(store, "4", user_id=8)
        assert store.forget(7) == 3  # under the public default, the generated and the new salt
        assert store.stats().collected == 1


def test_a_postgresql_store_needs_an_explicit_salt(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, database_url="postgresql+psycopg://u:p@127.0.0.1:1/x")
    with pytest.raises(ValueError, match=r"FEEDBACK_SALT.*same for every replica"):
        open_store(settings)


def test_the_example_env_file_sets_no_salt() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    (line,) = [line for line in lines if line.startswith("FEEDBACK_SALT=")]
    assert line == "FEEDBACK_SALT="
    assert LEGACY_DEFAULT_SALT not in (ROOT / ".env.example").read_text()
