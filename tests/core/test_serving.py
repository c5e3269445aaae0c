"""The shipped model through the serving path: accuracy, photos, fall-back, reload."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import registry
from core.data import Mnist
from core.decode import ImageError
from core.evaluate import evaluate_probabilities
from core.serving import Classification, Classifier, ClassifierWorkers, ImageTimeoutError
from tests.conftest import ROOT, digit_photo


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(ROOT / "models")


def test_shipped_model_meets_its_recorded_accuracy(classifier: Classifier, mnist: Mnist) -> None:
    recorded = classifier.metadata["test_accuracy"]
    assert recorded >= 0.992, "the shipped model must reach 99.2 % (issue 2)"
    probabilities = classifier.predict(mnist.x_test.astype(np.float32) / 255.0)
    measured = evaluate_probabilities(probabilities, mnist.y_test).accuracy
    assert classifier.backend == "litert"
    # LiteRT and Keras differ by ~1e-6 in probability, which can flip no more than a tie.
    assert measured >= recorded - 0.0001, f"measured {measured:.4%} < recorded {recorded:.4%}"


def test_serving_does_not_import_tensorflow() -> None:
    import subprocess

    code = (
        "import sys; from core.serving import Classifier; c = Classifier('models');"
        "import numpy as np; c.predict(np.zeros((1, 28, 28), np.float32));"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == "False False"


def test_photos_of_test_digits(classifier: Classifier, mnist: Mnist) -> None:
    wrong = []
    for index in range(100):
        answer = classifier.classify(digit_photo(mnist.x_test[index], image_format="JPEG"))
        if answer.number != str(mnist.y_test[index]):
            wrong.append((index, answer.number))
        assert len(answer.digits[0].top3) == 3
    assert len(wrong) <= 2, wrong


def test_no_digit(classifier: Classifier) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buffer, "PNG")
    answer = classifier.classify(buffer.getvalue())
    assert answer.digits == [] and answer.number == "" and answer.confidence == 0.0
    assert answer.as_json("x.png", 0.6)["digit"] is None


def test_fallback_to_last_good_version(tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "models"
    shutil.copytree(ROOT / "models", model_dir)
    good = registry.current_version(model_dir)
    broken = model_dir / "29990101-000000-default"
    shutil.copytree(model_dir / good, broken)
    (broken / registry.TFLITE_FILE).write_bytes(b"not a flatbuffer")
    (broken / registry.KERAS_FILE).write_bytes(b"not a zip")
    (model_dir / registry.CURRENT_FILE).write_text(broken.name)
    classifier = Classifier(model_dir)
    assert classifier.version == good
    assert classifier.fallback_reason and broken.name in classifier.fallback_reason


def test_reload_swaps_version(tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "models"
    shutil.copytree(ROOT / "models", model_dir)
    classifier = Classifier(model_dir)
    newer = "29990101-000000-default"
    shutil.copytree(model_dir / classifier.version, model_dir / newer)
    (model_dir / registry.CURRENT_FILE).write_text(newer)
    assert classifier.reload() == newer and classifier.version == newer


def test_nothing_to_serve(tmp_path: Path) -> None:
    with pytest.raises(registry.RegistryError, match="no usable model"):
        Classifier(tmp_path)


async def test_workers_answer_like_the_classifier_and_follow_a_reload(
    model_dir: Path, mnist: Mnist
) -> None:
    import shutil

    classifier = Classifier(model_dir)
    workers = ClassifierWorkers(classifier, processes=1)
    try:
        photo = digit_photo(mnist.x_test[0], image_format="JPEG")
        here, there = classifier.classify(photo), await workers.classify(photo)
        assert there.number == here.number == str(mnist.y_test[0])
        np.testing.assert_array_equal(there.digits[0].crop, here.digits[0].crop)
        np.testing.assert_allclose(
            [p for _, p in there.digits[0].top3], [p for _, p in here.digits[0].top3], atol=1e-6
        )
        assert there.model_version == classifier.version
        with pytest.raises(ImageError, match="not an image"):
            await workers.classify(b"plain text, not an image")
        # A promotion: the parent reloads, and the worker follows on its next image.
        newer = "29990101-000000-default"
        shutil.copytree(model_dir / classifier.version, model_dir / newer)
        (model_dir / registry.CURRENT_FILE).write_text(newer)
        classifier.reload()
        assert (await workers.classify(photo)).model_version == newer
    finally:
        workers.shutdown()


CTRL_C_SCRIPT = """
import asyncio, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal, whatever ran us
from core.serving import Classifier, ClassifierWorkers

async def main() -> None:
    workers = ClassifierWorkers(Classifier(sys.argv[1]), processes=1)
    try:
        await workers.warm_up()
        (pid,) = workers.pids()
        os.kill(pid, signal.SIGINT)  # Ctrl-C reaches every process of the terminal's group
        await asyncio.sleep(0.3)
        answer = await workers.classify(open(sys.argv[2], "rb").read())
        print(answer.number, workers.pids() == [pid])
    finally:
        workers.shutdown()

asyncio.run(main())
"""


def test_ctrl_c_is_left_to_the_parent(model_dir: Path, mnist: Mnist, tmp_path: Path) -> None:
    import subprocess

    photo = tmp_path / "digit.jpg"
    photo.write_bytes(digit_photo(mnist.x_test[2], image_format="JPEG"))
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_SCRIPT, str(model_dir), str(photo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # The same worker answered: it did not die of the signal (and print a traceback).
    assert result.stdout.split() == [str(mnist.y_test[2]), "True"], result.stderr
    assert "KeyboardInterrupt" not in result.stderr


async def test_a_killed_worker_is_replaced_and_the_image_still_answered(
    model_dir: Path,
    mnist: Mnist,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import os
    import signal

    workers = ClassifierWorkers(Classifier(model_dir), processes=1)
    try:
        photo = digit_photo(mnist.x_test[1], image_format="JPEG")
        first = await workers.classify(photo)
        (pid,) = workers.pids()
        os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        again = await workers.classify(photo)
        assert again.number == first.number == str(mnist.y_test[1])
        assert workers.pids() and pid not in workers.pids()
        assert "classifier worker process died" in caplog.text
    finally:
        workers.shutdown()


def slow_task(image: bytes, max_pixels: int, version: str) -> Classification:
    """A worker task stuck for a minute on b"slow" (a decoder that never returns), else real."""
    if image == b"slow":
        time.sleep(60)
    if image == b"pause":
        time.sleep(1.2)
    from core.serving import _classify_in_worker

    return _classify_in_worker(image, max_pixels, version)


async def test_an_image_past_its_time_budget_fails_and_its_worker_is_replaced(
    model_dir: Path, mnist: Mnist, caplog: pytest.LogCaptureFixture
) -> None:
    workers = ClassifierWorkers(Classifier(model_dir), processes=1, timeout=2.0, task=slow_task)
    try:
        await workers.warm_up()
        (pid,) = workers.pids()
        started = time.monotonic()
        with pytest.raises(ImageTimeoutError, match="took too long"):
            await workers.classify(b"slow")
        assert time.monotonic() - started < 5
        assert "killing and replacing the worker processes" in caplog.text
        photo = digit_photo(mnist.x_test[1], image_format="JPEG")
        assert (await workers.classify(photo)).number == str(mnist.y_test[1])
        assert workers.pids() and pid not in workers.pids()
    finally:
        workers.shutdown()


async def test_the_time_budget_does_not_count_the_wait_behind_other_images(
    model_dir: Path,
) -> None:
    workers = ClassifierWorkers(Classifier(model_dir), processes=1, timeout=2.0, task=slow_task)
    try:
        await workers.warm_up()
        # Three images of 1.2 s each on one worker: 3.6 s in all, each within its 2 s.
        results = await asyncio.gather(
            *(workers.classify(b"pause") for _ in range(3)), return_exceptions=True
        )
        assert [type(result) for result in results] == [ImageError] * 3
        assert all("not an image" in str(result) for result in results)
    finally:
        workers.shutdown()


async def test_shutdown_does_not_wait_for_a_stuck_worker(model_dir: Path) -> None:
    workers = ClassifierWorkers(Classifier(model_dir), processes=1, timeout=120, task=slow_task)
    await workers.warm_up()
    (pid,) = workers.pids()
    stuck = asyncio.ensure_future(workers.classify(b"slow"))
    await asyncio.sleep(0.5)  # the worker is inside the 60 s task now
    started = time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, workers.shutdown, 1.0)
    assert time.monotonic() - started < 10
    # Its worker was killed and no new one starts: the image fails at once (no hang).
    with pytest.raises(ImageError, match="stopping"):
        await asyncio.wait_for(stuck, 10)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_workers_end_when_the_process_that_owns_them_is_killed() -> None:
    """A bot killed without shutting down (SIGKILL, a crash) leaves no worker processes behind."""
    import os
    import signal
    import subprocess

    script = (
        "import asyncio, sys\n"
        "from core.serving import Classifier, ClassifierWorkers\n"
        "workers = ClassifierWorkers(Classifier('models'), 1)\n"
        "asyncio.run(workers.warm_up())\n"
        "print(*workers.pids(), flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    try:
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert pids, "the owner printed no worker pids"
        time.sleep(1)
        assert all(_is_running(pid) for pid in pids), "workers must live as long as their owner"
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 10
        alive = pids
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in pids if _is_running(pid)]
        assert not alive, f"worker processes {alive} outlived the killed owner"
    finally:
        owner.kill()
        for pid in pids if "pids" in locals() else []:
            if _is_running(pid):
                os.kill(pid, signal.SIGKILL)


def _is_running(pid: int) -> bool:
    """True for a live process (a zombie waiting to be reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
