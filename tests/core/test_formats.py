"""Which formats are decoded (an allow-list, whatever the file's name says) and what decoding may
cost (memory measured in a fresh process). EPS/PostScript in particular never reaches
Ghostscript: the core, the CLI and the emulator all refuse it.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageDraw

from bot.sandbox.emulator import media
from bot.sandbox.emulator.errors import ApiError
from core.decode import IMAGE_FORMATS, MAX_DECODE_BYTES, ImageError, decode, decode_bytes
from tests.conftest import ROOT

# A vertical bar: what a "1" looks like, in PostScript.
EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 28 28
newpath 14 4 moveto 14 24 lineto 4 setlinewidth stroke
showpage
%%EOF
"""


@pytest.fixture
def ghostscript_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every call Pillow makes to Ghostscript (each one fails the test that expects none)."""
    calls: list[object] = []

    def ghostscript(*arguments: object, **options: object) -> None:
        calls.append(arguments)
        raise RuntimeError("Ghostscript was run on a user's file")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    return calls


def encoded(image_format: str, mode: str = "L") -> bytes:
    pixels = np.full((40, 30), 255, np.uint8)
    pixels[5:35, 13:17] = 0
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, image_format)
    return buffer.getvalue()


def test_eps_is_refused_without_running_ghostscript(ghostscript_calls: list[object]) -> None:
    with pytest.raises(ImageError, match="not an image I can read"):
        decode(EPS)
    # An already opened EPS image (a caller's PIL object) is refused before it loads, too.
    with pytest.raises(ImageError, match="EPS images are not read"):
        decode(Image.open(io.BytesIO(EPS)))
    assert ghostscript_calls == []


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_allowed_format_decodes(image_format: str) -> None:
    assert image_format in IMAGE_FORMATS
    picture = decode(encoded(image_format, "RGB" if image_format == "JPEG" else "L"))
    assert picture.mode == "L" and picture.size == (30, 40)


@pytest.mark.parametrize(
    ("image_format", "mode"),
    [("PPM", "L"), ("ICO", "RGBA"), ("TGA", "RGB"), ("PCX", "P"), ("SGI", "RGB"), ("QOI", "RGB")],
)
def test_other_formats_pillow_knows_are_refused(image_format: str, mode: str) -> None:
    with pytest.raises(ImageError, match="JPEG, PNG, WebP, BMP, GIF or TIFF"):
        decode(encoded(image_format, mode))


def test_the_emulator_refuses_eps_photos_and_makes_no_thumbnail(
    ghostscript_calls: list[object],
) -> None:
    with pytest.raises(ApiError, match="IMAGE_PROCESS_FAILED"):
        media.photo_renditions(EPS)
    assert media.thumbnail(EPS) is None
    assert ghostscript_calls == []


def test_predict_on_an_eps_named_png_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    path.write_bytes(EPS)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "predict", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1
    # Plain mode: a file's error goes to stderr, as the only line, and nothing to stdout.
    assert result.stdout == ""
    assert result.stderr.strip() == f"{path}: error: " + (
        "This file is not an image I can read. Send a photo, or a JPEG, PNG, WebP, BMP, GIF "
        "or TIFF file."
    )


# --- what a decode may cost ----------------------------------------------------------------------

MEASURE = """
import sys, time
from core.decode import ImageError
from core.preprocess import prepare

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

data = open(sys.argv[1], "rb").read()
# Warm the code first: the first call maps in pages of OpenCV's and numpy's libraries, and
# how many depends on the page cache (10+ MB apart between runs), not on the decode.
import io
from PIL import Image
small = io.BytesIO()
Image.new(Image.open(sys.argv[1]).mode, (64, 64)).save(small, "PNG")
prepare(small.getvalue())
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # Linux: restart the peak (VmHWM) from the current size
before = status("VmRSS")
started = time.process_time()
try:
    outcome = f"digits={len(prepare(data).digits)}"
except ImageError as error:
    outcome = f"error={error}"
print(f"{status('VmHWM') - before:.0f} {time.process_time() - started:.2f} {outcome}")
"""


def measure(folder: Path, mode: str, side: int) -> tuple[int, float, str]:
    """(file bytes, peak memory growth in MB, outcome) of one prepare() of a PNG with a bar, in
    a fresh process."""
    page = Image.new("RGBA" if mode == "RGBA" else "L", (side, side), "white")
    ImageDraw.Draw(page).line([(side // 2, side // 6), (side // 2, side * 5 // 6)], 0, side // 20)
    page = page.convert(mode)
    path = folder / f"{mode}-{side}.png"
    page.save(path)
    del page
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    grown, seconds, outcome = result.stdout.split(maxsplit=2)
    size = path.stat().st_size
    print(f"PNG {mode} {side}x{side}: {size // 1024} KB, +{grown} MB, {seconds} s CPU")
    return size, float(grown), outcome.strip()


def test_a_small_file_with_40_million_colour_pixels_is_refused_before_decoding(
    tmp_path: Path,
) -> None:
    size, grown, outcome = measure(tmp_path, "RGBA", 6300)  # issue 17: 166 KB, ~680 MB
    assert size < 200_000
    assert outcome.startswith("error=The image is too large to read: 6300x6300 PNG pixels")
    assert grown < 20


@pytest.mark.parametrize(
    ("mode", "side"), [("RGBA", 2800), ("RGB", 3950), ("P", 3500), ("L", 6300)]
)
def test_large_decodes_within_the_limit_stay_within_their_memory_bound(
    tmp_path: Path, mode: str, side: int
) -> None:
    _, grown, outcome = measure(tmp_path, mode, side)
    assert outcome == ("digits=0" if mode == "RGBA" else "digits=1")  # RGBA's bar: transparent
    # Before: 291 MB for a 3950x3950 RGBA PNG (now refused), 177 MB for RGB.
    assert grown < 1.25 * MAX_DECODE_BYTES / 2**20


def test_decode_cost_counts_pillow_storage_and_the_copies_before_reducing() -> None:
    assert decode_bytes(Image.new("L", (1000, 1000))) == 1_000_000
    assert decode_bytes(Image.new("RGB", (1000, 1000))) == 4_000_000  # RGB is kept in 4 bytes
    # Large ones are reduced first: a palette becomes RGB; alpha is premultiplied in a copy.
    assert decode_bytes(Image.new("P", (3000, 3000))) == 9_000_000 * 5
    assert decode_bytes(Image.new("RGBA", (3000, 3000))) == 9_000_000 * 8
    assert decode_bytes(Image.new("I;16", (3000, 3000))) == 9_000_000 * 6


def test_a_large_jpeg_decodes_reduced() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 4000), "white").save(buffer, "JPEG")
    picture = decode(buffer.getvalue())
    assert picture.size == (750, 500)  # libjpeg's 1/8 scale, never the full 24 MP
