"""The `digitbot` command line: every step of the notebook, prediction, benchmarks, the bot.

Subcommands import what they need when they run, so `digitbot predict` never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.settings import Settings, describe_invalid, find_mnist
from core.model import DEFAULT_ARCH
from core.recipes import RECIPES

if TYPE_CHECKING:
    from bot.feedback.store import FeedbackStore
    from core.promotion import Comparison


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run one subcommand, return its exit status."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    verbose = bool(getattr(arguments, "verbose", False))
    quiet_libraries(verbose)
    try:
        if verbose or arguments.command in LONG_RUNNING:
            print(settings_sources(), file=sys.stderr, flush=True)
        settings = Settings()
        if settings.telegram_bot_token is not None:
            from bot.redaction import redact_output

            # Before anything can fail: a traceback or error line must not show the token.
            redact_output([settings.telegram_bot_token.get_secret_value()])
        # --model-dir / --mnist-path override MODEL_DIR / MNIST_PATH for every subcommand.
        overrides = {
            name: getattr(arguments, name)
            for name in ("model_dir", "mnist_path")
            if getattr(arguments, name, None) is not None
        }
        settings = settings.model_copy(update=overrides)
        # Unset MNIST_PATH: data/mnist.npz or Keras' cache when there, else Keras' download.
        arguments.model_dir = settings.model_dir
        arguments.mnist_path = find_mnist(settings.mnist_path)
        return int(arguments.handler(arguments, settings) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValidationError as error:  # a setting from the environment or .env
        print(f"error: {describe_invalid(error)}", file=sys.stderr)
        return 2
    except ValueError as error:  # settings, DataError, ImageError, RegistryError: one clear line
        message = str(error).replace("\n", " ")
        print(f"error: {message}", file=sys.stderr)
        return 2


# The commands that keep running (the bot, the sandbox) say where their settings came from.
LONG_RUNNING = frozenset({"run", "sandbox", "start", "worker"})


def settings_sources() -> str:
    """One line: which .env files are read (the environment overrides them)."""
    from bot.settings import ENV_FILES, env_files_read

    read = env_files_read()
    if read:
        return "settings: the environment, then " + ", ".join(map(str, read))
    looked = " and ".join(str(path.parent) for path in ENV_FILES)
    return f"settings: the environment and defaults (no .env in {looked})"


def quiet_libraries(verbose: bool) -> None:
    """TensorFlow's and LiteRT's start-up chatter only with -v; with -v, debug logging too."""
    import logging
    import os

    from core import serving

    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read when TensorFlow is imported
    serving.QUIET_NATIVE_INFO = True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: object, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument(
            "-v", "--verbose", action="store_true", help="show libraries' logs (TensorFlow, LiteRT)"
        )
        sub.add_argument("--model-dir", type=Path, help="model folder (MODEL_DIR, default models)")
        sub.add_argument("--mnist-path", type=Path, help="MNIST .npz or IDX folder (MNIST_PATH)")
        return sub

    explore = add(
        "explore", cmd_explore, "label counts, a 7x7 grid of digits, one digit with a colour bar"
    )
    explore.add_argument("--out", type=Path, default=Path("out/explore"), help="output folder")
    explore.add_argument("--seed", type=int, default=0)

    train = add("train", cmd_train, "train a model, evaluate it, and make it the served one")
    train.add_argument(
        "--arch",
        default=DEFAULT_ARCH,
        choices=sorted(RECIPES),
        help=f"the architecture and its recipe (default {DEFAULT_ARCH}, the shipped one; "
        "seed: the notebook's CNN)",
    )
    train.add_argument("--epochs", type=int, help="default: " + recipe_defaults("epochs"))
    train.add_argument("--batch-size", type=int, help="default: " + recipe_defaults("batch_size"))
    train.add_argument(
        "--validation-split",
        type=float,
        help="held-out fraction of the training set; default: "
        + recipe_defaults("validation_split"),
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (reproducible runs)")
    train.add_argument("--train-limit", type=int, help="use only the first N training images")
    train.add_argument(
        "--no-promote",
        action="store_true",
        help="write the new version but keep serving the current one",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="promote even if the promotion rule (as for /retrain) says no",
    )

    evaluate = add(
        "evaluate", cmd_evaluate, "test accuracy, loss, per-class accuracy, confusion PNG"
    )
    evaluate.add_argument("--out", type=Path, default=Path("out/evaluate"))
    evaluate.add_argument("--backend", default="auto", choices=["auto", "litert", "keras"])

    add(
        "calibrate",
        cmd_calibrate,
        "fit the served model's temperature on its held-out validation digits and record it",
    )

    add("summary", cmd_summary, "print the served model's Keras summary")

    predict = add("predict", cmd_predict, "digit and top-3 for each image file")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--backend", default="auto", choices=["auto", "litert", "keras"])
    predict.add_argument(
        "--debug-dir",
        type=Path,
        help="write the 28x28 crops the model saw here, and a picture of the pieces of ink "
        "(digits in green, what was left out in red with why)",
    )
    bench = add(
        "bench",
        cmd_bench,
        "serving speed and memory vs the notebook's Keras path; `bench real [DIR]`: real digits",
    )
    bench.add_argument(
        "what",
        nargs="?",
        choices=["numbers", "real", "replicas"],
        help="numbers: exact-number accuracy on photos of written numbers and pages; real: "
        "accuracy on the real-digits folder; replicas: 3 replicas behind HAProxy, one killed",
    )
    bench.add_argument(
        "dir",
        nargs="?",
        type=Path,
        help="with real: the folder with labels.csv (default ../shared/data/real-digits)",
    )
    bench.add_argument(
        "--non-digits", type=int, default=100, help="with real: generated non-digits per kind"
    )
    bench.add_argument(
        "--real-digits",
        type=Path,
        default=Path("../shared/data/real-digits"),
        help="with numbers (its nsysu/ digits are written too) and --retrain: the real "
        "digits folder",
    )
    bench.add_argument(
        "--count", type=int, help="photos to time (default 200; with --load, photos sent: 500)"
    )
    bench.add_argument(
        "--photos",
        action="store_true",
        help="accuracy on synthetic phone photos, per condition, instead",
    )
    bench.add_argument("--per-condition", type=int, default=100)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--load",
        action="store_true",
        help="instead: the real bot against the local emulator, --count photos "
        "from --users users in --chats chats at once",
    )
    bench.add_argument(
        "--retrain",
        action="store_true",
        help="instead: a user corrects real exam digits in the real bot, an admin sends "
        "/retrain with the RETRAIN_* settings; time, both models' accuracies, digits fixed",
    )
    bench.add_argument("--users", type=int, default=50, help="with --load (default 50)")
    bench.add_argument(
        "--chats",
        type=int,
        default=5,
        help="with --load (default 5: 2 private chats, the rest groups)",
    )

    run = add("run", cmd_run, "run the Telegram bot (long polling; --webhook behind HTTPS)")
    run.add_argument(
        "--webhook",
        action="store_true",
        help="receive updates on WEBHOOK_URL (WEBHOOK_LISTEN, WEBHOOK_PORT, "
        "WEBHOOK_SECRET_TOKEN) instead of polling",
    )
    add("worker", cmd_worker, "train and promote the /retrain jobs RETRAIN_ON_WORKER queues")
    sandbox = add(
        "sandbox",
        cmd_sandbox,
        "the real bot against a local Telegram emulator, with a chat page in the browser",
    )
    sandbox.add_argument("--host", help="address to serve on (SANDBOX_HOST, default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, help="port (SANDBOX_PORT, default 8080; 0: any free)")

    feedback = commands.add_parser(
        "feedback",
        help="corrections from users: figures and an MNIST-format export",
        description="corrections from users kept in the feedback store (DATABASE_URL)",
    )
    feedback_commands = feedback.add_subparsers(
        dest="feedback_command", required=True, metavar="ACTION"
    )
    feedback_stats = feedback_commands.add_parser(
        "stats",
        help="the figures /stats shows",
        description="the figures /stats shows: "
        "answers recorded, confirmed right/wrong, live accuracy, per-digit mistakes",
    )
    feedback_stats.set_defaults(handler=cmd_feedback_stats)
    feedback_export = feedback_commands.add_parser(
        "export",
        help="write the confirmed digits as an .npz in MNIST's format",
        description="write the confirmed digits as an .npz with MNIST's keys (x_train y_train "
        "x_test y_test; the held-out slice is the test part)",
    )
    feedback_export.add_argument("path", type=Path, metavar="PATH")
    feedback_export.set_defaults(handler=cmd_feedback_export)
    for sub in (feedback_stats, feedback_export):
        sub.add_argument("--database-url", help="the store (DATABASE_URL)")
        sub.add_argument(
            "--model-dir",
            type=Path,
            help="model folder whose served version's live accuracy is shown "
            "(MODEL_DIR, default models)",
        )

    add(
        "start",
        cmd_start,
        "the main job of `make run`: the bot if TELEGRAM_BOT_TOKEN is set, else the sandbox",
    )
    add("health", cmd_health, "exit 0 if a running bot wrote its heartbeat recently (Docker)")
    return parser


def recipe_defaults(name: str) -> str:
    """'33 compact, 14 large, 10 seed': a recipe field per architecture, from the recipe table."""

    def shown(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{shown(getattr(recipe, name))} {arch}" for arch, recipe in RECIPES.items())


def cmd_bench(arguments: argparse.Namespace, settings: Settings) -> int:
    """Print the serving benchmark table, with --photos the photo accuracy table, with --load
    the bot's burst numbers (exit 1 if a photo was lost or answered twice)."""
    # The load and /retrain benches drive the bot through the sandbox's emulator.
    tools = ("core.bench", "bot.tools", "bot.sandbox")
    if not all(importlib.util.find_spec(name) for name in tools):
        print(
            "digitbot bench: the bench tools (core/bench, bot/tools, bot/sandbox) are not "
            "installed here; the Docker image leaves them out: run the benchmarks from a checkout",
            file=sys.stderr,
        )
        return 2
    if arguments.retrain:
        from bot.tools.retrainbench import run_retrain_bench

        return run_retrain_bench(settings, arguments.real_digits)
    if arguments.what == "replicas":
        from bot.tools.replicasbench import run_replicas_command

        return run_replicas_command(settings, arguments)
    if arguments.load:
        from bot.tools.loadtest import run_load_command

        return run_load_command(settings, arguments)
    if arguments.what == "real":
        from core.bench.real import DEFAULT_REAL_DIGITS, real_benchmark

        real_benchmark(
            arguments.model_dir,
            arguments.dir or DEFAULT_REAL_DIGITS,
            confidence_threshold=settings.confidence_threshold,
            non_digits=arguments.non_digits,
            seed=arguments.seed,
        )
        return 0
    from core.bench.benchmarks import serving_benchmark
    from core.data import load_mnist

    mnist = load_mnist(arguments.mnist_path)
    if arguments.what == "numbers":
        from core.bench.benchmarks import number_benchmark
        from core.bench.pages import load_nsysu

        nsysu = load_nsysu(arguments.real_digits)
        number_benchmark(
            arguments.model_dir, mnist, nsysu, count=arguments.count or 300, seed=arguments.seed
        )
    elif arguments.photos:
        from core.bench.benchmarks import photo_benchmark

        photo_benchmark(
            arguments.model_dir, mnist, per_condition=arguments.per_condition, seed=arguments.seed
        )
    else:
        serving_benchmark(arguments.model_dir, mnist, photos=arguments.count or 200)
    return 0


def cmd_explore(arguments: argparse.Namespace, settings: Settings) -> int:
    """Label counts per split, a 7x7 grid of random training digits, one digit + colour bar."""
    import numpy as np

    from core import plots
    from core.data import load_mnist

    mnist = load_mnist(arguments.mnist_path)
    print(f"MNIST from {mnist.source}: {len(mnist.x_train)} training, {len(mnist.x_test)} test")
    for split, labels in (("train", mnist.y_train), ("test", mnist.y_test)):
        unique, counts = np.unique(labels, return_counts=True)
        print(f"{split}: {dict(zip(unique.tolist(), counts.tolist(), strict=True))}")
    arguments.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(arguments.seed)
    picks = rng.choice(len(mnist.x_train), size=49, replace=False)
    grid = plots.save_digit_grid(
        mnist.x_train[picks], mnist.y_train[picks], arguments.out / "digits_grid.png"
    )
    one = plots.save_digit_with_colorbar(
        mnist.x_train[picks[0]], int(mnist.y_train[picks[0]]), arguments.out / "digit_colorbar.png"
    )
    print(f"wrote {grid} and {one}")
    return 0


def cmd_train(arguments: argparse.Namespace, settings: Settings) -> int:
    """Train with the recipe of --arch, write a complete version, then promote it atomically
    if the promotion rule of /retrain allows (or --force); exit 1 when it was not promoted."""
    from core import registry
    from core.train import train_candidate

    registry.remove_stale_staging(arguments.model_dir)
    command = shlex.join(["digitbot", *sys.argv[1:]]) if sys.argv[1:] else "digitbot train"
    staging = train_candidate(
        mnist_path=arguments.mnist_path,
        model_dir=arguments.model_dir,
        arch=arguments.arch,
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        validation_split=arguments.validation_split,
        seed=arguments.seed,
        train_limit=arguments.train_limit,
        command=command,
    )
    metadata = json.loads((staging / registry.METADATA_FILE).read_text())
    print(
        f"test accuracy {metadata['test_accuracy']:.2%}, loss {metadata['test_loss']:.4f}, "
        f"{metadata['train_seconds']:.0f} s of training"
    )
    version = metadata["version"]
    if arguments.no_promote:
        staging.rename(arguments.model_dir / version)
        print(f"wrote {arguments.model_dir / version} (not promoted)")
        return 0
    from bot import admin_replies

    comparison = _train_verdict(
        staging, settings.model_copy(update={"model_dir": arguments.model_dir})
    )
    if comparison is not None and not comparison.promote and not arguments.force:
        staging.rename(arguments.model_dir / version)
        print(html.unescape(admin_replies.retrain_rejected(comparison)))
        print(f"wrote {arguments.model_dir / version} (not promoted; --force serves it anyway)")
        return 1
    version = registry.promote(arguments.model_dir, staging)
    if comparison is not None:
        print(html.unescape(admin_replies.retrain_promoted(version, comparison)))
    forced = " (forced past the promotion rule)" if comparison and not comparison.promote else ""
    print(f"promoted {version}{forced}: {arguments.model_dir / version}")
    return 0


def _train_verdict(staging: Path, settings: Settings) -> Comparison | None:
    """The /retrain promotion rule for a `digitbot train` candidate (None: no model is served
    yet, so there is nothing to compare with)."""
    from bot.handlers.retrain import judge_candidate, promotion_rule, stored_user_digits
    from core import registry
    from core.promotion import UserDigits
    from core.serving import Classifier

    try:
        classifier = Classifier(settings.model_dir)
    except registry.RegistryError:
        return None
    digits = UserDigits.empty()
    if _store_exists(settings.database_url):
        with _feedback_store(argparse.Namespace(), settings) as store:
            digits = stored_user_digits(store)
    return judge_candidate(classifier, staging, digits, promotion_rule(settings))


def _store_exists(url: str) -> bool:
    """An SQLite store that is not there yet is not created just to find it empty."""
    prefix = "sqlite:///"
    return not url.startswith(prefix) or Path(url.removeprefix(prefix)).is_file()


def cmd_evaluate(arguments: argparse.Namespace, settings: Settings) -> int:
    """Evaluate the served model on the MNIST test set through the serving path."""
    from core import plots
    from core.data import load_mnist
    from core.evaluate import evaluate_probabilities
    from core.serving import Classifier

    classifier = Classifier(arguments.model_dir, backend=arguments.backend)
    mnist = load_mnist(arguments.mnist_path)
    from core.train import scale_images

    probabilities = classifier.predict(scale_images(mnist.x_test)[..., 0])
    evaluation = evaluate_probabilities(probabilities, mnist.y_test)
    print(f"model {classifier.version} ({classifier.backend}) on {len(mnist.x_test)} test images")
    print(f"test accuracy: {evaluation.accuracy:.2%}   test loss: {evaluation.loss:.4f}")
    for digit, accuracy in enumerate(evaluation.per_class_accuracy):
        print(f"  digit {digit}: {accuracy:.2%}")
    arguments.out.mkdir(parents=True, exist_ok=True)
    path = plots.save_confusion(evaluation.confusion, arguments.out / "confusion.png")
    print(f"wrote {path}")
    return 0


def cmd_calibrate(arguments: argparse.Namespace, settings: Settings) -> int:
    """Temperature scaling: fit T on the validation digits the served model was not trained on
    and write it into its metadata, so its probabilities (and "sure") are calibrated."""
    import numpy as np

    from core import registry
    from core.data import load_mnist, split_validation
    from core.evaluate import fit_temperature
    from core.serving import Classifier
    from core.train import scale_images

    classifier = Classifier(arguments.model_dir)
    metadata = registry.read_metadata(arguments.model_dir, classifier.version)
    mnist = load_mnist(arguments.mnist_path)
    _, _, images, labels = split_validation(
        mnist.x_train, mnist.y_train, float(metadata.get("validation_split", 0.0))
    )
    if not len(images):
        raise ValueError(f"model {classifier.version} was trained without held-out digits")
    if metadata.get("generated"):
        from core.synthetic import generated_validation

        # The generated samples training held out too (made again, the same from the same seed).
        extra_images, extra_labels = generated_validation(
            mnist, int(metadata["generated"]), float(metadata["validation_split"]), metadata["seed"]
        )
        images = np.concatenate([images, extra_images])
        labels = np.concatenate([labels, extra_labels])
    probabilities = classifier.predict(scale_images(images)[..., 0], calibrated=False)
    temperature = fit_temperature(probabilities, labels)
    before = metadata.get("temperature", 1.0)
    metadata["temperature"] = temperature
    metadata["temperature_count"] = len(images)
    folder = registry.version_dir(arguments.model_dir, classifier.version)
    registry.write_json_atomic(folder / registry.METADATA_FILE, metadata)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    print(
        f"model {classifier.version}: temperature {before} -> {temperature} "
        f"(fitted on {len(images):,} held-out validation samples, {accuracy:.2%} right)"
    )
    return 0


def cmd_summary(arguments: argparse.Namespace, settings: Settings) -> int:
    """Print the Keras summary of the served model (this one loads TensorFlow)."""
    import keras

    from core import registry

    model = keras.models.load_model(registry.version_dir(arguments.model_dir) / registry.KERAS_FILE)
    model.summary()
    return 0


def cmd_predict(arguments: argparse.Namespace, settings: Settings) -> int:
    """Classify each file; with --json one object per line; exit 1 if any file failed."""
    from core.decode import ImageError
    from core.serving import Classifier

    classifier = Classifier(arguments.model_dir, backend=arguments.backend)
    failed = 0
    for path in arguments.paths:
        try:
            result = classifier.classify(path.read_bytes(), max_pixels=settings.max_image_pixels)
        except (OSError, ImageError) as error:
            failed += 1
            message = str(error)
            if isinstance(error, OSError) and error.strerror:
                message = f"cannot read the file: {error.strerror}"
            if arguments.json:
                print(json.dumps({"path": str(path), "error": message}), flush=True)
            else:  # stdout keeps only answers, so that it can be piped
                print(f"{path}: error: {message}", file=sys.stderr, flush=True)
            continue
        if arguments.debug_dir:
            from core import plots

            arguments.debug_dir.mkdir(parents=True, exist_ok=True)
            plots.save_crops(
                [digit.crop for digit in result.digits],
                arguments.debug_dir / f"{path.stem}-crops.png",
                [str(digit.digit) for digit in result.digits],
            )
            (arguments.debug_dir / f"{path.stem}-pieces.png").write_bytes(
                plots.pieces_png(path.read_bytes(), result)
            )
        print(
            json.dumps(result.as_json(str(path), settings.confidence_threshold))
            if arguments.json
            else f"{path}: {result.describe()}",
            flush=True,
        )
    return 1 if failed else 0


def cmd_run(arguments: argparse.Namespace, settings: Settings) -> int:
    """Run the bot until interrupted: long polling, or a webhook server with --webhook."""
    if settings.telegram_bot_token is None:
        raise ValueError(
            "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in the "
            "environment or in .env (or run `digitbot start` for the sandbox)"
        )
    from telegram.error import TelegramError

    from bot.app import build_application, configure_logging
    from bot.redaction import redact_output
    from bot.startup import check_bot_api, explain
    from bot.transport.lifecycle import ALLOWED_UPDATES
    from bot.transport.webhook import run_webhook, webhook_config

    webhook = webhook_config(settings) if getattr(arguments, "webhook", False) else None
    configure_logging(settings)
    from bot.feedback.store import normalize_url
    from core.serving import Classifier

    # Local problems are reported before the network is tried: the model, the store's URL.
    classifier = Classifier(settings.model_dir)
    normalize_url(settings.database_url)
    check_bot_api(settings)  # a wrong token or an unreachable server: one line, no traceback
    application = build_application(settings, classifier)
    try:
        if webhook is None:
            application.run_polling(allowed_updates=ALLOWED_UPDATES)
        else:
            redact_output([webhook.secret])
            run_webhook(application, webhook)
    except (TelegramError, OSError) as error:
        raise ValueError(explain(error, settings)) from None
    return 0


def cmd_worker(arguments: argparse.Namespace, settings: Settings) -> int:
    """Run the training worker until SIGTERM or Ctrl-C."""
    from bot.app import configure_logging
    from bot.cluster.worker import run_worker

    configure_logging(settings)
    return run_worker(settings)  # --model-dir and --mnist-path are in `settings` already


def cmd_sandbox(arguments: argparse.Namespace, settings: Settings) -> int:
    """Serve the sandbox page and run the bot against the emulator until Ctrl-C."""
    if importlib.util.find_spec("bot.sandbox") is None:
        print(
            "digitbot: the offline sandbox (bot/sandbox) is not installed here; the Docker image "
            "leaves it out: set TELEGRAM_BOT_TOKEN for the bot, or run the sandbox from a checkout",
            file=sys.stderr,
        )
        return 2
    from bot.sandbox.runner import run_sandbox

    changes = {}
    if getattr(arguments, "host", None) is not None:
        changes["sandbox_host"] = arguments.host
    if getattr(arguments, "port", None) is not None:
        changes["sandbox_port"] = arguments.port
    return run_sandbox(settings.model_copy(update=changes))


def _feedback_store(arguments: argparse.Namespace, settings: Settings) -> FeedbackStore:
    """The store of DATABASE_URL, or of --database-url; a SQLite file must exist already (the
    bot creates it), so that a typo or another folder does not leave a new empty store behind."""
    from bot.feedback.store import normalize_url, open_store

    if getattr(arguments, "database_url", None):
        settings = settings.model_copy(update={"database_url": arguments.database_url})
    url = normalize_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_file():
            raise ValueError(
                f"no feedback store at {path.resolve()}: the bot creates it when it answers its "
                "first photo (DATABASE_URL, or --database-url)"
            )
    return open_store(settings)


def cmd_feedback_stats(arguments: argparse.Namespace, settings: Settings) -> int:
    """Print the corrections figures of /stats (plain text)."""
    from bot import admin_replies
    from core import registry

    try:
        version: str | None = registry.current_version(arguments.model_dir)
    except (OSError, ValueError):  # no model folder here: the figures for all models only
        version = None
    with _feedback_store(arguments, settings) as store:
        overall = store.stats()
        served = None if version is None else store.stats(model_version=version)
    print(admin_replies.feedback_stats(overall, served, version, html_format=False))
    return 0


def cmd_feedback_export(arguments: argparse.Namespace, settings: Settings) -> int:
    """Write the confirmed digits as an MNIST-format .npz (held-out slice = test)."""
    with _feedback_store(arguments, settings) as store:
        counts = store.export_npz(arguments.path)
    print(
        f"wrote {arguments.path}: {counts.train:,} training and {counts.test:,} test digits "
        "(x_train y_train x_test y_test, uint8, ink = 255)"
    )
    return 0


def cmd_start(arguments: argparse.Namespace, settings: Settings) -> int:
    """The bot when a token is configured, else the offline sandbox."""
    if settings.telegram_bot_token is not None:
        return cmd_run(arguments, settings)
    return cmd_sandbox(arguments, settings)


def cmd_health(arguments: argparse.Namespace, settings: Settings) -> int:
    """Healthy when the running bot touched its heartbeat file recently."""
    from bot.heartbeat import heartbeat_problem

    if settings.heartbeat_file is None:
        print("HEARTBEAT_FILE is not set; nothing to check", file=sys.stderr)
        return 1
    problem = heartbeat_problem(settings.heartbeat_file)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
