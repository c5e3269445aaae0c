"""Several digits in one photo: generated phone photos of numbers written with MNIST test digits
(spaced and touching) are read left to right, and `digitbot predict --json` reports them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from bot.cli import main
from core.bench.photos import render_number, render_photo
from core.data import Mnist
from core.serving import NOT_A_DIGIT, Classifier
from tests.conftest import ROOT

CONDITIONS = (
    "clean",
    "blue_ink",
    "paper_tint",
    "grid_paper",
    "ruled_paper",
    "shadow",
    "light_gradient",
    "thick_marker",
    "rotation",
    "noise",
)
SIZE = (800, 600)  # one of Telegram's photo sizes; smaller frames render faster


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(ROOT / "models")


def numbers(
    mnist: Mnist, seed: int, *, touching: bool, lengths: tuple[int, ...]
) -> list[tuple[str, bytes]]:
    """(label, jpeg) for one number per condition, digits drawn from the MNIST test split."""
    rng = np.random.default_rng(seed)
    photos = []
    for condition, length in zip(CONDITIONS, lengths, strict=True):
        indices = rng.integers(0, len(mnist.x_test), size=length)
        label = "".join(str(int(mnist.y_test[index])) for index in indices)
        jpeg = render_number(
            [mnist.x_test[index] for index in indices], condition, rng, touching=touching, size=SIZE
        )
        photos.append((label, jpeg))
    return photos


def test_spaced_numbers_are_read_left_to_right(classifier: Classifier, mnist: Mnist) -> None:
    photos = numbers(mnist, 7, touching=False, lengths=(4, 2, 2, 2, 2, 3, 3, 2, 3, 3))
    answers = [(label, classifier.classify(jpeg).number) for label, jpeg in photos]
    right = sum(label == number for label, number in answers)
    # Measured 10 of 10 (and 9 of 10 with seed 6); one misread digit is the model's share.
    assert right >= 9, answers


def ink_columns(digit: np.ndarray) -> np.ndarray:
    """The columns of an MNIST digit that hold ink."""
    return digit[:, np.flatnonzero(digit.max(axis=0) > 60)]


def pair_photo(left: np.ndarray, right: np.ndarray, overlap: int) -> bytes:
    """Two digits' ink columns side by side, the second `overlap` MNIST pixels into the first
    (strokes that meet there touch), enlarged 6x on a white page, as a JPEG."""
    canvas = np.zeros((28, left.shape[1] + right.shape[1] - overlap + 8), np.uint8)
    canvas[:, 4 : 4 + left.shape[1]] = left
    start = 4 + left.shape[1] - overlap
    window = canvas[:, start : start + right.shape[1]]
    np.maximum(window, right, out=window)
    ink = Image.fromarray(255 - canvas).resize((canvas.shape[1] * 6, 168), Image.Resampling.BICUBIC)
    page = Image.new("L", (640, 480), 255)
    page.paste(ink, (80, 150))
    buffer = io.BytesIO()
    page.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def touching_pair(first: np.ndarray, second: np.ndarray) -> bytes:
    """Two MNIST digits written so close that their ink boxes overlap by one MNIST pixel (about
    half a stroke): where their strokes meet they touch. Dark ink on a white page, JPEG."""
    return pair_photo(ink_columns(first), ink_columns(second), overlap=1)


def test_slightly_touching_digits_are_split(classifier: Classifier, mnist: Mnist) -> None:
    answers = []
    for index in range(0, 40, 2):
        label = f"{mnist.y_test[index]}{mnist.y_test[index + 1]}"
        jpeg = touching_pair(mnist.x_test[index], mnist.x_test[index + 1])
        answers.append((label, classifier.classify(jpeg).number))
    # Measured 8 of 20 read exactly (9 as two digits). Cuts are made only at a neck thinner than
    # a stroke that leaves two tall parts, so that a single wide 0 is never cut; pairs touching
    # along a stroke stay one digit. Without cutting none of these is read.
    assert sum(label == number for label, number in answers) >= 6, answers


def test_touching_numbers_from_the_generator(classifier: Classifier, mnist: Mnist) -> None:
    photos = numbers(mnist, 6, touching=True, lengths=(2, 3, 4, 2, 3, 4, 2, 3, 4, 5))
    answers = [(label, classifier.classify(jpeg).number) for label, jpeg in photos]
    # The generator's touching digits overlap by 10-50 % of a stroke and often interlock; the
    # model-free cuts read few of them exactly (measured 1 of 10), but most come out as
    # several digits (measured 7 of 10), not as one blob.
    assert sum(label == number for label, number in answers) >= 1, answers
    assert sum(len(number) >= 2 for _, number in answers) >= 5, answers


def test_predict_json_has_digits_and_number(
    tmp_path: Path, mnist: Mnist, capsys: pytest.CaptureFixture[str]
) -> None:
    label, jpeg = numbers(mnist, 7, touching=False, lengths=(4, 2, 2, 2, 2, 3, 3, 2, 3, 3))[0]
    number_path = tmp_path / "number.jpg"
    number_path.write_bytes(jpeg)
    single_path = tmp_path / "single.jpg"
    single_path.write_bytes(
        render_photo(mnist.x_test[0], "clean", np.random.default_rng(1), size=SIZE)
    )
    arguments = ["predict", "--json", "--model-dir", str(ROOT / "models")]
    assert main([*arguments, str(number_path), str(single_path)]) == 0
    number, single = (json.loads(line) for line in capsys.readouterr().out.splitlines())

    assert number["number"] == label and number["digit"] is None
    assert [digit["digit"] for digit in number["digits"]] == [int(d) for d in label]
    lefts = [digit["box"][0] for digit in number["digits"]]
    assert lefts == sorted(lefts), "digits are reported left to right"
    for digit in number["digits"]:
        probabilities = [probability for _, probability in digit["top3"]]
        assert len(digit["top3"]) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert digit["top3"][0][0] == digit["digit"]

    assert single["digit"] == int(mnist.y_test[0]) and "number" not in single
    assert len(single["top3"]) == 3 and len(single["digits"]) == 1


def interlocked_pair(first: np.ndarray, second: np.ndarray, aspect: float = 1.05) -> bytes | None:
    """Two MNIST digits pushed together until the pair is `aspect` times as wide as tall (by
    default narrower than core.segmentation.WIDE_DIGIT, so no strict cut is tried): the
    second's left strokes run into the first's right ones, as a tail running under its
    neighbour. None when that would overlap more than a third of the narrower digit (one digit
    written over the other)."""
    rows = np.flatnonzero(np.maximum(first, second).max(axis=1) > 60)
    height = int(rows[-1] - rows[0] + 1)
    left, right = ink_columns(first), ink_columns(second)
    overlap = left.shape[1] + right.shape[1] - int(aspect * height)
    if overlap > 0.35 * min(left.shape[1], right.shape[1]):
        return None
    return pair_photo(left, right, max(overlap, 1))


def interlocked_answers(
    classifier: Classifier, mnist: Mnist, count: int, *, aspect: float, skip_ones: bool
) -> list[tuple[str, str]]:
    """(label, number read) of the first `count` interlocked pairs of MNIST test digits 100-999
    (`skip_ones`: leaving out pairs with a 1, which stay wider than tall)."""
    answers = []
    for index in range(100, 1000, 2):
        if skip_ones and 1 in (mnist.y_test[index], mnist.y_test[index + 1]):
            continue
        jpeg = interlocked_pair(mnist.x_test[index], mnist.x_test[index + 1], aspect)
        if jpeg is None:
            continue
        label = f"{mnist.y_test[index]}{mnist.y_test[index + 1]}"
        answers.append((label, classifier.classify(jpeg).number))
        if len(answers) == count:
            break
    assert len(answers) == count
    return answers


def test_interlocked_pairs_narrower_than_a_wide_digit(classifier: Classifier, mnist: Mnist) -> None:
    answers = interlocked_answers(classifier, mnist, 20, aspect=1.05, skip_ones=True)
    # The classifier is offered the best cut of a group narrower than WIDE_DIGIT when it is
    # unsure of the one digit (core.choice). Measured 3 of 20 exact, 1 of 20 before; most of
    # these pairs still stay one crop (no neck thin enough to cut) or are read as "no digit".
    assert sum(label == number for label, number in answers) >= 2, answers


def test_interlocked_pairs_wider_than_a_wide_digit(classifier: Classifier, mnist: Mnist) -> None:
    answers = interlocked_answers(classifier, mnist, 30, aspect=1.3, skip_ones=False)
    # Too wide for one digit but with no neck: the classifier is offered up to three cuts
    # across two strokes and takes the surest (core.segmentation INTERLOCKED_CUTS). Measured 8
    # of 30 exact, 6 of 30 with the one loose cut; most stay one crop or read as "no digit".
    assert sum(label == number for label, number in answers) >= 7, answers


def number_photo(parts: list[np.ndarray], overlaps: list[int]) -> bytes:
    """Digits' ink columns in a row, each `overlaps[i]` MNIST pixels into the one before it
    (negative: a gap), enlarged 5x on a white page, as a JPEG."""
    width = sum(part.shape[1] for part in parts) - sum(overlaps) + 8
    canvas = np.zeros((28, width), np.uint8)
    start = 4
    for index, part in enumerate(parts):
        if index:
            start -= overlaps[index - 1]
        window = canvas[:, start : start + part.shape[1]]
        np.maximum(window, part, out=window)
        start += part.shape[1]
    ink = Image.fromarray(255 - canvas).resize((width * 5, 140), Image.Resampling.BICUBIC)
    page = Image.new("L", (max(640, width * 5 + 40), 480), 255)
    page.paste(ink, (20, 170))
    buffer = io.BytesIO()
    page.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_interlocked_pairs_read_as_no_digit_inside_a_number(
    classifier: Classifier, mnist: Mnist
) -> None:
    # An interlocked pair between two spaced digits, 1.2 times as wide as tall: read whole,
    # the model often calls the pair no digit. Such a crop among digits is now cut where the
    # two may meet, the whole path kept off the sides (core.choice), and the cut kept when
    # both parts are digits; otherwise the pair is left out as "read as no digit", never
    # silently.
    first, last = ink_columns(mnist.x_test[0]), ink_columns(mnist.x_test[1])  # a 7 and a 2
    answers, silent = [], []
    for index in range(100, 1000, 2):
        left, right = ink_columns(mnist.x_test[index]), ink_columns(mnist.x_test[index + 1])
        overlap = left.shape[1] + right.shape[1] - 24  # MNIST digits are 20 pixels tall
        if overlap <= 0 or overlap > 0.35 * min(left.shape[1], right.shape[1]):
            continue
        result = classifier.classify(number_photo([first, left, right, last], [-6, overlap, -6]))
        label = f"7{mnist.y_test[index]}{mnist.y_test[index + 1]}2"
        answers.append((label, result.number))
        if result.number == "72" and NOT_A_DIGIT not in [item.reason for item in result.rejected]:
            silent.append(label)
        if len(answers) == 30:
            break
    assert not silent, silent
    # Measured 11 of 30 exact (10 with the first pass's cuts alone); 9 pairs are left out
    # as no digit, the rest read as one digit.
    assert sum(label == number for label, number in answers) >= 10, answers


def broken(digit: np.ndarray, scale: float = 0.75) -> np.ndarray | None:
    """The digit drawn `scale` times as tall as its neighbours, on their baseline, with a
    two-pixel band across its middle erased (a pen that skipped, a squared paper's line removed
    where the stroke ran along it); None unless that leaves it in two pieces."""
    side = round(28 * scale)
    small = np.zeros_like(digit)
    start = (28 - side) // 2
    small[28 - side :, start : start + side] = cv2.resize(digit, (side, side))
    rows = np.flatnonzero(small.max(axis=1) > 0)
    middle = (int(rows[0]) + int(rows[-1])) // 2
    small[middle - 1 : middle + 1] = 0
    count, _ = cv2.connectedComponents((small > 40).astype(np.uint8))
    return ink_columns(small) if count == 3 else None


def test_a_digit_broken_in_two_pieces_is_not_dropped(classifier: Classifier, mnist: Mnist) -> None:
    # A smaller digit in two pieces, each much shorter than the digits beside it and farther
    # from them than a 5's cap from its body, was left out as two "small marks beside the
    # digits". Two such marks close together and as tall as a digit are one digit
    # (core.segmentation).
    first, last = ink_columns(mnist.x_test[0]), ink_columns(mnist.x_test[1])  # a 7 and a 2
    answers = []
    for index in range(200, 1000):
        parts = broken(mnist.x_test[index])
        if parts is None:
            continue
        result = classifier.classify(number_photo([first, parts, last], [-8, -8]))
        answers.append((f"7{mnist.y_test[index]}2", result.number))
        if len(answers) == 30:
            break
    lengths = [len(number) for _, number in answers]
    # Measured 26 of 30 three digits long and 17 exact (6 and 1 before: most broken digits
    # were dropped).
    assert lengths.count(3) >= 24, answers
    assert sum(label == number for label, number in answers) >= 14, answers


def test_a_first_digit_broken_in_two_pieces_is_not_dropped(
    classifier: Classifier, mnist: Mnist
) -> None:
    # The same at the start of a number: the two pieces lay outside the line's band and were
    # left out as "small marks away from the writing". Together digit-tall and level with the
    # line, near its end, they join it (core.segmentation._broken_line_ends).
    second, last = ink_columns(mnist.x_test[0]), ink_columns(mnist.x_test[1])  # a 7 and a 2
    answers = []
    for index in range(200, 1000):
        parts = broken(mnist.x_test[index])
        if parts is None:
            continue
        result = classifier.classify(number_photo([parts, second, last], [-8, -8]))
        answers.append((f"{mnist.y_test[index]}72", result.number))
        if len(answers) == 30:
            break
    lengths = [len(number) for _, number in answers]
    # Measured 29 of 30 three digits long and 20 exact (5 and 0 before).
    assert lengths.count(3) >= 26, answers
    assert sum(label == number for label, number in answers) >= 16, answers
