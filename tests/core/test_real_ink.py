"""The failure patterns seen on real digits (issue 14), each as a generated picture: bold marker
strokes, faint grey pen, a digit that fills its picture, cell lines at the edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.preprocess import MNIST_STROKE, prepare
from core.synthetic import encode_png


def page(size: int, paper: int = 235) -> np.ndarray:
    return np.full((size, size), paper, np.uint8)


def draw_seven(picture: np.ndarray, width: int, bar: int, stem: int) -> None:
    """A 7 in the middle of `picture`: its bar drawn in grey `bar`, its stem in grey `stem`."""
    size = picture.shape[0]
    left, right, top, bottom = int(0.3 * size), int(0.7 * size), int(0.15 * size), int(0.85 * size)
    cv2.line(picture, (left, top), (right, top), bar, width, cv2.LINE_AA)
    cv2.line(picture, (right, top), (int(0.45 * size), bottom), stem, width, cv2.LINE_AA)


def runs(row: np.ndarray, level: float = 0.3) -> int:
    """How many separate stretches of ink one row of a crop crosses."""
    inked = np.concatenate(([0], (row > level).astype(np.int8), [0]))
    return int(np.count_nonzero(np.diff(inked) == 1))


def mean_stroke(crop: np.ndarray) -> float:
    shape = (crop > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(shape, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(contour, True) for contour in contours)
    return 2.0 * float(shape.sum()) / max(perimeter, 1.0)


def only_digit(picture: np.ndarray) -> np.ndarray:
    prepared = prepare(encode_png(picture))
    assert len(prepared.digits) == 1, f"expected one digit, found {len(prepared.digits)}"
    return prepared.digits[0].image


@pytest.mark.parametrize("width", [14, 24, 32])
def test_a_bold_marker_one_in_a_cell_stays_a_stroke_not_an_outline(width: int) -> None:
    """A 1 drawn with a marker as wide as a quarter of its height, filling a 128 px cell: one
    stroke, thinned towards MNIST's width (unthinned it would be 5-7 px at 28x28), not the two
    edges of a hollow blob (the paper estimate was narrower than the stroke and took its
    middle for paper)."""
    picture = page(128)
    cv2.line(picture, (64, 20), (64, 108), 20, width)
    crop = only_digit(picture)
    middle = crop[10:18]
    assert all(runs(row) == 1 for row in middle)
    assert mean_stroke(crop) < MNIST_STROKE + 1.5


def test_a_faint_grey_seven_keeps_its_fainter_bar() -> None:
    """A thin, pale pencil 7 (12 % darker than the paper, its bar 6 %): both strokes stay."""
    picture = page(300)
    draw_seven(picture, 2, bar=220, stem=207)
    crop = only_digit(picture)
    # The bar is at the top of the crop and spans most of the digit's width.
    top = crop[4:9]
    assert np.count_nonzero(top.max(axis=0) > 0.3) >= 8


def test_a_dotted_pencil_stem_of_a_scanned_six_stays() -> None:
    """A 28x28 scan of a pale pencil 6: its stem a dotted trail of specks (the paper's grain
    between them), its loop a little darker. Joined through the faint grain the stem stays;
    cut at half the threshold it fell apart and the loop alone was read as 0."""
    picture = np.full((28, 28), 255, np.uint8)
    cv2.circle(picture, (14, 18), 4, 195, 1, cv2.LINE_AA)
    for step in range(15):
        row, column = 4 + step, round(17 - step * 0.5)
        picture[row, column] = 215 if step % 2 == 0 else 242
    crop = only_digit(picture)
    rows, columns = np.flatnonzero(crop.max(axis=1) > 0.3), np.flatnonzero(crop.max(axis=0) > 0.3)
    # With its stem the 6 is taller than wide; its loop alone is as wide as tall.
    assert np.ptp(columns) < 0.8 * np.ptp(rows), "the stem above the loop is gone"


def test_a_digit_that_fills_a_tight_crop_is_found() -> None:
    """A 28x28 crop like a scanned answer box: the 7 touches the top and bottom of its picture."""
    picture = page(28, paper=250)
    cv2.line(picture, (8, 0), (21, 0), 120, 2)
    cv2.line(picture, (21, 0), (12, 27), 120, 2)
    crop = only_digit(picture)
    assert np.count_nonzero(crop[4:9].max(axis=0) > 0.3) >= 6  # its bar is there


def cell(lines: int = 200) -> np.ndarray:
    """A 128x128 sudoku cell: dark grid lines a few pixels inside two edges, thick on one."""
    picture = page(128, paper=190)
    cv2.line(picture, (0, 4), (127, 6), lines, 4)
    cv2.line(picture, (122, 0), (121, 127), lines, 2)
    cv2.line(picture, (3, 0), (2, 127), lines // 2, 6)
    return picture


def test_an_empty_cell_with_its_grid_lines_has_no_digit() -> None:
    assert prepare(encode_png(cell(60))).digits == []


def test_grid_lines_at_the_edges_are_not_read_and_do_not_hide_the_digit() -> None:
    picture = cell(60)
    draw_seven(picture, 5, bar=40, stem=40)
    crop = only_digit(picture)
    # The 7 alone: its bar across the top, nothing down the crop's sides (a line would be a 1).
    assert np.count_nonzero(crop[4:9].max(axis=0) > 0.3) >= 8
    assert crop[:, :3].max() < 0.05 and crop[:, -3:].max() < 0.05


def inset_cell(inset: int = 24) -> np.ndarray:
    """A 128x128 cell cut with a margin: its four grid lines `inset` pixels inside the edges,
    crossing at the corners, the neighbours' paper beyond them."""
    picture = page(128, paper=190)
    for position in (inset, 127 - inset):
        cv2.line(picture, (0, position), (127, position + 1), 70, 3)
        cv2.line(picture, (position, 0), (position + 1, 127), 70, 3)
    return picture


def test_lines_of_a_cell_cut_with_a_margin_stay_out_of_the_digit() -> None:
    """A 1 in a cell whose lines lie a fifth of the way in: read alone, not with a bar of the
    line across its top or bottom (a 7, a T, or "no digit")."""
    picture = inset_cell()
    cv2.line(picture, (66, 40), (60, 90), 40, 5, cv2.LINE_AA)
    crop = only_digit(picture)
    widths = [np.count_nonzero(row > 0.3) for row in crop]
    assert max(widths) <= 8, f"a row of the crop is {max(widths)} px wide: a line is in it"
