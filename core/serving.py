"""Serve the current model: the one place that loads it, predicts thread-safely, and swaps it.

LiteRT (`ai-edge-litert`) answers in well under a millisecond and does not import TensorFlow;
the Keras model is the fall-back where LiteRT is not installed. If the version named by
`models/CURRENT` is missing or damaged, the newest other complete version is served instead and
`fallback_reason` says why. `ClassifierWorkers` runs `Classifier.classify` in child processes
(what the bot does, see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import registry
from core.decode import DEFAULT_MAX_PIXELS, ImageError
from core.evaluate import top_k
from core.model import NO_DIGIT, NO_DIGIT_SURE
from core.preprocess import prepare
from core.segmentation import Rejected

logger = logging.getLogger(__name__)

NOT_A_DIGIT = "read as no digit"  # the reason such a crop was left out

DEFAULT_IMAGE_TIMEOUT = 15.0  # seconds one image may take in a worker (a photo takes ~20 ms)
SHUTDOWN_GRACE = 5.0  # seconds shutdown waits for a busy worker before killing it


class ImageTimeoutError(ImageError):
    """An image took longer than the time budget (its worker was replaced)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"Reading this image took too long (more than {seconds:g} s), so I stopped. "
            "Try a smaller photo or a JPEG.",
            "timeout",
            {"seconds": round(seconds)},
        )


@dataclass(frozen=True)
class DigitPrediction:
    digit: int
    confidence: float
    top3: list[tuple[int, float]]
    crop: np.ndarray
    box: tuple[int, int, int, int]
    line: int = 0  # the number (text line) it belongs to, in reading order


@dataclass(frozen=True)
class NumberReading:
    """One written number (a text line, or a column's line) of the picture."""

    digits: list[DigitPrediction]

    @property
    def number(self) -> str:
        return "".join(str(digit.digit) for digit in self.digits)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) around its digits, in the original image's pixels."""
        boxes = np.array([digit.box for digit in self.digits])
        return (
            int(boxes[:, 0].min()),
            int(boxes[:, 1].min()),
            int(boxes[:, 2].max()),
            int(boxes[:, 3].max()),
        )


@dataclass(frozen=True)
class Classification:
    digits: list[DigitPrediction]  # every digit, number by number, in reading order
    model_version: str
    seconds: float
    size: tuple[int, int] = (0, 0)  # the original image's (width, height)
    rejected: list[Rejected] = field(default_factory=list)  # ink left out, and why

    @property
    def numbers(self) -> list[NumberReading]:
        """The numbers, one per text line, in reading order (columns left to right, each top
        to bottom)."""
        readings: list[NumberReading] = []
        for digit in self.digits:
            if readings and readings[-1].digits[-1].line == digit.line:
                readings[-1].digits.append(digit)
            else:
                readings.append(NumberReading([digit]))
        return readings

    @property
    def number(self) -> str:
        return "".join(str(digit.digit) for digit in self.digits)

    def part(self, reading: NumberReading) -> Classification:
        """This answer for one of its numbers only (what the bot records and lets people
        correct, number by number)."""
        return Classification(reading.digits, self.model_version, self.seconds, self.size)

    @property
    def confidence(self) -> float:
        return min((digit.confidence for digit in self.digits), default=0.0)

    def as_json(self, path: str, confidence_threshold: float) -> dict[str, Any]:
        """The `digitbot predict --json` object for this result; `sure` as the bot decides."""

        def top3(prediction: DigitPrediction) -> list[list[float]]:
            return [[digit, round(probability, 6)] for digit, probability in prediction.top3]

        payload: dict[str, Any] = {"path": path}
        if len(self.digits) == 1:
            payload["digit"] = self.digits[0].digit
            payload["top3"] = top3(self.digits[0])
            payload["sure"] = is_sure(self.digits[0], confidence_threshold)
        else:
            payload["digit"] = None
        if len(self.digits) > 1:
            payload["number"] = self.number
            payload["sure"] = all(is_sure(p, confidence_threshold) for p in self.digits)
        payload["digits"] = [
            {
                "digit": prediction.digit,
                "top3": top3(prediction),
                "sure": is_sure(prediction, confidence_threshold),
                "box": list(prediction.box),
            }
            for prediction in self.digits
        ]
        payload["numbers"] = [
            {
                "number": reading.number,
                "digits": [prediction.digit for prediction in reading.digits],
                "confidence": [round(prediction.confidence, 6) for prediction in reading.digits],
                "box": list(reading.box),
            }
            for reading in self.numbers
        ]
        return payload

    def describe(self) -> str:
        """For people: `7  (7: 98.1 %, 1: 1.2 %, 9: 0.4 %)`, one line per number."""
        if not self.digits:
            return "no digit found"
        lines = []
        for reading in self.numbers:
            parts = [
                ", ".join(f"{digit}: {probability:.1%}" for digit, probability in prediction.top3)
                for prediction in reading.digits
            ]
            lines.append(f"{reading.number}  (" + " | ".join(parts) + ")")
        return "\n".join(lines)


def calibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of softmax outputs: softmax(log p / T) (T > 1 makes them humbler)."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def is_sure(prediction: DigitPrediction, confidence_threshold: float) -> bool:
    """Whether the bot says this digit without "not sure" (and predict --json says sure)."""
    return prediction.confidence >= confidence_threshold


# Two threads split each convolution: ~0.09 ms instead of ~0.15 ms per digit when a core is free.
INFERENCE_THREADS = min(2, os.cpu_count() or 1)


# LiteRT's C code prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the
# process's stderr whenever it allocates tensors (no setting turns it off). A caller that wants a
# quiet stderr (the CLI, unless -v) sets this; allocation then runs with file descriptor 2 on
# /dev/null. The bot leaves it off: other threads may write to stderr at that moment.
QUIET_NATIVE_INFO = False


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    if not QUIET_NATIVE_INFO:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _LiteRTModel:
    """A LiteRT interpreter; `invoke` is serialised by the Classifier's lock."""

    def __init__(self, path: Path, threads: int = INFERENCE_THREADS) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.batch = 1
        with _native_stderr_quiet():
            self.interpreter.allocate_tensors()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self.batch:
            self.interpreter.resize_tensor_input(self.input_index, [len(batch), 28, 28, 1])
            with _native_stderr_quiet():
                self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output_index))


class _KerasModel:
    def __init__(self, path: Path) -> None:
        import keras

        self.model = keras.models.load_model(path, compile=False)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(batch, training=False))


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def model_file(folder: Path, backend: str = "auto") -> tuple[Path, str]:
    """The file `load_model` reads for this backend, and the backend that reads it."""
    if backend not in ("auto", "litert", "keras"):
        raise ValueError(f"unknown backend {backend!r}; use auto, litert or keras")
    if backend == "litert" or (backend == "auto" and litert_available()):
        return folder / registry.TFLITE_FILE, "litert"
    return folder / registry.KERAS_FILE, "keras"


def load_model(
    folder: Path, backend: str = "auto", threads: int = INFERENCE_THREADS
) -> tuple[Any, str]:
    """Load one version folder with the requested backend; return (callable, backend used).
    `threads`: LiteRT's threads per inference."""
    path, used = model_file(folder, backend)
    return (_LiteRTModel(path, threads) if used == "litert" else _KerasModel(path)), used


class Classifier:
    """The served model. Thread-safe; `reload()` swaps to the version in CURRENT atomically."""

    def __init__(
        self, model_dir: Path | str, backend: str = "auto", threads: int = INFERENCE_THREADS
    ) -> None:
        self.model_dir = Path(model_dir)
        self.requested_backend = backend
        self.threads = threads
        self._lock = threading.Lock()
        self.fallback_reason: str | None = None
        self._model, self.backend, self.version, self.metadata = self._load()

    def _load(self) -> tuple[Any, str, str, dict[str, Any]]:
        try:
            wanted = registry.current_version(self.model_dir)
        except registry.RegistryError as error:
            wanted, first_error = None, error
        candidates = [wanted] if wanted else []
        candidates += [v for v in registry.list_versions(self.model_dir) if v != wanted]
        errors = [] if wanted else [str(first_error)]
        for version in candidates:
            folder = self.model_dir / version
            path, _ = model_file(folder, self.requested_backend)
            try:
                metadata = registry.read_metadata(self.model_dir, version)
            except registry.RegistryError as error:  # its message names metadata.json
                errors.append(str(error))
                logger.error("cannot load model %s: %s", folder, error)
                continue
            try:
                model, backend = load_model(folder, self.requested_backend, self.threads)
                model(np.zeros((1, 28, 28, 1), np.float32))  # warm up, and prove it runs
            except Exception as error:  # a damaged file shows up as many different errors
                errors.append(f"{path}: {type(error).__name__}: {error}")
                logger.error("cannot load model %s: %s", path, error)
                continue
            self.fallback_reason = (
                None if version == wanted else "; ".join(errors) or "CURRENT was missing"
            )
            if self.fallback_reason:
                logger.warning(
                    "serving %s instead of %s: %s", version, wanted, self.fallback_reason
                )
            return model, backend, version, metadata
        raise registry.RegistryError(
            f"no usable model in {self.model_dir}: " + ("; ".join(errors) or "it is empty")
        )

    def reload(self) -> str:
        """Load the version CURRENT names (or the last good one) and swap it in."""
        model, backend, version, metadata = self._load()
        with self._lock:
            self._model, self.backend, self.version, self.metadata = (
                model,
                backend,
                version,
                metadata,
            )
        logger.info("now serving model %s (%s)", version, backend)
        return version

    def predict(self, batch: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        """(n, 28, 28) float32 in [0, 1] -> (n, 10) probabilities, or (n, 11) for a model with
        a "no digit" class; calibrated by the temperature in the model's metadata (if any)."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 2:
            batch = batch[np.newaxis]
        if batch.shape[1:3] != (28, 28):
            raise ValueError(f"expected (n, 28, 28) images, got {batch.shape}")
        batch = batch.reshape(-1, 28, 28, 1)
        with self._lock:
            probabilities, temperature = self._model(batch), self.metadata.get("temperature", 1.0)
        return calibrate(probabilities, temperature) if calibrated else probabilities

    def classify(
        self, image: bytes | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> Classification:
        """Photo -> digits with top-3 each. Raises core.decode.ImageError for bad input."""
        started = time.perf_counter()
        prepared = prepare(image, max_pixels=max_pixels, judge=self.predict)
        version = self.version
        predictions: list[DigitPrediction] = []
        rejected = list(prepared.rejected)
        if prepared.digits:
            # The crops the judge saw already have their answer.
            unjudged = [digit.image for digit in prepared.digits if digit.probabilities is None]
            fresh = iter(self.predict(np.stack(unjudged)) if unjudged else [])
            probabilities = [
                digit.probabilities if digit.probabilities is not None else next(fresh)
                for digit in prepared.digits
            ]
            for crop, row in zip(prepared.digits, probabilities, strict=True):
                if len(row) > NO_DIGIT and row[NO_DIGIT] >= NO_DIGIT_SURE:
                    # The model says this is no digit (a letter, a speck, a line): left out,
                    # and shown as such by --debug-dir and /debug.
                    rejected.append(Rejected(crop.box, NOT_A_DIGIT))
                    continue
                best = top_k(row[:NO_DIGIT], 3)
                predictions.append(
                    DigitPrediction(
                        digit=best[0][0],
                        confidence=best[0][1],
                        top3=best,
                        crop=crop.image,
                        box=crop.box,
                        line=crop.line,
                    )
                )
        return Classification(
            predictions,
            version,
            time.perf_counter() - started,
            size=(prepared.width, prepared.height),
            rejected=rejected,
        )


class ClassifierWorkers:
    """`Classifier.classify` in `processes` child processes, for an asyncio caller (the bot).

    Why processes: in one process, preprocessing's Python steps and the bot's event loop (HTTP,
    Telegram objects, the feedback store) take turns holding the interpreter lock, so a burst of
    photos uses little more than one core. In workers of their own they run beside the event loop.
    A crash inside an image decoder also ends one worker, not the bot: the pool is restarted and
    the image is tried once more before its sender is told it could not be read.

    An image gets `timeout` seconds from when a worker starts it: past that, the workers are
    killed and replaced (a stuck C decoder cannot be interrupted any other way), the image fails
    with ImageTimeoutError and the other images in flight are retried on the new workers.

    Each worker loads the model from `classifier.model_dir`; every task names the version the
    parent serves, and a worker that serves another one (after a /retrain promotion) reloads first.
    `task` is what runs in a worker (tests pass a slow one).
    """

    def __init__(
        self,
        classifier: Classifier,
        processes: int,
        *,
        timeout: float = DEFAULT_IMAGE_TIMEOUT,
        task: Callable[[bytes, int, str], Classification] | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.classifier = classifier
        self.processes = processes
        self.timeout = timeout
        self._task = task or _classify_in_worker
        self._closed = False
        self._free: asyncio.Semaphore | None = None
        self._pool = self._start()

    async def warm_up(self) -> None:
        """Start every worker and load its model now, not with the first photos."""
        page = Image.new("L", (64, 64), 255)
        buffer = io.BytesIO()
        page.save(buffer, "PNG")
        await asyncio.gather(*(self.classify(buffer.getvalue()) for _ in range(self.processes)))

    def _start(self) -> ProcessPoolExecutor:
        # forkserver: workers fork from a clean server process that has imported this module
        # once (fast starts), never from the bot's own threads (fork there is unsafe).
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(
            self.processes,
            mp_context=context,
            initializer=_start_worker,
            initargs=(str(self.classifier.model_dir), self.classifier.requested_backend),
        )

    async def classify(
        self, image: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> Classification:
        """Like `Classifier.classify`, in a worker; ImageError for bad input, as there."""
        if self._free is None:  # made in the running event loop
            self._free = asyncio.Semaphore(self.processes)
        # At most one image per worker is submitted, so the time budget counts from when its
        # worker starts it, never the wait behind other images.
        async with self._free:
            return await self._classify(image, max_pixels)

    async def _classify(self, image: bytes, max_pixels: int) -> Classification:
        for attempt in (1, 2):
            pool = self._pool
            if self._closed:
                raise ImageError(
                    "The bot is stopping; send the image again in a minute.", "stopping"
                )
            try:
                future = pool.submit(self._task, image, max_pixels, self.classifier.version)
                return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
            except TimeoutError:
                logger.error(
                    "an image took more than %g s; killing and replacing the worker processes",
                    self.timeout,
                )
                self._replace(pool, kill=True)
                raise ImageTimeoutError(self.timeout) from None
            except BrokenProcessPool:
                logger.error(
                    "a classifier worker process died (attempt %d for this image); "
                    "starting new workers",
                    attempt,
                )
                self._replace(pool)
        raise ImageError(
            "reading this image crashed the image reader twice; try another photo or format",
            "crashed",
        )

    def _replace(self, pool: ProcessPoolExecutor, *, kill: bool = False) -> None:
        """Start new workers instead of `pool`'s, unless another caller already did."""
        if self._pool is not pool or self._closed:
            return
        processes = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        if kill:
            for process in processes:
                process.kill()
        self._pool = self._start()

    def pids(self) -> list[int]:
        """Process ids of the running workers (started by `warm_up` or the first image)."""
        return [
            process.pid
            for process in list(self._pool._processes.values())
            if process.pid is not None
        ]

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop the workers: idle ones at once, a busy one after `grace` seconds (killed)."""
        if self._closed:
            return
        self._closed = True
        processes = list(self._pool._processes.values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                logger.warning("a worker process was still busy at shutdown; killing it")
                process.kill()
                process.join(1.0)


_worker_classifier: Classifier | None = None  # in a worker process only (set by _start_worker)


def _start_worker(model_dir: str, backend: str) -> None:
    global _worker_classifier
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the workers itself,
    # so a worker must not die of it first (with a KeyboardInterrupt traceback, mid-answer).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker waits for tasks on a queue it also holds the writing end of, so it never sees the
    # bot go: one killed or crashed without shutdown() would leave it (and the forkserver it
    # keeps open) running forever. The parent's sentinel ends it instead.
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    # One LiteRT thread: the workers and the bot already keep the cores busy, and a second
    # inference thread would spin waiting for a core (CPU lost, no answer sooner).
    _worker_classifier = Classifier(model_dir, backend, threads=1)


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(0)


def _classify_in_worker(image: bytes, max_pixels: int, version: str) -> Classification:
    if _worker_classifier is None:
        raise RuntimeError("_classify_in_worker runs only in a ClassifierWorkers process")
    if _worker_classifier.version != version:
        _worker_classifier.reload()
    return _worker_classifier.classify(image, max_pixels=max_pixels)
