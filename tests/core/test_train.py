"""A short training run on a 2k subset: artifacts, metadata, atomic promotion, LiteRT parity."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import registry
from core.data import Mnist, split_validation
from core.evaluate import evaluate_probabilities, top_k
from core.recipes import FINE_TUNE, RECIPES, EpochReport, ExtraSamples
from core.serving import Classifier
from core.train import train_candidate, user_copies


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, mnist_path: Path
) -> tuple[Path, list[EpochReport]]:
    """One seed-architecture run on 2000 images, shared by the tests below."""
    model_dir = tmp_path_factory.mktemp("models")
    reports: list[EpochReport] = []
    staging = train_candidate(
        mnist_path=mnist_path,
        model_dir=model_dir,
        arch="seed",
        epochs=2,
        train_limit=2000,
        seed=1,
        progress=reports.append,
        command="pytest short run",
        verbose=0,
    )
    return staging, reports


def test_artifact_set_is_complete(trained: tuple[Path, list[EpochReport]]) -> None:
    staging, reports = trained
    for name in ("model.keras", "model.tflite", "metadata.json", "curves.png", "confusion.png"):
        assert (staging / name).stat().st_size > 0, name
    metadata = json.loads((staging / "metadata.json").read_text())
    assert metadata["arch"] == "seed"
    assert metadata["epochs"] == 2 and metadata["batch_size"] == 64
    assert metadata["validation_split"] == 0.25 and metadata["seed"] == 1
    assert metadata["train_count"] == 2000
    assert metadata["command"] == "pytest short run"
    assert len(metadata["history"]["val_accuracy"]) == 2
    assert len(metadata["per_class_accuracy"]) == 10
    assert np.asarray(metadata["confusion"]).sum() == 10_000
    # 2 epochs on 1500 images already learn a lot; chance is 10 %.
    assert metadata["test_accuracy"] > 0.75
    assert [report.epoch for report in reports] == [1, 2]
    assert reports[-1].seconds_left == 0 and reports[0].val_accuracy is not None


def test_promotion_is_atomic_and_served(
    trained: tuple[Path, list[EpochReport]], tmp_path: Path
) -> None:
    staging, _ = trained
    model_dir = tmp_path / "models"
    copy = _copy(staging, model_dir)
    version = registry.promote(model_dir, copy)
    assert registry.current_version(model_dir) == version
    assert not copy.exists()
    classifier = Classifier(model_dir)
    assert classifier.version == version


def test_litert_and_keras_agree(
    trained: tuple[Path, list[EpochReport]], mnist: Mnist, tmp_path: Path
) -> None:
    staging, _ = trained
    model_dir = tmp_path / "models"
    version = registry.promote(model_dir, _copy(staging, model_dir))
    litert = Classifier(model_dir, backend="litert")
    keras = Classifier(model_dir, backend="keras")
    assert (litert.backend, keras.backend) == ("litert", "keras")
    batch = mnist.x_test[:64].astype(np.float32) / 255.0
    np.testing.assert_allclose(litert.predict(batch), keras.predict(batch), atol=1e-5)
    # One image at a time (the bot's path) gives the same rows as the batch.
    np.testing.assert_allclose(litert.predict(batch[:1]), litert.predict(batch)[:1], atol=1e-6)
    assert version == litert.version


def test_promote_refuses_incomplete(tmp_path: Path) -> None:
    staging = registry.staging_dir(tmp_path)
    (staging / "metadata.json").write_text("{}")
    with pytest.raises(registry.RegistryError, match="incomplete"):
        registry.promote(tmp_path, staging)


def test_failed_training_leaves_no_staging(tmp_path: Path, mnist_path: Path) -> None:
    with pytest.raises(ValueError, match="train_limit"):
        train_candidate(mnist_path=mnist_path, model_dir=tmp_path, arch="seed", train_limit=3)
    with pytest.raises(ValueError, match="unknown architecture"):
        train_candidate(mnist_path=mnist_path, model_dir=tmp_path, arch="resnet")
    assert list(tmp_path.glob(".staging-*")) == []


def test_the_same_seed_trains_the_same_model(tmp_path: Path, mnist_path: Path) -> None:
    """`digitbot train --seed` reproduces a run bit for bit (augmentation, shuffling and the
    order of the arithmetic); another seed gives another model."""
    losses = []
    for run, seed in (("first", 5), ("again", 5), ("other", 6)):
        staging = train_candidate(
            mnist_path=mnist_path,
            model_dir=tmp_path / run,
            arch="compact",
            epochs=1,
            train_limit=1200,
            seed=seed,
            command="pytest reproducibility",
            verbose=0,
        )
        losses.append(json.loads((staging / registry.METADATA_FILE).read_text())["test_loss"])
    assert losses[0] == losses[1]
    assert losses[2] != losses[0]


def test_validation_split_matches_keras() -> None:
    images = np.arange(100)
    labels = np.arange(100)
    train_x, _, val_x, _ = split_validation(images, labels, 0.25)
    assert len(train_x) == 75 and val_x[0] == 75  # the last quarter, as validation_split does
    with pytest.raises(ValueError):
        split_validation(images, labels, 1.0)


def test_top3_sorted_and_bounded() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        probabilities = rng.dirichlet(np.ones(10))
        best = top_k(probabilities, 3)
        values = [value for _, value in best]
        assert values == sorted(values, reverse=True)
        assert sum(values) <= 1.0 + 1e-6
        assert best[0][0] == int(np.argmax(probabilities))


def test_evaluation_numbers() -> None:
    probabilities = np.eye(10)[[0, 1, 2, 2]] * 0.9 + 0.01
    evaluation = evaluate_probabilities(probabilities, np.array([0, 1, 2, 3]))
    assert evaluation.accuracy == 0.75
    assert evaluation.confusion[3][2] == 1
    assert evaluation.per_class_accuracy[3] == 0.0


def _copy(staging: Path, model_dir: Path) -> Path:
    copy = registry.staging_dir(model_dir)
    for item in staging.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    return copy


def test_a_short_run_never_ends_worse_than_its_raw_weights(
    tmp_path: Path, mnist_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's `digitbot train --train-limit 2000 --epochs 1`: Keras' weight average was
    98 % the weights after step 1 and scored 11 %. Now the average is bias-corrected and kept
    only if its validation loss beats the raw weights'. On MNIST alone, as in the issue: with
    the recipe's generated samples too (18 steps) even the raw weights reach only 17 % (38 %
    without them), a different question from the average's."""
    monkeypatch.setitem(RECIPES, "compact", replace(RECIPES["compact"], generated=0.0))
    staging = train_candidate(
        mnist_path=mnist_path,
        model_dir=tmp_path,
        arch="compact",
        epochs=1,
        train_limit=2000,
        seed=0,
        verbose=0,
    )
    metadata = json.loads((staging / registry.METADATA_FILE).read_text())
    ending = metadata["ending"]
    assert ending["weights"] in ("average", "raw")
    assert ending["average_first_step_share"] == pytest.approx(0.999**14)  # 15 steps
    kept_loss = min(ending["average_val_loss"], ending["raw_val_loss"])
    assert ending[f"{ending['weights']}_val_loss"] == kept_loss
    # The raw weights' validation accuracy after that one epoch; the test set must agree.
    raw_accuracy = metadata["history"]["val_accuracy"][-1]
    assert metadata["test_accuracy"] >= raw_accuracy - 0.05
    assert metadata["test_accuracy"] > 0.2  # it was 0.11


def test_fine_tuning_starts_from_the_served_model(tmp_path: Path, mnist_path: Path) -> None:
    """`/retrain` warm-starts from model.keras: a few steps keep the shipped accuracy and the
    result records where it came from; the class count is read from the model."""
    served = Path(__file__).resolve().parents[2] / "models"
    folder = registry.version_dir(served)
    shipped = registry.read_metadata(served)
    rng = np.random.default_rng(0)
    extra = ExtraSamples(
        images=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        labels=np.arange(8, dtype=np.uint8),
        weight=3.0,
    )
    staging = train_candidate(
        mnist_path=mnist_path,
        model_dir=tmp_path,
        arch=shipped["arch"],
        epochs=1,
        train_limit=2000,
        seed=0,
        extra_samples=extra,
        fine_tune_from=folder,
        verbose=0,
    )
    metadata = json.loads((staging / registry.METADATA_FILE).read_text())
    assert metadata["fine_tuned_from"] == folder.name
    assert metadata["learning_rate"] == FINE_TUNE.learning_rate
    assert metadata["user_samples"] == 8
    # From scratch, 15 steps give ~30 %; from the served weights the accuracy stays.
    assert metadata["test_accuracy"] >= shipped["test_accuracy"] - 0.005
    with pytest.raises(ValueError, match="cannot fine-tune"):
        train_candidate(mnist_path=mnist_path, model_dir=tmp_path, fine_tune_from=tmp_path)


def test_corrected_digits_get_their_own_share_of_each_epoch() -> None:
    """400 confirmed digits, 10 of them corrected, among 55,000 MNIST images: all of them make
    a tenth of an epoch, the corrected ones a further 2 % on their own (capped at 100 copies)."""
    images = np.zeros((400, 28, 28), np.uint8)
    corrected = np.zeros(400, bool)
    corrected[:10] = True
    extra = ExtraSamples(images, np.zeros(400, np.uint8), share=0.1, corrected=corrected)
    assert set(user_copies(extra, 55_000)) == {15}  # no corrected share: like the others
    extra.corrected_share = 0.02
    copies = user_copies(extra, 55_000)
    assert set(copies[~corrected]) == {15}
    assert set(copies[corrected]) == {100}  # 0.02 * 55,000 / 10 = 110, capped
    corrected[:] = True  # all corrected: never fewer copies than the common share gives
    assert set(user_copies(extra, 55_000)) == {15}
    with pytest.raises(ValueError, match="corrected flags"):
        user_copies(ExtraSamples(images, np.zeros(400, np.uint8), corrected=corrected[:3]), 10)
