"""Cutting touching digits apart: where a group of ink too wide for one digit is cut.

Used by core/segmentation.py (step 6 of the pipeline in core/preprocess.py): a group somewhat
wider than a digit is cut in two only at a neck thinner than a stroke (cut_pair), a group far
wider than any digit at several places chosen by dynamic programming (segment); no cut goes
through a digit's loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

# Widths are relative to the group's height and cut costs are in strokes (ink pixels crossed /
# mean stroke width). Tuned on generated photos so that no single-digit benchmark photo is cut
# (two seeds, 3,400 photos).
CUT_STROKES = 0.7  # a pair is cut only at a neck thinner than this
PAIR_EXTENT = 4.0  # ... where the ink along the cut is shorter than this (not along a stroke)
PART_HEIGHT = 0.7  # both parts of a pair at least this tall
PART_WIDTH = 0.2  # ... this wide
PART_AREA = 0.15  # ... with this share of the ink
SEGMENT_STROKES = 2.0  # a segmenting cut crosses at most this much ink
TYPICAL_ASPECT = 0.55  # the width of a digit in a written number


@dataclass
class Group:
    """Connected components that make one digit (or, before splitting, touching digits)."""

    left: int
    top: int
    right: int
    bottom: int
    area: int
    labels: list[int] = field(default_factory=list)
    mask: np.ndarray | None = None  # set when a cut made it: the digit's own pixels in the box
    border: bool = False  # it touches the picture's frame

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def absorb(self, other: Group) -> None:
        self.left, self.top = min(self.left, other.left), min(self.top, other.top)
        self.right, self.bottom = max(self.right, other.right), max(self.bottom, other.bottom)
        self.area += other.area
        self.labels.extend(other.labels)


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components of a uint8 mask: count, labels and stats (left, top, width,
    height, area). Grana's algorithm computes the stats several times faster than the default."""
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask, 8, cv2.CV_32S, cv2.CCL_GRANA
    )
    return count, labels, stats


def stroke_width(shape: np.ndarray) -> float:
    """Mean stroke width of a binary shape: 2 x area / perimeter (exact for long thin strokes)."""
    shape = shape.astype(np.uint8)
    contours, _ = cv2.findContours(shape, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = float(sum(cv2.arcLength(contour, True) for contour in contours))
    return 2.0 * float(shape.sum()) / max(perimeter, 1.0)


def _cut_costs(digit: np.ndarray, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic programming over top-to-bottom paths (one column per row, moving at most one
    column per row): the least ink crossed by a path ending in each bottom column, and the step
    each path took at each row (for tracing it back). With `margin`, no path runs within that
    many columns of either side (it cannot go around the ink of a part instead of cutting)."""
    height, width = digit.shape
    cost = digit.astype(np.float32)
    # Paper enclosed by ink (inside a 0, the loop of a 6) is inside one digit: no cut goes
    # through it. Small enclosures are left alone: two touching digits make those between them.
    outside = np.pad(~digit, 1, constant_values=True).astype(np.uint8)
    _, regions, stats = components(outside)
    loops = stats[:, cv2.CC_STAT_AREA] >= (0.25 * height) ** 2
    loops[0] = loops[regions[0, 0]] = False  # the ink itself, the paper around it
    cost[loops[regions[1:-1, 1:-1]]] = float(height)
    if margin:
        cost[:, :margin] = cost[:, width - margin :] = float(height)
    total = cost[0].copy()
    steps = np.zeros((height, width), dtype=np.int8)
    every = np.arange(width)
    for row in range(1, height):
        # A slanted step costs a little, so straight cuts win ties.
        choices = np.stack(
            (
                np.concatenate(([np.inf], total[:-1])) + 0.05,
                total,
                np.concatenate((total[1:], [np.inf])) + 0.05,
            )
        )
        best = np.argmin(choices, axis=0)
        total = choices[best, every] + cost[row]
        steps[row] = best - 1
    return total, steps


def _trace(steps: np.ndarray, end: int) -> np.ndarray:
    """The column of the path ending at `end` in every row."""
    height = steps.shape[0]
    path = np.empty(height, dtype=np.int64)
    path[-1] = end
    for row in range(height - 1, 0, -1):
        path[row - 1] = path[row] + steps[row, path[row]]
    return path


def _parts(group: Group, digit: np.ndarray, paths: list[np.ndarray]) -> list[Group]:
    """The pieces of `digit` between consecutive cut paths, as groups with their own masks."""
    columns = np.arange(digit.shape[1])[None, :]
    bounds = [np.full(digit.shape[0], -1), *paths, np.full(digit.shape[0], digit.shape[1])]
    parts = []
    for before, after in itertools.pairwise(bounds):
        side = digit & (columns > before[:, None]) & (columns <= after[:, None])
        # Crumbs of the neighbour's strokes that the cut sliced off are not part of this digit.
        _, labels, stats = components(side.astype(np.uint8))
        crumbs = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < 0.08 * side.sum())
        side &= ~np.isin(labels, crumbs[crumbs > 0])
        rows = np.flatnonzero(side.any(axis=1))
        used = np.flatnonzero(side.any(axis=0))
        if rows.size == 0:
            continue
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        left, right = int(used[0]), int(used[-1]) + 1
        part = Group(
            group.left + left,
            group.top + top,
            group.left + right,
            group.top + bottom,
            int(side.sum()),
            list(group.labels),
        )
        part.mask = side[top:bottom, left:right]
        parts.append(part)
    return parts


def cut_pair(
    group: Group,
    digit: np.ndarray,
    *,
    cut_strokes: float = CUT_STROKES,
    part_height: float = PART_HEIGHT,
    part_width: float = PART_WIDTH,
    part_area: float = PART_AREA,
) -> list[Group]:
    """A group somewhat wider than a digit: two touching digits, or one wide digit (a 0, a 2
    with a long tail). Cut only at a neck thinner than a stroke that leaves two tall parts
    (the keywords loosen that for the alternatives the classifier judges)."""
    cuts = pair_cuts(
        group,
        digit,
        cut_strokes=cut_strokes,
        part_height=part_height,
        part_width=part_width,
        part_area=part_area,
    )
    return next(cuts, [group])


def pair_cuts(
    group: Group,
    digit: np.ndarray,
    *,
    cut_strokes: float,
    part_height: float,
    part_width: float,
    part_area: float,
    run_along: float = PAIR_EXTENT,
    tries: int = 8,
    within: bool = False,
) -> Iterator[list[Group]]:
    """The two-part cuts of `group`, cheapest first: at the bottom of a valley of the cut cost,
    crossing at most `cut_strokes` of ink, with ink along the cut shorter than `run_along`
    strokes, both parts tall, wide and heavy enough. `within`: the whole path keeps that far
    from the sides, not only its end (it cuts instead of going around a part's ink)."""
    height, width = digit.shape
    margin = max(1, int(0.2 * height))  # both parts at least a narrow digit wide
    total, steps = _cut_costs(digit, margin if within else 0)
    strokes = total / max(stroke_width(digit), 1.0)
    strokes[:margin] = np.inf
    strokes[width - margin :] = np.inf
    area = float(digit.sum())
    stroke = stroke_width(digit)
    # Try the bottom of each valley of the cost, cheapest first: the cheapest cut often just
    # clips a stroke's end near the edge, the meeting point is further in.
    window = max(3, height // 5) | 1
    valleys = strokes <= _sliding_minimum(strokes, window)
    for end in np.argsort(np.where(valleys, strokes, np.inf), kind="stable")[:tries]:
        end = int(end)
        if strokes[end] > cut_strokes:
            return
        path = _trace(steps, end)
        # Where digits meet, the ink along the cut is a short knot; a cut across the bottom
        # of an open 0 or the bar of a 4 runs along a stroke that goes on to both sides.
        if _run_along(digit, path) > run_along * stroke:
            continue
        parts = _parts(group, digit, [path])
        if len(parts) == 2 and all(
            part.height >= part_height * height
            and part.width >= part_width * height
            and part.area >= part_area * area
            for part in parts
        ):
            yield parts


def _sliding_minimum(values: np.ndarray, window: int) -> np.ndarray:
    """Minimum of `values` over a centred window (inf beyond the ends)."""
    half = window // 2
    padded = np.concatenate((np.full(half, np.inf), values, np.full(half, np.inf)))
    return np.lib.stride_tricks.sliding_window_view(padded, window).min(axis=1)


def _run_along(digit: np.ndarray, path: np.ndarray) -> float:
    """Median length of the horizontal ink runs that the path crosses (0 if it crosses none)."""
    lengths = []
    for row in np.flatnonzero(digit[np.arange(len(path)), path]):
        line = digit[row]
        column = int(path[row])
        left = column - int(np.argmin(line[column::-1])) if not line[: column + 1].all() else -1
        right_free = line[column:]
        right = column + int(np.argmin(right_free)) if not right_free.all() else len(line)
        lengths.append(right - left - 1)
    return float(np.median(lengths)) if lengths else 0.0


def segment(group: Group, digit: np.ndarray) -> list[Group]:
    """A group far wider than any digit: several touching digits. Choose the cuts that cross
    little ink and leave digit-wide parts (dynamic programming over the cut columns)."""
    height, width = digit.shape
    total, steps = _cut_costs(digit)
    strokes = total / max(stroke_width(digit), 1.0)
    step = max(1, width // 120)  # candidate cut columns; enough for any digit width
    candidates = np.arange(step, width - step, step)
    positions = np.concatenate(([0], candidates, [width]))
    # Cutting through two strokes (across a 0, the loop of a 6) is not where digits meet.
    cut_cost = np.concatenate(([0.0], strokes[candidates], [0.0]))
    cut_cost[cut_cost > SEGMENT_STROKES] = np.inf
    # Ink rows and mass of each slice between candidate columns, to judge the parts.
    inked = digit.any(axis=1)
    rows = np.arange(height)[:, None]
    top_of = np.where(digit, rows, height).min(axis=0)
    bottom_of = np.where(digit, rows, -1).max(axis=0)
    slices = list(itertools.pairwise(positions))
    slice_top = np.array([top_of[start:stop].min() for start, stop in slices])
    slice_bottom = np.array([bottom_of[start:stop].max() for start, stop in slices])
    slice_mass = np.array([digit[:, start:stop].sum() for start, stop in slices], float)
    ink_height = max(1, int(inked.sum()))
    best = np.full(len(positions), np.inf)
    best[0] = 0.0
    previous = np.zeros(len(positions), dtype=np.int64)
    for index in range(1, len(positions)):
        widths = (positions[index] - positions[:index]) / height
        # Digits of a number are about TYPICAL_ASPECT as wide as tall; far narrower or wider
        # parts cost more; parts that are short or hold little ink (a tail, a cap) are no digit.
        shape = ((widths - TYPICAL_ASPECT) / 0.2) ** 2
        tops = np.minimum.accumulate(slice_top[:index][::-1])[::-1]
        bottoms = np.maximum.accumulate(slice_bottom[:index][::-1])[::-1]
        masses = np.cumsum(slice_mass[:index][::-1])[::-1]
        short = (bottoms - tops + 1) < 0.6 * ink_height
        light = masses < 0.08 * slice_mass.sum()
        scores = best[:index] + shape + cut_cost[index]
        scores[short | light] = np.inf
        previous[index] = int(np.argmin(scores))
        best[index] = scores[previous[index]]
    cuts = []
    index = previous[-1]
    while index > 0:
        cuts.append(int(positions[index]))
        index = previous[index]
    paths = [_trace(steps, end) for end in sorted(cuts)]
    # The paths wander, so check the parts they really cut; a part that is no digit goes back
    # to its neighbour (its cut is dropped).
    area = float(digit.sum())
    while paths:
        parts = _parts(group, digit, paths)
        bad = [
            index
            for index, part in enumerate(parts)
            if part.height < 0.6 * ink_height or part.area < 0.08 * area
        ]
        if not bad and len(parts) == len(paths) + 1:
            return parts
        drop = min(bad[0], len(paths) - 1) if bad else len(paths) - 1
        del paths[drop]
    return [group]
