"""`digitbot bench real`: how the served model reads real ink and what it says about non-digits.

The real digits are a labelled folder (`labels.csv`: path,label,source,group; label `none` is
an empty cell, where the right answer is "no digit"), read through the same path as the bot
(`Classifier.classify` on the file's bytes). The generated non-digits come from core.synthetic;
the right answer for them is "no digit" or "not sure".
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.benchmarks import format_table, percentiles_ms
from core.serving import Classification, Classifier, is_sure
from core.synthetic import NON_DIGIT_KINDS, encode_png, non_digit_picture

DEFAULT_REAL_DIGITS = Path(__file__).resolve().parents[3] / "shared/data/real-digits"
NO_DIGIT = "none"


@dataclass(frozen=True)
class RealDigit:
    path: Path
    label: str  # "0".."9" or NO_DIGIT
    source: str
    group: str


def read_labels(folder: Path, sources: tuple[str, ...] | None = None) -> list[RealDigit]:
    """The rows of `folder/labels.csv` (optionally only some sources); ValueError if unusable."""
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise ValueError(f"{labels} not found: the real-digits folder needs its labels.csv")
    with labels.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "label", "source"} <= set(rows[0]):
        raise ValueError(f"{labels} needs the columns path,label,source[,group]")
    return [
        RealDigit(folder / row["path"], row["label"], row["source"], row.get("group") or "")
        for row in rows
        if sources is None or row["source"] in sources
    ]


def _tally(answer: Classification, label: str, threshold: float) -> dict[str, int]:
    """One image's contribution to the counts of its source."""
    if label == NO_DIGIT:
        return {"empty": 1, "empty_right": int(not answer.digits)}
    sure = bool(answer.digits) and all(is_sure(digit, threshold) for digit in answer.digits)
    right = answer.number == label
    return {
        "digits": 1,
        "right": int(right),
        "found": int(bool(answer.digits)),
        "sure": int(sure),
        "sure_right": int(sure and right),
    }


def real_benchmark(
    model_dir: Path,
    folder: Path,
    *,
    confidence_threshold: float,
    non_digits: int = 100,
    seed: int = 0,
    print_line: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Accuracy per source, "no digit" on empty cells, sure share and accuracy among the sure,
    and the share of generated non-digits answered "no digit" or "not sure"."""
    classifier = Classifier(model_dir)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    timings = []
    mistakes: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for item in read_labels(folder):
        started = time.perf_counter()
        answer = classifier.classify(item.path.read_bytes())
        timings.append(time.perf_counter() - started)
        for key, value in _tally(answer, item.label, confidence_threshold).items():
            counts[item.source][key] += value
            counts["all"][key] += value
        if answer.number != (item.label if item.label != NO_DIGIT else ""):
            mistakes[item.source][(item.label, answer.number or "-")] += 1

    def share(part: int, whole: int) -> str:
        return f"{part / whole:.1%}" if whole else "-"

    rows = []
    results: dict[str, Any] = {}
    for source in [*sorted(key for key in counts if key != "all"), "all"]:
        c = counts[source]
        images = c["digits"] + c["empty"]
        right = c["right"] + c["empty_right"]
        results[source] = {
            "images": images,
            "accuracy": right / images,
            "digit_accuracy": c["right"] / c["digits"] if c["digits"] else None,
            "empty_accuracy": c["empty_right"] / c["empty"] if c["empty"] else None,
            "sure_share": c["sure"] / c["digits"] if c["digits"] else None,
            "sure_accuracy": c["sure_right"] / c["sure"] if c["sure"] else None,
        }
        rows.append(
            (
                f"**{source}**" if source == "all" else source,
                str(images),
                share(right, images),
                share(c["right"], c["digits"]),
                f"{share(c['empty_right'], c['empty'])} of {c['empty']}" if c["empty"] else "-",
                share(c["sure"], c["digits"]),
                share(c["sure_right"], c["sure"]),
            )
        )
    print_line(
        f"model {classifier.version}; {folder}; sure = confidence >= {confidence_threshold:.2f}; "
        f"p50 {percentiles_ms(timings)[0]:.2f} ms per image"
    )
    header = (
        "source",
        "images",
        "correct (empty cells incl.)",
        "digits correct",
        '"no digit" on empty cells',
        "digits sure",
        "correct among sure",
    )
    print_line(format_table(header, rows))
    for source, errors in sorted(mistakes.items()):
        common = sorted(errors.items(), key=lambda item: -item[1])[:12]
        listed = ", ".join(f"{label}->{got} x{count}" for (label, got), count in common)
        print_line(f"{source} commonest mistakes (label->answer): {listed}")
    results["non_digits"] = non_digit_benchmark(
        classifier, confidence_threshold, per_kind=non_digits, seed=seed, print_line=print_line
    )
    return results


def non_digit_benchmark(
    classifier: Classifier,
    confidence_threshold: float,
    *,
    per_kind: int = 100,
    seed: int = 0,
    print_line: Callable[[str], None] = print,
) -> float:
    """Share of generated non-digits answered "no digit" or "not sure" (per kind and overall)."""
    rng = np.random.default_rng(seed + 1_000_003)  # not the pictures training draws
    rejected = dict.fromkeys(NON_DIGIT_KINDS, 0)
    for kind in NON_DIGIT_KINDS:
        for _ in range(per_kind):
            answer = classifier.classify(encode_png(non_digit_picture(kind, rng)))
            rejected[kind] += not answer.digits or not all(
                is_sure(digit, confidence_threshold) for digit in answer.digits
            )
    overall = sum(rejected.values()) / (per_kind * len(NON_DIGIT_KINDS))
    listed = ", ".join(f"{kind} {count / per_kind:.0%}" for kind, count in rejected.items())
    print_line(
        f'generated non-digits answered "no digit" or "not sure": {overall:.1%} '
        f"of {per_kind * len(NON_DIGIT_KINDS)} ({listed})"
    )
    return overall
