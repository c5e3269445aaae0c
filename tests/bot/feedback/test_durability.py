"""Nothing lost: concurrent writes all kept, acknowledged samples survive a SIGKILL."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from bot.feedback.schema import sample_digits_table
from bot.feedback.store import FeedbackStore
from tests.bot.feedback.conftest import SALT, record
from tests.conftest import ROOT


def test_concurrent_writes_are_all_kept(database_url: str) -> None:
    threads, writes = 8, 50
    with FeedbackStore(database_url, SALT, max_confirmations_total=10_000) as store:

        def write_many(thread: int) -> list[tuple[int, str]]:
            written = []
            for index in range(writes):
                predicted = f"{thread}{index % 10}"
                sample_id = record(
                    store,
                    predicted,
                    seed=thread * 1000 + index,
                    user_id=thread,
                    chat_id=-100 - thread,
                    message_id=index,
                    chat_type="group",
                )
                if index % 5 == 0:
                    store.confirm(chat_id=-100 - thread, message_id=index, user_id=thread)
                written.append((sample_id, predicted))
            return written

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = [item for batch in pool.map(write_many, range(threads)) for item in batch]

        assert len({sample_id for sample_id, _ in results}) == threads * writes
        for sample_id, predicted in results:
            stored = store.get(sample_id)
            assert stored is not None and stored.predicted == predicted
        with store.engine.connect() as connection:
            digit_rows = connection.execute(
                select(func.count()).select_from(sample_digits_table)
            ).scalar_one()
        assert digit_rows == threads * writes * 2
        stats = store.stats()
        assert (stats.collected, stats.confirmed) == (threads * writes, threads * writes // 5)


CRASH_CHILD = """
import sys
import numpy as np
from bot.feedback.store import FeedbackStore

store = FeedbackStore(sys.argv[1], "crash-salt", max_confirmations_total=10**6,
                      max_confirmations_per_day=10**6)
rng = np.random.default_rng(0)
index = 0
while True:
    crops = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    [sample_id] = store.transact([store.recording(
        crops=crops, predicted=f"{index % 10}{(index + 1) % 10}", confidences=[0.5, 0.6],
        model_version="crash", chat_type="group", chat_id=-1, user_id=index % 7,
        message_id=index)])
    store.confirm(sample_id=sample_id, user_id=99, confirmed=f"{(index + 3) % 100:02d}")
    # Printed only after both commits returned: the parent may rely on every printed id.
    print(sample_id, index, flush=True)
    index += 1
"""


def test_samples_survive_a_kill_in_the_middle_of_a_burst(database_url: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, database_url],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    acknowledged: dict[int, int] = {}
    try:
        while len(acknowledged) < 60:
            line = lines.get(timeout=60)
            if line is None:
                break
            sample_id, index = map(int, line.split())
            acknowledged[sample_id] = index
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    reader.join(timeout=30)
    while (line := lines.get_nowait()) is not None:  # ids printed just before the kill
        sample_id, index = map(int, line.split())
        acknowledged[sample_id] = index
    stderr = child.stderr.read() if child.stderr else ""
    assert child.returncode == -signal.SIGKILL, f"the writer died on its own:\n{stderr}"
    assert len(acknowledged) >= 60, f"the writer stopped early:\n{stderr}"

    with FeedbackStore(database_url, "crash-salt") as reopened:
        if reopened.url.get_backend_name() == "sqlite":
            with reopened.engine.connect() as connection:
                check = connection.exec_driver_sql("PRAGMA integrity_check").scalar()
            assert check == "ok"
        for sample_id, index in acknowledged.items():
            stored = reopened.get(sample_id)
            assert stored is not None, f"sample {sample_id} was acknowledged but is gone"
            assert stored.predicted == f"{index % 10}{(index + 1) % 10}"
            assert stored.confirmed == f"{(index + 3) % 100:02d}"
        # The reopened store takes new writes after the crash.
        assert record(reopened, "1") > max(acknowledged)
