"""Which formats are decoded (an allow-list, whatever the file's name says) and what decoding may
cost. EPS/PostScript in particular never reaches Ghostscript: the core, the CLI and the emulator
all refuse it.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from bot.emulator import media
from bot.emulator.errors import ApiError
from core.preprocess import IMAGE_FORMATS, ImageError, decode
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
    assert result.stdout.strip() == f"{path}: error: " + (
        "This file is not an image I can read. Send a photo, or a JPEG, PNG, WebP, BMP, GIF "
        "or TIFF file."
    )
    assert "Traceback" not in result.stderr
