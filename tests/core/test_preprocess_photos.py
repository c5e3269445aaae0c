"""Preprocessing properties for phone photos: shadows, paper lines, stroke width, pieces of one
digit, wide single digits and several digits, each on a small synthetic page built from MNIST
test digits (fast, and each isolates one thing the photo pipeline must get right)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from core.data import Mnist
from core.preprocess import prepare
from tests.conftest import digit_photo


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


def page(
    digit: np.ndarray,
    *,
    size: tuple[int, int] = (480, 360),
    scale: int = 160,
    offset: tuple[int, int] = (160, 100),
) -> np.ndarray:
    """Dark MNIST ink on a white page as float grayscale (1 = paper)."""
    return (
        np.asarray(
            Image.open(
                io.BytesIO(digit_photo(digit, size=size, scale=scale, offset=offset))
            ).convert("L"),
            dtype=np.float32,
        )
        / 255.0
    )


def jpeg(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(gray * 255.0, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def only_crop(data: bytes) -> np.ndarray:
    digits = prepare(data).digits
    assert len(digits) == 1, f"expected one digit, found {len(digits)}"
    return digits[0].image


def stroke_width(crop: np.ndarray) -> float:
    """2 x area / perimeter of the ink above half level, in pixels of the 28x28 crop."""
    shape = (crop > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(shape, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return 2.0 * float(shape.sum()) / sum(cv2.arcLength(contour, True) for contour in contours)


@pytest.fixture(scope="module")
def digits(mnist: Mnist) -> list[np.ndarray]:
    return [mnist.x_test[index] for index in range(8)]


def test_a_shadow_over_most_of_the_page(digits: list[np.ndarray]) -> None:
    for digit in digits:
        clean = only_crop(jpeg(page(digit)))
        shaded = page(digit)
        columns = np.arange(shaded.shape[1])[None, :]
        # A phone's shadow: 45 % darker over two thirds of the page, its edge across the digit.
        shaded *= np.where(
            columns > 0.33 * shaded.shape[1] + 0.2 * np.arange(shaded.shape[0])[:, None], 0.55, 1.0
        )
        assert correlation(only_crop(jpeg(shaded)), clean) > 0.9


def test_uneven_light(digits: list[np.ndarray]) -> None:
    for digit in digits:
        lit = page(digit)
        lit *= np.linspace(1.0, 0.45, lit.shape[1])[None, :]  # a lamp on the left
        assert correlation(only_crop(jpeg(lit)), only_crop(jpeg(page(digit)))) > 0.9


@pytest.mark.parametrize("grid", [False, True], ids=["ruled", "squared"])
def test_paper_lines_crossing_the_digit_are_removed(digits: list[np.ndarray], grid: bool) -> None:
    for digit in digits:
        lined = page(digit)
        height, width = lined.shape
        slope = 0.06  # the camera turned a little: lines are not quite level
        for y in range(15, height + 40, 30):
            cv2.line(lined, (0, y), (width, round(y - slope * width)), 0.7, 1, cv2.LINE_AA)
        if grid:
            for x in range(10, width + 40, 30):
                cv2.line(lined, (x, 0), (round(x + slope * height), height), 0.7, 1, cv2.LINE_AA)
        assert correlation(only_crop(jpeg(lined)), only_crop(jpeg(page(digit)))) > 0.85


@pytest.mark.parametrize("pen", ["thin", "marker"])
def test_stroke_width_is_normalised(digits: list[np.ndarray], pen: str) -> None:
    for digit in digits:
        ink = 1.0 - page(digit, size=(640, 480), scale=300, offset=(170, 90))
        binary: np.ndarray = (ink > 0.5).astype(np.uint8)
        if pen == "thin":  # a fineliner: about 2 % of the digit's height
            binary = cv2.erode(binary, np.ones((9, 9), np.uint8))
        else:  # a marker: about 20 %
            binary = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25)))
        crop = only_crop(jpeg(1.0 - 0.9 * binary.astype(np.float32)))
        # MNIST's strokes measure about 2.5 pixels this way (most digits 1.8-3.3).
        assert 1.7 <= stroke_width(crop) <= 3.5, (pen, stroke_width(crop))


def test_a_detached_cap_stays_with_its_digit(mnist: Mnist) -> None:
    fives = [index for index in range(200) if mnist.y_test[index] == 5][:5]
    for index in fives:
        five = mnist.x_test[index].copy()
        rows = np.flatnonzero(five.max(axis=1) > 60)
        cap_bottom = rows[0] + 4
        # The pen lifted: the cap's row band is written 2 pixels higher, leaving a gap.
        lifted = np.zeros_like(five)
        lifted[: cap_bottom - 2] = five[2:cap_bottom]
        lifted[cap_bottom + 1 :] = five[cap_bottom + 1 :]
        prepared = prepare(digit_photo(lifted))
        assert len(prepared.digits) == 1, f"test digit {index} came out in pieces"


def test_wide_single_digits_stay_single(digits: list[np.ndarray], mnist: Mnist) -> None:
    zeros = [mnist.x_test[index] for index in range(100) if mnist.y_test[index] == 0][:4]
    for digit in [*zeros, *digits[:4]]:
        # Stretched to 1.6 times their width: as wide as single digits get in the photo
        # benchmark. (An open 0 stretched past 1.8 times can still be cut in two.)
        wide = Image.fromarray(255 - digit).resize((260, 160), Image.Resampling.BICUBIC)
        sheet = Image.new("L", (480, 360), 255)
        sheet.paste(wide, (90, 100))
        buffer = io.BytesIO()
        sheet.save(buffer, "PNG")
        assert len(prepare(buffer.getvalue()).digits) == 1


def test_several_digits_left_to_right_and_max_digits(digits: list[np.ndarray]) -> None:
    sheet = Image.new("L", (900, 300), 255)
    for position, digit in enumerate(digits[:5]):
        ink = Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC)
        sheet.paste(ink, (40 + 165 * position, 80))
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    prepared = prepare(buffer.getvalue())
    assert len(prepared.digits) == 5
    lefts = [crop.box[0] for crop in prepared.digits]
    assert lefts == sorted(lefts)
    for crop, digit in zip(prepared.digits, digits[:5], strict=True):
        assert correlation(crop.image, digit / 255.0) > 0.6
    assert len(prepare(buffer.getvalue(), max_digits=3).digits) == 3
