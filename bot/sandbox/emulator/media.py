"""Image handling of the emulator: re-encoding photos into Telegram-like JPEG PhotoSizes.

Telegram never hands the bot the bytes a user sent as a photo: it stores a few JPEG renditions
(longest side 90, 320, 800 and 1280 pixels, never upscaled). The bot's tests should see the same.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from bot.sandbox.emulator.errors import ApiError
from core.decode import IMAGE_FORMATS

PHOTO_SIDES = (90, 320, 800, 1280)
THUMBNAIL_SIDE = 320
JPEG_QUALITY = 87
# Telegram's limits for a photo: sum of width and height, and the ratio of the sides.
MAX_PHOTO_SIDES_SUM = 10_000
MAX_PHOTO_RATIO = 20


@dataclass(frozen=True)
class Rendition:
    """One JPEG rendition of an image."""

    data: bytes
    width: int
    height: int


def _open_rgb(data: bytes) -> Image.Image:
    """Decode, apply the EXIF orientation (as Telegram clients do) and flatten onto white.

    Only the formats the bot reads: an EPS upload must not run Ghostscript here either."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _jpeg(image: Image.Image, side: int) -> Rendition:
    width, height = image.size
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return Rendition(data=buffer.getvalue(), width=size[0], height=size[1])


def photo_renditions(data: bytes) -> list[Rendition]:
    """The PhotoSizes Telegram would store for a photo, smallest first."""
    image = _open_rgb(data)
    width, height = image.size
    if width + height > MAX_PHOTO_SIDES_SUM or max(width, height) > MAX_PHOTO_RATIO * min(
        width, height
    ):
        raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    longest = max(width, height)
    sides = sorted({min(side, longest) for side in PHOTO_SIDES})
    return [_jpeg(image, side) for side in sides]


def thumbnail(data: bytes) -> Rendition | None:
    """A small JPEG preview of an image document, or None when the data is not an image."""
    try:
        image = _open_rgb(data)
    except ApiError:
        return None
    return _jpeg(image, min(THUMBNAIL_SIDE, max(image.size)))
