"""Tests for core.bench.photos: the synthetic phone photos of MNIST test digits for benchmarks."""

from __future__ import annotations

import io
import itertools
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from core.bench import looks, photos, strokes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "photos"
REQUIRED_CONDITIONS = {
    "clean",
    "paper_tint",
    "light_gradient",
    "shadow",
    "blue_ink",
    "thin_pen",
    "thick_marker",
    "grid_paper",
    "ruled_paper",
    "small_digit",
    "large_digit",
    "rotation",
    "perspective",
    "blur",
    "noise",
    "low_jpeg",
    "inverted",
}


@pytest.fixture(scope="module")
def mnist() -> dict[str, np.ndarray]:
    """The real MNIST arrays from MNIST_PATH (CI always sets it, so a missing path fails)."""
    path = os.environ.get("MNIST_PATH")
    if not path:
        pytest.fail(
            "MNIST_PATH is not set; point it at mnist.npz (CI uses ../shared/data/mnist.npz)"
        )
    with np.load(path) as data:
        return {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def one_photo_per_condition(
    mnist: dict[str, np.ndarray],
) -> dict[str, tuple[bytes, tuple[int, int]]]:
    """One photo per condition (alternating landscape and portrait), rendered once per module."""
    rendered = {}
    for number, condition in enumerate(looks.CONDITIONS):
        size = photos.FRAME_LANDSCAPE if number % 2 == 0 else photos.FRAME_PORTRAIT
        rng = np.random.default_rng([11, number])
        digit = mnist["x_test"][int(rng.integers(len(mnist["x_test"])))]
        rendered[condition] = (photos.render_photo(digit, condition, rng, size=size), size)
    return rendered


def brightness(jpeg: bytes) -> np.ndarray:
    """The decoded photo as 8-bit luma, float32."""
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=np.float32)


def line_positions(profile: np.ndarray) -> list[float]:
    """Centres of thin dark lines crossing a 1-D brightness profile.

    High-pass the profile (minus a 61-pixel running median), then every run well below the
    noise level is one line; paper texture and light falloff stay far above the threshold.
    """
    detail = profile - ndimage.median_filter(profile, size=61, mode="reflect")
    noise = 1.4826 * float(np.median(np.abs(detail - np.median(detail))))
    dark = detail < -max(6 * noise, 3.0)
    runs, count = ndimage.label(dark)
    return [float(np.mean(np.flatnonzero(runs == run))) for run in range(1, count + 1)]


def frame_lines(jpeg: bytes) -> tuple[list[float], list[float]]:
    """(vertical, horizontal) line positions, read from narrow bands along the frame's edges.

    The bands stay away from the digit, and are narrow so slightly tilted lines stay sharp.
    """
    image = brightness(jpeg)
    band = max(8, int(0.06 * min(image.shape)))
    vertical = line_positions(image[:band].mean(axis=0))
    horizontal = line_positions(image[:, :band].mean(axis=1))
    return vertical, horizontal


def evenly_spaced(positions: list[float]) -> bool:
    """Whether successive gaps agree within 25 % (perspective stretches them a little)."""
    gaps = np.diff(positions)
    return bool((gaps.max() - gaps.min()) / gaps.mean() < 0.25)


def test_conditions_are_the_documented_ones() -> None:
    assert set(looks.CONDITIONS) == REQUIRED_CONDITIONS
    assert len(looks.CONDITIONS) == len(REQUIRED_CONDITIONS)
    assert all(looks.CONDITION_NOTES[condition] for condition in looks.CONDITIONS)


@pytest.mark.parametrize("condition", ["clean", "shadow", "ruled_paper", "blur", "inverted"])
def test_same_seed_gives_the_same_bytes(mnist: dict[str, np.ndarray], condition: str) -> None:
    digit = mnist["x_test"][0]
    first = photos.render_photo(digit, condition, np.random.default_rng(5))
    again = photos.render_photo(digit, condition, np.random.default_rng(5))
    other = photos.render_photo(digit, condition, np.random.default_rng(6))
    assert first == again
    assert first != other


def test_same_seed_gives_the_same_number(mnist: dict[str, np.ndarray]) -> None:
    digits = list(mnist["x_test"][:3])
    first = photos.render_number(digits, "grid_paper", np.random.default_rng(1), touching=True)
    again = photos.render_number(digits, "grid_paper", np.random.default_rng(1), touching=True)
    assert first == again


@pytest.mark.parametrize("condition", sorted(REQUIRED_CONDITIONS))
def test_every_condition_renders_a_jpeg_of_the_frame_size(
    one_photo_per_condition: dict[str, tuple[bytes, tuple[int, int]]], condition: str
) -> None:
    jpeg, size = one_photo_per_condition[condition]
    assert jpeg[:3] == b"\xff\xd8\xff"
    picture = Image.open(io.BytesIO(jpeg))
    assert picture.format == "JPEG"
    assert picture.size == size
    assert picture.mode == "RGB"
    picture.load()  # decodes the whole file: a truncated JPEG raises here


@pytest.mark.parametrize("condition", sorted(REQUIRED_CONDITIONS - {"inverted"}))
def test_ink_is_darker_than_the_paper(
    one_photo_per_condition: dict[str, tuple[bytes, tuple[int, int]]], condition: str
) -> None:
    image = brightness(one_photo_per_condition[condition][0])
    margin = int(0.03 * min(image.shape))
    edges = (image[:margin], image[-margin:], image[:, :margin], image[:, -margin:])
    border = np.concatenate([edge.ravel() for edge in edges])
    # The darkest 0.02 % of the inside is ink (a digit covers far more than that).
    ink = np.percentile(image[margin:-margin, margin:-margin], 0.02)
    assert np.median(border) - ink > 60


def test_inverted_is_a_light_digit_on_a_dark_screen(
    one_photo_per_condition: dict[str, tuple[bytes, tuple[int, int]]],
) -> None:
    image = brightness(one_photo_per_condition["inverted"][0])
    margin = int(0.03 * min(image.shape))
    assert np.median(image[:margin]) < 60
    assert np.percentile(image, 99.98) - np.median(image[:margin]) > 100


def test_unknown_condition_raises(mnist: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unknown photo condition 'sepia'"):
        photos.render_photo(mnist["x_test"][0], "sepia", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown photo condition"):
        photos.render_number(list(mnist["x_test"][:2]), "Clean", np.random.default_rng(0))


@pytest.mark.parametrize(
    "digit",
    [np.zeros((28, 27), np.uint8), np.zeros(784, np.uint8), np.zeros((32, 32), np.uint8)],
    ids=["28x27", "flat", "32x32"],
)
def test_digit_that_is_not_28x28_raises(digit: np.ndarray) -> None:
    with pytest.raises(ValueError, match="28x28"):
        photos.render_photo(digit, "clean", np.random.default_rng(0))


def test_blank_digit_and_empty_number_raise() -> None:
    with pytest.raises(ValueError, match="no ink"):
        photos.render_photo(np.zeros((28, 28), np.uint8), "clean", np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least one digit"):
        photos.render_number([], "clean", np.random.default_rng(0))


def test_grid_and_ruled_paper_show_evenly_spaced_lines(mnist: dict[str, np.ndarray]) -> None:
    most_lines = {"grid_paper": 0, "ruled_paper": 0}
    for seed in range(4):
        size = photos.FRAME_LANDSCAPE if seed % 2 == 0 else photos.FRAME_PORTRAIT
        digit = mnist["x_test"][seed]
        rendered = {
            condition: photos.render_photo(
                digit, condition, np.random.default_rng([3, seed]), size=size
            )
            for condition in ("grid_paper", "ruled_paper", "clean")
        }
        grid_vertical, grid_horizontal = frame_lines(rendered["grid_paper"])
        _, ruled_horizontal = frame_lines(rendered["ruled_paper"])
        clean_vertical, clean_horizontal = frame_lines(rendered["clean"])
        for lines in (grid_vertical, grid_horizontal, ruled_horizontal):
            assert len(lines) >= 2, (seed, lines)
            if len(lines) >= 3:
                assert evenly_spaced(lines), (seed, lines)
        assert clean_vertical == clean_horizontal == [], seed
        most_lines["grid_paper"] = max(most_lines["grid_paper"], len(grid_vertical))
        most_lines["ruled_paper"] = max(most_lines["ruled_paper"], len(ruled_horizontal))
    # Periodicity needs three lines; make sure the samples showed it for both papers.
    assert most_lines["grid_paper"] >= 3
    assert most_lines["ruled_paper"] >= 3


def test_touching_digits_sit_closer_together(mnist: dict[str, np.ndarray]) -> None:
    digits = [mnist["x_test"][index] for index in (0, 1, 2)]  # 7, 2, 1
    widths = {}
    for touching in (False, True):
        image = brightness(
            photos.render_number(digits, "clean", np.random.default_rng(4), touching=touching)
        )
        ink_columns = np.flatnonzero((image < np.median(image) - 60).any(axis=0))
        widths[touching] = ink_columns[-1] - ink_columns[0]
    assert widths[True] < widths[False]


def test_a_scanned_stroke_one_pixel_wide_is_drawn_unbroken() -> None:
    # A faint exam scan stretched to full ink is about one pixel wide at 28x28; smoothed and
    # cut at a single level it fell apart into dots (about 40 % of the nsysu digits did).
    # Pen pressure varies along it: darker and fainter stretches alternate.
    digit = np.zeros((28, 28), dtype=np.uint8)
    shades = [230, 230, 120, 120]
    digit[5, 8:21] = [shades[column % 4] for column in range(8, 21)]
    for step in range(18):  # a 7 drawn in one-pixel steps
        digit[6 + step, 20 - round(step * 0.55)] = shades[step % 4]
    ink = strokes.check_digit(digit)
    for seed in range(5):
        alpha = strokes.stroke_alpha(ink, 300, 0.015, np.random.default_rng(seed))
        _, pieces = ndimage.label(alpha > 0.25, structure=np.ones((3, 3)))
        assert pieces == 1


def test_benchmark_labels_are_the_test_digits_used(mnist: dict[str, np.ndarray]) -> None:
    x_test, y_test = mnist["x_test"], mnist["y_test"]
    plan = photos.plan_photos(len(x_test), 2, seed=8)
    assert [condition for condition, _ in plan] == [c for c in looks.CONDITIONS for _ in (0, 1)]
    first_four = list(itertools.islice(photos.benchmark_photos(x_test, y_test, 2, seed=8), 4))
    for (condition, index), (yielded_condition, label, _) in zip(plan, first_four, strict=False):
        assert yielded_condition == condition
        assert label == int(y_test[index])

    # Swap the digit at the second photo's index for another one: only that photo changes.
    changed = x_test.copy()
    swapped_index = plan[1][1]
    changed[swapped_index] = x_test[(swapped_index + 1) % len(x_test)]
    again = list(itertools.islice(photos.benchmark_photos(changed, y_test, 2, seed=8), 4))
    assert [item[2] == other[2] for item, other in zip(first_four, again, strict=True)] == [
        True,
        False,
        True,
        True,
    ]


def test_benchmark_plans_extend_without_changing(mnist: dict[str, np.ndarray]) -> None:
    small = photos.plan_photos(10_000, 3, seed=1)
    large = photos.plan_photos(10_000, 5, seed=1)
    for condition in looks.CONDITIONS:
        first = [index for name, index in small if name == condition]
        more = [index for name, index in large if name == condition]
        assert more[:3] == first
        assert len(set(more)) == 5
        assert all(0 <= index < 10_000 for index in more)


def test_benchmark_refuses_the_training_split(mnist: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="never show training digits"):
        photos.benchmark_photos(mnist["x_train"], mnist["y_train"], 1)
    with pytest.raises(ValueError, match="never show training digits"):
        photos.benchmark_numbers(mnist["x_train"], mnist["y_train"], 1)
    with pytest.raises(ValueError, match="y_test must have shape"):
        photos.benchmark_photos(mnist["x_test"], mnist["y_test"][:-1], 1)


def test_benchmark_numbers_labels_match_their_digits(mnist: dict[str, np.ndarray]) -> None:
    x_test, y_test = mnist["x_test"], mnist["y_test"]
    plans = photos.plan_numbers(len(x_test), 3, seed=5)
    numbers = list(photos.benchmark_numbers(x_test, y_test, 3, seed=5, longest_side=640))
    assert len(numbers) == 3
    for plan, (label, jpeg) in zip(plans, numbers, strict=True):
        assert 2 <= len(label) <= 5
        assert len(label) == len(plan.indices)
        assert label == "".join(str(int(y_test[index])) for index in plan.indices)
        assert plan.condition in looks.CONDITIONS
        assert Image.open(io.BytesIO(jpeg)).size in {(640, 480), (480, 640)}


def test_fixture_sample_is_small_labelled_and_complete(mnist: dict[str, np.ndarray]) -> None:
    files = sorted(FIXTURES.glob("*.jpg"))
    assert sum(path.stat().st_size for path in files) < 3_000_000
    per_condition: dict[str, int] = {}
    numbers = 0
    for path in files:
        single = re.fullmatch(r"([a-z_]+)-(\d+)-label(\d)\.jpg", path.name)
        number = re.fullmatch(r"number-(\d{2,5})-(\d+)\.jpg", path.name)
        assert single or number, path.name
        if single:
            condition, index, label = single.group(1), int(single.group(2)), int(single.group(3))
            assert condition in looks.CONDITIONS
            assert int(mnist["y_test"][index]) == label, path.name
            per_condition[condition] = per_condition.get(condition, 0) + 1
        else:
            numbers += 1
        with Image.open(path) as picture:
            assert picture.format == "JPEG"
            assert picture.size in {(800, 600), (600, 800)}
    assert per_condition == {condition: 2 for condition in looks.CONDITIONS}
    assert numbers >= 3


def test_fixture_sample_still_matches_the_generator(mnist: dict[str, np.ndarray]) -> None:
    """Regenerating gives the committed pictures (compared decoded, within JPEG tolerance).

    If this fails after a deliberate change to the generator, rewrite the fixtures with
    `photos.write_fixture_sample(x_test, y_test, "tests/fixtures/photos")` after emptying it.
    """
    regenerated = photos.benchmark_photos(
        mnist["x_test"],
        mnist["y_test"],
        2,
        seed=photos.FIXTURE_SEED,
        longest_side=photos.FIXTURE_LONGEST_SIDE,
    )
    plan = photos.plan_photos(len(mnist["x_test"]), 2, seed=photos.FIXTURE_SEED)
    for (condition, index), (_, label, jpeg) in itertools.islice(
        zip(plan, regenerated, strict=False), 3
    ):
        committed = FIXTURES / f"{condition}-{index}-label{label}.jpg"
        difference = np.abs(brightness(jpeg) - brightness(committed.read_bytes()))
        assert difference.mean() < 2.0, committed.name


def test_render_speed(mnist: dict[str, np.ndarray]) -> None:
    conditions = itertools.cycle(looks.CONDITIONS)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    sizes = set()
    for number in range(50):
        jpeg = photos.render_photo(mnist["x_test"][number], next(conditions), rng)
        sizes.add(Image.open(io.BytesIO(jpeg)).size)
    seconds = time.perf_counter() - started
    print(f"rendered 50 photos in {seconds:.1f} s ({seconds / 50 * 1000:.0f} ms each)")
    assert sizes == {photos.FRAME_LANDSCAPE}
