"""Turn a photo (bytes or a PIL image) into MNIST-like 28x28 digit crops: the one preprocessing
function that the bot, the CLI, the sandbox, the benchmarks and the tests all call.

The steps, in order (each answers one way real phone photos differ from MNIST):
1. decode (core/decode.py) cheaply (JPEG draft mode), refuse non-images and decompression
   bombs, apply EXIF orientation, composite transparency on white, bring any mode (P, CMYK,
   16-bit) to grayscale, and work on a copy whose longest side is at most 256 pixels (a digit
   at 10 % of the frame height is still 19 pixels tall, about MNIST's 20);
2. polarity: a page is at least mid-grey (phones expose for it), otherwise ink is the minority
   tone, so a screenshot's light strokes on dark work too; a shadow over most of the page is not
   taken for the paper (light strokes never cover more than a small part of a picture);
3. light: the paper is estimated by a grey closing (opening for light ink) wider than any
   stroke (in a crop, where a bold digit may fill the picture, twice as wide); it keeps the
   sharp edge of a shadow, and dividing by it turns every part of the page, lit or shaded,
   white or yellow, into the same "how much darker than the paper" scale;
4. threshold: Otsu, at least ~16 % ink - or, where no ink is that clear or in a crop, half the
   darkest ink (a pale scan, a hard pencil); in a
   crop (a picture at most CROP_SIZE pixels: a form cell, a scan's box) the lines of its cell
   along the edges go first; the faint side (half the threshold) first loses its paper lines:
   long, thin, straight runs (ruled and squared paper, margins, even tilted or in perspective)
   are fitted as lines and removed where they are as thin as the line, which keeps the strokes
   crossing them; then hysteresis keeps faint pixels that touch clear ink, so thin or faded
   strokes hold together but a line can no longer tie a digit to the page or to its neighbour;
5. digits (core/segmentation.py; step 6: core/cuts.py): components are filtered (specks, page edges
   and whatever the border cuts - except in a crop, where the digit often fills the picture and
   touches its frame), pieces much shorter than the tallest join the digit they sit on (a 5's
   cap, a broken stroke) or, close together and as tall as a digit, make one (a digit the pen
   or a removed paper line broke; at a line's end too), and a row of digits level with the one
   holding the most ink is kept, left to right;
6. touching digits: a group somewhat wider than a digit is cut in two only at a neck thinner than
   a stroke that leaves two tall parts (a wide 0 or a 2 with a long tail stays whole); a group far
   wider than any digit is cut by dynamic programming where top-to-bottom paths cross little ink
   and leave digit-wide parts; no cut goes through a digit's loop;
7. each digit: its ink relative to the darkest ink nearby (a faint bar beside a dark stem
   stays), redrawn at 4x with MNIST's stroke width (thin pen thickened, marker thinned, by the
   distance transform), fitted into 20x20 keeping the aspect ratio and centred by centre of
   mass in 28x28 — MNIST's own recipe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from core.choice import Judge, choose
from core.cuts import components
from core.decode import DEFAULT_MAX_PIXELS, WORKING_SIZE, decode
from core.segmentation import FRAME_BAND, Rejected, Segmentation, find_digits

# The images here are small (256 px): OpenCV's worker threads spin-wait for work that takes
# microseconds, which cost 1.3 ms of CPU per photo and no latency (measured); the bot runs
# several photos at once instead.
cv2.setNumThreads(1)

MIN_WORKING_SIZE = 112  # tiny inputs (a 28x28 MNIST digit) are enlarged to this
# The writing's scale (see prepare): read again finer when the first look at WORKING_SIZE finds
# digits shorter than TARGET_HEIGHT or strokes thinner than TARGET_STROKE pixels (by more than
# RESCAN_FACTOR), or nothing at all (then BLANK_RESCAN times finer), up to MAX_WORKING_SIZE.
TARGET_HEIGHT = 32
TARGET_STROKE = 2.5
RESCAN_FACTOR = 1.3
BLANK_RESCAN = 4.0
RESCANS = 3  # looks closer, at most
MAX_WORKING_SIZE = 4096
FULL_CONTRAST = 0.6  # a stroke a few pixels wide reaches at least this ink level
PAPER_LINE = 0.15  # paper lines are thinner than this share of the digit height
JOIN_GAP = 0.03  # ink this close (a share of the digit height, each side) is one piece
MAX_DIGITS = 200  # digits per picture (a page)
MNIST_BOX = 20
MNIST_SIZE = 28
MNIST_STROKE = 2.45  # median MNIST stroke width (2 x area / perimeter of the ink > 0.5)
FRAME_SPAN = 0.5  # in a crop, cell lines within FRAME_BAND of an edge cross this share of it
# (faint ones break up); a cell cut with a margin has them further in, where only lines across
# the picture from within a tenth of one side to within a tenth of the other are taken (a 2's
# base or a 7's bar written along the line stops short of one side).
LINE_BAND, LINE_SPAN = 0.22, 0.9
CROP_PAPER = 0.4  # ... whose paper is estimated by a closing this share of it wide
WEAK_INK = 0.5  # faint ink (a share of the clear-ink threshold) counts where it touches clear ink
FAINT_INK = 0.25  # ... in a crop with clean paper, fainter still
CROP_SIZE = 160  # a picture this small is a crop (a cell, a scan's box), not a photo of a page
SUPERSAMPLE = 4  # strokes are redrawn at 4x the 20x20 box, then reduced (anti-aliased)


@dataclass(frozen=True)
class DigitCrop:
    image: np.ndarray  # (28, 28) float32 in [0, 1], light ink on dark
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the original image's pixels
    line: int = 0  # which number (text line) of the picture it belongs to, in reading order
    probabilities: np.ndarray | None = None  # the judge's (10,) answer, when it was asked


@dataclass(frozen=True)
class Prepared:
    digits: list[DigitCrop]  # in reading order (line by line); empty when no digit was found
    width: int  # the original image's size (upright)
    height: int
    rejected: list[Rejected] = field(default_factory=list)  # boxes in the original's pixels
    working_size: tuple[int, int] = (0, 0)  # (width, height) the writing was analysed at


def prepare(
    image: bytes | Image.Image,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_digits: int = MAX_DIGITS,
    judge: Judge | None = None,
) -> Prepared:
    """Photo in, MNIST-like digit crops out (empty list: no digit). Raises ImageError.

    The writing's scale decides the working resolution: a first look at WORKING_SIZE finds the
    digits' height and stroke width; writing too small or strokes too thin for it (a number
    across a large photo, a fine pen) are read again at the resolution that makes digits at
    least TARGET_HEIGHT tall with strokes at least TARGET_STROKE wide (up to the original's).

    `judge` ((n, 28, 28) crops -> (n, 10) probabilities, the classifier) decides where the cut
    between digits is unclear (core.choice); without it the segmentation's first reading
    stands."""
    picture = decode(image, max_pixels=max_pixels)
    original = picture.info.get("original_size", picture.size)
    gray = np.asarray(picture, dtype=np.uint8)
    working, _ = _working_copy(gray)
    crop = max(original) <= CROP_SIZE
    ink = flatten_background(working, crop=crop)
    found = find_digits(
        ink, functools.partial(_ink_components, crop=crop), max_digits=max_digits, crop=crop
    )
    for _ in range(RESCANS):
        factor = _wanted_factor(found, ink.shape, max(original))
        if factor <= RESCAN_FACTOR:
            break
        side = min(round(max(working.shape) * factor), max(original), MAX_WORKING_SIZE)
        if side > max(gray.shape) and not isinstance(image, Image.Image):
            gray = np.asarray(decode(image, max_pixels=max_pixels, size=side), dtype=np.uint8)
        thickness, join = None, 1
        if found.height:
            height = found.height * side / max(working.shape)  # the digits' height at `side`
            thickness = max(3, round(PAPER_LINE * height))  # thicker than a paper line
            # Gaps this small inside a thin line are the threshold's, not the pen's.
            join = max(1, round(JOIN_GAP * height))
        closer, _ = _working_copy(gray, size=side)
        # Sensor noise is finer than any stroke worth finding at this size: smooth it away.
        closer_ink = flatten_background(cv2.GaussianBlur(closer, (3, 3), 0))
        closer_found = find_digits(
            closer_ink, _ink_components, max_digits=max_digits, thickness=thickness, join=join
        )
        if found.lines and not closer_found.lines:
            # Writing seen at the first look and nothing closer up (squared paper's lines,
            # sharper there, tied it into pieces at the frame): the look that saw digits stands.
            break
        working, ink, found = closer, closer_ink, closer_found
    to_original = max(original) / max(working.shape)

    def scaled(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        left, top, right, bottom = (round(value * to_original) for value in box)
        return (left, top, right, bottom)

    readings = choose(found, lambda mask, box: mnist_crop(ink, mask, box), judge)
    digits = [
        DigitCrop(image=crop, box=scaled(box), line=line, probabilities=probabilities)
        for line, crops in enumerate(readings)
        for crop, box, probabilities in crops
    ]
    return Prepared(
        digits=digits,
        width=int(original[0]),
        height=int(original[1]),
        rejected=[Rejected(scaled(item.box), item.reason) for item in found.rejected],
        working_size=(working.shape[1], working.shape[0]),
    )


def _wanted_factor(found: Segmentation, shape: tuple[int, ...], original_side: int) -> float:
    """How much finer than `shape` the writing should be analysed (1: as it is)."""
    if max(shape) >= min(original_side, MAX_WORKING_SIZE):
        return 1.0  # already at the original's resolution
    if not found.lines:
        # Nothing found at the first look: strokes thinner than a pixel vanish at this size;
        # look closer once (a blank page costs one more look, not several).
        first_look = max(shape) <= WORKING_SIZE
        return BLANK_RESCAN if first_look and original_side > max(shape) * RESCAN_FACTOR else 1.0
    # A stroke thinner than a pixel is smeared into a fainter one: its true width is about
    # the measured one times the ink lost.
    stroke = found.stroke * min(1.0, found.contrast / FULL_CONTRAST)
    return max(TARGET_HEIGHT / max(found.height, 1.0), TARGET_STROKE / max(stroke, 0.1))


def _working_copy(gray: np.ndarray, size: int = WORKING_SIZE) -> tuple[np.ndarray, float]:
    """Resize so the longest side is within [MIN_WORKING_SIZE, size]; return the scale."""
    longest = max(gray.shape)
    if longest > size:
        scale = size / longest
        interpolation = cv2.INTER_AREA
        if scale >= 0.6:
            # A mild reduction (the usual one after JPEG draft decoding): a 2x2 mean then
            # linear interpolation averages sensor noise like pixel-area averaging, at a
            # third of its cost.
            gray = cv2.blur(gray, (2, 2))
            interpolation = cv2.INTER_LINEAR
    elif longest < MIN_WORKING_SIZE:
        scale = MIN_WORKING_SIZE / longest
        interpolation = cv2.INTER_CUBIC
    else:
        return gray, 1.0
    target = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, target, interpolation=interpolation), scale


def ink_is_dark(gray: np.ndarray) -> bool:
    """True for dark ink on light paper, False for light strokes on a dark screen."""
    height, width = gray.shape
    factor = min(1.0, 128 / max(height, width))
    if factor < 1.0:
        gray = cv2.resize(
            gray,
            (max(1, round(width * factor)), max(1, round(height * factor))),
            interpolation=cv2.INTER_AREA,
        )
    median = float(np.median(gray)) / 255.0  # on uint8: twice as fast as on floats
    if median >= 0.4:
        # Phones expose for the page, so paper is at least mid-grey even in dim light or under
        # uneven light, where half the page may be brighter than the median.
        return True
    small = gray.astype(np.float32) / 255.0
    # Otherwise ink is the minority tone: whichever side of the median holds more far-off mass.
    darker = float(np.clip(median - small - 0.05, 0.0, None).sum())
    lighter = float(np.clip(small - median - 0.05, 0.0, None).sum())
    if darker >= lighter:
        return True
    # A shadow over most of the page puts the median in the shade, and the lit paper then looks
    # like light ink; but light strokes never cover more than a small part of a picture.
    return float(np.mean(small > median + 0.15)) > 0.15


def flatten_background(gray: np.ndarray, *, crop: bool = False) -> np.ndarray:
    """uint8 grayscale -> float32 ink in [0, 1]: how much the ink departs from its paper.
    `crop`: the digit may fill the picture, so its strokes may be a fifth of it wide."""
    height, width = gray.shape
    # Light varies slowly: estimate the paper at half size. A closing (dark ink) or opening
    # (light ink) wider than any stroke removes the ink but keeps a shadow's edge where it is.
    half = cv2.resize(gray, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)
    dark_ink = ink_is_dark(half)
    # In a crop the closing must be wider than a bold marker stroke of a digit that fills it
    # (else the stroke's middle is taken for paper and the digit hollowed out); in a photo a
    # wider one would take a narrow shadow for ink.
    size = max(3, int((CROP_PAPER if crop else 0.2) * min(half.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    paper = cv2.morphologyEx(half, cv2.MORPH_CLOSE if dark_ink else cv2.MORPH_OPEN, kernel)
    paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    pixels = gray.astype(np.float32)
    # Relative to the paper, so ink in a shadow is as strong as ink in the light.
    if dark_ink:
        ink = (paper - pixels) / np.maximum(paper, 24.0)
    else:
        ink = (pixels - paper) / np.maximum(255.0 - paper, 24.0)
    return np.clip(ink, 0.0, 1.0)


def _ink_components(
    ink: np.ndarray, thickness: int, *, crop: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Otsu threshold with hysteresis (faint pixels count when they touch clear ink), after
    removing paper lines, so a faint line cannot tie a digit to the page or to another digit.

    Returns the 8-connected components of the faint mask (labels, stats) and the labels that
    hold clear ink: the ink's own components, without labelling the image a second time.
    """
    ink8 = cv2.convertScaleAbs(ink, alpha=255.0)  # rounds to nearest, like np.rint
    threshold, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Clear ink is at least ~16 % darker than its paper. Where there is none (a pale pencil, a
    # faint scan), or in a crop, half as dark as the darkest ink will do - but never within the
    # paper's grain. Not on a page with clear ink: a lower cut there ties touching neighbours.
    floor = 40.0
    peak = float(cv2.blur(ink8, (3, 3)).max())
    noise = _noise_floor(ink8)
    # Elsewhere, strong sensor noise (a dim photo at full resolution) may reach above 40: clear
    # ink is above the noise too, or every grain ties the page into one piece.
    floor = min(floor, max(0.5 * peak, noise)) if crop or peak < floor else max(floor, noise)
    threshold = max(threshold, floor)
    # Faint ink joined to clear ink is ink. In a crop, down to FAINT_INK of the threshold where
    # the paper is clean (a scan: the faint bar of a 7, the loop of a 9), never into its noise.
    weak_level = threshold * WEAK_INK
    if crop:
        weak_level = max(threshold * FAINT_INK, min(noise, weak_level))
    _, weak = cv2.threshold(ink8, weak_level, 255, cv2.THRESH_BINARY)
    weak = _remove_lines(weak, thickness)
    if crop:
        weak = _remove_frame_lines(weak)
    count, labels, stats = components(weak)
    kept = np.zeros(count, dtype=bool)
    kept[labels[ink8 > threshold]] = True
    kept[0] = False
    return labels, stats, np.flatnonzero(kept)


def _noise_floor(ink8: np.ndarray) -> float:
    """A level that paper grain and sensor noise stay below: the paper's typical ink (the
    median: most of any picture is paper) plus eight robust standard deviations (MAD)."""
    # OpenCV's histogram: four times faster than np.bincount on a page (it runs on every look).
    counts = np.cumsum(cv2.calcHist([ink8], [0], None, [256], [0, 256]).ravel().astype(np.int64))
    half = counts[-1] / 2
    median = int(np.searchsorted(counts, half))
    values = np.arange(256)
    deviations = np.bincount(np.abs(values - median), weights=np.diff(counts, prepend=0))
    mad = int(np.searchsorted(np.cumsum(deviations), half))
    return median + 8 * 1.4826 * mad


def _remove_frame_lines(mask: np.ndarray) -> np.ndarray:
    """Remove the lines of a cell or grid near the picture's edges (a form cell, a sudoku
    square): straight runs along an edge that cross nearly all of the picture. Paper lines
    elsewhere are _remove_lines' work; these can be thick and sit right at the border.
    Both directions are found on the same mask: removing one first would cut the other's ends
    where they cross, and a line that no longer runs off the picture looks like a stroke."""
    horizontal = _frame_rows(mask)
    vertical = _frame_rows(np.ascontiguousarray(mask.T)).T
    return np.where(horizontal | vertical, 0, mask).astype(mask.dtype)


def _frame_rows(mask: np.ndarray) -> np.ndarray:
    """Where _remove_frame_lines finds horizontal lines (transpose for vertical ones): bool."""
    height, width = mask.shape
    run = max(3, width // 6)  # a tilted line still has runs this long
    found = np.zeros(mask.shape, dtype=bool)
    for share in (FRAME_BAND, LINE_BAND):
        band = max(2, round(share * height))
        for rows in (slice(0, band), slice(height - band, height)):
            found[rows] |= _spanning_runs(mask[rows], run, across=share == LINE_BAND)
    return found


def _spanning_runs(edge: np.ndarray, run: int, *, across: bool) -> np.ndarray:
    """The ink of `edge`, a band along one side, on lines that cross FRAME_SPAN of it and run
    off it at one end at least (a 7's bar or a 5's cap stops short of both sides), or with
    `across`, lines from near one end to near the other (LINE_SPAN): bool."""
    width = edge.shape[1]
    runs = cv2.morphologyEx(edge, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    if not runs.any():
        return np.zeros(edge.shape, dtype=bool)
    # Join the runs of one tilted or dashed line, then keep what spans the picture.
    joined = cv2.dilate(runs, np.ones((3, run), np.uint8))
    count, labels, stats = components(joined)
    if across:
        # Where the runs themselves end: the joining widens each by `run`.
        owner = labels[runs > 0]
        columns = np.nonzero(runs)[1]
        lefts = np.full(count, width)
        rights = np.zeros(count, dtype=np.int64)
        np.minimum.at(lefts, owner, columns)
        np.maximum.at(rights, owner, columns + 1)
        spans = (lefts <= (1 - LINE_SPAN) * width) & (rights >= LINE_SPAN * width)
    else:
        lefts, widths = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_WIDTH]
        spans = ((lefts <= 1) | (lefts + widths >= width - 1)) & (widths >= FRAME_SPAN * width)
    spans[0] = False
    # The joined band covers the line's blurred edges and the gaps between its runs.
    return spans[labels] & (edge > 0)


def _remove_lines(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Remove ruled and squared paper lines (straight, thin, long) but not the strokes crossing."""
    may_be_horizontal, may_be_vertical = _may_hold_lines(mask, thickness)
    horizontal = _line_pixels(mask, thickness) if may_be_horizontal else None
    vertical = _line_pixels(np.ascontiguousarray(mask.T), thickness) if may_be_vertical else None
    if horizontal is None and vertical is None:
        return mask
    lines, band = np.zeros_like(mask), np.zeros_like(mask)
    if horizontal is not None:
        lines |= horizontal[0]
        band |= horizontal[1]
    if vertical is not None:
        lines |= vertical[0].T
        band |= vertical[1].T
    if not lines.any():
        return mask
    cleaned = cv2.subtract(mask, lines)
    # Mend the small gaps a removed line cut into strokes that ran along it for a moment.
    mended = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    near_lines = cv2.dilate(lines, np.ones((3, 3), np.uint8))
    cleaned = np.where(near_lines > 0, mended, cleaned)
    # Small leftovers lying on a line (where it was printed thicker) are line, not ink.
    count, labels, stats = components(cleaned)
    on_band = np.bincount(labels[band > 0], minlength=count)
    leftovers = (on_band >= 0.6 * stats[:, cv2.CC_STAT_AREA]) & (
        stats[:, cv2.CC_STAT_AREA] < 2 * thickness * thickness
    )
    leftovers[0] = False
    if leftovers.any():
        cleaned = np.where(leftovers[labels], 0, cleaned).astype(np.uint8)
    return cleaned


def _line_pixels(mask: np.ndarray, thickness: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The pixels of `mask` on near-horizontal paper lines (transpose for vertical ones), and
    the band along those lines; None when there is no line."""
    width = mask.shape[1]
    if width < 40:
        return None
    # Thin: in a vertical run no longer than `thickness`. Digit strokes crossing a line are
    # tall there, so they stay; bridging joins a line's pieces across them and across the
    # other direction's lines.
    tall = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((thickness + 1, 1), np.uint8))
    thin = cv2.subtract(mask, tall)
    bridged = cv2.morphologyEx(thin, cv2.MORPH_CLOSE, np.ones((1, 2 * thickness + 1), np.uint8))
    count, labels, stats = components(bridged)
    if count <= 1:
        return None
    lefts, widths = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_WIDTH]
    # Printed lines run off the page or the picture; a digit's straight stroke (a 1, a 7's bar)
    # stops short of the edges.
    reaches_side = (lefts == 0) | (lefts + widths >= width)
    long_enough = np.where(reaches_side, widths >= 0.15 * width, widths >= 0.75 * width)
    long_enough[0] = False
    if not long_enough.any():
        return None
    rows, columns = np.nonzero(bridged)
    owner = labels[rows, columns]
    chosen = long_enough[owner]
    order = np.argsort(owner[chosen], kind="stable")
    rows, columns = rows[chosen][order], columns[chosen][order]
    bounds = np.searchsorted(owner[chosen][order], np.arange(count + 1))
    band = np.zeros_like(mask)
    line_thicknesses = []
    for label in np.flatnonzero(long_enough):
        start, stop = bounds[label], bounds[label + 1]
        for slope, intercept, line_thickness in _fit_lines(
            columns[start:stop], rows[start:stop], width, thickness
        ):
            line_thicknesses.append(line_thickness)
            first = intercept * 16
            last = (intercept + slope * (width - 1)) * 16
            cv2.line(
                band,
                (0, round(first)),
                ((width - 1) * 16, round(last)),
                255,
                thickness=max(3, round(line_thickness) + 3),
                shift=4,
            )
    if not line_thicknesses:
        return None
    # Remove only what is as thin as the lines themselves: a digit's arc grazing a line is
    # thicker than the line, so it stays.
    tight = min(thickness, int(np.ceil(1.5 * float(np.median(line_thicknesses)))) + 1)
    tall = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((tight + 1, 1), np.uint8))
    return cv2.bitwise_and(cv2.subtract(mask, tall), band), band


def _may_hold_lines(mask: np.ndarray, thickness: int, block: int = 4) -> tuple[bool, bool]:
    """Whether `mask` may hold horizontal / vertical paper lines: False when no component can be
    long enough (see _line_pixels). Most photos are on plain paper, and this costs about a third
    of looking for lines (0.09 instead of 0.24 ms at 256 px).

    Decided on a copy `block` times smaller of the mask dilated by the bridging that
    _line_pixels does: every component it bridges lies inside one component of that copy (a
    block is set when any of its pixels is, so what is connected stays connected), which is at
    least as long and reaches the same sides, so no line is missed.
    """
    height, width = mask.shape
    reach = 2 * thickness + 1
    grown = cv2.dilate(mask, np.ones((reach, reach), np.uint8))
    blocks = cv2.resize(
        grown, (-(-width // block), -(-height // block)), interpolation=cv2.INTER_AREA
    )
    count, _, stats = components(blocks)
    if count <= 1:
        return False, False
    stats = stats[1:]

    def long_enough(
        start: np.ndarray, extent: np.ndarray, blocks_across: int, pixels_across: int
    ) -> bool:
        if pixels_across < 40:  # as in _line_pixels
            return False
        reaches_side = (start == 0) | (start + extent >= blocks_across)
        span = (extent + 1) * block  # a component w pixels long covers over w / block blocks
        return bool(
            np.any(
                np.where(reaches_side, span >= 0.15 * pixels_across, span >= 0.75 * pixels_across)
            )
        )

    return (
        long_enough(
            stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_WIDTH], blocks.shape[1], width
        ),
        long_enough(
            stats[:, cv2.CC_STAT_TOP], stats[:, cv2.CC_STAT_HEIGHT], blocks.shape[0], height
        ),
    )


def _fit_lines(
    columns: np.ndarray, rows: np.ndarray, width: int, thickness: int
) -> list[tuple[float, float, float]]:
    """Straight lines (slope, intercept, thickness) in one bridged component.

    Usually one, but a digit can join two lines. Each is seeded by the most common row at the
    component's two ends (robust to a stroke touching it), then fitted to the pixels near it.
    """
    found: list[tuple[float, float, float]] = []
    columns, rows = columns.astype(np.float64), rows.astype(np.int64)
    for _ in range(3):
        if columns.size < 10:
            break
        left, right = float(columns.min()), float(columns.max())
        span = right - left
        reaches_side = left == 0 or right >= width - 1
        if span < (0.15 if reaches_side else 0.75) * width:
            break
        seeds = []
        for end in (columns <= left + 0.15 * span, columns >= right - 0.15 * span):
            counts = np.bincount(rows[end])
            seeds.append((float(columns[end].mean()), float(np.argmax(counts))))
        (first_x, first_y), (last_x, last_y) = seeds
        slope = (last_y - first_y) / max(last_x - first_x, 1.0)
        intercept = first_y - slope * first_x
        near = np.abs(rows - intercept - slope * columns) <= thickness
        if near.sum() < 10:
            break
        x, y = columns[near], rows[near].astype(np.float64)
        slope, intercept = (float(value) for value in np.polyfit(x, y, 1))
        spread = float(np.std(y - intercept - slope * x))
        covered = float(x.max() - x.min())
        # Straight, thin and long: a line d pixels thick spreads d / sqrt(12) about its centre.
        is_line = (
            abs(slope) <= 0.45
            and spread <= 0.5 * thickness
            and covered >= 0.6 * span
            and x.size <= (thickness + 1) * covered
        )
        if not is_line:
            break
        found.append((slope, intercept, x.size / max(covered, 1.0)))
        on_line = np.abs(rows - intercept - slope * columns) <= max(2.0, 2.0 * spread + 1.0)
        columns, rows = columns[~on_line], rows[~on_line]
    return found


def mnist_crop(
    ink: np.ndarray, group_mask: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """One digit -> 28x28 float32: stroke width normalised, fitted in 20x20, centred by mass."""
    left, top, right, bottom = box
    region = ink[top:bottom, left:right]
    # Keep the soft edge next to the mask, but nothing of a neighbouring digit.
    near = cv2.dilate(group_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    inside = region[group_mask]
    level = 1.0
    if inside.size:  # the 90th percentile of the digit's ink (np.percentile costs 5x more)
        rank = int(0.9 * (inside.size - 1))
        level = float(np.partition(inside, rank)[rank])
    # Relative to the darkest ink nearby, not in the whole digit: a pale bar of a 7 beside a
    # darker stem must not fall below the redraw's cut at half the ink level.
    size = max(3, int(0.15 * max(region.shape)) | 1)
    nearby = cv2.dilate(region * near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    digit = np.clip(region / np.maximum(nearby, max(0.6 * level, 1e-3)), 0.0, 1.0) * near
    return center_by_mass(fit_box(_normalise_stroke(digit)))


def _normalise_stroke(digit: np.ndarray) -> np.ndarray:
    """Redraw the digit at 4x the 20x20 box with MNIST's stroke width (thin pen and marker alike).

    The digit is enlarged smoothly and cut at half its ink level, which gives clean outlines at
    any input size; the outline is then moved in or out by the distance transform so the mean
    stroke width (2 x area / perimeter) becomes MNIST's, allowing for the box growing with it.
    """
    fine = SUPERSAMPLE * MNIST_BOX
    height, width = digit.shape
    scale = fine / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    pad = SUPERSAMPLE * 4
    enlarged = cv2.resize(digit.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    shape = np.pad((enlarged > 0.5).astype(np.uint8), pad)
    area = float(shape.sum())
    contours, _ = cv2.findContours(shape, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = float(sum(cv2.arcLength(contour, True) for contour in contours))
    if area < 4 or perimeter < 1:
        return digit
    stroke = 2.0 * area / perimeter
    wanted = SUPERSAMPLE * MNIST_STROKE
    # Growing the outline by r grows the box by 2r, and the box is fitted back to `fine`.
    radius = (wanted - stroke) / (2.0 * (1.0 - wanted / fine))
    if radius > 0.5:
        outside = cv2.distanceTransform(1 - shape, cv2.DIST_L2, 5)
        shape = (outside <= radius).astype(np.uint8)
    elif radius < -0.5:
        inside = cv2.distanceTransform(shape, cv2.DIST_L2, 5)
        thinned = (inside > -radius).astype(np.uint8)
        # Never erase a part of the digit: keep thinning only if most of the ink survives.
        if thinned.sum() > 0.25 * area:
            shape = thinned
    return shape.astype(np.float32)


def fit_box(digit: np.ndarray, box: int = MNIST_BOX) -> np.ndarray:
    """Trim to the ink and resize so the longer side is `box` pixels, keeping the aspect ratio."""
    rows = np.flatnonzero(digit.max(axis=1) > 0.05)
    columns = np.flatnonzero(digit.max(axis=0) > 0.05)
    if rows.size == 0:
        return np.zeros((box, box), np.float32)
    digit = digit[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    height, width = digit.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(digit.astype(np.float32), size, interpolation=interpolation), 0, 1)


def center_by_mass(digit: np.ndarray, size: int = MNIST_SIZE) -> np.ndarray:
    """Place a fitted digit in a size x size field with its centre of mass in the middle."""
    _height, _width = digit.shape
    total = float(digit.sum())
    if total <= 0:
        return np.zeros((size, size), np.float32)
    rows, columns = np.indices(digit.shape)
    center_row = float((rows * digit).sum() / total)
    center_column = float((columns * digit).sum() / total)
    # Sub-pixel shift so the centre of mass lands on the field's centre, as MNIST was made.
    shift_x = (size - 1) / 2 - center_column
    shift_y = (size - 1) / 2 - center_row
    matrix = np.array([[1, 0, shift_x], [0, 1, shift_y]], np.float32)
    field = cv2.warpAffine(
        digit.astype(np.float32), matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0
    )
    return np.clip(field, 0.0, 1.0).astype(np.float32)
