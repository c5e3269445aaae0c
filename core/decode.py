"""Decoding: any image file (or PIL image) to an upright 8-bit grayscale picture at a useful size,
or an ImageError with a message for the person who sent it.

Only the formats in IMAGE_FORMATS are opened, whatever a file's name says; JPEGs decode reduced
(draft mode); a decode may hold at most MAX_DECODE_BYTES; EXIF orientation is applied and
transparency composited on white. core.preprocess takes it from there.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
# The only formats decoded, whatever a file's name or MIME type says. Pillow knows many more, and
# some run outside code (EPS/PS through Ghostscript) or are slow, little-used parsers. A phone's
# MPO (a JPEG with extra frames) is opened by the JPEG reader and reports format "MPO".
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
JPEG_FORMATS = ("JPEG", "MPO")
# What one decode may hold in memory (see decode_bytes): a 40 MP RGBA PNG of 166 KB used to cost
# ~680 MB and a second of CPU. JPEG decodes reduced (draft mode), so only formats without a
# reduced decode meet this limit: 67 MP in grey, 16 MP in colour, 8 MP with transparency.
# Decodes run one per worker process (IMAGE_PROCESSES), so this also bounds concurrent decodes.
MAX_DECODE_BYTES = 64 * 2**20
REDUCE_ABOVE_PIXELS = 4_000_000  # larger decodes are box-reduced before any conversion
SUPPORTED_TEXT = "a photo, or a JPEG, PNG, WebP, BMP, GIF or TIFF file"
WORKING_SIZE = 256  # longest side we analyse; JPEG draft mode decodes a 1024x768 photo at this size


class ImageError(ValueError):
    """The input cannot be used as an image; the message is meant for the person who sent it.

    `reason` names the case (empty, not_image, svg, too_many_pixels, no_pixels, unreadable,
    damaged, crashed, timeout, stopping) so that the bot can say it in the sender's language;
    `details` holds the numbers in it. All three are in `args`, so the error crosses a process
    boundary intact.
    """

    def __init__(
        self, message: str, reason: str = "unreadable", details: dict[str, int] | None = None
    ) -> None:
        super().__init__(message, reason, dict(details or {}))

    def __str__(self) -> str:
        return str(self.args[0])

    @property
    def reason(self) -> str:
        return str(self.args[1])

    @property
    def details(self) -> dict[str, int]:
        return dict(self.args[2])


def decode(
    data: bytes | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS, size: int = WORKING_SIZE
) -> Image.Image:
    """Any image (bytes or PIL) -> upright 8-bit grayscale PIL image, decoded at a useful size
    (JPEG: the smallest scale libjpeg offers whose longest side is at least `size`). Its
    `info["original_size"]` is the upright (width, height) of the image before that."""
    if isinstance(data, Image.Image):
        picture = data
        if picture.format is not None and picture.format not in (*IMAGE_FORMATS, *JPEG_FORMATS):
            raise ImageError(
                f"{picture.format} images are not read here. Send {SUPPORTED_TEXT}.", "not_image"
            )
    else:
        if not data:
            raise ImageError("The file is empty.", "empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                picture = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except UnidentifiedImageError as error:
            hint = " SVG drawings are not supported." if b"<svg" in data[:1000].lower() else ""
            raise ImageError(
                f"This file is not an image I can read.{hint} Send {SUPPORTED_TEXT}.",
                "svg" if hint else "not_image",
            ) from error
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(
                "The image is too large (too many pixels).", "too_many_pixels"
            ) from error
        except (OSError, ValueError, SyntaxError, EOFError) as error:  # e.g. a bad PPM header
            raise ImageError(f"The image could not be read ({error}).") from error
    width, height = picture.size
    if width * height > max_pixels:
        raise ImageError(
            f"The image is too large: {width}x{height} pixels (limit {max_pixels:,} pixels).",
            "too_many_pixels",
            {"width": width, "height": height, "limit": max_pixels},
        )
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.", "no_pixels")
    try:
        if picture.format in JPEG_FORMATS:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far cheaper than decoding then resizing.
            target = size / max(width, height)
            gray = "L" if picture.mode in ("RGB", "L", "YCbCr") else picture.mode
            picture.draft(gray, (max(1, int(width * target)), max(1, int(height * target))))
        cost = decode_bytes(picture)
        if cost > MAX_DECODE_BYTES:
            megapixels = MAX_DECODE_BYTES * picture.width * picture.height // cost / 1e6
            raise ImageError(
                f"The image is too large to read: {width}x{height} {picture.format or ''} "
                f"pixels in {picture.mode} (at most {megapixels:.1f} million of them). "
                "Send it as a JPEG, or smaller.",
                "too_many_pixels",
                {"width": width, "height": height, "limit": int(megapixels * 1e6)},
            )
        picture.seek(0)  # first frame of an animation
        picture.load()
        picture = _to_gray(ImageOps.exif_transpose(_reduced(picture, size)))
        # A quarter turn (EXIF orientation) swaps the sides.
        turned = (picture.width >= picture.height) != (width >= height) and width != height
        picture.info["original_size"] = (height, width) if turned else (width, height)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"The image is damaged or truncated ({error}).", "damaged") from error
    return picture


def _reducible_mode(picture: Image.Image) -> str:
    """The mode `_reduced` averages in: palettes, bits and 16-bit first become one it can."""
    mode = picture.mode
    if mode == "P":
        return "RGBA" if "transparency" in picture.info else "RGB"
    return {"1": "L", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I"}.get(mode, mode)


def decode_bytes(picture: Image.Image) -> int:
    """Bytes decoding `picture` holds at once: Pillow's storage (RGB, RGBA, CMYK, LA, I and F
    take 4 bytes a pixel, L, P and 1 one), and for a large one what `_reduced` adds: the
    conversion to a mode it can average, and Pillow's premultiplied copy of an alpha image."""

    def per_pixel(mode: str) -> int:
        return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4

    width, height = picture.size
    per = per_pixel(picture.mode)
    if width * height > REDUCE_ABOVE_PIXELS:
        target = _reducible_mode(picture)
        per += (per_pixel(target) if target != picture.mode else 0) + 4 * target.endswith("A")
    return width * height * per


def _reduced(picture: Image.Image, size: int = WORKING_SIZE) -> Image.Image:
    """A large decode averaged down (box filter, in C) to at least twice WORKING_SIZE (and at
    least `size`) before any other step copies it: orientation, grayscale and resizing then
    work on a small image."""
    width, height = picture.size
    factor = min(max(width, height) // max(2 * WORKING_SIZE, size), min(width, height))
    if width * height <= REDUCE_ABOVE_PIXELS or factor < 2:
        return picture
    mode = _reducible_mode(picture)
    if mode != picture.mode:
        picture = picture.convert(mode)
    return picture.reduce(factor)


def _to_gray(picture: Image.Image) -> Image.Image:
    """Any mode -> 'L'; transparency composited on white; 16-bit and float stretched to 8-bit."""
    mode = picture.mode
    if mode == "L":
        return picture
    if mode == "P":
        picture = picture.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = picture.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(picture, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = np.zeros_like(values) if high <= low else (values - low) / (high - low) * 255.0
        return Image.fromarray(scaled.astype(np.uint8), mode="L")
    if mode == "1":
        return picture.convert("L")
    # RGB, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, LAB, HSV ...
    return picture.convert("RGB").convert("L")
