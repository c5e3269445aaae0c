"""Synthetic phone photos of written numbers and pages, for the number benchmark.

What people send when they photograph a number: a row of 3-12 digits written with a thin pen
(strokes 1-3 % of the digit height) across the photo, or cropped tightly so the first and last
digits nearly touch the frame; a page of 1-6 numbers, one per line, sometimes in two columns, the
lines slightly slanted; digits of uneven size and spacing, some neighbours touching. The digits
are real strokes: MNIST **test** digits and the real exam digits of
../shared/data/real-digits/nsysu. The paper, light and camera are those of the photo benchmark:
this module only lays the strokes out and hands them to core.bench.photos to be photographed.

Reading order (what the benchmark expects, and what core.segmentation returns): columns left to
right, and in each column the lines top to bottom.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.bench import looks, photos, strokes

# Conditions of the photo benchmark that make sense for a page: the pen is always thin here, the
# digit size follows from the layout, and a screenshot has no paper.
PAGE_CONDITIONS: tuple[str, ...] = (
    "clean",
    "paper_tint",
    "light_gradient",
    "shadow",
    "blue_ink",
    "grid_paper",
    "ruled_paper",
    "rotation",
    "perspective",
    "blur",
    "noise",
    "low_jpeg",
)
# Longest side of the photo: Telegram's compressed photos (1280), and files sent uncompressed
# from phones (up to 4000).
FRAME_SIDES: tuple[int, ...] = (1280, 1600, 2048, 4000)
FRAME_SIDE_SHARES: tuple[float, ...] = (0.45, 0.2, 0.2, 0.15)
MIN_STROKE_PX = 2.5


@dataclass(frozen=True)
class Digit:
    """One written digit: its source ("mnist" test split or "nsysu") and index there."""

    source: str
    index: int


@dataclass(frozen=True)
class PagePlan:
    """One benchmark photo: its numbers in reading order, how they are laid out and lit."""

    condition: str
    numbers: tuple[tuple[Digit, ...], ...]
    columns: int  # 1 or 2; with 2, the second half of `numbers` is the right column
    touching: tuple[
        int, ...
    ]  # per number: the index of the digit touching its left neighbour, or -1
    tight: bool  # the frame is cropped close around the writing
    longest_side: int

    @property
    def kind(self) -> str:
        return "row" if len(self.numbers) == 1 else "page"


def load_nsysu(folder: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """The real exam digits as MNIST-style arrays (n, 28, 28) uint8 with ink = 255, and labels."""
    folder = Path(folder)
    labels_file = folder / "labels.csv"
    if not labels_file.exists():
        raise ValueError(f"{labels_file} does not exist: point --real-digits at the real digits")
    images, labels = [], []
    for line in labels_file.read_text().splitlines()[1:]:
        path, label, source, _group = line.split(",")
        if source != "nsysu" or label == "none":
            continue
        with Image.open(folder / path) as picture:
            ink = 255.0 - np.asarray(picture.convert("L"), dtype=np.float32)
        # Cells that hold the answer box's own edge (ink along a border of the cell) are no
        # handwriting.
        edges = (ink[[0, -1], :] > 64).sum(axis=1).max(), (ink[:, [0, -1]] > 64).sum(axis=0).max()
        if max(edges) >= 8:
            continue
        # Scans are often faint; the pen in the photo sets how dark the ink is, so stretch it.
        images.append(np.clip(ink * (255.0 / max(float(ink.max()), 1.0)), 0, 255).astype(np.uint8))
        labels.append(int(label))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def plan_pages(
    count: int, *, seed: int = 0, mnist_count: int = 10_000, nsysu_count: int = 0
) -> list[PagePlan]:
    """`count` photos: two in three a single number (a row), the rest pages of 2-6 lines.

    Each photo has its own generator, so a larger `count` extends the same list."""
    plans = []
    for number in range(count):
        rng = np.random.default_rng([seed, 7919, number])
        lines = 1 if rng.random() < 2 / 3 else int(rng.integers(2, 7))
        columns = 2 if lines >= 4 and rng.random() < 0.4 else 1
        numbers, touching = [], []
        for _ in range(lines):
            length = int(rng.integers(3, 13))
            # One writer per number: the exam digits or MNIST's.
            source, size = (
                ("nsysu", nsysu_count)
                if nsysu_count and rng.random() < 0.4
                else (
                    "mnist",
                    mnist_count,
                )
            )
            numbers.append(tuple(Digit(source, int(rng.integers(size))) for _ in range(length)))
            touching.append(int(rng.integers(1, length)) if rng.random() < 0.25 else -1)
        side = int(rng.choice(FRAME_SIDES, p=FRAME_SIDE_SHARES))
        plans.append(
            PagePlan(
                condition=str(rng.choice(PAGE_CONDITIONS)),
                numbers=tuple(numbers),
                columns=columns,
                touching=tuple(touching),
                tight=lines == 1 and rng.random() < 0.4,
                longest_side=side,
            )
        )
    return plans


def _ink_aspect(digit: np.ndarray) -> float:
    top, bottom, left, right = strokes.ink_box(digit)
    return (right - left) / (bottom - top)


def render_page(plan: PagePlan, sources: dict[str, np.ndarray], rng: np.random.Generator) -> bytes:
    """The JPEG photo of `plan`; `sources` maps "mnist" / "nsysu" to (n, 28, 28) ink = 255."""
    inks = [
        [strokes.check_digit(sources[digit.source][digit.index]) for digit in number]
        for number in plan.numbers
    ]
    per_column = math.ceil(len(inks) / plan.columns)
    columns = [inks[start : start + per_column] for start in range(0, len(inks), per_column)]
    # Sizes in digit heights first (the layout), then pixels from the frame.
    gaps = [[float(rng.uniform(0.08, 0.5)) for _ in number] for number in inks]
    widths = [
        sum(0.55 + _ink_aspect(digit) * 0.45 for digit in number) + sum(gap[1:])
        for number, gap in zip(inks, gaps, strict=True)
    ]
    pitch = float(rng.uniform(1.6, 2.6))  # line spacing in digit heights
    column_gap = float(rng.uniform(2.5, 5.0))
    column_widths = [
        max(widths[start : start + per_column]) for start in range(0, len(inks), per_column)
    ]
    block_width = sum(column_widths) + column_gap * (len(columns) - 1)
    block_height = 1.0 + pitch * (per_column - 1)
    side = plan.longest_side
    if plan.tight:
        # A number cropped close: the frame is the writing plus a sliver of paper.
        frame_width = side
        digit_height = frame_width / (block_width * float(rng.uniform(1.0, 1.06)))
        frame_height = round(digit_height * float(rng.uniform(1.25, 2.0)))
        frame_height = max(64, min(frame_height, side))
    else:
        landscape = block_width >= block_height * 1.2 or rng.random() < 0.5
        frame_width, frame_height = (side, side * 3 // 4) if landscape else (side * 3 // 4, side)
        fill = float(rng.uniform(0.35, 0.85))
        digit_height = min(fill * frame_width / block_width, 0.85 * frame_height / block_height)
    frame = (int(frame_width), int(frame_height))
    # A ballpoint line is never thinner than the camera's own blur (about 2.5 pixels): the
    # stroke is 1-3 % of the digit height, but at least that.
    stroke = max(float(rng.uniform(0.01, 0.03)), MIN_STROKE_PX / digit_height)
    look = looks.choose_look(plan.condition, rng)
    look = dataclasses.replace(
        look, stroke_fraction=stroke, height_fraction=digit_height / frame[1]
    )
    if plan.tight:
        # A tight crop is cut from the photo around the writing, level with it: the camera's
        # roll and tilt were mostly cropped away (and a strong tilt cannot fit a thin frame).
        look = dataclasses.replace(
            look,
            roll=float(np.clip(look.roll, -2, 2)),
            pitch=float(np.clip(look.pitch, -3, 3)),
            yaw=float(np.clip(look.yaw, -3, 3)),
        )
    placed: list[strokes.Placed] = []
    x_column = 0.0
    for column_index, column in enumerate(columns):
        for line_index, number in enumerate(column):
            number_index = column_index * per_column + line_index
            slant = math.tan(math.radians(float(rng.uniform(-3, 3))))
            x = x_column + float(rng.uniform(0, 0.4)) * digit_height
            y_line = line_index * pitch * digit_height
            previous = None
            for digit_index, digit in enumerate(number):
                height = digit_height * float(rng.uniform(0.85, 1.15))
                alpha = strokes.stroke_alpha(digit, height, stroke, rng)
                alpha = alpha * strokes.pressure(rng, alpha.shape, look.ink_variation, height)
                # A 2-pixel pen line is faint (coverage below 0.5): lay out on its normalised shape.
                shape = alpha / max(float(alpha.max()), 1e-6)
                rows = np.flatnonzero(shape.max(axis=1) > 0.5)
                top = -float(rows[-1]) + float(rng.uniform(-0.05, 0.05)) * digit_height
                if previous is not None:
                    previous_shape, previous_top, previous_x = previous
                    if plan.touching[number_index] == digit_index:
                        gap = -float(rng.uniform(0.2, 1.0)) * max(1.8, stroke * digit_height)
                        advance = strokes.advance(previous_shape, previous_top, shape, top, gap)
                    else:
                        gap = gaps[number_index][digit_index] * digit_height
                        advance = max(
                            strokes.box_advance(previous_shape, shape, gap),
                            strokes.advance(
                                previous_shape, previous_top, shape, top, 0.06 * digit_height
                            ),
                        )
                    x = previous_x + advance
                previous = (shape, top, x)
                top += y_line + (x - x_column) * slant + digit_height
                placed.append(strokes.Placed(alpha=alpha, left=round(x), top=round(top)))
        x_column += (column_widths[column_index] + column_gap) * digit_height
    # Centre the block on the paper; the camera then frames it (photos._camera).
    left = min(item.left for item in placed)
    top = min(item.top for item in placed)
    right = max(item.left + item.alpha.shape[1] for item in placed)
    bottom = max(item.top + item.alpha.shape[0] for item in placed)
    shift_x = round(frame[0] / 2 - (left + right) / 2)
    shift_y = round(frame[1] / 2 - (top + bottom) / 2)
    placed = [
        strokes.Placed(alpha=item.alpha, left=item.left + shift_x, top=item.top + shift_y)
        for item in placed
    ]
    return photos.render_placed(placed, look, rng, frame)


def label(plan: PagePlan, labels: dict[str, np.ndarray]) -> list[str]:
    """The numbers of `plan` as strings, in reading order."""
    return [
        "".join(str(int(labels[digit.source][digit.index])) for digit in number)
        for number in plan.numbers
    ]


def benchmark_pages(
    sources: dict[str, tuple[np.ndarray, np.ndarray]], count: int, seed: int = 0
) -> Iterator[tuple[PagePlan, list[str], bytes]]:
    """Yield (plan, numbers in reading order, jpeg) for `count` benchmark photos.

    `sources`: "mnist" -> the MNIST **test** split (x, y), optionally "nsysu" -> load_nsysu()."""
    x_test, y_test = sources["mnist"]
    photos.check_test_split(np.asarray(x_test), np.asarray(y_test))
    nsysu = sources.get("nsysu")
    plans = plan_pages(
        count, seed=seed, mnist_count=len(x_test), nsysu_count=0 if nsysu is None else len(nsysu[0])
    )
    images = {name: np.asarray(pair[0]) for name, pair in sources.items()}
    labels = {name: np.asarray(pair[1]) for name, pair in sources.items()}
    for number, plan in enumerate(plans):
        rng = np.random.default_rng([seed, 7919, number, 1])
        yield plan, label(plan, labels), render_page(plan, images, rng)


FIXTURE_SEED = 2026
FIXTURE_LONGEST_SIDE = 1280


def write_fixture_sample(
    x_test: np.ndarray, y_test: np.ndarray, folder: Path | str, count: int = 16
) -> list[Path]:
    """Write a fixed sample of benchmark photos (MNIST test digits only, 1280 pixels on the
    longest side, so they stay small) into `folder` as `<i>-<kind>-<numbers joined by _>.jpg`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    photos.check_test_split(x_test, y_test)
    paths = []
    for number, plan in enumerate(plan_pages(count, seed=FIXTURE_SEED, mnist_count=len(x_test))):
        plan = dataclasses.replace(plan, longest_side=FIXTURE_LONGEST_SIDE)
        rng = np.random.default_rng([FIXTURE_SEED, 7919, number, 1])
        jpeg = render_page(plan, {"mnist": x_test}, rng)
        numbers = label(plan, {"mnist": y_test})
        path = folder / f"{number:02d}-{plan.kind}-{'_'.join(numbers)}.jpg"
        path.write_bytes(jpeg)
        paths.append(path)
    return paths
