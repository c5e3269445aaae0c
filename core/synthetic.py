"""Generated pictures for training and measuring: things that are no digit, and printed digits.

Non-digits (`non_digit_picture`) are what people send that the bot must not read as a digit:
letters that look like no digit, shapes, smileys, scribbles, specks, empty paper and empty
cells of a form or a grid. Printed digits (`printed_digit_picture`) are rendered from the
Debian fonts (fonts-dejavu, fonts-liberation, fonts-dkg-handwriting) when they are installed.
All pictures are dark ink on light paper, uint8 greyscale, like a phone photo or a scan.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.data import Mnist, split_validation

FONT_FOLDERS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype")
# Letters and signs no one would read as a digit (no O, I, l, Z, S, B, G, b, g, q, T, ...).
NON_DIGIT_LETTERS = "AEFHKMNPRVWXYakmwx#@%&*+=<>"
NON_DIGIT_KINDS = ("letter", "shape", "smiley", "scribble", "specks", "empty paper", "empty cell")


@functools.cache
def font_paths() -> tuple[Path, ...]:
    """TrueType fonts of the Debian font packages found on this machine (may be none)."""
    found: list[Path] = []
    for folder in FONT_FOLDERS:
        root = Path(folder)
        if root.is_dir():
            found += sorted(
                path
                for path in root.rglob("*.[ot]tf")
                if not any(word in path.name for word in ("Math", "ExtraLight"))
            )
    return tuple(found)


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    paths = font_paths()
    if not paths:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(paths[int(rng.integers(len(paths)))]), size)


def _paper(rng: np.random.Generator, size: int) -> np.ndarray:
    """Light paper with a soft gradient of light and sensor noise."""
    level = float(rng.uniform(170, 245))
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    gradient = rng.uniform(-20, 20) * ramp[None, :] + rng.uniform(-20, 20) * ramp[:, None]
    return level + gradient


def _finish(paper: np.ndarray, ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lay `ink` (0..1) on `paper` with a random pen darkness, blur and noise."""
    darkness = float(rng.uniform(0.35, 0.85))
    if rng.random() < 0.5:
        ink = cv2.GaussianBlur(ink, (0, 0), float(rng.uniform(0.5, 1.5)))
    page = paper * (1.0 - darkness * np.clip(ink, 0.0, 1.0))
    page += rng.normal(0.0, float(rng.uniform(1.0, 5.0)), page.shape)
    return np.clip(page, 0, 255).astype(np.uint8)


def _cell_lines(ink: np.ndarray, rng: np.random.Generator) -> None:
    """Draw the lines of a form cell or a sudoku grid near the picture's edges."""
    size = ink.shape[0]
    width = int(rng.integers(1, max(2, size // 25)))
    for side in range(4):
        if rng.random() < 0.25:
            continue
        offset = int(rng.integers(0, max(1, size // 10)))
        position = offset if side < 2 else size - 1 - offset
        slope = rng.uniform(-0.05, 0.05) * size
        if side % 2 == 0:
            start, end = (0, position), (size - 1, round(position + slope))
        else:
            start, end = (position, 0), (round(position + slope), size - 1)
        cv2.line(ink, start, end, 1.0, width)


def _text(ink_size: int, text: str, rng: np.random.Generator) -> np.ndarray:
    """`text` in a random font, about 60 % of the picture tall, slightly rotated."""
    image = Image.new("L", (ink_size, ink_size), 0)
    draw = ImageDraw.Draw(image)
    font = _font(rng, int(ink_size * rng.uniform(0.45, 0.75)))
    draw.text((ink_size / 2, ink_size / 2), text, fill=255, font=font, anchor="mm")
    image = image.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    return np.asarray(image, np.float32) / 255.0


def _shape(size: int, rng: np.random.Generator) -> np.ndarray:
    """A triangle, square, star or heart outline (filled at times), or a cross-hatch."""
    ink = np.zeros((size, size), np.float32)
    width = int(rng.integers(2, max(3, size // 16)))
    centre = np.array([size / 2, size / 2]) + rng.uniform(-0.1, 0.1, 2) * size
    radius = size * rng.uniform(0.2, 0.35)
    kind = int(rng.integers(5))
    if kind == 4:  # cross-hatch: a # of many lines
        for _ in range(int(rng.integers(3, 7))):
            angle = rng.uniform(0, np.pi)
            offset = rng.uniform(-radius, radius)
            direction = np.array([np.cos(angle), np.sin(angle)])
            normal = np.array([-direction[1], direction[0]])
            start = centre + offset * normal - radius * direction
            end = centre + offset * normal + radius * direction
            cv2.line(ink, tuple(start.astype(int)), tuple(end.astype(int)), 1.0, width)
        return ink
    corners = {0: 3, 1: 4, 2: 10, 3: 0}[kind]
    turn = rng.uniform(0, 2 * np.pi)
    if kind == 3:  # heart
        t = np.linspace(0, 2 * np.pi, 60)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        points = np.stack([x, y], 1) / 17 * radius + centre
    else:
        angles = turn + np.arange(corners) * 2 * np.pi / corners
        radii = np.where(np.arange(corners) % 2, 0.45, 1.0) if kind == 2 else np.ones(corners)
        points = centre + (radius * radii)[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    polygon = [points.astype(np.int32)]
    if rng.random() < 0.3:
        cv2.fillPoly(ink, polygon, 1.0)
    else:
        cv2.polylines(ink, polygon, True, 1.0, width)
    return ink


def _smiley(size: int, rng: np.random.Generator) -> np.ndarray:
    """A face: a circle with eyes and a mouth (a 0 would have nothing inside)."""
    ink = np.zeros((size, size), np.float32)
    width = int(rng.integers(2, max(3, size // 18)))
    centre = (size // 2, size // 2)
    radius = int(size * rng.uniform(0.25, 0.4))
    cv2.circle(ink, centre, radius, 1.0, width)
    for side in (-1, 1):
        eye = (centre[0] + side * radius // 3, centre[1] - radius // 3)
        cv2.circle(ink, eye, max(2, radius // 8), 1.0, -1)
    mouth_axes = (radius // 2, radius // 3)
    cv2.ellipse(ink, (centre[0], centre[1] + radius // 6), mouth_axes, 0, 20, 160, 1.0, width)
    return ink


def _scribble(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random pen path with many turns, like crossing something out."""
    ink = np.zeros((size, size), np.float32)
    width = int(rng.integers(1, max(2, size // 20)))
    steps = int(rng.integers(12, 30))
    point = rng.uniform(0.3, 0.7, 2) * size
    velocity = rng.normal(0, size / 8, 2)
    points = []
    for _ in range(steps):
        velocity = 0.6 * velocity + rng.normal(0, size / 8, 2)
        point = np.clip(point + velocity, 0.15 * size, 0.85 * size)
        points.append(point.copy())
    cv2.polylines(ink, [np.array(points, np.int32)], False, 1.0, width)
    return ink


def _specks(size: int, rng: np.random.Generator) -> np.ndarray:
    """A few dots and short flecks: dust, pencil crumbs, JPEG dirt."""
    ink = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(1, 8))):
        centre = tuple(int(value) for value in rng.uniform(0.1, 0.9, 2) * size)
        if rng.random() < 0.5:
            cv2.circle(ink, centre, int(rng.integers(1, max(2, size // 30))), 1.0, -1)
        else:
            step = rng.normal(0, size / 25, 2)
            end = tuple(int(c + d) for c, d in zip(centre, step, strict=True))
            cv2.line(ink, centre, end, 1.0, 1)
    return ink


def non_digit_picture(kind: str, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A picture of something that is no digit (one of NON_DIGIT_KINDS), uint8, dark on light."""
    if kind == "letter":
        letter = NON_DIGIT_LETTERS[int(rng.integers(len(NON_DIGIT_LETTERS)))]
        ink = _text(size, letter, rng)
    elif kind == "shape":
        ink = _shape(size, rng)
    elif kind == "smiley":
        ink = _smiley(size, rng)
    elif kind == "scribble":
        ink = _scribble(size, rng)
    elif kind == "specks":
        ink = _specks(size, rng)
    elif kind in ("empty paper", "empty cell"):
        ink = np.zeros((size, size), np.float32)
    else:
        raise ValueError(f"unknown kind of non-digit {kind!r}; use one of {NON_DIGIT_KINDS}")
    if kind == "empty cell" or (kind != "empty paper" and rng.random() < 0.3):
        _cell_lines(ink, rng)
    return _finish(_paper(rng, size), ink, rng)


def printed_digit_picture(digit: int, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A digit in a random installed font, sometimes inside cell lines, uint8, dark on light."""
    ink = _text(size, str(digit), rng)
    if rng.random() < 0.4:
        _cell_lines(ink, rng)
    return _finish(_paper(rng, size), ink, rng)


def encode_png(picture: np.ndarray) -> bytes:
    """uint8 greyscale -> PNG bytes (what a photo handler receives)."""
    ok, data = cv2.imencode(".png", picture)
    if not ok:
        raise ValueError("could not encode the picture as PNG")
    return data.tobytes()


def _distorted(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit (uint8, ink 255) with an elastic distortion (Simard et al. 2003) and a
    slant wider than MNIST's own; float32 ink in [0, 1]."""
    size = digit.shape[0]
    field = rng.uniform(-1, 1, (2, size, size)).astype(np.float32)
    dx, dy = (cv2.GaussianBlur(part, (0, 0), 4.0) * 34.0 for part in field)
    slant = float(rng.uniform(-0.45, 0.45))
    rows, columns = np.indices((size, size), dtype=np.float32)
    map_x = columns + dx + slant * (rows - size / 2)
    map_y = rows + dy
    ink = digit.astype(np.float32) / 255.0
    return cv2.remap(ink, map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0)


def digit_in_cell_picture(
    digit: np.ndarray, rng: np.random.Generator, size: int = 128
) -> np.ndarray:
    """An MNIST training digit, distorted and slanted, written in a cell with lines, uint8."""
    ink = _distorted(digit, rng)
    scale = int(size * rng.uniform(0.7, 1.1))
    ink = cv2.resize(ink, (scale, scale), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((size + scale, size + scale), np.float32)
    top, left = (int(value) for value in (size - scale) / 2 + scale / 2 + rng.normal(0, 4, 2))
    canvas[top : top + scale, left : left + scale] = ink
    half = scale // 2
    ink = np.ascontiguousarray(canvas[half : half + size, half : half + size])
    if rng.random() < 0.7:
        _cell_lines(ink, rng)
    return _finish(_paper(rng, size), ink, rng)


def is_one_stroke(crop: np.ndarray) -> bool:
    """Whether a 28x28 crop's ink looks like a 1: one long stroke, upright or slanted (not
    lying), with at most a small hook or flag - its ink spreads under 0.15 as much across its
    main direction as along it, and that direction is within 50 degrees of the vertical."""
    rows, columns = np.nonzero(crop > 0.3)
    if len(rows) < 3:
        return True
    spread, axes = np.linalg.eigh(np.cov(np.stack([rows, columns]).astype(np.float64)))
    upright = abs(axes[0, 1]) >= np.cos(np.radians(50))  # the main axis's row component
    return bool(spread[0] < 0.15 * spread[1] and upright)


def generated_samples(
    mnist_images: np.ndarray, mnist_labels: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` training samples in MNIST's format (uint8 28x28, ink 255) as the bot sees them:
    pictures made here, cut out by core.preprocess.prepare. Half are non-digits (label
    core.model.NO_DIGIT: letters, shapes, smileys, scribbles), a fifth printed digits, the
    rest MNIST training digits distorted, slanted and written in cells with lines."""
    from core.model import NO_DIGIT
    from core.preprocess import prepare

    rng = np.random.default_rng(seed)
    images: list[np.ndarray] = []
    labels: list[int] = []
    # Empty paper yields no crop; what specks and the leftovers of an empty cell's lines yield
    # is a dot or a dash, which redrawn at digit size is a 1: segmentation must drop those.
    kinds = ["letter", "shape", "smiley", "scribble"]
    wanted = {"non-digit": count // 2, "printed": count // 5}
    wanted["cell"] = count - sum(wanted.values())
    for source, target in wanted.items():
        made = 0
        while made < target:
            if source == "non-digit":
                picture = non_digit_picture(kinds[int(rng.integers(len(kinds)))], rng)
                label = NO_DIGIT
            elif source == "printed":
                label = int(rng.integers(10))
                picture = printed_digit_picture(label, rng)
            else:
                index = int(rng.integers(len(mnist_images)))
                label = int(mnist_labels[index])
                picture = digit_in_cell_picture(mnist_images[index], rng)
            crops = prepare(Image.fromarray(picture)).digits
            if label != NO_DIGIT and len(crops) != 1:
                continue  # cut in two or lost: not a sample of this digit
            if label == NO_DIGIT:
                # A piece of a letter or shape that is one straight stroke is what a 1 looks
                # like: teaching it as "no digit" would make the model doubt real 1s.
                crops = [crop for crop in crops if not is_one_stroke(crop.image)]
            for crop in crops[: target - made]:
                images.append(np.round(crop.image * 255).astype(np.uint8))
                labels.append(label)
                made += 1
    return np.stack(images), np.array(labels, np.uint8)


def generated_validation(
    mnist: Mnist, count: int, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The generated samples `with_generated` holds out (made from MNIST validation digits),
    again: `digitbot calibrate` fits the temperature on the same held-out set as training."""
    _, _, images, labels = split_validation(mnist.x_train, mnist.y_train, validation_split)
    return generated_samples(images, labels, round(count * validation_split), seed + 1)


def with_generated(mnist: Mnist, count: int, validation_split: float, seed: int) -> Mnist:
    """MNIST with `count` generated samples (see generated_samples) added to its training set:
    those made from validation digits go to the end, so that split_validation holds out
    MNIST's and the generated validation samples together."""
    train_x, train_y, val_x, val_y = split_validation(
        mnist.x_train, mnist.y_train, validation_split
    )
    held_out = round(count * validation_split)
    parts = [(train_x, train_y), generated_samples(train_x, train_y, count - held_out, seed)]
    if held_out:
        parts += [(val_x, val_y), generated_validation(mnist, count, validation_split, seed)]
    return dataclasses.replace(
        mnist,
        x_train=np.concatenate([images for images, _ in parts]),
        y_train=np.concatenate([labels for _, labels in parts]),
    )
