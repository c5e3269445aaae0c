"""Every setting of digitbot in one pydantic-settings class, read from the environment and `.env`.

Core code never reads settings itself: the CLI and the bot build one `Settings` and pass the values
they need to `core` functions as plain arguments.

Where things are, wherever a command runs: the project folder is the checkout this code runs
from (the folder holding pyproject.toml beside bot/; for an installed package, the current
folder). The default model folder and feedback store are in it, and `.env` is read from it and
then from the current folder (the current folder's values win; the environment beats both).
An empty value (`NAME=`) means "not set": the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.decode import DEFAULT_MAX_PIXELS  # numpy and Pillow only: cheap for `digitbot health`

HEARTBEAT_NAME = "digitbot.heartbeat"
KERAS_MNIST_CACHE = Path("~/.keras/datasets/mnist.npz")


def find_project_dir() -> Path:
    """The checkout this code runs from, else (an installed package) the current folder."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


PROJECT_DIR = find_project_dir()
DATA_DIR = PROJECT_DIR / "data"  # the feedback store, the generated salt, the heartbeat
MIN_EPOCHS, MAX_EPOCHS = 1, 100  # what RETRAIN_EPOCHS and `/retrain N` accept
# Where MNIST is looked for when MNIST_PATH is unset (then Keras' cache, ~/.keras/datasets).
DEFAULT_MNIST_FILE = DATA_DIR / "mnist.npz"
# The project's .env first, then the current folder's (later files win in pydantic-settings).
ENV_FILES = tuple(dict.fromkeys([PROJECT_DIR / ".env", Path.cwd() / ".env"]))


def env_files_read() -> list[Path]:
    """The .env files that exist, in the order they are read."""
    return [path for path in ENV_FILES if path.is_file()]


EMPTY_MEANS_NONE = frozenset({"heartbeat_file"})  # HEARTBEAT_FILE=: no heartbeat at all


class Settings(BaseSettings):
    """digitbot's configuration; each field is the upper-case environment variable of its name."""

    model_config = SettingsConfigDict(env_file=ENV_FILES, env_file_encoding="utf-8", extra="ignore")

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    admin_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    group_mode: Literal["mention", "all"] = "mention"
    confidence_threshold: float = Field(0.6, ge=0.0, le=1.0)
    flood_limit: int = Field(20, ge=1, description="photos per user per flood window")
    flood_window_seconds: float = Field(60.0, gt=0)
    action_flood_limit: int = Field(
        30, ge=1, description="commands and button presses per user per flood window"
    )
    # 5 of a group's 20 messages a minute: another member's answer waits at most 18 s for them.
    group_user_share_per_minute: int = Field(
        5, ge=1, description="answers a minute one user may get from the bot in one group"
    )
    # Images are classified in this many processes beside the bot's (0: in its threads instead).
    # One keeps up with two cores' worth of photos; each costs ~80 MB of memory (RSS).
    image_processes: int = Field(1, ge=0, le=16, description="processes that classify images")
    worker_threads: int = Field(
        2, ge=1, description="threads for other slow work (and images when IMAGE_PROCESSES=0)"
    )
    # The HTTP client for the Bot API: aiohttp (bot/transport/aiohttp_request.py) costs ~0.25 ms
    # of CPU a request whatever the pool size; PTB's own httpx backend 1 ms with 8 open
    # connections and 7 ms with 64 (measured here), most of the event loop's time under a burst
    # of photos; with httpx, set BOT_API_CONNECTIONS=8.
    bot_api_client: Literal["aiohttp", "httpx"] = "aiohttp"
    bot_api_connections: int = Field(32, ge=1, le=256, description="HTTP connections to Bot API")
    bot_api_retries: int = Field(
        4, ge=0, le=10, description="retries of a request after a 5xx, timeout or lost connection"
    )
    max_download_bytes: int = 20 * 1024 * 1024
    # Telegram's flood limits, enforced on our side by PTB's AIORateLimiter (0 switches one off:
    # only for a Bot API server without limits, such as the emulator in `digitbot bench --load`).
    rate_limit_overall: float = Field(30, ge=0, description="messages per second, all chats")
    rate_limit_group_per_minute: float = Field(
        20, ge=0, description="messages per minute, per group"
    )
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    # A photo takes ~20 ms; past this the worker processes are replaced and the sender told.
    image_timeout_seconds: float = Field(
        15.0, gt=0, le=600, description="seconds one image may take to decode and classify"
    )

    # Webhook mode (`digitbot run --webhook`)
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret_token: SecretStr | None = None
    # Several webhook replicas behind a load balancer (README, "Running several replicas"):
    # set, the updates go through a ledger and the flood counters live in DATABASE_URL.
    replica_id: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="this replica's name in the shared update ledger (PostgreSQL)",
    )
    replica_lease_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="an update a replica accepted is taken over by another once its lease "
        "(renewed while the replica lives) has run out this long",
    )

    # Model, data, training
    model_dir: Path = PROJECT_DIR / "models"
    mnist_path: Path | None = None
    retrain_epochs: int = Field(3, ge=MIN_EPOCHS, le=MAX_EPOCHS)
    retrain_tolerance: float = Field(0.1, ge=0.0, description="percentage points")
    retrain_arch: str | None = Field(
        None, description="architecture /retrain trains; default: the served model's"
    )
    retrain_train_limit: int | None = Field(
        None, ge=10, description="/retrain uses only the first N training images (small servers)"
    )
    retrain_user_weight: float = Field(
        3.0, gt=0.0, description="training weight of a confirmed user digit (an MNIST image is 1)"
    )
    retrain_user_share: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="share of each training epoch made of confirmed user digits at least "
        "(they are repeated, augmented anew each time)",
    )
    retrain_corrected_share: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of each training epoch made of the digits users corrected at least "
        "(the ones the served model reads wrong)",
    )
    retrain_user_tolerance: float = Field(
        2.0,
        ge=0.0,
        description="percentage points the candidate's accuracy on the held-out "
        "user photos may be below the current model's",
    )
    retrain_user_min_holdout: int = Field(
        20,
        ge=1,
        description="held-out user digits needed before the user-photo rule can "
        "block a promotion (fewer: reported, not enforced)",
    )

    # Several replicas (README, "Training on another machine"): /retrain is queued in
    # DATABASE_URL (PostgreSQL) for `digitbot worker`, and every bot serves what it promotes.
    retrain_on_worker: bool = Field(
        False, description="/retrain runs on `digitbot worker`; models shared in DATABASE_URL"
    )
    model_poll_seconds: float = Field(
        15.0, gt=0, le=3600, description="RETRAIN_ON_WORKER: check for a new model this often"
    )

    # Offline sandbox (`digitbot sandbox`)
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8080
    sandbox_data_dir: Path = Field(
        DATA_DIR / "sandbox",
        description="the sandbox's own copy of the model folder and its feedback store",
    )

    # Feedback store
    data_dir: Path = Field(DATA_DIR, description="the generated salt and the heartbeat")
    database_url: str = f"sqlite:///{DATA_DIR / 'feedback.sqlite3'}"
    # Unset: a random salt made on first start, kept in DATA_DIR/feedback-salts
    # (bot/feedback/salts.py).
    feedback_salt: SecretStr | None = None
    feedback_max_per_day: int = Field(100, ge=1, description="confirmations per user per 24 h")
    feedback_max_total: int = Field(2000, ge=1, description="confirmations per user, ever")
    feedback_holdout_fraction: float = Field(0.2, ge=0.0, lt=1.0)

    log_level: str = "INFO"
    # The running bot touches this file every few seconds; `digitbot health` checks it is fresh.
    # Unset: $XDG_RUNTIME_DIR/digitbot.heartbeat, else DATA_DIR/digitbot.heartbeat (never a
    # shared /tmp, where another user could plant or read it); empty: no heartbeat.
    heartbeat_file: Path | None = None

    @model_validator(mode="after")
    def _default_heartbeat(self) -> Settings:
        if "heartbeat_file" not in self.model_fields_set:
            runtime = os.environ.get("XDG_RUNTIME_DIR", "").strip()
            folder = Path(runtime) if runtime else self.data_dir
            self.heartbeat_file = folder / HEARTBEAT_NAME
        return self

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: object) -> object:
        """`NAME=` (as in .env.example) means the default: `RETRAIN_TRAIN_LIMIT=` is no limit,
        not a number that fails to parse. Only for HEARTBEAT_FILE does empty say something
        else (no heartbeat)."""
        if not isinstance(data, dict):
            return data
        return {
            name: value
            for name, value in data.items()
            if name in EMPTY_MEANS_NONE or not (isinstance(value, str) and not value.strip())
        }

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept `ADMIN_USER_IDS=1,2,3` as well as a list."""
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            parts = [part.strip() for part in value.replace(";", ",").split(",")]
            try:
                return [int(part) for part in parts if part]
            except ValueError as error:
                raise ValueError(
                    "comma-separated numeric user ids, e.g. 11111111,22222222"
                ) from error
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        """Refuse a URL without a scheme here, as one line, not deep in the HTTP client (whose
        error would show the request URL, token included); no trailing slash."""
        parsed = urlparse(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                "must start with https:// (or http:// for a server on this machine), "
                "e.g. https://api.telegram.org"
            )
        return value.strip().rstrip("/")

    @field_validator(
        "telegram_bot_token",
        "webhook_url",
        "webhook_secret_token",
        "replica_id",
        "feedback_salt",
        "mnist_path",
        "heartbeat_file",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """`NAME=` in .env means "not set", not an empty string or the current folder."""
        if isinstance(value, str) and not value.strip():
            return None
        return value


def find_mnist(mnist_path: Path | None) -> Path | None:
    """MNIST_PATH when set (even if missing: the error names it), else the first local copy:
    data/mnist.npz, then Keras' cache; None when there is none."""
    if mnist_path is not None:
        return mnist_path
    for candidate in (DEFAULT_MNIST_FILE, KERAS_MNIST_CACHE.expanduser()):
        if candidate.is_file():
            return candidate.absolute()
    return None


# --- one-line messages for invalid settings ------------------------------------------------------

_BOUNDS = {"ge": "at least {}", "gt": "more than {}", "le": "at most {}", "lt": "less than {}"}
_KINDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "path_type": "a file or folder path",
}


def _bounds(name: str) -> list[str]:
    """The range a field allows, from its Field(ge=..., le=...) constraints."""
    field = Settings.model_fields.get(name)
    found = []
    for constraint in field.metadata if field else []:
        for attribute, template in _BOUNDS.items():
            value = getattr(constraint, attribute, None)
            if value is not None:
                found.append(template.format(value))
    return found


def describe_invalid(error: ValidationError) -> str:
    """'RETRAIN_TRAIN_LIMIT='abc' is not allowed: a whole number, at least 10', one per setting."""
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        field = Settings.model_fields.get(name)
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "(hidden)" if secret else repr(item.get("input"))
        kind = item["type"]
        if kind in _KINDS:
            allowed = ", ".join([_KINDS[kind], *_bounds(name)])
        elif kind.startswith(("greater_than", "less_than")):
            allowed = ", ".join(_bounds(name))
        elif kind == "literal_error":
            allowed = f"one of {item['ctx']['expected']}"
        else:  # a validator's own message, e.g. ADMIN_USER_IDS
            allowed = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{name.upper()}={shown} is not allowed: {allowed}")
    read = env_files_read()
    where = f" (from the environment or {', '.join(map(str, read))})" if read else ""
    return "; ".join(parts) + where + "; an empty value means the default"
