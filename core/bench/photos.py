"""Synthetic phone photos of handwritten MNIST test digits, for benchmarking the photo pipeline.

MNIST digits are clean 28x28 crops; users send phone photos of digits written on paper. This module
closes that gap for evaluation: it turns MNIST **test** digits (never training digits) into JPEG
photos with paper texture, ruling, uneven light, shadows, perspective, blur, sensor noise and JPEG
artefacts, one named condition at a time, so a benchmark can report accuracy per condition.

How a photo is made (all randomness from one ``numpy.random.Generator``: a seed fixes the bytes):
0. The condition's look is drawn from the one condition table (core.bench.looks).
1. Each digit becomes pen or marker strokes at photo resolution (core.bench.strokes).
2. The strokes are laid out on a sheet of paper (texture, optional grid or ruled lines) as
   subtractive ink, in "paper coordinates".
3. A camera homography (roll, tilt, keystone) maps the sheet into the frame; then light (gradient,
   vignetting, colour cast, shadow), optical blur, sensor noise, phone sharpening and JPEG encoding.
   The `inverted` condition is a screenshot instead: flat dark background, light strokes, no camera.

Pure numpy + Pillow + scipy: no TensorFlow here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, signal, special

from core.bench.looks import CONDITIONS, Look, choose_look, pick
from core.bench.strokes import Placed, check_digit, layout, smooth_noise

FRAME_LANDSCAPE: tuple[int, int] = (1024, 768)
FRAME_PORTRAIT: tuple[int, int] = (768, 1024)

# The MNIST test split has 10,000 digits; the training split 60,000.
MNIST_TEST_SIZE = 10_000
# tests/fixtures/photos/ was written by write_fixture_sample with these defaults.
FIXTURE_SEED = 2026
FIXTURE_LONGEST_SIDE = 800


# ---------------------------------------------------------------------------------------------
# Camera geometry


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (n, 2) points through a 3x3 homography."""
    homogeneous = np.column_stack([points, np.ones(len(points))]) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], dtype=float)


def _scale(factor: float) -> np.ndarray:
    return np.diag([factor, factor, 1.0])


def _camera(look: Look, frame: tuple[int, int], block: np.ndarray) -> np.ndarray:
    """Homography paper -> frame for a camera rolled and tilted by the look's angles.

    `block` is the (4, 2) corners of the written number on the paper; the camera keeps its centre
    where it was and its size, then the whole block is shrunk/shifted back into the frame if needed.
    """
    width, height = frame
    focal = 0.75 * max(width, height)  # a phone main camera: about 68 degrees across
    intrinsics = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    roll, pitch, yaw = (math.radians(angle) for angle in (look.roll, look.pitch, look.yaw))
    rotate_z = np.array(
        [[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]]
    )
    rotate_x = np.array(
        [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
    )
    rotate_y = np.array(
        [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
    )
    camera = intrinsics @ rotate_z @ rotate_x @ rotate_y @ np.linalg.inv(intrinsics)

    centre = block.mean(axis=0)
    mapped_centre = _apply(camera, centre[None])[0]
    step = 1.0
    around = centre + np.array([[step, 0], [-step, 0], [0, step], [0, -step]])
    moved = _apply(camera, around)
    jacobian = np.column_stack([(moved[0] - moved[1]) / 2, (moved[2] - moved[3]) / 2]) / step
    local_scale = math.sqrt(abs(np.linalg.det(jacobian)))
    camera = _translate(*centre) @ _scale(1 / local_scale) @ _translate(*-mapped_centre) @ camera

    corners = _apply(camera, block)
    low, high = corners.min(axis=0), corners.max(axis=0)
    margin = 0.03 * min(width, height)
    fit = min(
        1.0, (width - 2 * margin) / (high[0] - low[0]), (height - 2 * margin) / (high[1] - low[1])
    )
    middle = (low + high) / 2
    camera = _translate(*middle) @ _scale(fit) @ _translate(*-middle) @ camera
    corners = _apply(camera, block)
    low, high = corners.min(axis=0), corners.max(axis=0)
    shift_x = max(0.0, margin - low[0]) - max(0.0, high[0] - (width - margin))
    shift_y = max(0.0, margin - low[1]) - max(0.0, high[1] - (height - margin))
    return _translate(shift_x, shift_y) @ camera


# ---------------------------------------------------------------------------------------------
# Paper


def _line_coverage(
    positions: np.ndarray, spacing: float, phase: float, half_width: float
) -> np.ndarray:
    """Fraction of each 1-pixel cell covered by lines `half_width` wide every `spacing` pixels."""
    distance = np.abs(np.mod(positions - phase + spacing / 2, spacing) - spacing / 2)
    coverage = np.minimum(distance + 0.5, half_width) - np.maximum(distance - 0.5, -half_width)
    return np.clip(coverage, 0.0, 1.0).astype(np.float32)


def _ruling(
    look: Look,
    rng: np.random.Generator,
    xs: np.ndarray,
    ys: np.ndarray,
    placed: list[Placed],
    digit_height: float,
) -> np.ndarray | None:
    """Per-channel transmittance (h, w, 3) of printed grid or ruled lines, or None for plain paper.

    Physical sizes set the pixel scale: a handwritten digit is about 6-12 mm tall, so the 5 mm
    squares or 7-9 mm rules come out at a believable size next to it.
    """
    if look.ruling == "none":
        return None
    ink_bottom = max(
        item.top + float(np.flatnonzero(item.alpha.max(axis=1) > 0.5)[-1]) for item in placed
    )
    ink_left = min(item.left for item in placed)
    if look.ruling == "grid":
        pixels_per_mm = digit_height / float(rng.uniform(6.5, 11.0))
        spacing = 5.0 * pixels_per_mm
        half_width = max(0.45, float(rng.uniform(0.06, 0.12)) * pixels_per_mm)
        color = np.array(pick(rng, ((0.55, 0.75, 0.95), (0.65, 0.78, 0.88), (0.7, 0.7, 0.72))))
        strength = float(rng.uniform(0.45, 0.85))
        columns = _line_coverage(xs, spacing, float(rng.uniform(0, spacing)), half_width)
        rows = _line_coverage(ys, spacing, float(rng.uniform(0, spacing)), half_width)
        coverage = np.maximum(rows[:, None], columns[None, :])
        return 1.0 - strength * coverage[..., None] * (1.0 - color).astype(np.float32)

    # Ruled paper: the digits mostly sit between two rules, some writers span two lines.
    line_span = (
        float(rng.uniform(0.65, 0.95)) if rng.random() < 0.8 else float(rng.uniform(1.1, 1.5))
    )
    spacing = digit_height / line_span
    pixels_per_mm = spacing / float(rng.uniform(7.0, 9.0))
    half_width = max(0.45, float(rng.uniform(0.07, 0.13)) * pixels_per_mm)
    baseline = ink_bottom + float(rng.uniform(-0.08, 0.12)) * spacing
    color = np.array(pick(rng, ((0.55, 0.7, 0.92), (0.6, 0.72, 0.85), (0.68, 0.68, 0.72))))
    strength = float(rng.uniform(0.45, 0.8))
    rows = _line_coverage(ys, spacing, baseline, half_width)
    transmittance = 1.0 - strength * rows[:, None, None] * (1.0 - color).astype(np.float32)
    transmittance = np.broadcast_to(transmittance, (len(ys), len(xs), 3)).copy()
    # The red margin: 10-40 mm left of the writing; only drawn when that is on the paper.
    margin_x = ink_left - float(rng.uniform(10, 40)) * pixels_per_mm
    margin_color = np.array((0.95, 0.5, 0.55), dtype=np.float32)
    margin = _line_coverage(xs, 1e9, margin_x, half_width * 1.3)
    transmittance *= 1.0 - 0.8 * margin[None, :, None] * (1.0 - margin_color)
    return transmittance


def _paper(look: Look, rng: np.random.Generator, shape: tuple[int, int], unit: float) -> np.ndarray:
    """Paper reflectance (h, w, 3): base colour with slow mottling and fine fibres."""
    height, width = shape
    mottling = smooth_noise(rng, shape, max(8.0, unit * 0.6)) * 0.012
    # Fibres: pixel noise on a half-resolution grid, upscaled, is about 1.5 pixels wide.
    small = rng.standard_normal(((height + 1) // 2, (width + 1) // 2), dtype=np.float32)
    fibres = np.asarray(
        Image.fromarray(small, mode="F").resize(
            (small.shape[1] * 2, small.shape[0] * 2), Image.Resampling.BICUBIC
        )
    )[:height, :width]
    texture = 1.0 + look.texture * (mottling + fibres * 0.012)
    return texture[..., None] * np.array(look.paper_rgb, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Light and camera noise (frame coordinates)


# Light varies slowly: compute it on a grid this many times coarser than the frame.
_LIGHT_STEP = 4


def _illumination(
    look: Look, rng: np.random.Generator, frame: tuple[int, int], block: np.ndarray
) -> np.ndarray:
    """Light on each frame pixel per channel (h, w, 3): falloff, exposure, colour, shadow."""
    width, height = frame
    coarse = (math.ceil(width / _LIGHT_STEP) + 1, math.ceil(height / _LIGHT_STEP) + 1)
    light = _lighting(look, rng, coarse) * look.exposure
    channels = [light * factor for factor in look.cast]
    if look.shadow:
        shade = _shadow(rng, coarse, block / _LIGHT_STEP)
        # Inside the shadow only the room/sky lights the paper, so it is darker and a bit bluer.
        depth = float(rng.uniform(0.35, 0.6))
        channels = [
            channel * (1.0 + shade * ((1.0 - depth) * tint - 1.0))
            for channel, tint in zip(channels, (0.95, 0.98, 1.04), strict=True)
        ]
    upscaled = [
        np.asarray(
            Image.fromarray(channel.astype(np.float32), mode="F").resize(
                (coarse[0] * _LIGHT_STEP, coarse[1] * _LIGHT_STEP), Image.Resampling.BILINEAR
            )
        )[:height, :width]
        for channel in channels
    ]
    return np.stack(upscaled, axis=2)


def _lighting(look: Look, rng: np.random.Generator, frame: tuple[int, int]) -> np.ndarray:
    """Light falling on each pixel (h, w) of a grid the frame's shape, about 1 at its brightest."""
    width, height = frame
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs = (xs - width / 2) / (max(width, height) / 2)
    ys = (ys - height / 2) / (max(width, height) / 2)
    angle = float(rng.uniform(0, 2 * math.pi))
    along = xs * math.cos(angle) + ys * math.sin(angle)
    along = (along - along.min()) / (along.max() - along.min() + 1e-6)
    light = 1.0 - look.gradient * along
    light *= 1.0 - look.vignette * (xs**2 + ys**2) / 2.0
    if look.gradient > 0.3:
        # A desk lamp: a soft bright spot somewhere on the brighter side.
        spot_x, spot_y = -math.cos(angle) * 0.7, -math.sin(angle) * 0.7
        radius = float(rng.uniform(0.4, 0.8))
        light *= 1.0 + float(rng.uniform(0.05, 0.2)) * np.exp(
            -((xs - spot_x) ** 2 + (ys - spot_y) ** 2) / (2 * radius**2)
        )
    return light / light.max()


def _shadow(rng: np.random.Generator, frame: tuple[int, int], block: np.ndarray) -> np.ndarray:
    """Shadow darkness (h, w) in [0, 1]: a band cast by a phone or hand, soft but distinct edges.

    One edge passes near the written number, so the shadow often covers part of it.
    """
    width, height = frame
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = float(rng.uniform(0, 2 * math.pi))
    normal = np.array([math.cos(angle), math.sin(angle)])
    along = xs * normal[0] + ys * normal[1]
    # Hands are not straight edges: bend the band slightly.
    diagonal = math.hypot(width, height)
    along += smooth_noise(rng, (height, width), diagonal / 6) * 0.015 * diagonal
    centre = block.mean(axis=0) @ normal
    extent = float(np.ptp(block @ normal))
    edge = centre + float(rng.uniform(-0.6, 0.6)) * extent
    band_width = float(rng.uniform(0.25, 0.6)) * diagonal
    softness = float(rng.uniform(0.005, 0.02)) * diagonal
    side = float(rng.choice([-1, 1]))
    inside_first = special.ndtr(side * (along - edge) / softness)
    inside_second = special.ndtr(side * (edge + side * band_width - along) / softness)
    return (inside_first * inside_second).astype(np.float32)


def _blur_kernel(look: Look, rng: np.random.Generator) -> np.ndarray | None:
    """A normalised defocus disc or motion streak, or None."""
    if look.blur_kind == "none":
        return None
    if look.blur_kind == "defocus":
        radius = look.blur_size
        reach = math.ceil(radius) + 1
        ys, xs = np.mgrid[-reach : reach + 1, -reach : reach + 1]
        kernel = np.clip(radius + 0.5 - np.hypot(xs, ys), 0, 1)
    else:
        length = look.blur_size
        reach = math.ceil(length / 2) + 1
        kernel = np.zeros((2 * reach + 1, 2 * reach + 1))
        angle = float(rng.uniform(0, math.pi))
        # Shaky hands move along a slightly curved path.
        for t in np.linspace(-0.5, 0.5, 4 * round(length) + 1):
            bend = 0.15 * length * (t**2 - 0.083)
            x = reach + t * length * math.cos(angle) - bend * math.sin(angle)
            y = reach + t * length * math.sin(angle) + bend * math.cos(angle)
            kernel[round(y), round(x)] += 1.0
        kernel = ndimage.gaussian_filter(kernel, 0.5)
    return (kernel / kernel.sum()).astype(np.float32)


def _sensor_noise(look: Look, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Add luma and chroma noise, brighter pixels noisier, slightly correlated by demosaicing."""
    height, width, _ = image.shape
    luma = ndimage.gaussian_filter(
        rng.standard_normal((height, width), dtype=np.float32), 0.6, truncate=2.5
    )
    luma *= 1.0 / (luma.std() + 1e-6)
    # Colour noise is blotchier than luma noise: draw it on a 2x2 grid.
    chroma = rng.standard_normal(((height + 1) // 2, (width + 1) // 2, 3), dtype=np.float32)
    chroma = np.repeat(np.repeat(chroma, 2, axis=0), 2, axis=1)[:height, :width]
    brightness = np.clip(_brightness(image), 0, 1)[..., None]
    level = np.sqrt(0.25 + 0.75 * brightness) * np.float32(look.noise_sigma / 255.0)
    chroma *= 0.5
    chroma += luma[..., None]
    chroma *= level
    return image + chroma


def _brightness(image: np.ndarray) -> np.ndarray:
    """Channel mean of an (h, w, 3) float32 image (a matrix product: far faster than .mean)."""
    return image @ np.full(3, 1 / 3, dtype=np.float32)


def _sharpen(image: np.ndarray, amount: float) -> np.ndarray:
    """Phone-style unsharp masking on brightness only (halos on edges, sharper noise)."""
    brightness = _brightness(image)
    detail = brightness - ndimage.gaussian_filter(brightness, 1.5, truncate=2.5)
    detail *= np.float32(amount)
    return image + detail[..., None]


# ---------------------------------------------------------------------------------------------
# Whole photos


def _encode(image: np.ndarray, look: Look) -> bytes:
    """Float RGB (h, w, 3) in [0, 1] -> JPEG bytes at the look's quality (4:2:0 like phones)."""
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels, mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=look.jpeg_quality, subsampling=2)
    return buffer.getvalue()


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) as ints, or ValueError."""
    try:
        width, height = (int(value) for value in size)
    except (TypeError, ValueError) as error:
        raise ValueError(f"size must be (width, height), got {size!r}") from error
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise ValueError(f"size must be between 64 and 4096 pixels each way, got {size!r}")
    return width, height


def _render(
    digits: list[np.ndarray],
    condition: str,
    rng: np.random.Generator,
    size: tuple[int, int],
    touching: bool,
) -> bytes:
    """Draw `digits` as one number in a photo under `condition`; JPEG bytes."""
    frame = _check_size(size)
    if not digits:
        raise ValueError("a number needs at least one digit")
    inks = [check_digit(digit) for digit in digits]
    look = choose_look(condition, rng)
    placed = layout(inks, look, frame, rng, touching)
    return render_placed(placed, look, rng, frame)


def render_placed(
    placed: list[Placed], look: Look, rng: np.random.Generator, frame: tuple[int, int]
) -> bytes:
    """Photograph strokes already laid out on the paper (in paper = frame pixels); JPEG bytes.
    Shared by one-number photos and the pages of core.bench.pages."""
    width, height = frame
    digit_height = look.height_fraction * height

    if look.screenshot:
        alpha = np.zeros((height, width), dtype=np.float32)
        _stamp(alpha, placed, 0, 0)
        background = np.array(look.paper_rgb, dtype=np.float32)
        ink = np.array(look.ink_rgb, dtype=np.float32)
        image = background + alpha[..., None] * (ink - background)
        return _encode(image, look)

    block = _block_corners(placed)
    camera = _camera(look, frame, block)
    # The paper area the camera sees: the frame's corners mapped back onto the paper.
    to_paper = np.linalg.inv(camera)
    frame_corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
    seen = _apply(to_paper, frame_corners)
    paper_left, paper_top = np.floor(seen.min(axis=0)) - 4
    paper_right, paper_bottom = np.ceil(seen.max(axis=0)) + 4
    paper_shape = (int(paper_bottom - paper_top), int(paper_right - paper_left))
    if paper_shape[0] > 4 * height or paper_shape[1] > 4 * width:
        raise ValueError("camera tilt too strong: the paper would be far larger than the frame")

    reflectance = _paper(look, rng, paper_shape, digit_height)
    xs = np.arange(paper_shape[1], dtype=np.float32) + paper_left
    ys = np.arange(paper_shape[0], dtype=np.float32) + paper_top
    lines = _ruling(look, rng, xs, ys, placed, digit_height)
    if lines is not None:
        reflectance *= lines
    alpha = np.zeros(paper_shape, dtype=np.float32)
    _stamp(alpha, placed, int(paper_left), int(paper_top))
    # Ink is a subtractive layer: it filters whatever paper and print lie underneath.
    ink = np.array(look.ink_rgb, dtype=np.float32)
    reflectance *= 1.0 - (look.ink_opacity * alpha)[..., None] * (1.0 - ink)

    # PIL wants the inverse map: frame pixel -> paper-array pixel.
    inverse = _translate(-paper_left, -paper_top) @ to_paper
    inverse /= inverse[2, 2]
    coefficients = tuple(float(value) for value in inverse.flatten()[:8])
    # 8 bits are plenty for reflectance (sensor noise dithers later) and warp 3x faster.
    pixels = np.clip(reflectance * 255.0 + 0.5, 0, 255).astype(np.uint8)
    warped = Image.fromarray(pixels, mode="RGB").transform(
        frame, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR
    )
    image = np.asarray(warped, dtype=np.float32) * np.float32(1 / 255)

    image *= _illumination(look, rng, frame, _apply(camera, block))
    kernel = _blur_kernel(look, rng)
    if kernel is not None:
        image = signal.fftconvolve(image, kernel[..., None], mode="same", axes=(0, 1))
    image = _sensor_noise(look, rng, image)
    image = _sharpen(image, look.sharpen_percent / 100)
    return _encode(image, look)


def _block_corners(placed: list[Placed]) -> np.ndarray:
    """(4, 2) corners of the box around all placed digits, in paper pixels."""
    left = min(item.left for item in placed)
    top = min(item.top for item in placed)
    right = max(item.left + item.alpha.shape[1] for item in placed)
    bottom = max(item.top + item.alpha.shape[0] for item in placed)
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=float)


def _stamp(target: np.ndarray, placed: list[Placed], origin_x: int, origin_y: int) -> None:
    """Draw each placed coverage into `target` (max, so touching digits merge)."""
    for item in placed:
        top, left = item.top - origin_y, item.left - origin_x
        source_top, source_left = max(0, -top), max(0, -left)
        bottom = min(target.shape[0], top + item.alpha.shape[0])
        right = min(target.shape[1], left + item.alpha.shape[1])
        if bottom <= max(top, 0) or right <= max(left, 0):
            continue
        region = target[max(top, 0) : bottom, max(left, 0) : right]
        source = item.alpha[
            source_top : source_top + region.shape[0], source_left : source_left + region.shape[1]
        ]
        np.maximum(region, source, out=region)


def flat_photo(
    digit: np.ndarray,
    *,
    size: tuple[int, int],
    scale: int,
    offset: tuple[int, int],
    dark_on_light: bool = True,
    paper: int | None = None,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    image_format: str = "PNG",
    quality: int | None = None,
) -> bytes:
    """A flat picture of one MNIST digit: no camera, no light, the digit enlarged to `scale` at
    `offset` on an even page (`paper`: white, or black for a light digit), with Gaussian `noise`
    (8-bit levels, drawn from `rng`). What the tests send and the speed benchmarks time; the
    phone photos of the conditions are `render_photo`'s."""
    if noise and rng is None:
        raise ValueError("noise needs an rng")
    ink = Image.fromarray(255 - digit if dark_on_light else digit)
    ink = ink.resize((scale, scale), Image.Resampling.BICUBIC)
    page = np.full(
        (size[1], size[0]), paper if paper is not None else (255 * dark_on_light), np.float32
    )
    x, y = offset
    region = page[y : y + scale, x : x + scale]
    ink_pixels = np.asarray(ink, np.float32)[: region.shape[0], : region.shape[1]]
    # The darker (or, for a light digit, the lighter) of page and ink, as ink on paper.
    page[y : y + scale, x : x + scale] = (np.minimum if dark_on_light else np.maximum)(
        region, ink_pixels
    )
    if noise and rng is not None:
        page += rng.normal(0, noise, page.shape)
    buffer = io.BytesIO()
    picture = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).convert("RGB")
    options = {} if quality is None else {"quality": quality}
    picture.save(buffer, image_format, **options)
    return buffer.getvalue()


def render_photo(
    digit: np.ndarray,
    condition: str,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = FRAME_LANDSCAPE,
) -> bytes:
    """A JPEG phone photo (`size` = (width, height)) of one MNIST digit under `condition`.

    `digit` is a 28x28 MNIST image (uint8, ink = 255). Raises ValueError for an unknown condition,
    a digit of another shape or without ink. The same generator state gives the same bytes.
    """
    return _render([digit], condition, rng, size, touching=False)


def render_number(
    digits: list[np.ndarray],
    condition: str,
    rng: np.random.Generator,
    *,
    touching: bool = False,
    size: tuple[int, int] = FRAME_LANDSCAPE,
) -> bytes:
    """A JPEG phone photo of a number written left to right, one MNIST digit per place.

    Natural spacing with slight baseline and size jitter; `touching=True` makes neighbouring
    digits overlap slightly so their inks touch. Same errors as `render_photo`.
    """
    return _render(list(digits), condition, rng, size, touching=touching)


# ---------------------------------------------------------------------------------------------
# Benchmarks


def check_test_split(x_test: np.ndarray, y_test: np.ndarray) -> None:
    """ValueError unless the arrays look like (a part of) the MNIST test split."""
    if x_test.ndim != 3 or x_test.shape[1:] != (28, 28):
        raise ValueError(f"x_test must have shape (n, 28, 28), got {x_test.shape}")
    if y_test.shape != (x_test.shape[0],):
        raise ValueError(f"y_test must have shape ({x_test.shape[0]},), got {y_test.shape}")
    if not 0 < len(x_test) <= MNIST_TEST_SIZE:
        raise ValueError(
            f"x_test holds {len(x_test)} digits; pass the MNIST test split "
            f"({MNIST_TEST_SIZE} digits) — benchmark photos must never show training digits"
        )


def plan_photos(test_count: int, per_condition: int, seed: int = 0) -> list[tuple[str, int]]:
    """(condition, test index) for every benchmark photo, condition by condition.

    Each condition draws its own permutation of the test split, so a larger `per_condition`
    extends the same list (the first photos never change).
    """
    if per_condition < 0:
        raise ValueError(f"per_condition must be >= 0, got {per_condition}")
    if per_condition > test_count:
        raise ValueError(f"per_condition {per_condition} exceeds the {test_count} test digits")
    plan: list[tuple[str, int]] = []
    for condition_index, condition in enumerate(CONDITIONS):
        order = np.random.default_rng([seed, condition_index, 0]).permutation(test_count)
        plan.extend((condition, int(index)) for index in order[:per_condition])
    return plan


@dataclass(frozen=True)
class NumberPlan:
    """One benchmark number: which test digits, under which condition, touching or not."""

    condition: str
    indices: tuple[int, ...]
    touching: bool


def plan_numbers(test_count: int, count: int, seed: int = 0) -> list[NumberPlan]:
    """The multi-digit benchmark: 2-5 random test digits each, random condition, 25 % touching."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    plans = []
    for number_index in range(count):
        rng = np.random.default_rng([seed, len(CONDITIONS), number_index, 0])
        length = int(rng.choice([2, 3, 4, 5], p=[0.3, 0.25, 0.3, 0.15]))
        plans.append(
            NumberPlan(
                condition=pick(rng, CONDITIONS),
                indices=tuple(int(index) for index in rng.integers(0, test_count, size=length)),
                touching=bool(rng.random() < 0.25),
            )
        )
    return plans


def _photo_rng(seed: int, key: int, number: int) -> np.random.Generator:
    """An independent generator per photo, so each photo is reproducible on its own."""
    return np.random.default_rng([seed, key, number, 1])


def _check_longest_side(longest_side: int) -> None:
    """ValueError unless `longest_side` is a sensible photo size."""
    if not 64 <= longest_side <= 4096:
        raise ValueError(f"longest_side must be 64-4096 pixels, got {longest_side}")


def _frame(rng: np.random.Generator, landscape_share: float, longest_side: int) -> tuple[int, int]:
    """(width, height) of a 4:3 photo, landscape with probability `landscape_share`."""
    shortest_side = round(longest_side * 3 / 4)
    if rng.random() < landscape_share:
        return longest_side, shortest_side
    return shortest_side, longest_side


def benchmark_photos(
    x_test: np.ndarray,
    y_test: np.ndarray,
    per_condition: int,
    seed: int = 0,
    *,
    longest_side: int = 1024,
) -> Iterator[tuple[str, int, bytes]]:
    """Yield (condition, label, jpeg) for `per_condition` test digits under every condition.

    Digits are chosen deterministically from the test split (see `plan_photos`); half the photos
    are landscape 1024x768, half portrait 768x1024 (`longest_side` scales both).
    """
    # Check everything now, not at the first next(): this is not a generator function.
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    check_test_split(x_test, y_test)
    _check_longest_side(longest_side)
    plan = plan_photos(len(x_test), per_condition, seed)

    def photos() -> Iterator[tuple[str, int, bytes]]:
        counters: dict[str, int] = {}
        for condition, index in plan:
            number = counters.get(condition, 0)
            counters[condition] = number + 1
            rng = _photo_rng(seed, CONDITIONS.index(condition), number)
            size = _frame(rng, 0.5, longest_side)
            jpeg = render_photo(x_test[index], condition, rng, size=size)
            yield condition, int(y_test[index]), jpeg

    return photos()


def benchmark_numbers(
    x_test: np.ndarray,
    y_test: np.ndarray,
    count: int,
    seed: int = 0,
    *,
    longest_side: int = 1024,
) -> Iterator[tuple[str, bytes]]:
    """Yield (label such as "2026", jpeg) for `count` multi-digit numbers (see `plan_numbers`).

    Three in four photos are landscape: people turn the phone for a long number.
    """
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    check_test_split(x_test, y_test)
    _check_longest_side(longest_side)
    plans = plan_numbers(len(x_test), count, seed)

    def numbers() -> Iterator[tuple[str, bytes]]:
        for number, plan in enumerate(plans):
            rng = _photo_rng(seed, len(CONDITIONS), number)
            size = _frame(rng, 0.75, longest_side)
            label = "".join(str(int(y_test[index])) for index in plan.indices)
            digits = [x_test[index] for index in plan.indices]
            yield (
                label,
                render_number(digits, plan.condition, rng, touching=plan.touching, size=size),
            )

    return numbers()


def write_fixture_sample(
    x_test: np.ndarray,
    y_test: np.ndarray,
    folder: Path | str,
    per_condition: int = 2,
    seed: int = FIXTURE_SEED,
    *,
    numbers: int = 4,
    longest_side: int = FIXTURE_LONGEST_SIDE,
) -> list[Path]:
    """Write a small regression sample of benchmark photos into `folder`; return the paths.

    Single digits are `<condition>-<test index>-label<d>.jpg` (the index into the MNIST test
    split), numbers `number-<label>-<i>.jpg`. The photos are exactly what `benchmark_photos` and
    `benchmark_numbers` yield for the same seed and `longest_side` (800 by default, one of
    Telegram's photo sizes, which keeps tests/fixtures/photos/ under 3 MB).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    paths: list[Path] = []
    plan = plan_photos(len(x_test), per_condition, seed)
    photos = benchmark_photos(x_test, y_test, per_condition, seed, longest_side=longest_side)
    for (condition, index), (_, label, jpeg) in zip(plan, photos, strict=True):
        path = folder / f"{condition}-{index}-label{label}.jpg"
        path.write_bytes(jpeg)
        paths.append(path)
    numbered = benchmark_numbers(x_test, y_test, numbers, seed, longest_side=longest_side)
    for number, (digits, jpeg) in enumerate(numbered):
        path = folder / f"number-{digits}-{number}.jpg"
        path.write_bytes(jpeg)
        paths.append(path)
    return paths
