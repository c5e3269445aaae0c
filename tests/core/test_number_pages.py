"""Written numbers and pages as people photograph them (issue 13): each failure case reported
from real phone photos, generated with a thin pen from MNIST test digits (core.bench.pages), must be
read completely; a page of three lines is read line by line; `predict --json` reports numbers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from core.bench.benchmarks import failures
from core.bench.pages import Digit, PagePlan, render_page
from core.data import Mnist
from core.serving import Classifier
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "numbers"
CONDITIONS = ("clean", "paper_tint", "light_gradient")  # white, yellow paper; uneven light
# The failures the issue lists: (numbers, tight crop, longest side, touching digit or -1).
CASES = {
    "a spaced row across a 4000 px photo": (("1247673",), False, 4000, -1),
    "zeros and ones": (("20170708",), False, 1600, -1),
    "a long number": (("8952481",), False, 1280, -1),
    "first digit near the edge": (("0755",), True, 1280, -1),
    "a small row": (("504",), False, 2048, -1),
    "close neighbours touching": (("8952481",), False, 1600, 3),
    "a page of three lines": (("0755", "20170708", "504"), False, 1600, -1),
}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(ROOT / "models")


def draw(
    mnist: Mnist, numbers: tuple[str, ...], condition: str
) -> tuple[np.random.Generator, tuple[tuple[Digit, ...], ...]]:
    """MNIST test digits of the numbers' labels (a fixed draw per case) and the generator that
    goes on to render them."""
    rng = np.random.default_rng([sum(map(ord, "".join(numbers))), len(condition)])
    by_label = {digit: np.flatnonzero(mnist.y_test == digit) for digit in range(10)}
    digits = tuple(
        tuple(Digit("mnist", int(rng.choice(by_label[int(char)]))) for char in number)
        for number in numbers
    )
    return rng, digits


def photo(mnist: Mnist, numbers: tuple[str, ...], condition: str, **layout: int) -> bytes:
    """The numbers written with MNIST test digits of those labels (a fixed draw per case)."""
    rng, digits = draw(mnist, numbers, condition)
    touching = int(layout.pop("touching"))
    plan = PagePlan(
        condition=condition,
        numbers=digits,
        columns=1,
        touching=tuple(touching for _ in numbers),
        tight=bool(layout["tight"]),
        longest_side=int(layout["longest_side"]),
    )
    return render_page(plan, {"mnist": mnist.x_test}, rng)


@pytest.mark.parametrize("case", list(CASES))
def test_failure_cases_are_read_completely(classifier: Classifier, mnist: Mnist, case: str) -> None:
    numbers, tight, side, touching = CASES[case]
    answers, readable = [], []
    for condition in CONDITIONS:
        jpeg = photo(mnist, numbers, condition, tight=tight, longest_side=side, touching=touching)
        answers.append([reading.number for reading in classifier.classify(jpeg).numbers])
        digits = draw(mnist, numbers, condition)[1]
        readable.append([as_read(classifier, mnist, number) for number in digits])
    lengths = [len(number) for number in numbers]
    # Segmentation: every number found, no digit dropped or added. Reading: the number written,
    # except where the classifier misreads the 28x28 MNIST digit itself (test digit 947 is
    # labelled 8 and drawn as a 9): there the photo must be read as that digit is.
    # Measured on the 21 photos (2026-12-02, smooth thin pen): 21 segmented right, 19 exactly
    # as written, 20 as the digits themselves are read.
    segmented = [[len(number) for number in answer] == lengths for answer in answers]
    assert sum(segmented) >= 2, answers
    right = [
        answer in (list(numbers), clean) for answer, clean in zip(answers, readable, strict=True)
    ]
    assert sum(right) >= 2, (answers, readable)


def test_a_page_in_dim_light_at_full_resolution(classifier: Classifier, mnist: Mnist) -> None:
    # Small writing on a large, noisy photo: looked at closely, the sensor noise rose above
    # the ink threshold and tied the whole page into one piece (nothing was read).
    numbers = ("81525072", "373252218", "6879731416", "223", "19275", "17865351")
    found = []
    for draw_index in range(3):
        rng, digits = draw(mnist, numbers, "noise" + "x" * draw_index)
        plan = PagePlan(
            condition="noise",
            numbers=digits,
            columns=2,
            touching=(-1,) * len(numbers),
            tight=False,
            longest_side=2048,
        )
        jpeg = render_page(plan, {"mnist": mnist.x_test}, rng)
        found.append(len(classifier.classify(jpeg).numbers))
    # Measured 6, 5 and 6 numbers (0, 0 and 0 before).
    assert min(found) >= 4 and found.count(len(numbers)) >= 2, found


@pytest.mark.parametrize(
    ("condition", "numbers", "side", "minimum"),
    [
        # Measured: 8 of 8 pages with every number found (6 before); dark corners 7 of 8 (5).
        ("shadow", ("826", "3637243972", "06326", "7759224186", "6901"), 2048, 7),
        ("light_gradient", ("4096", "27183", "3141592", "161803"), 1600, 6),
    ],
)
def test_a_shadow_at_the_border_does_not_hide_the_page(
    classifier: Classifier,
    mnist: Mnist,
    condition: str,
    numbers: tuple[str, ...],
    side: int,
    minimum: int,
) -> None:
    # A shadow's wedge or a dark corner at the border was taken for the writing, far larger
    # than the digits: they became specks beside it and the page read nothing.
    found = []
    for draw_index in range(8):
        rng, digits = draw(mnist, numbers, condition + "x" * draw_index)
        plan = PagePlan(
            condition=condition,
            numbers=digits,
            columns=1,
            touching=(-1,) * len(numbers),
            tight=False,
            longest_side=side,
        )
        jpeg = render_page(plan, {"mnist": mnist.x_test}, rng)
        found.append(len(classifier.classify(jpeg).numbers))
    assert found.count(len(numbers)) >= minimum, found


def test_squared_paper_seen_closer_up_keeps_the_first_look(
    classifier: Classifier, mnist: Mnist
) -> None:
    # Small writing on squared paper: the first look finds the digits; the closer look meant
    # to sharpen them sees the grid's lines tied into pieces at the frame and nothing else.
    # That closer look used to win, and the photo read nothing. Of 120 draws of short numbers
    # on squared paper (1280 and 1600 px), 3 took that path; in the other two the first look
    # had already tied the digits to the grid, so they still read wrong.
    rng, digits = draw(mnist, ("504",), "grid_paper" + "x")
    plan = PagePlan(
        condition="grid_paper",
        numbers=digits,
        columns=1,
        touching=(-1,),
        tight=False,
        longest_side=1280,
    )
    numbers = classifier.classify(render_page(plan, {"mnist": mnist.x_test}, rng)).numbers
    assert [len(reading.number) for reading in numbers] == [3], numbers


def as_read(classifier: Classifier, mnist: Mnist, number: tuple[Digit, ...]) -> str:
    """The number as the classifier reads its 28x28 MNIST digits themselves."""
    images = mnist.x_test[[digit.index for digit in number]].astype(np.float32) / 255.0
    return "".join(str(int(row[:10].argmax())) for row in classifier.predict(images))


def fixture_sample() -> list[tuple[Path, list[str]]]:
    """(path, numbers in reading order) of `<i>-<kind>-<numbers joined by _>.jpg`."""
    return [
        (path, path.stem.split("-", 2)[2].split("_")) for path in sorted(FIXTURES.glob("*.jpg"))
    ]


def test_number_benchmark_sample(classifier: Classifier) -> None:
    """The committed sample of the number benchmark (core.bench.pages.write_fixture_sample)."""
    sample = fixture_sample()
    assert len(sample) == 16
    right = total = 0
    for path, numbers in sample:
        remaining = Counter(
            reading.number for reading in classifier.classify(path.read_bytes()).numbers
        )
        for number in numbers:
            right += remaining[number] > 0
            remaining[number] -= 1
            total += 1
    # Measured 16 of 31 numbers with this segmentation (4 of 31 before it, issue 13).
    assert right >= 15, f"{right} of {total} numbers read exactly"


def test_predict_json_reports_numbers_in_reading_order(
    tmp_path: Path, mnist: Mnist, capsys: pytest.CaptureFixture[str]
) -> None:
    numbers = ("0755", "20170708", "504")
    jpeg = photo(mnist, numbers, "clean", tight=False, longest_side=1600, touching=-1)
    path = tmp_path / "page.jpg"
    path.write_bytes(jpeg)
    debug = tmp_path / "debug"
    assert (
        main(
            [
                "predict",
                "--json",
                "--model-dir",
                str(ROOT / "models"),
                "--debug-dir",
                str(debug),
                str(path),
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["digit"] is None and payload["number"] == "".join(
        reading["number"] for reading in payload["numbers"]
    )
    assert [len(reading["number"]) for reading in payload["numbers"]] == [4, 8, 3]
    assert sum(len(reading["digits"]) for reading in payload["numbers"]) == len(payload["digits"])
    tops = []
    for reading in payload["numbers"]:
        assert reading["number"] == "".join(str(digit) for digit in reading["digits"])
        assert len(reading["confidence"]) == len(reading["digits"])
        left, top, right, bottom = reading["box"]
        # Boxes are in the original image's pixels (1600 x 1200 here).
        assert 0 <= left < right <= 1600 and 0 <= top < bottom <= 1200
        tops.append(top)
    assert tops == sorted(tops), "numbers are reported top to bottom"
    assert (debug / "page-pieces.png").stat().st_size > 0
    assert (debug / "page-crops.png").stat().st_size > 0


def test_number_benchmark_says_why_a_number_was_missed() -> None:
    """`bench numbers` counts why numbers fail, so that a change can aim at the largest cause."""
    digit, wide = (0, 0, 10, 20), (0, 0, 30, 20)
    assert failures(["0755"], [[digit] * 4], ["0755"]) == []
    assert failures(["0755"], [[digit] * 3], ["755"]) == ["digit dropped"]
    assert failures(["0755"], [[wide, digit, digit]], ["755"]) == ["digits merged"]
    assert failures(["504"], [[digit] * 4], ["5004"]) == ["digit split or mark read"]
    assert failures(["504"], [[digit] * 3], ["584"]) == ["digit misread"]
    # A line read as two numbers: the photo's numbers no longer pair up in reading order.
    assert failures(["0755", "504"], [[digit] * 4, [digit], [digit] * 2], ["0755", "5", "04"]) == [
        "lines split or merged"
    ]
