"""Benchmarks that print numbers: serving speed and memory, and accuracy on synthetic photos.

`serving_benchmark` measures, side by side with the notebook's path (Keras `model.predict` on one
image at a time): photo latency (decode + preprocess + predict) of 1024x768 JPEGs, model-only
latency, batch throughput, and a fresh serving process's memory and time to first answer.
`photo_benchmark` renders MNIST test digits as phone photos (core.bench.photos) and reports accuracy
per condition.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.photos import flat_photo
from core.data import Mnist

WARM_UP_PHOTOS = 20  # answered before photo latency is measured (see serving_benchmark)

# Run in a fresh interpreter: what a serving process costs from nothing to its first answer.
_SERVING_PROBE = """
import json, sys, time
started = time.perf_counter()
from core.serving import Classifier
classifier = Classifier(sys.argv[1], backend=sys.argv[2])
result = classifier.classify(open(sys.argv[3], "rb").read())
seconds = time.perf_counter() - started
# VmHWM (peak RSS of this process image); getrusage's maxrss would include the parent's, since
# Linux keeps it across fork + exec.
status = open("/proc/self/status").read().split("VmHWM:")[1]
rss_mb = int(status.split()[0]) / 1024
print(json.dumps({"seconds": seconds, "max_rss_mb": rss_mb, "digit": result.number,
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def plain_photo(
    digit: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = (1024, 768),
    quality: int = 90,
) -> bytes:
    """A dark MNIST digit on light paper at a random place and size: a clean phone-like JPEG."""
    height = int(rng.uniform(0.25, 0.6) * size[1])
    paper = int(rng.integers(200, 245))
    x = int(rng.integers(0, size[0] - height))
    y = int(rng.integers(0, size[1] - height))
    return flat_photo(
        digit,
        size=size,
        scale=height,
        offset=(x, y),
        paper=paper,
        noise=3,
        rng=rng,
        image_format="JPEG",
        quality=quality,
    )


def page_photos(mnist: Mnist, seed: int, count: int = 5) -> list[bytes]:
    """Photos of pages of 40 MNIST test digits: 5 lines of 8, white paper, 1280x960."""
    from core.bench.pages import Digit, PagePlan, render_page

    photos = []
    for number in range(count):
        rng = np.random.default_rng([seed, 40, number])
        picks = rng.integers(0, len(mnist.x_test), size=(5, 8))
        plan = PagePlan(
            condition="clean",
            numbers=tuple(tuple(Digit("mnist", int(index)) for index in line) for line in picks),
            columns=1,
            touching=(-1,) * 5,
            tight=False,
            longest_side=1280,
        )
        photos.append(render_page(plan, {"mnist": mnist.x_test}, rng))
    return photos


def percentiles_ms(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def time_calls(function: Callable[[], Any], repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return timings


def serving_probe(model_dir: Path, backend: str, photo: Path) -> dict[str, Any]:
    """Start a fresh Python that loads the model and answers one photo; what did it cost?"""
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", _SERVING_PROBE, str(model_dir), backend, str(photo)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=300,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"serving probe failed: {completed.stderr.strip()[-500:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall  # includes the interpreter's own start
    return result


def serving_benchmark(
    model_dir: Path,
    mnist: Mnist,
    *,
    photos: int = 200,
    keras_photos: int = 50,
    seed: int = 0,
    print_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Latency, throughput, memory and start-up: LiteRT serving vs the notebook's Keras path."""
    from core.preprocess import prepare
    from core.serving import Classifier

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(mnist.x_test), size=photos, replace=False)
    jpegs = [plain_photo(mnist.x_test[index], rng) for index in picks]
    labels = mnist.y_test[picks]
    results: dict[str, Any] = {}

    litert = Classifier(model_dir, backend="litert")
    # A bot answers photo after photo for days: measure that steady state, after the first few
    # photos (other ones) have paid for the allocator's and the libraries' first-use costs.
    for index in rng.choice(len(mnist.x_test), size=WARM_UP_PHOTOS, replace=False):
        litert.classify(plain_photo(mnist.x_test[index], rng))
    photo_times, correct = [], 0
    for jpeg, label in zip(jpegs, labels, strict=True):
        started = time.perf_counter()
        answer = litert.classify(jpeg)
        photo_times.append(time.perf_counter() - started)
        correct += answer.number == str(label)
    results["litert_photo_ms"] = percentiles_ms(photo_times)
    results["photo_accuracy"] = correct / len(jpegs)
    preprocess_times = time_calls(lambda: prepare(jpegs[1]), 100)
    results["preprocess_ms"] = percentiles_ms(preprocess_times)
    page_times: list[float] = []
    page_digits: list[int] = []
    for page in page_photos(mnist, seed):
        litert.classify(page)  # first call per page pays for nothing it shares with the next

        def read_page(page: bytes = page) -> None:
            page_digits.append(len(litert.classify(page).digits))

        page_times += time_calls(read_page, 5)
    results["page_ms"] = percentiles_ms(page_times)
    results["page_digits"] = float(np.mean(page_digits))

    single = mnist.x_test[:1].astype(np.float32) / 255.0
    batch = mnist.x_test[:1000].astype(np.float32) / 255.0
    litert.predict(single)
    results["litert_model_ms"] = percentiles_ms(time_calls(lambda: litert.predict(single), 2000))
    litert.predict(batch)
    batch_seconds = min(time_calls(lambda: litert.predict(batch), 3))
    results["litert_batch_per_s"] = len(batch) / batch_seconds
    litert.predict(single)  # back to batch size 1 for the bot's path

    # The notebook's path: Keras model.predict on one preprocessed image at a time.
    import keras

    from core import registry

    model = keras.models.load_model(
        registry.version_dir(model_dir) / registry.KERAS_FILE, compile=False
    )
    model.predict(single[..., None], verbose=0)

    def notebook_photo(jpeg: bytes) -> None:
        crops = prepare(jpeg).digits
        if crops:
            model.predict(np.stack([c.image for c in crops])[..., None], verbose=0)

    keras_photo_times = [
        time_calls(functools.partial(notebook_photo, jpeg), 1)[0] for jpeg in jpegs[:keras_photos]
    ]
    results["keras_photo_ms"] = percentiles_ms(keras_photo_times)
    results["keras_model_ms"] = percentiles_ms(
        time_calls(lambda: model.predict(single[..., None], verbose=0), 100)
    )
    batch_seconds = min(time_calls(lambda: model.predict(batch[..., None], verbose=0), 3))
    results["keras_batch_per_s"] = len(batch) / batch_seconds

    photo_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"digitbot-bench-{os.getpid()}.jpg"
    photo_path.write_bytes(jpegs[0])
    try:
        results["litert_process"] = serving_probe(model_dir, "litert", photo_path)
        results["keras_process"] = serving_probe(model_dir, "keras", photo_path)
    finally:
        photo_path.unlink(missing_ok=True)

    lite_process, keras_process = results["litert_process"], results["keras_process"]
    rows = [
        (
            "photo latency p50 / p99 (decode+preprocess+predict)",
            "{:.2f} / {:.2f} ms".format(*results["litert_photo_ms"]),
            "{:.2f} / {:.2f} ms".format(*results["keras_photo_ms"]),
            "p50 <= 3 ms",
        ),
        (
            "page of 40 digits (5 lines, 1280x960 JPEG), p50 / p99",
            "{:.1f} / {:.1f} ms".format(*results["page_ms"]),
            "",
            "p50 <= 20 ms",
        ),
        (
            "model only, one image, p50 / p99",
            "{:.3f} / {:.3f} ms".format(*results["litert_model_ms"]),
            "{:.2f} / {:.2f} ms".format(*results["keras_model_ms"]),
            "<= 0.1 ms",
        ),
        (
            "batch of 1000 throughput",
            f"{results['litert_batch_per_s']:,.0f} img/s",
            f"{results['keras_batch_per_s']:,.0f} img/s",
            "",
        ),
        (
            "serving process: start to first answer",
            f"{lite_process['seconds']:.2f} s ({lite_process['process_seconds']:.2f} s wall)",
            f"{keras_process['seconds']:.2f} s ({keras_process['process_seconds']:.2f} s wall)",
            "<= 2 s",
        ),
        (
            "serving process: peak RSS",
            f"{lite_process['max_rss_mb']:.0f} MB",
            f"{keras_process['max_rss_mb']:.0f} MB",
            "<= 150 MB",
        ),
        (
            "TensorFlow imported by serving",
            str(lite_process["tensorflow_imported"]),
            str(keras_process["tensorflow_imported"]),
            "no",
        ),
    ]
    print_line(
        f"model {litert.version}; {photos} photos 1024x768 JPEG "
        f"({keras_photos} for Keras); accuracy on them {results['photo_accuracy']:.1%}"
    )
    print_line(
        f"preprocess alone p50 / p99: {results['preprocess_ms'][0]:.2f} / "
        f"{results['preprocess_ms'][1]:.2f} ms; pages: {results['page_digits']:.1f} of 40 "
        "digits found on average"
    )
    print_line(
        format_table(("measure", "LiteRT (bot)", "Keras predict (notebook)", "target"), rows)
    )
    return results


def format_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    """A Markdown table, so the output pastes straight into the README."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def photo_benchmark(
    model_dir: Path,
    mnist: Mnist,
    *,
    per_condition: int = 100,
    seed: int = 0,
    print_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Accuracy on synthetic phone photos of MNIST test digits, per condition and overall."""
    from core.bench.looks import CONDITION_NOTES, CONDITIONS
    from core.bench.photos import benchmark_numbers, benchmark_photos
    from core.serving import Classifier

    classifier = Classifier(model_dir)
    correct = dict.fromkeys(CONDITIONS, 0)
    found = dict.fromkeys(CONDITIONS, 0)
    several = 0  # single-digit photos read as more than one digit
    total = dict.fromkeys(CONDITIONS, 0)
    timings = []
    for condition, label, jpeg in benchmark_photos(
        mnist.x_test, mnist.y_test, per_condition=per_condition, seed=seed
    ):
        started = time.perf_counter()
        answer = classifier.classify(jpeg)
        timings.append(time.perf_counter() - started)
        total[condition] += 1
        found[condition] += bool(answer.digits)
        several += len(answer.digits) > 1
        correct[condition] += answer.number == str(label)
    rows = [
        (
            condition,
            CONDITION_NOTES[condition],
            str(total[condition]),
            f"{found[condition] / total[condition]:.1%}",
            f"{correct[condition] / total[condition]:.1%}",
        )
        for condition in CONDITIONS
    ]
    overall = sum(correct.values()) / sum(total.values())
    rows.append(("**overall**", "", str(sum(total.values())), "", f"**{overall:.1%}**"))
    numbers_total = max(per_condition // 2, 10)
    numbers_correct = sum(
        classifier.classify(jpeg).number == label
        for label, jpeg in benchmark_numbers(
            mnist.x_test, mnist.y_test, count=numbers_total, seed=seed
        )
    )
    print_line(
        f"model {classifier.version}; {per_condition} photos per condition, seed {seed}; "
        f"p50 {percentiles_ms(timings)[0]:.2f} ms per photo"
    )
    header = ("condition", "what the photo shows", "photos", "digit found", "correct")
    print_line(format_table(header, rows))
    singles = sum(total.values())
    print_line(
        f"single-digit photos read as several digits: {several}/{singles} ({several / singles:.1%})"
    )
    print_line(
        f"multi-digit numbers read exactly: {numbers_correct}/{numbers_total} "
        f"({numbers_correct / numbers_total:.1%})"
    )
    return {
        "overall": overall,
        "per_condition": {c: correct[c] / total[c] for c in CONDITIONS},
        "numbers": numbers_correct / numbers_total,
        "several_digits": several / singles,
    }


def _length_bucket(length: int) -> str:
    return {3: "3-4", 4: "3-4", 5: "5-6", 6: "5-6", 7: "7-8", 8: "7-8"}.get(length, "9-12")


def failures(
    labels: list[str], readings: list[list[tuple[int, int, int, int]]], read: list[str]
) -> list[str]:
    """Why the numbers of one photo were not read exactly, one reason per number missed.

    `labels`: the numbers written, in reading order; `read`: those read, and `readings` the
    boxes of their digits. Another count of numbers than written: the lines were split or
    merged (or a number lost), for every number missed. Otherwise number by number: fewer
    digits with a crop wider than tall is a merged pair, fewer without is a dropped digit; more
    digits a split digit (or a mark read as one); as many, a misread digit."""
    if len(read) != len(labels):
        remaining = Counter(read)
        missed = 0
        for label in labels:
            missed += remaining[label] == 0
            remaining[label] -= remaining[label] > 0
        return ["lines split or merged"] * missed
    found = []
    for label, number, boxes in zip(labels, read, readings, strict=True):
        if number == label:
            continue
        if len(number) < len(label):
            wide = any(right - left > bottom - top for left, top, right, bottom in boxes)
            found.append("digits merged" if wide else "digit dropped")
        elif len(number) > len(label):
            found.append("digit split or mark read")
        else:
            found.append("digit misread")
    return found


def number_benchmark(
    model_dir: Path,
    mnist: Mnist,
    nsysu: tuple[np.ndarray, np.ndarray] | None,
    *,
    count: int = 300,
    seed: int = 0,
    print_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Exact-number accuracy on photos of written numbers and pages (core.bench.pages): by length,
    condition and layout, with and without touching pairs, and pages read completely."""
    from collections import defaultdict

    from core.bench.pages import PAGE_CONDITIONS, benchmark_pages
    from core.serving import Classifier

    classifier = Classifier(model_dir)
    sources = {"mnist": (mnist.x_test, mnist.y_test)}
    if nsysu is not None:
        sources["nsysu"] = nsysu
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # key -> [right, total]
    pages_complete = [0, 0]
    timings: list[float] = []
    misreads: list[str] = []
    reasons: Counter[str] = Counter()
    for plan, labels, jpeg in benchmark_pages(sources, count, seed):
        started = time.perf_counter()
        answer = classifier.classify(jpeg)
        timings.append(time.perf_counter() - started)
        read = [reading.number for reading in answer.numbers]
        boxes = [[digit.box for digit in reading.digits] for reading in answer.numbers]
        reasons.update(failures(labels, boxes, read))
        remaining = Counter(read)
        layout = "page" if plan.kind == "page" else ("row, tight" if plan.tight else "row, loose")
        for number, label, touching in zip(plan.numbers, labels, plan.touching, strict=True):
            right = remaining[label] > 0
            remaining[label] -= right
            keys = [
                "all",
                f"length {_length_bucket(len(number))}",
                f"condition {plan.condition}",
                f"layout {layout}",
                "touching pair" if touching >= 0 else "no touching pair",
                "with real (nsysu) digits"
                if any(digit.source == "nsysu" for digit in number)
                else "MNIST digits only",
                f"photo {plan.longest_side} px",
            ]
            for key in keys:
                tallies[key][0] += right
                tallies[key][1] += 1
        if plan.kind == "page":
            pages_complete[0] += read == labels
            pages_complete[1] += 1
        if read != labels and len(misreads) < 12:
            misreads.append(f"{plan.condition} {plan.longest_side}px: {labels} -> {read}")

    def row(key: str) -> tuple[str, str, str]:
        right, total = tallies[key]
        return (key, str(total), f"{right / total:.1%}" if total else "-")

    order = (
        ["all"]
        + [f"length {bucket}" for bucket in ("3-4", "5-6", "7-8", "9-12")]
        + ["layout row, loose", "layout row, tight", "layout page"]
        + ["no touching pair", "touching pair", "MNIST digits only", "with real (nsysu) digits"]
        + sorted(key for key in tallies if key.startswith("photo "))
        + [f"condition {condition}" for condition in PAGE_CONDITIONS]
    )
    print_line(
        f"model {classifier.version}; {count} photos (seed {seed}), "
        f"{tallies['all'][1]} numbers; p50 {percentiles_ms(timings)[0]:.1f} ms per photo"
    )
    print_line(
        format_table(
            ("numbers", "count", "read exactly"), [row(key) for key in order if key in tallies]
        )
    )
    complete = pages_complete[0] / max(pages_complete[1], 1)
    print_line(
        f"pages (2-6 numbers) read completely: {pages_complete[0]}/{pages_complete[1]} "
        f"({complete:.1%})"
    )
    numbers = max(tallies["all"][1], 1)
    print_line(
        format_table(
            ("why a number was not read exactly", "numbers", "share of all"),
            [(reason, str(n), f"{n / numbers:.1%}") for reason, n in reasons.most_common()],
        )
    )
    for line in misreads:
        print_line(f"  misread: {line}")
    return {
        "exact": tallies["all"][0] / max(tallies["all"][1], 1),
        "touching": tallies["touching pair"][0] / max(tallies["touching pair"][1], 1),
        "pages_complete": complete,
        "tallies": {key: tuple(value) for key, value in tallies.items()},
        "failures": dict(reasons),
    }
