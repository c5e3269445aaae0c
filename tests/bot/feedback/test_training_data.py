"""The feedback store's training data, held-out slice, stats and MNIST-format export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.feedback.store import FeedbackStore
from tests.bot.feedback.conftest import SALT, FakeClock, random_crops, record


def test_exact_duplicates_are_merged(store: FeedbackStore) -> None:
    crop = random_crops(1, seed=11)
    first = record(store, "6", crops=crop, user_id=1)
    second = record(store, "6", crops=crop, user_id=2)
    relabelled = record(store, "6", crops=crop, user_id=3)
    other = record(store, "6", seed=12, user_id=4)
    store.confirm(sample_id=first, user_id=1)
    store.confirm(sample_id=second, user_id=2)
    store.confirm(sample_id=relabelled, user_id=3, confirmed="5")
    store.confirm(sample_id=other, user_id=4)

    everything = store.training_samples(include_holdout=True)
    assert len(everything.y) == 3
    by_label = {
        (int(label), image.tobytes()): int(count)
        for image, label, count in zip(everything.x, everything.y, everything.counts, strict=True)
    }
    assert by_label[(6, crop[0].tobytes())] == 2
    assert by_label[(5, crop[0].tobytes())] == 1
    # Stats still count every confirmed answer.
    assert store.stats().confirmed == 4


def test_multi_digit_numbers_give_one_row_per_digit_when_lengths_match(
    store: FeedbackStore,
) -> None:
    crops = random_crops(4, seed=21)
    year = record(store, "2026", crops=crops)
    misread = record(store, "17", seed=22)
    store.confirm(sample_id=year, user_id=1, confirmed="2028")
    store.confirm(sample_id=misread, user_id=1, confirmed="117")  # a digit was missed: no rows

    samples = store.training_samples(include_holdout=True)
    assert samples.x.shape == (4, 28, 28) and samples.x.dtype == np.uint8
    assert samples.y.dtype == np.uint8
    assert samples.y.tolist() == [2, 0, 2, 8]
    assert np.array_equal(samples.x, crops)
    assert samples.counts.tolist() == [1, 1, 1, 1]


def test_holdout_split_is_deterministic_and_disjoint(database_url: str, clock: FakeClock) -> None:
    crops = random_crops(200, seed=31)
    with FeedbackStore(
        database_url,
        SALT,
        clock=clock,
        max_confirmations_per_day=1000,
        max_confirmations_total=1000,
    ) as store:
        for index in range(200):
            sample_id = record(store, str(index % 10), crops=crops[index : index + 1])
            store.confirm(sample_id=sample_id, user_id=1)
        record(store, "9", seed=32)  # unconfirmed: in neither part
        train = store.training_samples(include_holdout=False)
        holdout = store.holdout_samples()
        everything = store.training_samples(include_holdout=True)

    train_images = {image.tobytes() for image in train.x}
    holdout_images = {image.tobytes() for image in holdout.x}
    assert not train_images & holdout_images
    assert len(train.y) + len(holdout.y) == 200 == len(everything.y)
    assert train_images | holdout_images == {image.tobytes() for image in crops}
    assert 20 <= len(holdout.y) <= 60  # about 20 % of 200
    for image, label in zip(holdout.x, holdout.y, strict=True):
        index = next(i for i in range(200) if np.array_equal(crops[i], image))
        assert label == index % 10

    with FeedbackStore(database_url, SALT, clock=clock) as reopened:
        again = reopened.holdout_samples()
    assert np.array_equal(again.x, holdout.x) and np.array_equal(again.y, holdout.y)


def test_empty_store_gives_empty_arrays_and_no_accuracy(store: FeedbackStore) -> None:
    samples = store.training_samples(include_holdout=True)
    assert samples.x.shape == (0, 28, 28) and samples.y.shape == (0,)
    stats = store.stats()
    assert (stats.collected, stats.confirmed, stats.live_accuracy) == (0, 0, None)
    assert stats.confusion == [[0] * 10 for _ in range(10)]


def test_stats_count_answers_accuracy_and_confusion(store: FeedbackStore) -> None:
    right = record(store, "3", seed=1)
    wrong = record(store, "8", seed=2)
    number = record(store, "17", seed=3)
    record(store, "5", seed=4)  # never confirmed
    other_model = record(store, "9", seed=5, model_version="v2")
    store.confirm(sample_id=right, user_id=1)
    store.confirm(sample_id=wrong, user_id=1, confirmed="3")
    store.confirm(sample_id=number, user_id=1, confirmed="71")
    store.confirm(sample_id=other_model, user_id=1)

    stats = store.stats()
    assert (stats.collected, stats.confirmed) == (5, 4)
    assert (stats.confirmed_right, stats.confirmed_wrong) == (2, 2)
    assert stats.live_accuracy == pytest.approx(0.5)
    expected = np.zeros((10, 10), dtype=int)
    expected[3, 3] += 1  # right
    expected[3, 8] += 1  # 8 that was a 3
    expected[7, 1] += 1  # "17" that was "71"
    expected[1, 7] += 1
    expected[9, 9] += 1
    assert np.array_equal(np.array(stats.confusion), expected)

    only_v2 = store.stats(model_version="v2")
    assert (only_v2.collected, only_v2.confirmed, only_v2.live_accuracy) == (1, 1, 1.0)


def test_export_npz_writes_mnist_format(store: FeedbackStore, tmp_path: Path) -> None:
    for seed in range(40):
        sample_id = record(store, str(seed % 10), seed=seed)
        store.confirm(sample_id=sample_id, user_id=seed)
    year = record(store, "1984", seed=99)
    store.confirm(sample_id=year, user_id=1)

    target = tmp_path / "out" / "feedback.npz"
    counts = store.export_npz(target)
    with np.load(target) as data:
        assert sorted(data.files) == ["x_test", "x_train", "y_test", "y_train"]
        arrays = {key: data[key] for key in data.files}
    assert counts.train + counts.test == 44
    assert arrays["x_train"].shape == (counts.train, 28, 28)
    assert arrays["x_test"].shape == (counts.test, 28, 28)
    for key in arrays:
        assert arrays[key].dtype == np.uint8
    assert np.array_equal(arrays["x_test"], store.holdout_samples().x)
    assert np.array_equal(arrays["y_train"], store.training_samples().y)
    assert not list(target.parent.glob(".feedback.npz.*"))  # no temporary file left behind
