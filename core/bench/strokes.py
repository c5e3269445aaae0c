"""The strokes of the synthetic phone photos: MNIST digits redrawn as pen or marker ink.

Each 28x28 digit is upscaled smoothly (bicubic, then a soft threshold) into a clean-edged stroke
mask at photo resolution; strokes are redrawn thinner along their centre lines (pen) or thickened
with a distance transform (marker), with slowly varying pen pressure; `layout` writes a number's
digits left to right on the paper, spaced like a writer or touching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from core.bench.looks import Look


def check_digit(digit: np.ndarray) -> np.ndarray:
    """The digit as float32 in [0, 1] (ink = 1), or ValueError."""
    array = np.asarray(digit)
    if array.shape != (28, 28):
        raise ValueError(f"a digit must be a 28x28 MNIST image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"a digit must hold numbers (0-255), got dtype {array.dtype}")
    values = array.astype(np.float32)
    if values.max() <= 1.0:
        raise ValueError("a digit must be uint8-like with ink up to 255; this one has no ink")
    return np.clip(values / 255.0, 0.0, 1.0)


def ink_box(digit: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the digit's ink, bottom/right exclusive."""
    rows = np.flatnonzero(digit.max(axis=1) > 0.15)
    columns = np.flatnonzero(digit.max(axis=0) > 0.15)
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std noise smooth on the scale `sigma` pixels (float32)."""
    height, width = shape
    if sigma <= 4:
        noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    else:
        # Cheap for large scales: smooth a small grid, then upscale it.
        step = sigma / 2
        small_shape = (max(2, math.ceil(height / step) + 2), max(2, math.ceil(width / step) + 2))
        small = ndimage.gaussian_filter(rng.standard_normal(small_shape, dtype=np.float32), 2.0)
        big = Image.fromarray(small, mode="F").resize(
            (round(small_shape[1] * step), round(small_shape[0] * step)),
            Image.Resampling.BICUBIC,
        )
        noise = np.asarray(big)[:height, :width]
    return ((noise - noise.mean()) / (noise.std() + 1e-6)).astype(np.float32)


def _skeleton(mask: np.ndarray) -> np.ndarray:
    """One-pixel centre lines of a binary shape (Zhang-Suen thinning, vectorised)."""
    image = np.pad(mask, 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            centre = image[1:-1, 1:-1]
            # Neighbours clockwise from north: p2 .. p9.
            north, north_east = image[:-2, 1:-1], image[:-2, 2:]
            east, south_east = image[1:-1, 2:], image[2:, 2:]
            south, south_west = image[2:, 1:-1], image[2:, :-2]
            west, north_west = image[1:-1, :-2], image[:-2, :-2]
            ring = [north, north_east, east, south_east, south, south_west, west, north_west, north]
            count = sum(ring[:8], start=np.zeros_like(centre))
            transitions = sum(
                ((ring[k] == 0) & (ring[k + 1] == 1)).astype(np.uint8) for k in range(8)
            )
            if step == 0:
                side = ((north & east & south) == 0) & ((east & south & west) == 0)
            else:
                side = ((north & east & west) == 0) & ((north & south & west) == 0)
            remove = (centre == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                centre[remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def _upscaled_field(crop: np.ndarray, width: int, height: int, scale: float) -> np.ndarray:
    """The 28-pixel crop resized to (width, height), smooth enough to threshold into strokes."""
    field = np.asarray(
        Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32), mode="F").resize(
            (width, height), Image.Resampling.BICUBIC
        )
    )
    # Smooth away the 28-pixel grid so the threshold gives round, handwritten contours.
    return ndimage.gaussian_filter(field, 0.4 * scale)


def _stroke_mask(field: np.ndarray) -> np.ndarray:
    """The strokes of an upscaled field: above 0.4, or, where that cut breaks the digit into
    more pieces, above 0.2 in the pieces that reach 0.4 (hysteresis, as Canny's). A scanned
    stroke one pixel wide peaks below 0.4 once smoothed, and a single cut would leave dots the
    writer never drew; MNIST's wider strokes keep the single cut and their shape."""
    structure = np.ones((3, 3))
    strong = field > 0.4
    _, strong_count = ndimage.label(strong, structure=structure)
    pieces, count = ndimage.label(field > 0.2, structure=structure)
    kept = np.zeros(count + 1, dtype=bool)
    kept[np.unique(pieces[strong])] = True
    kept[0] = False
    return strong if int(kept.sum()) >= strong_count else kept[pieces]


def _centre_lines(skeleton: np.ndarray, shape: tuple[int, int], scale: float) -> np.ndarray:
    """The skeleton's centre lines drawn one pixel wide on a canvas of `shape`, `scale` times
    the skeleton's size: each pixel joined to its 8-neighbours by a straight line through
    positions smoothed over a 5x5 window, so the line is continuous at any enlargement and
    free of the small grid's staircase."""
    canvas = np.zeros(shape, dtype=np.uint8)
    ink = skeleton.astype(np.float32)
    window = np.ones((5, 5), dtype=np.float32)
    weight = np.maximum(ndimage.convolve(ink, window, mode="constant"), 1.0)
    grid = np.indices(skeleton.shape).astype(np.float32)
    grid_rows, grid_columns = grid[0], grid[1]
    rows = np.asarray(ndimage.convolve(grid_rows * ink, window, mode="constant") / weight)
    columns = np.asarray(ndimage.convolve(grid_columns * ink, window, mode="constant") / weight)
    # Ends and junctions stay where they are: the strokes keep their length and their joins.
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8)) - 1
    fixed = skeleton & (neighbours != 2)
    rows[fixed], columns[fixed] = grid_rows[fixed], grid_columns[fixed]
    # A small pixel (r, c) covers [r, r + 1): its centre lands at (r + 0.5) * scale. cv2 takes
    # sub-pixel points as integers in 1/16 pixel (shift 4).
    points = np.stack([columns, rows], axis=-1)
    points = np.round(((points + 0.5) * scale - 0.5) * 16).astype(np.int32)
    padded = np.pad(skeleton, 1)
    for row, column in zip(*np.nonzero(skeleton), strict=True):
        start = (int(points[row, column, 0]), int(points[row, column, 1]))
        cv2.circle(canvas, start, 0, 1, 1, cv2.LINE_8, 4)
        for d_row, d_column in ((0, 1), (1, -1), (1, 0), (1, 1)):
            if padded[row + 1 + d_row, column + 1 + d_column]:
                end = points[row + d_row, column + d_column]
                cv2.line(canvas, start, (int(end[0]), int(end[1])), 1, 1, cv2.LINE_8, 4)
    return canvas.astype(bool)


def stroke_alpha(
    digit: np.ndarray,
    height_px: float,
    stroke_fraction: float | None,
    rng: np.random.Generator,
    *,
    edge_noise: float = 1.0,
) -> np.ndarray:
    """Ink coverage (float32 0-1) of `digit` drawn with its ink box `height_px` tall.

    The 28x28 digit is upscaled (bicubic, then a smoothing pass) and thresholded, so strokes
    come out clean-edged, not as blurry blocks; then thinned along its centre lines (pen) or
    thickened (marker). `edge_noise` 0 gives the perfectly smooth edges of a drawing app.
    """
    top, bottom, left, right = ink_box(digit)
    pad = 2
    crop = np.pad(digit, pad)[top : bottom + 2 * pad, left : right + 2 * pad]
    scale = height_px / (bottom - top)
    out_height = max(4, round(crop.shape[0] * scale))
    out_width = max(4, round(crop.shape[1] * scale))
    field = _upscaled_field(crop, out_width, out_height, scale)
    # A little edge wobble, as a real pen on paper fibres.
    wobble = smooth_noise(rng, field.shape, max(1.5, scale * 0.4)) * (0.02 * edge_noise)
    mask = field + wobble > 0.4
    if not mask.any():
        mask = field >= field.max() * 0.5

    inside = ndimage.distance_transform_edt(mask).astype(np.float32)
    ridge = (inside == ndimage.maximum_filter(inside, size=3)) & (inside >= 1)
    natural_width = 2 * float(np.median(inside[ridge])) if ridge.any() else 2.0
    if stroke_fraction is not None:
        target_width = max(1.8, stroke_fraction * height_px)
        roughness = smooth_noise(rng, mask.shape, 2.0) * (0.25 * edge_noise)
        if target_width < 0.95 * natural_width:
            # A pen line of `target_width` along the centre lines keeps every stroke connected;
            # the eroded shape keeps blobs where the writer pressed or went over a stroke twice.
            small_scale = min(scale, 112 / (bottom - top))
            small_height = max(4, round(crop.shape[0] * small_scale))
            small_width = max(4, round(crop.shape[1] * small_scale))
            small_mask = _stroke_mask(_upscaled_field(crop, small_width, small_height, small_scale))
            # Drawn at twice the output size and averaged down: an anti-aliased line.
            centre = _centre_lines(
                _skeleton(small_mask),
                (2 * out_height, 2 * out_width),
                2 * out_height / small_height,
            )
            far = np.where(centre, 0, 1).astype(np.uint8)
            centre_distance = cv2.distanceTransform(far, cv2.DIST_L2, cv2.DIST_MASK_5) / 2
            fine_roughness = np.repeat(np.repeat(roughness, 2, axis=0), 2, axis=1)
            fine_line = centre_distance + fine_roughness <= target_width / 2
            pen_line = fine_line.reshape(out_height, 2, out_width, 2).mean(axis=(1, 3))
            if target_width >= 0.5 * natural_width:
                blobs = inside + roughness >= natural_width / 2 + target_width / 2
                pen_line = np.maximum(pen_line, blobs)
            mask = pen_line
        elif target_width > 1.05 * natural_width:
            outside = ndimage.distance_transform_edt(~mask).astype(np.float32)
            mask = outside + roughness <= (target_width - natural_width) / 2
    alpha = ndimage.gaussian_filter(mask.astype(np.float32), 0.7)
    return alpha


def pressure(
    rng: np.random.Generator, shape: tuple[int, int], variation: float, height_px: float
) -> np.ndarray:
    """Multiplier (<= 1) for ink density: pen pressure changes slowly along the strokes."""
    if variation <= 0:
        return np.ones(shape, dtype=np.float32)
    noise = smooth_noise(rng, shape, max(2.0, height_px / 10))
    return np.clip(1.0 - variation * (0.5 + 0.5 * np.tanh(noise)), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Placed:
    """A digit's ink coverage placed on the paper: top-left corner in paper pixels."""

    alpha: np.ndarray
    left: int
    top: int


def layout(
    digits: list[np.ndarray],
    look: Look,
    frame: tuple[int, int],
    rng: np.random.Generator,
    touching: bool,
) -> list[Placed]:
    """Write the digits left to right near the frame centre, in paper (= frame) pixels."""
    frame_width, frame_height = frame
    count = len(digits)
    height = look.height_fraction * frame_height
    boxes = [ink_box(digit) for digit in digits]
    aspects = [(right - left) / (bottom - top) for top, bottom, left, right in boxes]
    # Shrink the number until its widest possible layout fits in 88 % of the frame width.
    widest = sum(1.08 * aspect for aspect in aspects) + 0.35 * (count - 1)
    height = min(height, 0.88 * frame_width / widest, 0.8 * frame_height)

    patches: list[np.ndarray] = []
    offsets: list[float] = []
    for digit in digits:
        size_jitter = float(rng.uniform(0.92, 1.08)) if count > 1 else 1.0
        digit_height = height * size_jitter
        alpha = stroke_alpha(
            digit,
            digit_height,
            look.stroke_fraction,
            rng,
            edge_noise=0.0 if look.screenshot else 1.0,
        )
        patches.append(alpha * pressure(rng, alpha.shape, look.ink_variation, digit_height))
        # Patches carry padding; align the ink's bottom, jittered, on a common baseline.
        baseline_jitter = float(rng.uniform(-0.04, 0.04)) * height if count > 1 else 0.0
        ink_rows = np.flatnonzero(alpha.max(axis=1) > 0.5)
        offsets.append(-float(ink_rows[-1]) + baseline_jitter)

    lefts: list[float] = [0.0]
    for index in range(1, count):
        previous, current = patches[index - 1], patches[index]
        if touching:
            # Overlap a fraction of a stroke where the two digits come closest: they touch.
            stroke = max(2.0, (look.stroke_fraction or 0.12) * height)
            gap = -float(rng.uniform(0.1, 0.5)) * stroke
            step = advance(previous, offsets[index - 1], current, offsets[index], gap)
        else:
            # Writers space digits by their boxes, and never let them touch by accident.
            box_gap = float(rng.uniform(0.05, 0.3)) * height
            step = max(
                box_advance(previous, current, box_gap),
                advance(previous, offsets[index - 1], current, offsets[index], 0.06 * height),
            )
        lefts.append(lefts[-1] + step)

    # Bounding box of the whole block relative to the first patch, then centre it with an offset.
    block_left = min(lefts)
    block_right = max(left + patch.shape[1] for left, patch in zip(lefts, patches, strict=True))
    block_top = min(offsets)
    block_bottom = max(
        offset + patch.shape[0] for offset, patch in zip(offsets, patches, strict=True)
    )
    block_width, block_height = block_right - block_left, block_bottom - block_top
    slack_x = max(0.0, (frame_width - block_width) / 2 - 0.04 * frame_width)
    slack_y = max(0.0, (frame_height - block_height) / 2 - 0.04 * frame_height)
    shift_x = float(rng.uniform(-1, 1)) * min(slack_x, 0.1 * frame_width)
    shift_y = float(rng.uniform(-1, 1)) * min(slack_y, 0.1 * frame_height)
    origin_x = frame_width / 2 + shift_x - (block_left + block_right) / 2
    origin_y = frame_height / 2 + shift_y - (block_top + block_bottom) / 2
    return [
        Placed(alpha=patch, left=round(origin_x + left), top=round(origin_y + offset))
        for patch, left, offset in zip(patches, lefts, offsets, strict=True)
    ]


def box_advance(previous: np.ndarray, current: np.ndarray, gap: float) -> float:
    """How far right of `previous`'s left edge `current` starts so the ink boxes are `gap` apart."""
    previous_right = float(np.flatnonzero((previous > 0.5).any(axis=0))[-1])
    current_left = float(np.flatnonzero((current > 0.5).any(axis=0))[0])
    return previous_right - current_left + 1 + gap


def advance(
    previous: np.ndarray, previous_top: float, current: np.ndarray, current_top: float, gap: float
) -> float:
    """How far right of `previous`'s left edge `current` starts so the inks are `gap` apart.

    Works row by row (like kerning), so a negative gap makes the inks overlap, i.e. touch.
    """
    top = math.floor(min(previous_top, current_top))
    bottom = math.ceil(max(previous_top + previous.shape[0], current_top + current.shape[0]))
    right_edge = np.full(bottom - top, -np.inf)
    left_edge = np.full(bottom - top, np.inf)
    for patch, patch_top, edges, pick_right in (
        (previous, previous_top, right_edge, True),
        (current, current_top, left_edge, False),
    ):
        ink = patch > 0.5
        rows = np.flatnonzero(ink.any(axis=1))
        start = round(patch_top) - top
        for row in rows:
            columns = np.flatnonzero(ink[row])
            edges[start + row] = columns[-1] if pick_right else columns[0]
    both = np.isfinite(right_edge) & np.isfinite(left_edge)
    if not both.any():
        # No shared rows (extreme baseline jitter): fall back to the ink boxes.
        return box_advance(previous, current, gap)
    return float(np.max(right_edge[both] - left_edge[both])) + 1 + gap
