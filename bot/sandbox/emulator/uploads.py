"""Files in messages: photos re-encoded into Telegram's sizes, documents kept as sent, and the
InputFile parameters of the bot's sends (an upload, or the file_id of a stored file)."""

from __future__ import annotations

import mimetypes
import re
import secrets
from typing import Any

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.media import Rendition, photo_renditions, thumbnail
from bot.sandbox.emulator.params import Upload
from bot.sandbox.emulator.store import FileStore, StoredFile

WRONG_FILE_DESCRIPTION = "Bad Request: wrong file identifier/HTTP URL specified"
MAX_PHOTO_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def store_photo(files: FileStore, image: bytes) -> list[dict[str, Any]]:
    photo_set = secrets.token_hex(8)
    sizes: list[dict[str, Any]] = []
    for rendition in photo_renditions(image):
        sizes.append(_add_jpeg(files, rendition, "photo", photo_set=photo_set).photo_size())
    return sizes


def _add_jpeg(
    files: FileStore, rendition: Rendition, kind: str, photo_set: str | None = None
) -> StoredFile:
    """Store one JPEG rendition (a PhotoSize or a document's thumbnail)."""
    return files.add(
        rendition.data,
        kind=kind,
        mime_type="image/jpeg",
        extension="jpg",
        width=rendition.width,
        height=rendition.height,
        photo_set=photo_set,
    )


def store_document(
    files: FileStore, data: bytes, file_name: str, mime_type: str | None
) -> dict[str, Any]:
    if not data:
        raise ApiError(400, "Bad Request: file must be non-empty")
    guessed = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    extension = file_name.rsplit(".", 1)[1] if "." in file_name else "bin"
    stored = files.add(
        data,
        kind="document",
        mime_type=guessed,
        extension=re.sub(r"[^A-Za-z0-9]", "", extension)[:8] or "bin",
        file_name=file_name,
    )
    document: dict[str, Any] = {
        "file_name": file_name,
        "mime_type": guessed,
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.file_size,
    }
    preview = thumbnail(data) if guessed.startswith("image/") else None
    if preview is not None:
        thumb = _add_jpeg(files, preview, "thumbnail")
        document["thumbnail"] = thumb.photo_size()
        document["thumb"] = thumb.photo_size()  # Telegram still sends the old name too
    return document


def existing_file(files: FileStore, file_id: str, kind: str) -> StoredFile:
    if file_id.startswith(("http://", "https://")):
        # The emulator cannot fetch URLs (no network), so it answers like an unreachable URL.
        raise ApiError(400, WRONG_FILE_DESCRIPTION)
    stored = files.get(file_id.strip())
    if stored is None:
        raise ApiError(400, WRONG_FILE_DESCRIPTION)
    if stored.kind != kind and not (kind == "photo" and stored.kind == "thumbnail"):
        raise ApiError(400, "Bad Request: type of file mismatch")
    return stored


def input_file(
    value: Any, uploads: dict[str, Upload], field: str | None = None
) -> Upload | str | None:
    """An InputFile parameter: the uploaded file, a file_id/URL string, or None."""
    if field is not None and field in uploads:
        return uploads[field]
    if isinstance(value, str) and value.startswith("attach://"):
        return uploads.get(value.removeprefix("attach://"))
    if isinstance(value, str) and value.strip():
        return value
    return None


def photo_content(files: FileStore, source: Upload | str | None) -> list[dict[str, Any]]:
    if source is None:
        raise ApiError(400, "Bad Request: there is no photo in the request")
    if isinstance(source, Upload):
        if len(source.data) > MAX_PHOTO_UPLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return store_photo(files, source.data)
    stored = existing_file(files, source, "photo")
    if stored.photo_set is None:
        return [stored.photo_size()]
    return [size.photo_size() for size in files.photo_set(stored.photo_set)]


def document_content(files: FileStore, source: Upload | str | None) -> dict[str, Any]:
    if source is None:
        raise ApiError(400, "Bad Request: there is no document in the request")
    if isinstance(source, Upload):
        if len(source.data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        mime = source.content_type
        if mime == "application/octet-stream":
            mime = mimetypes.guess_type(source.file_name)[0] or mime
        return store_document(files, source.data, source.file_name, mime)
    stored = existing_file(files, source, "document")
    return {
        "file_name": stored.file_name,
        "mime_type": stored.mime_type,
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.file_size,
    }
