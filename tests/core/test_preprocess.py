"""Properties of the one preprocessing function: polarity, centring, modes, EXIF, bad input."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from core import preprocess
from core.data import Mnist
from core.decode import ImageError
from core.preprocess import prepare
from tests.conftest import digit_photo


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, columns = np.indices(image.shape)
    total = image.sum()
    return float((rows * image).sum() / total), float((columns * image).sum() / total)


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


def single_crop(data: bytes | Image.Image) -> np.ndarray:
    prepared = prepare(data)
    assert len(prepared.digits) == 1, f"expected one digit, found {len(prepared.digits)}"
    crop = prepared.digits[0].image
    assert crop.shape == (28, 28)
    assert crop.dtype == np.float32
    assert crop.min() >= 0.0 and crop.max() <= 1.0
    return crop


@pytest.fixture(scope="module")
def digits(mnist: Mnist) -> list[np.ndarray]:
    return [mnist.x_test[index] for index in range(12)]


def test_output_looks_like_the_mnist_digit(digits: list[np.ndarray]) -> None:
    for digit in digits:
        crop = single_crop(digit_photo(digit))
        assert correlation(crop, digit / 255.0) > 0.6
        assert crop[0].max() < 0.05 and crop[:, -1].max() < 0.05  # a dark frame, like MNIST


def test_polarity_does_not_matter(digits: list[np.ndarray]) -> None:
    for digit in digits:
        dark_on_light = single_crop(digit_photo(digit, dark_on_light=True))
        light_on_dark = single_crop(digit_photo(digit, dark_on_light=False))
        assert correlation(dark_on_light, light_on_dark) > 0.95


@pytest.mark.parametrize(
    ("scale", "offset", "size"),
    [
        (140, (10, 10), (400, 300)),
        (60, (320, 220), (400, 300)),
        (280, (60, 10), (400, 300)),
        (40, (5, 700), (1000, 750)),
    ],
    ids=["top-left", "small-bottom-right", "large", "tiny-corner"],
)
def test_centred_by_mass_whatever_the_position(
    digits: list[np.ndarray], scale: int, offset: tuple[int, int], size: tuple[int, int]
) -> None:
    for digit in digits[:6]:
        crop = single_crop(digit_photo(digit, scale=scale, offset=offset, size=size))
        row, column = center_of_mass(crop)
        assert abs(row - 13.5) <= 1.0 and abs(column - 13.5) <= 1.0
        rows = np.flatnonzero(crop.max(axis=1) > 0.1)
        columns = np.flatnonzero(crop.max(axis=0) > 0.1)
        # Fitted into a 20x20 box: the longer side spans about 20 pixels, never more than 22.
        assert 17 <= max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 <= 22


def test_exif_orientation_is_applied(digits: list[np.ndarray]) -> None:
    upright = Image.open(io.BytesIO(digit_photo(digits[0], image_format="JPEG")))
    # Cameras store the sensor's orientation and a tag saying how to turn it for display.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    rotated = prepare(buffer.getvalue())
    assert (rotated.width, rotated.height) == upright.size
    assert correlation(rotated.digits[0].image, single_crop(upright)) > 0.95


def test_rgba_palette_and_16_bit(digits: list[np.ndarray]) -> None:
    digit = digits[1]
    reference = single_crop(digit_photo(digit))
    ink = Image.fromarray(digit).resize((140, 140), Image.Resampling.BICUBIC)

    # Dark ink on a fully transparent background: transparency becomes white paper.
    rgba = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (140, 140), (20, 20, 120, 255)), (80, 30), mask=ink)
    assert correlation(single_crop(rgba), reference) > 0.9

    page = Image.open(io.BytesIO(digit_photo(digit)))
    palette = page.convert("P", palette=Image.Palette.ADAPTIVE)
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    assert correlation(single_crop(buffer.getvalue()), reference) > 0.9

    sixteen = (
        np.asarray(Image.open(io.BytesIO(digit_photo(digit))).convert("L"), dtype=np.uint16) * 257
    )
    buffer = io.BytesIO()
    Image.fromarray(sixteen).save(buffer, "PNG")  # a 16-bit grayscale PNG (mode I;16)
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    assert correlation(single_crop(buffer.getvalue()), reference) > 0.9


def test_cmyk_jpeg(digits: list[np.ndarray]) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(digit_photo(digits[2]))).convert("CMYK").save(buffer, "JPEG")
    assert correlation(single_crop(buffer.getvalue()), single_crop(digit_photo(digits[2]))) > 0.9


@pytest.mark.parametrize("colour", [0, 255, 128])
def test_blank_images_have_no_digit(colour: int) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (colour, colour, colour)).save(buffer, "JPEG")
    assert prepare(buffer.getvalue()).digits == []


def test_paper_texture_alone_has_no_digit() -> None:
    rng = np.random.default_rng(1)
    paper = np.clip(rng.normal(225, 4, (480, 640)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(paper).save(buffer, "JPEG", quality=80)
    assert prepare(buffer.getvalue()).digits == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is plain text", "not an image"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    ],
)
def test_non_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        prepare(data)


def test_truncated_jpeg(digits: list[np.ndarray]) -> None:
    data = digit_photo(digits[0], image_format="JPEG")
    with pytest.raises(ImageError):
        prepare(data[: len(data) // 2])


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (the pixels never need to exist)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + (chunk(b"IEND", b""))
    )


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="too large"):
        prepare(bomb_png(50_000, 50_000))
    with pytest.raises(ImageError, match="too large"):
        prepare(bomb_png(5_000, 5_000), max_pixels=1_000_000)


def line_and_blob_mask(seed: int, size: tuple[int, int] = (192, 256)) -> np.ndarray:
    """A binary mask like a thresholded page: a few thin lines (ruled or squared paper, whole
    or broken off, tilted or not, horizontal or vertical) and a few blobs (digits)."""
    rng = np.random.default_rng(seed)
    height, width = size
    mask = np.zeros(size, np.uint8)
    for _ in range(rng.integers(0, 4)):
        length = rng.uniform(0.1, 1.0)
        start = rng.uniform(0.0, 1.0 - length)
        tilt = rng.uniform(-0.3, 0.3)
        thickness = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            y = rng.uniform(0, height)
            x0, x1 = start * width, (start + length) * width
            points = (round(x0), round(y)), (round(x1), round(y + tilt * (x1 - x0)))
        else:
            x = rng.uniform(0, width)
            y0, y1 = start * height, (start + length) * height
            points = (round(x), round(y0)), (round(x + tilt * (y1 - y0)), round(y1))
        cv2.line(mask, *points, 255, thickness)
    for _ in range(rng.integers(0, 4)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, 40)), int(rng.integers(10, 60)))
        cv2.ellipse(
            mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, int(rng.integers(2, 8))
        )
    return mask


def test_the_line_prefilter_never_hides_a_line() -> None:
    """_may_hold_lines may only say "no line" where the full search finds none; and on pages
    with no long thin structure it does say so (else it would save nothing)."""
    thickness = 5
    skipped = 0
    for seed in range(300):
        mask = line_and_blob_mask(seed)
        horizontal, vertical = preprocess._may_hold_lines(mask, thickness)
        if not horizontal:
            assert preprocess._line_pixels(mask, thickness) is None, seed
            skipped += 1
        if not vertical:
            assert preprocess._line_pixels(np.ascontiguousarray(mask.T), thickness) is None, seed
            skipped += 1
    assert skipped > 100


def test_ink_found_once_is_the_mask_labelled_again() -> None:
    """_ink_components keeps the faint components that hold clear ink; labelling that mask
    again gives the same pixel sets (it is what find_digits used to do, at twice the cost)."""
    rng = np.random.default_rng(0)
    ink = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 3)
    # Blobs of ink on a third of the picture: most of it is paper, as in a photo (ink over most
    # of the picture would be taken for the paper's noise).
    ink = np.clip((ink - ink.mean()) * 8 - 0.1, 0, 1).astype(np.float32)
    labels, stats, inked = preprocess._ink_components(ink, 3)
    kept = np.isin(labels, inked)
    count, relabelled = cv2.connectedComponents(kept.astype(np.uint8), connectivity=8)
    assert count - 1 == len(inked) > 1
    for label in inked:
        pixels = labels == label
        assert len(np.unique(relabelled[pixels])) == 1
        assert stats[label, cv2.CC_STAT_AREA] == pixels.sum()
