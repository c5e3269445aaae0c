"""Bounded in-memory storage of the emulator: files (by file_id and path) and chats with messages.

Everything is bounded so a long sandbox session cannot grow without limit: the oldest files are
dropped past a total byte budget, the oldest messages past a per-chat count.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

# Telegram file_ids start with a few bytes that encode the file type; mimic the look.
_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAA",
    "document": "BQACAgIAAxkBAA",
    "thumbnail": "AAMCAgADGQEA",
}
_FILE_FOLDER = {"photo": "photos", "document": "documents", "thumbnail": "thumbnails"}


@dataclass
class StoredFile:
    """One stored file and what getFile / PhotoSize / Document report about it."""

    file_id: str
    file_unique_id: str
    file_path: str
    kind: str  # "photo" | "document" | "thumbnail"
    data: bytes
    mime_type: str
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    photo_set: str | None = None  # the id shared by the PhotoSizes of one photo

    @property
    def file_size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def photo_size(self) -> dict[str, Any]:
        """This file as a Telegram PhotoSize."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "width": self.width,
            "height": self.height,
        }

    def file_info(self) -> dict[str, Any]:
        """This file as a Telegram File (the getFile result)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


class FileStore:
    """Files by file_id and by path, dropping the oldest past `max_bytes` in total."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.total_bytes = 0
        self._by_id: OrderedDict[str, StoredFile] = OrderedDict()
        self._by_path: dict[str, StoredFile] = {}
        self._counter = 0

    def add(
        self,
        data: bytes,
        *,
        kind: str,
        mime_type: str,
        extension: str,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
        photo_set: str | None = None,
    ) -> StoredFile:
        """Store `data` under a new file_id; raises ValueError if it alone exceeds the budget."""
        if len(data) > self.max_bytes:
            raise ValueError(f"file of {len(data)} bytes exceeds the store's {self.max_bytes}")
        self._counter += 1
        digest = hashlib.sha256(data).digest()
        stored = StoredFile(
            file_id=_FILE_ID_PREFIX[kind] + secrets.token_urlsafe(36),
            file_unique_id="AQAD" + base64.urlsafe_b64encode(digest[:9]).decode("ascii"),
            file_path=f"{_FILE_FOLDER[kind]}/file_{self._counter}.{extension}",
            kind=kind,
            data=data,
            mime_type=mime_type,
            file_name=file_name,
            width=width,
            height=height,
            photo_set=photo_set,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        self.total_bytes += stored.file_size
        while self.total_bytes > self.max_bytes:
            _, oldest = self._by_id.popitem(last=False)
            del self._by_path[oldest.file_path]
            self.total_bytes -= oldest.file_size
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The file with this file_id, or None (unknown or dropped)."""
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        """The file served at this path, or None."""
        return self._by_path.get(file_path)

    def photo_set(self, photo_set: str) -> list[StoredFile]:
        """The PhotoSizes of one photo that are still stored, smallest first."""
        sizes = [stored for stored in self._by_id.values() if stored.photo_set == photo_set]
        return sorted(sizes, key=lambda stored: (stored.width or 0) * (stored.height or 0))

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class ChatState:
    """One chat: its Telegram Chat object, group settings, members and bounded messages."""

    chat: dict[str, Any]
    privacy: bool = True
    bot_is_admin: bool = False
    admin_user_ids: set[int] = field(default_factory=set)
    member_ids: set[int] = field(default_factory=set)
    messages: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    next_message_id: int = 1

    @property
    def chat_id(self) -> int:
        """The chat's id."""
        return int(self.chat["id"])

    @property
    def is_private(self) -> bool:
        """True for a one-to-one chat with a user."""
        return self.chat["type"] == "private"

    def add_message(self, message: dict[str, Any], max_messages: int) -> None:
        """Keep `message`, dropping the oldest past `max_messages`."""
        self.messages[message["message_id"]] = message
        while len(self.messages) > max_messages:
            self.messages.popitem(last=False)
