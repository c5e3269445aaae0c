"""What the feedback store keeps of an answer (crops, salted hashes, never raw ids) and what
/forget deletes."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from sqlalchemy import select

from bot.feedback.samples import ConfirmStatus
from bot.feedback.schema import sample_digits_table, samples_table
from bot.feedback.store import FeedbackStore
from tests.bot.conftest import store_answer
from tests.bot.feedback.conftest import SALT, random_crops, record

# -- recording -------------------------------------------------------------------------------


def test_record_keeps_crops_and_salted_hashes_never_raw_ids(store: FeedbackStore) -> None:
    user_id, chat_id = 424242, -100777888
    float_crop = np.zeros((28, 28), dtype=np.float32)
    float_crop[10:18, 12:16] = 1.0
    float_crop[0, 0] = 0.5
    uint8_crop = random_crops(1, seed=3)[0]
    sample_id = store_answer(
        store,
        crops=[float_crop, uint8_crop],
        predicted="47",
        confidences=[0.93, 0.61],
        model_version="20260115-1200",
        chat_type="supergroup",
        chat_id=chat_id,
        user_id=user_id,
        message_id=55,
    )

    with store.engine.connect() as connection:
        sample = connection.execute(select(samples_table)).one()
        digits = connection.execute(
            select(sample_digits_table).order_by(sample_digits_table.c.position)
        ).all()
    expected_user = hmac.new(SALT.encode(), f"user:{user_id}".encode(), hashlib.sha256).hexdigest()
    expected_chat = hmac.new(SALT.encode(), f"chat:{chat_id}".encode(), hashlib.sha256).hexdigest()
    assert sample.id == sample_id
    assert sample.user_hash == expected_user
    assert sample.chat_hash == expected_chat
    assert (sample.predicted, sample.digit_count, sample.message_id) == ("47", 2, 55)
    assert (sample.chat_type, sample.model_version) == ("supergroup", "20260115-1200")
    assert sample.confidence == pytest.approx(0.61)
    assert sample.confirmed is None and sample.correct is None and sample.confirmed_at is None
    raw_ids = {str(user_id), str(chat_id), user_id, chat_id}
    for row in [sample, *digits]:
        for value in row:
            assert value not in raw_ids
            assert not (isinstance(value, str) and (str(user_id) in value or str(chat_id) in value))

    assert [row.position for row in digits] == [0, 1]
    assert [row.predicted for row in digits] == [4, 7]
    assert [row.confidence for row in digits] == pytest.approx([0.93, 0.61])
    first = np.frombuffer(digits[0].crop, dtype=np.uint8).reshape(28, 28)
    assert first[12, 13] == 255 and first[0, 0] == 128 and first[1, 1] == 0
    assert bytes(digits[1].crop) == uint8_crop.tobytes()

    stored = store.get(sample_id)
    assert stored is not None
    assert stored.predicted == "47" and stored.confidences == pytest.approx([0.93, 0.61])
    assert stored.created_at.tzinfo is not None
    assert store.find(chat_id, 55) == stored
    assert store.find(chat_id, 56) is None
    assert store.find(chat_id + 1, 55) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"predicted": "7a"}, "predicted must be"),
        ({"predicted": ""}, "predicted must be"),
        ({"crops": np.zeros((1, 28, 27), dtype=np.uint8)}, "28x28"),
        ({"crops": np.zeros((2, 28, 28), dtype=np.uint8)}, "one crop and one confidence"),
        ({"confidences": [0.5, 0.5]}, "one crop and one confidence"),
        ({"confidences": [1.5]}, r"\[0, 1\]"),
        ({"crops": np.full((1, 28, 28), 2.0, dtype=np.float32)}, r"\[0, 1\]"),
        ({"crops": np.zeros((1, 28, 28), dtype=np.int32)}, "uint8 or float"),
        ({"chat_type": "channel"}, "chat_type"),
        ({"model_version": ""}, "model_version"),
    ],
)
def test_record_rejects_bad_input(
    store: FeedbackStore, changes: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "crops": np.zeros((1, 28, 28), dtype=np.uint8),
        "predicted": "3",
        "confidences": [0.5],
        "model_version": "v1",
        "chat_type": "private",
        "chat_id": 1,
        "user_id": 1,
    }
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        store_answer(store, **arguments)
    assert store.stats().collected == 0


def test_link_message_lets_a_button_find_the_sample(store: FeedbackStore) -> None:
    sample_id = record(store, "5", chat_id=-100123)
    assert store.find(-100123, 77) is None
    assert store.transact([store.linking(sample_id, 77)])[0] is True
    found = store.find(-100123, 77)
    assert found is not None and found.sample_id == sample_id
    assert store.transact([store.linking(sample_id + 1000, 78)])[0] is False


# -- forgetting ------------------------------------------------------------------------------


def test_forget_deletes_what_the_user_sent_and_withdraws_their_confirmations(
    store: FeedbackStore,
) -> None:
    ann, bob = 1001, 2002
    ann_first = record(store, "1", user_id=ann, seed=1)
    ann_second = record(store, "22", user_id=ann, seed=2)
    bob_sample = record(store, "3", user_id=bob, seed=3)
    bob_own = record(store, "4", user_id=bob, seed=4)
    store.confirm(sample_id=ann_first, user_id=ann, confirmed="7")
    store.confirm(sample_id=bob_sample, user_id=ann, confirmed="8")  # Ann labelled Bob's photo
    store.confirm(sample_id=bob_own, user_id=bob)

    assert store.forget(ann) == 3
    assert store.get(ann_first) is None and store.get(ann_second) is None
    withdrawn = store.get(bob_sample)
    assert withdrawn is not None and withdrawn.confirmed is None and withdrawn.correct is None
    kept = store.get(bob_own)
    assert kept is not None and kept.confirmed == "4"
    with store.engine.connect() as connection:
        left = connection.execute(select(sample_digits_table.c.sample_id)).scalars().all()
        hashes = connection.execute(
            select(samples_table.c.user_hash, samples_table.c.confirmer_hash)
        ).all()
    assert sorted(left) == [bob_sample, bob_own]  # the deleted samples' crops went too
    assert store.user_hash(ann) not in {value for row in hashes for value in row}
    assert store.forget(ann) == 0
    # The withdrawn sample can be confirmed again; new ids never reuse a deleted one.
    assert store.confirm(sample_id=bob_sample, user_id=bob).status is ConfirmStatus.CONFIRMED
    assert record(store, "5", user_id=bob, seed=5) > bob_own
