"""The `digitbot` CLI: predict's JSON lines and error objects, explore, evaluate, summary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bot.cli import main
from core.data import Mnist
from tests.bot.conftest import run_digitbot
from tests.conftest import ROOT, digit_photo


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return run_digitbot(*arguments, cwd=ROOT)


def test_predict_json(tmp_path: Path, mnist: Mnist) -> None:
    paths = []
    for index in range(3):
        path = tmp_path / f"digit{index}.jpg"
        path.write_bytes(digit_photo(mnist.x_test[index], image_format="JPEG"))
        paths.append(path)
    text = tmp_path / "notes.png"
    text.write_text("not really a png")
    missing = tmp_path / "missing.png"
    result = run_cli(
        "predict", "--json", str(paths[0]), str(text), str(missing), *map(str, paths[1:])
    )
    assert result.returncode == 1  # some files failed, the rest were answered
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [
        str(p) for p in (paths[0], text, missing, *paths[1:])
    ]
    answers = [lines[0], lines[3], lines[4]]
    for index, answer in enumerate(answers):
        assert answer["digit"] == int(mnist.y_test[index])
        probabilities = [probability for _, probability in answer["top3"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1.0 + 1e-6 and len(answer["top3"]) == 3
    assert "not an image" in lines[1]["error"]
    assert "No such file" in lines[2]["error"]


def test_predict_no_digit_and_plain_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    assert main(["predict", "--json", str(blank)]) == 0
    assert json.loads(capsys.readouterr().out)["digit"] is None
    assert main(["predict", str(blank)]) == 0
    assert "no digit found" in capsys.readouterr().out


def test_explore_counts_and_images(tmp_path: Path, mnist_path: Path) -> None:
    result = run_cli("explore", "--mnist-path", str(mnist_path), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "train: {0: 5923, 1: 6742" in result.stdout
    assert "test: {0: 980, 1: 1135" in result.stdout
    assert (tmp_path / "digits_grid.png").stat().st_size > 10_000
    assert (tmp_path / "digit_colorbar.png").stat().st_size > 5_000


def test_bad_mnist_path_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("explore", "--mnist-path", str(tmp_path / "nope.npz"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: MNIST not found at")
    assert "Traceback" not in result.stderr


def test_bench_replicas_without_postgresql_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`digitbot bench replicas` runs the replicas bench, which needs a PostgreSQL server."""
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    assert main(["bench", "replicas"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: digitbot bench replicas needs a PostgreSQL server")


def test_evaluate_and_summary(tmp_path: Path, mnist_path: Path) -> None:
    result = run_cli("evaluate", "--mnist-path", str(mnist_path), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "test accuracy: 99." in result.stdout
    assert (tmp_path / "confusion.png").exists()
    summary = run_cli("summary")
    assert summary.returncode == 0, summary.stderr
    assert "Total params" in summary.stdout


def test_train_applies_the_promotion_rule_unless_forced(
    tmp_path: Path, mnist_path: Path, model_dir: Path
) -> None:
    """A 1-epoch candidate on 2,000 images is far below the shipped model: written, not served
    (exit 1, with the evidence); --force serves it; --no-promote never does."""
    from core import registry

    shipped = registry.current_version(model_dir)
    common = ("--arch", "seed", "--epochs", "1", "--train-limit", "2000")
    environment = ("--model-dir", str(model_dir), "--mnist-path", str(mnist_path))
    result = run_cli("train", *common, *environment)
    assert result.returncode == 1, result.stderr
    assert "❌ Candidate not promoted: MNIST test accuracy" in result.stdout
    assert "(not promoted; --force serves it anyway)" in result.stdout
    assert registry.current_version(model_dir) == shipped
    rejected = next(v for v in registry.list_versions(model_dir) if v != shipped)

    result = run_cli("train", *common, "--seed", "1", "--force", *environment)
    assert result.returncode == 0, result.stderr
    assert "forced past the promotion rule" in result.stdout
    forced = registry.current_version(model_dir)
    assert forced not in (shipped, rejected)
    assert registry.read_metadata(model_dir)["ending"]["weights"] == "raw"  # seed: no average

    result = run_cli("train", *common, "--no-promote", *environment)
    assert result.returncode == 0, result.stderr
    assert registry.current_version(model_dir) == forced
    assert len(registry.list_versions(model_dir)) == 4
