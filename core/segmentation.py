"""Segmentation: which pixels of the flattened ink make each digit, left to right.

Step 5 and 6 of the pipeline in core/preprocess.py (whose docstring lists every step): the ink's
components are filtered (specks, page edges and whatever the border cuts), pieces much shorter
than the tallest join the digit they sit on, a row of digits level with the one holding the most
ink is kept, and groups too wide for one digit are cut where touching digits meet (core/cuts.py).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from core.cuts import Group, components, cut_pair, pair_cuts, segment, stroke_width

# Touching digits (see _split_touching and core.cuts), relative to the group's height.
WIDE_DIGIT = 1.1  # wider than this: maybe two touching digits (a pair cut)
MIN_PIECE_AREA = 12  # pixels: fewer is a dot of dust or JPEG noise
BLANK_INK = 0.06  # no ink this far (6 %) from its paper: a blank picture (pale pencil is ~10 %)
FRAME_BAND = 0.15  # in a crop, cell lines lie within this share of an edge (and their leftovers)
CROP_DIGIT = 0.2  # ... and a digit (or a piece of it) is at least this tall or wide
WIDE_NUMBER = 1.8  # wider than this: several digits (segmented)
# Lines (see _text_lines), in digit heights: a wider gap between two digits starts a new number
# (another column); a line whose digits are smaller than this share of the tallest line's is
# litter, not writing.
LINE_GAP = 1.5
SMALL_LINE = 0.4
SMALL_DIGIT = 0.4  # a piece beside the digits this tall (of the tallest) is a digit of its own
FULL_HEIGHT = 0.65  # a piece (or broken pieces together) this tall is a digit
MARK_REACH = 0.25  # a small piece this close (in digit heights) belongs to its digit
# Alternatives for the classifier (see _alternatives): a looser pair cut, and merging two
# neighbours at most MERGE_GAP digit heights apart, one of them narrow, into one digit-wide one.
LOOSE_CUT_STROKES = 1.5
LOOSE_PART_HEIGHT = 0.45
LOOSE_PART_WIDTH = 0.15
LOOSE_PART_AREA = 0.1
# A group narrower than WIDE_DIGIT but at least NARROW_PAIR times as wide as tall may be an
# interlocked pair (a tail running under its neighbour): its loose cut (loose_cut) is asked
# for only when the classifier is unsure of the one digit, and judged more strictly.
NARROW_PAIR = 0.75
# A group wider than WIDE_DIGIT with no neck is offered up to INTERLOCKED_CUTS cuts in all,
# across at most INTERLOCKED_STROKES strokes.
INTERLOCKED_STROKES = 2.5
INTERLOCKED_CUTS = 3
# Pair cuts whose parts may be as small as the LOOSE_PART_* shares of the group.
_loose_cuts = functools.partial(
    pair_cuts,
    part_height=LOOSE_PART_HEIGHT,
    part_width=LOOSE_PART_WIDTH,
    part_area=LOOSE_PART_AREA,
)
MERGE_GAP = 0.12
MERGE_WIDTH = 1.0
MERGE_NARROW = 0.45
# A shadow or a dark corner at the border (see _pieces): ink along SHADOW_HUG of its box's side
# on the frame, and thicker (area / length) than SHADOW_THICK of the writing's height inside.
SHADOW_HUG = 0.8
SHADOW_THICK = 0.5


# Ink extraction (core.preprocess): flattened ink and the paper-line thickness -> the labels of
# the ink's components, their stats, and the labels that hold clear ink.
InkComponents = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
Box = tuple[int, int, int, int]  # (left, top, right, bottom)


@dataclass(frozen=True)
class Rejected:
    """A piece of ink that is not (part of) a digit, and why: shown by --debug-dir and /debug."""

    box: Box
    reason: str


@dataclass(frozen=True)
class Alternative:
    """Another reading of lines[line][start:stop]: these digits instead."""

    line: int
    start: int
    stop: int
    digits: list[tuple[np.ndarray, Box]]


@dataclass
class Segmentation:
    """The digits of a picture, number by number in reading order, and what was left out."""

    lines: list[list[tuple[np.ndarray, Box]]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    height: float = 0.0  # median digit height in pixels (0: no digit)
    stroke: float = 0.0  # mean stroke width of the digits' ink in pixels
    contrast: float = 0.0  # the digits' ink level (90th percentile of the flattened ink)

    # Other readings where the cut between digits is unclear; the classifier chooses.
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(line) for line in self.lines)


def find_digits(
    ink: np.ndarray,
    ink_components: InkComponents,
    *,
    max_digits: int = 12,
    thickness: int | None = None,
    join: int = 0,
    crop: bool = False,
) -> Segmentation:
    """The digits of the flattened image, line by line, with the pieces left out and why.

    `ink_components` is the ink extraction (core.preprocess passes its own): segmentation works
    on its components and does not import the preprocessing module that calls it. `thickness`:
    thicker than any paper line (default: from the image's size). `join`: pieces of ink this
    many pixels apart count as one (a thin stroke the threshold broke). At most `max_digits`
    digits in all. `crop`: the picture is a cell or a tight crop, where the digit may fill it
    and touch its frame."""
    if float(cv2.blur(ink, (3, 3)).max()) < BLANK_INK:
        return Segmentation()  # nothing stands out from the paper: a blank or uniform picture
    if thickness is None:
        thickness = max(3, round(max(ink.shape) / 50))
    labels, stats, inked = ink_components(ink, thickness)
    if join:
        labels, stats, inked = _join_fragments(labels, inked, join)
    rejected: list[Rejected] = []
    pieces = _pieces(stats, inked, labels, thickness, rejected, crop)
    rows = [_group_pieces(line, rejected) for line in _text_lines(pieces, rejected)]
    result = Segmentation(rejected=rejected)
    kept = np.zeros(len(stats), dtype=bool)
    heights = []
    for row in rows:
        groups = _split_touching(row, labels)
        groups.sort(key=lambda group: group.left)
        room = max_digits - result.count
        for group in groups[room:]:
            rejected.append(Rejected(_box(group), "over the digit limit"))
        groups = groups[:room]
        if not groups:
            continue
        for group in groups:
            kept[group.labels] = True
            heights.append(group.height)
        for start, stop, replacement in _alternatives(groups, labels):
            result.alternatives.append(
                Alternative(
                    len(result.lines), start, stop, [_digit(part, labels) for part in replacement]
                )
            )
        result.lines.append([_digit(group, labels) for group in groups])
    if heights:
        result.height = float(np.median(heights))
        mask = kept[labels]
        result.stroke = stroke_width(mask)
        inside = ink[mask]
        rank = int(0.9 * (inside.size - 1))
        result.contrast = float(np.partition(inside, rank)[rank]) if inside.size else 0.0
    return result


def _digit(group: Group, labels: np.ndarray) -> tuple[np.ndarray, Box]:
    """The group's own pixels (a mask over its box) and its box."""
    if group.mask is not None:
        return group.mask, _box(group)
    window = labels[group.top : group.bottom, group.left : group.right]
    return np.isin(window, group.labels), _box(group)


def _alternatives(groups: list[Group], labels: np.ndarray) -> list[tuple[int, int, list[Group]]]:
    """Where the cut between digits is unclear, the other reading: (start, stop, groups that
    would replace groups[start:stop]). A wide group the strict cuts left whole may be two
    digits (a small digit against a tall one, a neck a little thicker than a stroke, digits
    interlocked: several cuts are offered, the surest reading wins); two
    narrow neighbours almost touching may be one digit (a 4 or a 5 in two strokes). The
    classifier decides (core.preprocess.prepare)."""
    found: list[tuple[int, int, list[Group]]] = []
    for index, group in enumerate(groups):
        if group.mask is None and group.width >= WIDE_DIGIT * group.height:
            window = labels[group.top : group.bottom, group.left : group.right]
            digit = np.isin(window, group.labels)
            loose = _loose_cuts(group, digit, cut_strokes=LOOSE_CUT_STROKES)
            cuts = list(itertools.islice(loose, 1))
            # Too wide for one digit, yet no neck: interlocked digits (a tail running under the
            # neighbour) are cut across it, where a cut crosses two strokes.
            for cut in _loose_cuts(group, digit, cut_strokes=INTERLOCKED_STROKES, run_along=np.inf):
                if len(cuts) == INTERLOCKED_CUTS:
                    break
                if all(_box(cut[0]) != _box(other[0]) for other in cuts):
                    cuts.append(cut)
            found.extend((index, index + 1, cut) for cut in cuts)
    for index, (first, second) in enumerate(itertools.pairwise(groups)):
        if first.mask is not None or second.mask is not None:
            continue
        height = max(first.height, second.height)
        merged = Group(
            first.left, first.top, first.right, first.bottom, first.area, list(first.labels)
        )
        merged.absorb(second)
        if (
            -_overlap(first, second) <= MERGE_GAP * height
            and merged.width <= MERGE_WIDTH * merged.height
            and min(first.width, second.width) <= MERGE_NARROW * height
        ):
            found.append((index, index + 2, [merged]))
    return found


def loose_cut(mask: np.ndarray, box: Box) -> list[list[tuple[np.ndarray, Box]]]:
    """The loose pair cut of one crop from NARROW_PAIR to WIDE_DIGIT times as wide as tall (an
    interlocked pair, or one digit; none when it has no such cut): core.choice asks for it
    where the classifier is unsure of the one digit."""
    left, top, right, bottom = box
    if not NARROW_PAIR * (bottom - top) <= right - left < WIDE_DIGIT * (bottom - top):
        return []
    return _crop_cuts(mask, box, 1, cut_strokes=LOOSE_CUT_STROKES)


def interlocked_cuts(mask: np.ndarray, box: Box) -> list[list[tuple[np.ndarray, Box]]]:
    """Two-part cuts of one digit-sized crop (its mask and box) across at most
    INTERLOCKED_STROKES strokes, up to INTERLOCKED_CUTS of them: core.choice asks for them
    where the classifier read a crop among digits as no digit (two digits interlocked)."""
    left, top, right, bottom = box
    if right - left < NARROW_PAIR * (bottom - top):
        return []
    return _crop_cuts(
        mask,
        box,
        INTERLOCKED_CUTS,
        cut_strokes=INTERLOCKED_STROKES,
        run_along=np.inf,
        within=True,
    )


def _crop_cuts(
    mask: np.ndarray, box: Box, count: int, **options: Any
) -> list[list[tuple[np.ndarray, Box]]]:
    """The first `count` loose pair cuts of one crop, each as its parts' (mask, box)."""
    group = Group(*box, int(mask.sum()), mask=mask)
    cuts = itertools.islice(_loose_cuts(group, mask, **options), count)
    # Cut parts always carry their own mask.
    return [[(part.mask, _box(part)) for part in cut if part.mask is not None] for cut in cuts]


def _join_fragments(
    labels: np.ndarray, inked: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components of the ink where pieces up to 2 x `radius` pixels apart are one: labels of
    the ink's own pixels, their stats (left, top, width, height, area) and the labels."""
    keep = np.zeros(int(labels.max()) + 1, dtype=bool)
    keep[inked] = True
    keep[0] = False
    mask = keep[labels]
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    # Padded so that no grown box is clipped: each is then the ink's box grown by `radius`.
    grown = cv2.dilate(np.pad(mask, radius).astype(np.uint8), kernel)
    count, joined, stats = components(grown)
    joined = np.where(mask, joined[radius:-radius, radius:-radius], 0).astype(np.int32)
    stats = stats.astype(np.int64)
    stats[:, 2:4] -= 2 * radius  # left and top: grown by radius, shifted back by the padding
    stats[:, 4] = np.bincount(joined.ravel(), minlength=count)[:count]
    used = np.flatnonzero(stats[:, 4] > 0)
    return joined, stats, used[used > 0]


def _box(group: Group) -> Box:
    return (group.left, group.top, group.right, group.bottom)


def _pieces(
    stats: np.ndarray,
    inked: np.ndarray,
    labels: np.ndarray,
    thickness: int,
    rejected: list[Rejected],
    crop: bool = False,
) -> list[Group]:
    """Components that may be (part of) a digit: not specks, not page edges or shadows.

    What touches the frame is marked (`border`); text lines keep it when it is level with
    and as tall as writing inside the frame (a first or last digit cut by a tight crop). In a
    `crop` the digit often fills the picture and its cell lines are gone: frame-touching ink
    is the digit, and what stays within the frame band is a cell line's leftover."""
    height, width = labels.shape
    band_x, band_y = FRAME_BAND * width, FRAME_BAND * height
    pieces = []
    for label in inked.tolist():
        left, top, box_width, box_height, area = (int(value) for value in stats[label])
        right, bottom = left + box_width, top + box_height
        piece = Group(left, top, right, bottom, area, [label])
        if crop:
            # A digit is never that small in a picture of itself.
            if (
                right <= band_x
                or left >= width - band_x
                or bottom <= band_y
                or top >= height - band_y
                or (box_height < CROP_DIGIT * height and box_width < CROP_DIGIT * width)
            ):
                rejected.append(Rejected(_box(piece), "cell line leftover at the frame"))
                continue
        elif left == 0 or top == 0 or right >= width or bottom >= height:
            # Page edges and shadows hug the border; so do the ends of lines the line finder
            # left and the thin leftovers of a shadow's edge.
            length = max(box_width, box_height)
            if (
                box_width > 0.9 * width
                or box_height > 0.9 * height
                or (length > 0.1 * max(width, height) and area < 1.5 * thickness * length)
            ):
                rejected.append(Rejected(_box(piece), "page edge or shadow at the border"))
                continue
            piece.border = True
        pieces.append(piece)
    pieces = _without_shadows(pieces, labels, len(stats), rejected)
    if not pieces:
        return []
    largest = max(piece.area for piece in pieces)
    # Specks: tiny against the largest piece, or a few pixels (a dot of dust, JPEG noise).
    minimum_area = max(MIN_PIECE_AREA, 0.02 * largest)
    kept = []
    for piece in pieces:
        if piece.area >= minimum_area:
            kept.append(piece)
        elif piece.area >= 4:
            rejected.append(Rejected(_box(piece), "speck"))
    return kept


def _without_shadows(
    pieces: list[Group], labels: np.ndarray, count: int, rejected: list[Rejected]
) -> list[Group]:
    """`pieces` less the shadows and dark corners that the light's estimate left at the border.

    One lies along the frame (a digit cut by the frame touches it only where its strokes
    cross) and is thicker than the writing inside is tall (no stroke is): without this, the
    largest piece of a page would set the scale of its writing, and every digit would be a speck
    beside it. Writing that runs along the frame (a 1 at a tight crop's edge) is a stroke thin."""
    writing = [p.height for p in pieces if not p.border and p.area >= MIN_PIECE_AREA]
    if len(writing) < 2 or not any(p.border for p in pieces):
        return pieces
    writing_height = float(np.median(writing))
    # Ink on each side of the frame, per label (`count` labels): the top, bottom, left and
    # right rows.
    contact = [
        np.bincount(edge, minlength=count)
        for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1])
    ]
    kept = []
    for piece in pieces:
        if piece.border:
            along = (piece.width, piece.width, piece.height, piece.height)
            hugs = any(
                side[piece.labels].sum() >= SHADOW_HUG * extent
                for side, extent in zip(contact, along, strict=True)
            )
            thick = piece.area / max(piece.width, piece.height)  # its mean width across
            if hugs and thick >= SHADOW_THICK * writing_height:
                rejected.append(Rejected(_box(piece), "page edge or shadow at the border"))
                continue
        kept.append(piece)
    return kept


def _overlap(first: Group, second: Group) -> int:
    """Horizontal overlap of two boxes in pixels (negative: the gap between them)."""
    return min(first.right, second.right) - max(first.left, second.left)


def _group_pieces(pieces: list[Group], rejected: list[Rejected]) -> list[Group]:
    """Digits from the components of one line: full-height ones are digits, smaller ones join
    their digit."""
    if not pieces:
        return []
    largest = max(piece.area for piece in pieces)
    tallest = max(piece.height for piece in pieces)
    # Digits of one number are about equally tall; a piece much shorter than the tallest is
    # part of a digit (a 5's cap, a stroke the pen skipped on) or litter.
    full = [p for p in pieces if p.area >= 0.1 * largest and p.height >= FULL_HEIGHT * tallest]
    partial = [p for p in pieces if p not in full]
    groups: list[Group] = []
    for piece in sorted(full, key=lambda p: -p.area):
        # A digit in two tall pieces stacks them; neighbouring digits barely overlap.
        for group in groups:
            overlap = _overlap(group, piece)
            shared = min(group.bottom, piece.bottom) - max(group.top, piece.top)
            stacked = overlap >= 0.5 * min(group.width, piece.width) and shared <= 0.3 * min(
                group.height, piece.height
            )  # an upper and a lower piece of one digit
            if overlap >= 0.7 * min(group.width, piece.width) or stacked:
                group.absorb(piece)
                break
        else:
            groups.append(
                Group(
                    piece.left, piece.top, piece.right, piece.bottom, piece.area, list(piece.labels)
                )
            )
    baseline = float(np.median([group.bottom for group in groups])) if groups else 0.0
    marks: list[Group] = []  # pieces near no digit
    for piece in sorted(partial, key=lambda p: -p.area):
        beside = all(_overlap(group, piece) < 0.3 * piece.width for group in groups)
        on_baseline = piece.bottom >= baseline - 0.25 * tallest
        # Not a thin straight strip (a paper line's end, the edge of a box).
        shaped = piece.width >= 0.25 * piece.height
        if beside and on_baseline and shaped and piece.height >= SMALL_DIGIT * tallest:
            # Beside the others, on their baseline but shorter: a small digit (a 0, a 1), not
            # a part of one (a 5's cap floats above the baseline).
            groups.append(
                Group(
                    piece.left, piece.top, piece.right, piece.bottom, piece.area, list(piece.labels)
                )
            )
            continue
        best, best_distance = None, float("inf")
        for group in groups:
            distance = _gap(group, piece)
            if distance < best_distance:
                best, best_distance = group, distance
        # A 5's cap or a broken-off stroke sits close to its digit; farther bits are specks.
        if best is not None and best_distance <= MARK_REACH * best.height:
            best.absorb(piece)
        else:
            marks.append(piece)
    groups.extend(_broken_digits(marks, groups, tallest, rejected))
    return groups


def _gap(first: Group, second: Group) -> float:
    """The distance between two boxes (0 when they overlap)."""
    gap_x = max(0, -_overlap(first, second))
    gap_y = max(0, max(first.top, second.top) - min(first.bottom, second.bottom))
    return float(np.hypot(gap_x, gap_y))


def _clusters(pieces: list[Group], reach: float) -> list[tuple[list[Group], Group]]:
    """Pieces chained by gaps of at most `reach` pixels: each cluster's members, and one group
    of them all."""
    if not pieces:
        return []
    close = np.array([[_gap(first, second) <= reach for second in pieces] for first in pieces])
    count, owner = connected_components(csr_matrix(close), directed=False)
    found = []
    for cluster in range(count):
        members = [
            piece for piece, index in zip(pieces, owner.tolist(), strict=True) if index == cluster
        ]
        joined = Group(*_box(members[0]), 0)
        for member in members:
            joined.absorb(member)
        found.append((members, joined))
    return found


def _broken_digits(
    marks: list[Group], groups: list[Group], tallest: int, rejected: list[Rejected]
) -> list[Group]:
    """Digits the pen, the threshold or a removed paper line broke into small pieces, none
    near another digit: marks close to each other that together are as tall as a digit and
    stand beside the others. The other marks are rejected."""
    digits = []
    for members, joined in _clusters(marks, MARK_REACH * tallest):
        beside = all(_overlap(group, joined) < 0.3 * joined.width for group in groups)
        if len(members) > 1 and beside and joined.height >= FULL_HEIGHT * tallest:
            digits.append(joined)
        else:
            rejected.extend(
                Rejected(_box(mark), "small mark beside the digits") for mark in members
            )
    return digits


def _text_lines(pieces: list[Group], rejected: list[Rejected]) -> list[list[Group]]:
    """The pieces of each written number (a text line), in reading order: columns left to
    right, each top to bottom.

    Pieces about as tall as the writing are chained into a line when they are level with each
    other and close (a slanted line still chains, neighbour to neighbour); a wide gap starts
    another line (a second column). Smaller pieces (a 5's cap, a detached stroke) join the
    line they sit in. A line made only of what the frame cuts, or far smaller than the
    writing, is left out."""
    if not pieces:
        return []
    largest = max(piece.area for piece in pieces)
    reference = float(np.median([p.height for p in pieces if p.area >= 0.1 * largest]))
    majors = [piece for piece in pieces if piece.height >= 0.45 * reference]
    minors = [piece for piece in pieces if piece.height < 0.45 * reference]
    boxes = np.array([_box(piece) for piece in majors], dtype=np.float64)
    lefts, tops, rights, bottoms = boxes.T
    heights = bottoms - tops
    shared = np.minimum(bottoms[:, None], bottoms[None, :]) - np.maximum(tops[:, None], tops[None])
    gaps = np.maximum(lefts[:, None], lefts[None]) - np.minimum(rights[:, None], rights[None])
    low = np.minimum(heights[:, None], heights[None])
    high = np.maximum(heights[:, None], heights[None])
    linked = (shared >= 0.5 * low) & (gaps <= LINE_GAP * high) & (low >= 0.5 * high)
    # A digit broken into an upper and a lower piece (a 3, an 8): stacked, close, one digit.
    widths = rights - lefts
    narrow = np.minimum(widths[:, None], widths[None])
    stacked = (-gaps >= 0.5 * narrow) & (-shared <= 0.3 * high)
    linked |= stacked
    count, owner = connected_components(csr_matrix(linked), directed=False)
    lines: list[list[Group]] = [[] for _ in range(count)]
    for piece, index in zip(majors, owner.tolist(), strict=True):
        lines[index].append(piece)
    # What the frame cuts counts when it is level with writing inside the frame, or when all
    # that is inside is far smaller (a digit filling a tight crop, specks beside it).
    inside = [line for line in lines if not all(piece.border for piece in line)]
    inside_height = max((max(piece.height for piece in line) for line in inside), default=0)
    kept_lines = []
    for line in lines:
        if line in inside or SMALL_LINE * max(piece.height for piece in line) > inside_height:
            kept_lines.append(line)
        else:
            rejected.extend(Rejected(_box(piece), "cut by the frame") for piece in line)
    lines = kept_lines
    line_heights = [float(np.median([piece.height for piece in line])) for line in lines]
    tallest = max(line_heights)
    kept: list[list[Group]] = []
    small: list[list[Group]] = []
    for line, height in zip(lines, line_heights, strict=True):
        # Far smaller than the writing: a part of a digit above or below it (a 5's cap), or
        # litter; it joins a line it sits in like the other small pieces.
        (small if height < SMALL_LINE * tallest else kept).append(line)
    bands = [
        (
            min(p.left for p in line),
            min(p.top for p in line),
            max(p.right for p in line),
            max(p.bottom for p in line),
        )
        for line in kept
    ]
    homeless = []
    for piece in minors + [piece for line in small for piece in line]:
        centre_x, centre_y = (piece.left + piece.right) / 2, (piece.top + piece.bottom) / 2
        home = None
        for line, (left, top, right, bottom) in zip(kept, bands, strict=True):
            reach = 0.25 * (bottom - top)
            if (
                left - reach <= centre_x <= right + reach
                and top - reach <= centre_y <= bottom + reach
            ):
                home = line
                break
        if home is None:
            homeless.append(piece)
        else:
            home.append(piece)
    for piece in _broken_line_ends(homeless, kept, bands, reference):
        reason = "small mark away from the writing"
        if piece.height >= 0.45 * reference:
            reason = "far smaller than the writing"
        rejected.append(Rejected(_box(piece), reason))
    return _reading_order(kept, bands)


def _broken_line_ends(
    pieces: list[Group], lines: list[list[Group]], bands: list[Box], reference: float
) -> list[Group]:
    """Pieces outside every line that together make a digit-tall one beside a line's end (its
    first or last digit broken in pieces; _broken_digits then joins them) join that line;
    -> the others."""
    if len(pieces) < 2 or not lines:
        return pieces
    left_out = []
    for members, joined in _clusters(pieces, MARK_REACH * reference):
        home = None
        if len(members) > 1 and joined.height >= FULL_HEIGHT * reference:
            for line, (left, top, right, bottom) in zip(lines, bands, strict=True):
                shared = min(bottom, joined.bottom) - max(top, joined.top)
                gap = max(left - joined.right, joined.left - right)
                if shared >= 0.5 * joined.height and gap <= LINE_GAP * reference:
                    home = line
                    break
        if home is None:
            left_out.extend(members)
        else:
            home.extend(members)
    return left_out


def _reading_order(lines: list[list[Group]], bands: list[Box]) -> list[list[Group]]:
    """Columns left to right (lines whose spans overlap share a column), each top to bottom."""
    if not lines:
        return []
    spans = np.array(bands, dtype=np.float64)
    overlap = np.minimum(spans[:, None, 2], spans[None, :, 2]) - np.maximum(
        spans[:, None, 0], spans[None, :, 0]
    )
    _, column = connected_components(csr_matrix((overlap > 0).astype(np.uint8)), directed=False)
    column_left = {c: spans[column == c, 0].min() for c in set(column.tolist())}
    order = sorted(
        range(len(lines)),
        key=lambda i: (column_left[int(column[i])], (spans[i, 1] + spans[i, 3]) / 2),
    )
    return [lines[i] for i in order]


def _split_touching(groups: list[Group], labels: np.ndarray) -> list[Group]:
    """Cut groups too wide for one digit where touching digits meet."""
    result: list[Group] = []
    for group in groups:
        if group.width < WIDE_DIGIT * group.height:
            result.append(group)
            continue
        window = labels[group.top : group.bottom, group.left : group.right]
        digit = np.isin(window, group.labels)
        if group.width >= WIDE_NUMBER * group.height:
            result.extend(segment(group, digit))
        else:
            result.extend(cut_pair(group, digit))
    return result
