"""An honest confidence: temperature scaling, the "no digit" class, `sure`, generated samples and
the real-digits benchmark."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core import synthetic
from core.bench.real import real_benchmark
from core.data import Mnist
from core.evaluate import evaluate_probabilities, fit_temperature
from core.model import NO_DIGIT
from core.preprocess import prepare
from core.serving import Classifier, calibrate


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_the_fitted_temperature_undoes_overconfidence() -> None:
    """Labels drawn from softmax(z); a model that reports softmax(2.5 z) is overconfident by a
    temperature of 2.5, and fitting on held-out labels finds it."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (20_000, 11))
    truth = softmax(logits)
    labels = np.array([rng.choice(11, p=row) for row in truth])
    temperature = fit_temperature(softmax(2.5 * logits), labels)
    assert 2.3 < temperature < 2.7
    assert np.allclose(calibrate(softmax(2.5 * logits), temperature), truth, atol=0.03)
    assert calibrate(truth, 1.0) is truth


def test_no_digit_answers_count_as_wrong_on_a_digit_test_set() -> None:
    probabilities = np.zeros((4, 11))
    probabilities[[0, 1, 2, 3], [0, 1, NO_DIGIT, 2]] = 1.0
    evaluation = evaluate_probabilities(probabilities, np.array([0, 1, 2, 3]))
    assert evaluation.accuracy == 0.5
    assert evaluation.per_class_accuracy[2] == 0.0 and evaluation.confusion[3][2] == 1
    assert sum(map(sum, evaluation.confusion)) == 3  # the "no digit" answer is in no cell


def test_a_crop_the_model_calls_no_digit_is_not_answered(model_dir: Path) -> None:
    """With a "no digit" class, crops whose likeliest class it is are dropped: a photo of only
    such things gets "no digit", and `digit: null` in predict --json."""
    classifier = Classifier(model_dir)
    picture = np.full((300, 300), 230, np.uint8)
    cv2.putText(picture, "A", (80, 230), cv2.FONT_HERSHEY_SIMPLEX, 6, 30, 12)
    assert len(prepare(synthetic.encode_png(picture)).digits) == 1

    def rejecting(batch: np.ndarray) -> np.ndarray:
        rows = np.full((len(batch), 11), 1e-4, np.float32)
        rows[:, NO_DIGIT] = 0.999  # still above NO_DIGIT_SURE after the temperature
        return rows

    classifier._model = rejecting
    answer = classifier.classify(synthetic.encode_png(picture))
    assert answer.digits == []
    assert answer.as_json("a.png", 0.6)["digit"] is None


def test_a_crop_that_is_only_maybe_no_digit_is_a_digit_not_sure(model_dir: Path) -> None:
    """Below NO_DIGIT_SURE the likeliest digit is answered, with its low probability."""
    classifier = Classifier(model_dir)
    picture = np.full((300, 300), 230, np.uint8)
    cv2.putText(picture, "4", (80, 230), cv2.FONT_HERSHEY_SIMPLEX, 6, 30, 12)

    def doubting(batch: np.ndarray) -> np.ndarray:
        rows = np.full((len(batch), 11), 0.01, np.float32)
        rows[:, NO_DIGIT], rows[:, 4] = 0.6, 0.31
        return rows

    classifier._model = doubting
    answer = classifier.classify(synthetic.encode_png(picture))
    assert [digit.digit for digit in answer.digits] == [4]
    assert answer.as_json("a.png", 0.6)["sure"] is False


def test_sure_is_the_bot_decision_in_predict_json(model_dir: Path, mnist: Mnist) -> None:
    classifier = Classifier(model_dir)
    digit = 255 - cv2.resize(mnist.x_test[0], (200, 200), interpolation=cv2.INTER_CUBIC)
    answer = classifier.classify(synthetic.encode_png(digit))
    payload = answer.as_json("d.png", 0.6)
    assert payload["sure"] == (answer.digits[0].confidence >= 0.6)
    assert payload["digits"][0]["sure"] == payload["sure"]
    assert answer.as_json("d.png", 1.01)["sure"] is False


@pytest.mark.parametrize("kind", synthetic.NON_DIGIT_KINDS)
def test_every_kind_of_non_digit_is_a_picture(kind: str) -> None:
    rng = np.random.default_rng(1)
    picture = synthetic.non_digit_picture(kind, rng)
    assert picture.shape == (128, 128) and picture.dtype == np.uint8
    if kind == "empty paper":
        assert prepare(synthetic.encode_png(picture)).digits == []


def test_a_one_like_stroke_is_never_a_no_digit_sample() -> None:
    """Upright or slanted bars look like a 1 and stay out of the "no digit" samples; a lying
    bar (a dash) and a ring do not."""
    pictures = {name: np.zeros((28, 28), np.float32) for name in ("1", "/", "-", "o")}
    cv2.line(pictures["1"], (14, 4), (14, 24), 1.0, 2)
    cv2.line(pictures["/"], (20, 4), (8, 24), 1.0, 2)
    cv2.line(pictures["-"], (4, 14), (24, 15), 1.0, 2)
    cv2.circle(pictures["o"], (14, 14), 9, 1.0, 2)
    assert {name: synthetic.is_one_stroke(crop) for name, crop in pictures.items()} == {
        "1": True,
        "/": True,
        "-": False,
        "o": False,
    }


def test_generated_samples_are_crops_with_labels(mnist: Mnist) -> None:
    images, labels = synthetic.generated_samples(mnist.x_train[:200], mnist.y_train[:200], 60, 3)
    assert images.shape == (60, 28, 28) and images.dtype == np.uint8
    assert np.count_nonzero(labels == NO_DIGIT) == 30
    assert set(labels[labels != NO_DIGIT].tolist()) <= set(range(10))
    assert images.reshape(60, -1).max(axis=1).min() > 100  # every sample holds ink


def test_real_benchmark_counts_digits_and_empty_cells(
    model_dir: Path, tmp_path: Path, mnist: Mnist
) -> None:
    """A small labelled folder: two MNIST digits as scans and an empty cell."""
    folder = tmp_path / "real"
    folder.mkdir()
    rows = ["path,label,source,group"]
    for index in range(2):
        digit = 255 - cv2.resize(mnist.x_test[index], (84, 84), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{index}.png"), digit)
        rows.append(f"{index}.png,{mnist.y_test[index]},scans,a")
    cv2.imwrite(str(folder / "empty.png"), np.full((128, 128), 220, np.uint8))
    rows.append("empty.png,none,cells,")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    lines: list[str] = []
    results = real_benchmark(
        model_dir, folder, confidence_threshold=0.6, non_digits=2, print_line=lines.append
    )
    assert results["scans"]["images"] == 2 and results["scans"]["accuracy"] == 1.0
    assert results["cells"]["empty_accuracy"] == 1.0
    assert 0.0 <= results["non_digits"] <= 1.0
    assert any("generated non-digits" in line for line in lines)


def test_calibrate_fits_on_validation_digits_and_serving_applies_it(
    model_dir: Path, mnist_path: Path, mnist: Mnist
) -> None:
    """`digitbot calibrate` writes the temperature that fits the held-out validation digits
    into the served version's metadata; the shipped model carries that very temperature."""
    from bot.cli import main
    from core import registry
    from tests.conftest import ROOT

    shipped = registry.read_metadata(ROOT / "models")
    assert main(["calibrate", "--model-dir", str(model_dir), "--mnist-path", str(mnist_path)]) == 0
    temperature = registry.read_metadata(model_dir)["temperature"]
    assert 0.5 < temperature < 5.0 and temperature == shipped["temperature"]
    classifier = Classifier(model_dir)
    batch = mnist.x_test[:50].astype(np.float32) / 255.0
    raw = classifier.predict(batch, calibrated=False)
    assert np.allclose(classifier.predict(batch), calibrate(raw, temperature), atol=1e-6)
