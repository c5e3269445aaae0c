"""Regression over the committed phone-photo fixtures (tests/fixtures/photos/): the shipped model
through the one preprocessing function must keep reading them. A change to core/preprocess.py
that loses the page's shadows, lines or thin strokes, or splits a single digit, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.serving import Classifier
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "photos"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(ROOT / "models")


def single_digit_fixtures() -> list[tuple[Path, str]]:
    """(path, label) of `<condition>-<test index>-label<d>.jpg`."""
    paths = sorted(path for path in FIXTURES.glob("*.jpg") if not path.name.startswith("number-"))
    return [(path, path.stem.rsplit("label", 1)[1]) for path in paths]


def number_fixtures() -> list[tuple[Path, str]]:
    """(path, label) of `number-<label>-<i>.jpg`."""
    return [(path, path.stem.split("-")[1]) for path in sorted(FIXTURES.glob("number-*.jpg"))]


def test_single_digit_fixtures(classifier: Classifier) -> None:
    fixtures = single_digit_fixtures()
    assert len(fixtures) == 34, "the fixture sample is 2 photos per condition"
    wrong, split = [], []
    for path, label in fixtures:
        answer = classifier.classify(path.read_bytes())
        if len(answer.digits) != 1:
            split.append((path.name, answer.number))
        if answer.number != label:
            wrong.append((path.name, answer.number))
    assert not split, f"a single digit must come out as one digit: {split}"
    assert len(wrong) <= 1, f"at least 33 of 34 must be right: {wrong}"


def test_number_fixtures(classifier: Classifier) -> None:
    fixtures = number_fixtures()
    assert len(fixtures) == 4
    answers = [(label, classifier.classify(path.read_bytes()).number) for path, label in fixtures]
    right = sum(label == number for label, number in answers)
    assert right >= 3, f"at least 3 of 4 numbers must be read exactly: {answers}"
