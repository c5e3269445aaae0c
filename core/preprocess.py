"""Turn a photo (bytes or a PIL image) into MNIST-like 28x28 digit crops: the one preprocessing
function that the bot, the CLI, the sandbox, the benchmarks and the tests all call.

The steps, in order:
1. decode cheaply (JPEG draft mode), refuse non-images and decompression bombs, apply EXIF
   orientation, composite transparency on white, bring any mode (P, CMYK, 16-bit) to grayscale;
2. pick the polarity: ink is the minority tone, so dark ink on light paper gets inverted;
3. flatten the light: subtract a background estimated by a morphological opening much wider than
   a stroke (uneven light, shadows, tinted paper all live in that background);
4. threshold (Otsu) the flattened image, drop ruled/grid lines and specks, and group the remaining
   components into digits, left to right;
5. for each digit, normalise stroke width, fit into 20x20 keeping the aspect ratio and centre by
   centre of mass in 28x28 — the recipe MNIST itself was made with.
"""

from __future__ import annotations

import io
import itertools
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
WORKING_SIZE = 400  # longest side we analyse; enough for a digit at 10 % of the frame height
MIN_WORKING_SIZE = 112  # tiny inputs (a 28x28 MNIST digit) are enlarged to this
MNIST_BOX = 20
MNIST_SIZE = 28
MNIST_STROKE = 2.4  # typical MNIST stroke width in pixels of the 20x20 box


class ImageError(ValueError):
    """The input cannot be used as an image; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class DigitCrop:
    image: np.ndarray  # (28, 28) float32 in [0, 1], light ink on dark
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the decoded image


@dataclass(frozen=True)
class Prepared:
    digits: list[DigitCrop]  # left to right; empty when no digit was found
    width: int
    height: int


def prepare(
    image: bytes | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_digits: int = 12
) -> Prepared:
    """Photo in, MNIST-like digit crops out (empty list: no digit). Raises ImageError."""
    picture = decode(image, max_pixels=max_pixels)
    gray = np.asarray(picture, dtype=np.float32) / 255.0
    working, scale = _working_copy(gray)
    ink = flatten_background(working)
    groups = find_digits(ink, max_digits=max_digits)
    digits = []
    for group_mask, (left, top, right, bottom) in groups:
        crop = mnist_crop(ink, group_mask, (left, top, right, bottom))
        box = tuple(round(value / scale) for value in (left, top, right, bottom))
        digits.append(DigitCrop(image=crop, box=box))  # type: ignore[arg-type]
    return Prepared(digits=digits, width=picture.width, height=picture.height)


def decode(data: bytes | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Any image (bytes or PIL) -> upright 8-bit grayscale PIL image, decoded at a useful size."""
    if isinstance(data, Image.Image):
        picture = data
    else:
        if not data:
            raise ImageError("The file is empty.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                picture = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as error:
            hint = " SVG drawings are not supported." if b"<svg" in data[:1000].lower() else ""
            raise ImageError(
                f"This file is not an image I can read.{hint} Send a photo, PNG or JPEG."
            ) from error
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError("The image is too large (too many pixels).") from error
        except (OSError, ValueError, SyntaxError, EOFError) as error:  # e.g. a bad PPM header
            raise ImageError(f"The image could not be read ({error}).") from error
    width, height = picture.size
    if width * height > max_pixels:
        raise ImageError(
            f"The image is too large: {width}x{height} pixels (limit {max_pixels:,} pixels)."
        )
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.")
    try:
        if picture.format == "JPEG" and picture.mode in ("RGB", "L", "YCbCr"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far cheaper than decoding then resizing.
            target = WORKING_SIZE / max(width, height)
            picture.draft("L", (max(1, int(width * target)), max(1, int(height * target))))
        picture.seek(0)  # first frame of an animation
        picture.load()
        picture = _to_gray(ImageOps.exif_transpose(picture))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise ImageError(f"The image is damaged or truncated ({error}).") from error
    return picture


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


def _working_copy(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """Resize so the longest side is within [MIN_WORKING_SIZE, WORKING_SIZE]; return the scale."""
    longest = max(gray.shape)
    if longest > WORKING_SIZE:
        scale = WORKING_SIZE / longest
        interpolation = cv2.INTER_AREA
    elif longest < MIN_WORKING_SIZE:
        scale = MIN_WORKING_SIZE / longest
        interpolation = cv2.INTER_CUBIC
    else:
        return gray, 1.0
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    resized = cv2.resize(gray, size, interpolation=interpolation)
    return np.clip(resized, 0.0, 1.0), scale


def flatten_background(gray: np.ndarray) -> np.ndarray:
    """Ink as bright values on a flat zero background, whatever the paper, light and polarity."""
    # Ink is the minority tone: whichever side of the median holds more far-off mass is ink.
    median = float(np.median(gray))
    darker = float(np.clip(median - gray - 0.05, 0.0, None).sum())
    lighter = float(np.clip(gray - median - 0.05, 0.0, None).sum())
    if darker > lighter:
        gray = 1.0 - gray  # dark ink on light paper
    # Estimate paper + light at low resolution: a grey opening much wider than a stroke removes the
    # ink; then, so thick ink (a marker's junctions) cannot leak into that estimate, average only
    # the pixels that are clearly paper (normalised convolution).
    small_scale = min(1.0, 64 / max(gray.shape))
    # Explicit size, at least 1 pixel each way: a 1x400 strip would otherwise round to 0 rows.
    small_size = (max(1, round(gray.shape[1] * small_scale)),
                  max(1, round(gray.shape[0] * small_scale)))
    small = cv2.resize(gray, small_size, interpolation=cv2.INTER_AREA)
    kernel_size = max(3, int(max(small.shape) / 5) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_size, kernel_size))
    first = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
    rough_ink = (small - first).astype(np.float32)
    ink_mask = (rough_ink > max(0.05, 0.5 * float(rough_ink.max()))).astype(np.uint8)
    ink_mask = cv2.dilate(ink_mask, cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (kernel_size // 2 | 1, kernel_size // 2 | 1)))
    paper = 1.0 - ink_mask.astype(np.float32)
    sigma = kernel_size / 2
    weight = cv2.GaussianBlur(paper, (0, 0), sigma)
    smooth = cv2.GaussianBlur(small * paper, (0, 0), sigma)
    background = np.where(weight > 0.05, smooth / np.maximum(weight, 1e-6), first)
    background = cv2.resize(background.astype(np.float32), (gray.shape[1], gray.shape[0]),
                            interpolation=cv2.INTER_LINEAR)
    return np.clip(gray - background, 0.0, 1.0)


def find_digits(
    ink: np.ndarray, *, max_digits: int = 12
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Binary mask and box of each digit in the flattened image, left to right."""
    if float(cv2.blur(ink, (3, 3)).max()) < 0.08:
        return []  # nothing stands out from the paper: a blank or uniform picture
    ink8 = np.clip(ink * 255.0, 0, 255).astype(np.uint8)
    threshold, strong = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(threshold, 12.0)
    # Hysteresis: faint pixels count when they touch clearly inked ones, so thin or faded
    # connections inside a digit do not break it into pieces.
    _, weak = cv2.threshold(ink8, threshold * 0.45, 255, cv2.THRESH_BINARY)
    _, weak_labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.unique(weak_labels[(strong > 0) & (weak > 0)])
    mask = np.where(np.isin(weak_labels, keep[keep > 0]), 255, 0).astype(np.uint8)
    mask = _remove_lines(mask)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return []
    height, width = mask.shape
    areas = stats[1:, cv2.CC_STAT_AREA]
    components = []
    for index in range(1, count):
        left, top, box_width, box_height, area = stats[index]
        touches_border = left == 0 or top == 0 or left + box_width >= width or (
            top + box_height >= height
        )
        # Page edges and shadows: huge regions hugging the border.
        if touches_border and (box_width > 0.9 * width or box_height > 0.9 * height):
            continue
        components.append((index, left, top, left + box_width, top + box_height, area))
    if not components:
        return []
    largest = max(component[5] for component in components)
    minimum_area = max(12.0, 0.04 * largest, 0.0002 * height * width)
    components = [component for component in components if component[5] >= minimum_area]
    groups = _group_components(components)
    if not groups:
        return []
    # A digit is at least a third as tall as the tallest one; smaller groups are noise or marks.
    tallest = max(group[3] - group[1] for group in groups)
    groups = [group for group in groups if group[3] - group[1] >= tallest / 3]
    groups.sort(key=lambda group: group[0])
    groups = groups[:max_digits]
    results = []
    for left, top, right, bottom, members in groups:
        group_mask = np.isin(labels[top:bottom, left:right], members)
        results.append((group_mask, (int(left), int(top), int(right), int(bottom))))
    del areas
    return results


def _remove_lines(mask: np.ndarray) -> np.ndarray:
    """Remove long thin horizontal and vertical lines (ruled or squared paper) from a mask."""
    height, width = mask.shape
    lines = np.zeros_like(mask)
    # Paper lines run across most of the frame; digit strokes rarely run straight for half of it.
    for length, shape in ((width // 2, (width // 2, 1)), (height // 2, (1, height // 2))):
        if length < 40:
            continue
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, shape)
        found = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        # Only thin lines: a thick ink stroke opened by a long kernel stays wide.
        thin = cv2.morphologyEx(found, cv2.MORPH_OPEN, cv2.getStructuringElement(
            cv2.MORPH_RECT, (1, 5) if shape[1] == 1 else (5, 1)))
        lines |= found & ~thin
    if not lines.any():
        return mask
    cleaned = mask & ~cv2.dilate(lines, np.ones((3, 3), np.uint8))
    # Close the small gaps that removing a line cut into strokes crossing it.
    return cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))


def _group_components(
    components: list[tuple[int, int, int, int, int, int]],
) -> list[tuple[int, int, int, int, list[int]]]:
    """Merge components that overlap horizontally (a 5's cap, a broken stroke) into digits."""
    groups: list[list] = []
    for index, left, top, right, bottom, _ in sorted(components, key=lambda c: c[1]):
        for group in groups:
            overlap = min(right, group[2]) - max(left, group[0])
            narrower = min(right - left, group[2] - group[0])
            if overlap >= 0.5 * narrower:
                group[0], group[1] = min(group[0], left), min(group[1], top)
                group[2], group[3] = max(group[2], right), max(group[3], bottom)
                group[4].append(index)
                break
        else:
            groups.append([left, top, right, bottom, [index]])
    # A small piece right next to a bigger one is part of it (a detached stroke), not a digit.
    sizes = {c[0]: c[5] for c in components}
    merged = True
    while merged and len(groups) > 1:
        merged = False
        for first, second in itertools.pairwise(groups):
            gap = second[0] - first[2]
            height = max(first[3] - first[1], second[3] - second[1])
            area_first = sum(sizes[i] for i in first[4])
            area_second = sum(sizes[i] for i in second[4])
            if gap < 0.12 * height and min(area_first, area_second) < 0.35 * max(
                area_first, area_second
            ):
                first[0], first[1] = min(first[0], second[0]), min(first[1], second[1])
                first[2], first[3] = max(first[2], second[2]), max(first[3], second[3])
                first[4].extend(second[4])
                groups.remove(second)
                merged = True
                break
    return [(g[0], g[1], g[2], g[3], g[4]) for g in groups]


def mnist_crop(
    ink: np.ndarray, group_mask: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """One digit -> 28x28 float32: stroke width normalised, fitted in 20x20, centred by mass."""
    left, top, right, bottom = box
    region = ink[top:bottom, left:right]
    # Keep the anti-aliased edge next to the mask, but nothing of a neighbouring digit.
    near = cv2.dilate(group_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    inside = region[group_mask]
    level = float(np.percentile(inside, 90)) if inside.size else 1.0
    digit = np.clip(region / max(level, 1e-3), 0.0, 1.0) * near
    digit = _normalise_stroke(digit, group_mask, scale=MNIST_BOX / max(digit.shape))
    return center_by_mass(fit_box(digit))


def _normalise_stroke(digit: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    """Thicken thin pen strokes and thin marker strokes so that, fitted, they look like MNIST."""
    area = float(mask.sum())
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = float(sum(cv2.arcLength(contour, True) for contour in contours))
    if area < 4 or perimeter < 1:
        return digit
    stroke = 2.0 * area / perimeter  # width of a long thin shape
    wanted = MNIST_STROKE / scale
    if stroke < 0.7 * wanted:
        radius = max(1, round((wanted - stroke) / 2))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        pad = radius + 1
        padded = np.pad(digit, pad)
        return cv2.dilate(padded, kernel)
    if stroke > 1.6 * wanted:
        radius = max(1, round((stroke - wanted) / 3))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        thinned = cv2.erode(digit, kernel)
        if thinned.max() > 0.5:
            return thinned
    return digit


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
    matrix = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
    field = cv2.warpAffine(digit.astype(np.float32), matrix, (size, size),
                           flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.clip(field, 0.0, 1.0).astype(np.float32)
