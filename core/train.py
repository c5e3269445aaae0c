"""The training recipe: data preparation, augmentation, fitting, evaluation and the artifact set.

`train_candidate` trains one model and writes a complete version folder (Keras model, LiteRT
export, metadata JSON, plots) into a staging folder inside the model folder. It never promotes:
the caller decides (the CLI always, `/retrain` only if the candidate is good enough).
TensorFlow is imported here, inside the functions, and nowhere on the serving path.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import registry
from core.data import Mnist, load_mnist, split_validation
from core.evaluate import evaluate_probabilities, fit_temperature
from core.model import DEFAULT_ARCH
from core.recipes import (
    FINE_TUNE,
    RECIPES,
    EpochReport,
    ExtraSamples,
    ProgressCallback,
    Recipe,
)
from core.synthetic import with_generated

logger = logging.getLogger(__name__)

EMA_MOMENTUM = 0.999


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1], as the notebook scaled by 255."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def one_hot(labels: np.ndarray, classes: int = 10) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels.astype(np.int64)]


def user_repeats(user: int, mnist: int, share: float, most: int = 100) -> int:
    """How many copies of `user` digits make them `share` of an epoch with `mnist` images."""
    if user == 0 or share <= 0:
        return 1
    return int(np.clip(round(share * mnist / ((1 - share) * user)), 1, most))


def user_copies(extra: ExtraSamples, mnist: int) -> np.ndarray:
    """How many times each user digit is in one epoch: `share` for all, `corrected_share` more
    for the corrected ones (never fewer copies than a confirmed-right digit gets)."""
    copies = np.full(len(extra.images), user_repeats(len(extra.images), mnist, extra.share))
    corrected = np.zeros(len(copies), bool) if extra.corrected is None else extra.corrected
    if corrected.shape != copies.shape:
        raise ValueError(f"{len(copies)} user digits but {corrected.size} corrected flags")
    if corrected.any() and extra.corrected_share > 0:
        more = user_repeats(int(corrected.sum()), mnist, extra.corrected_share)
        copies[corrected] = np.maximum(copies[corrected], more)
    return copies


def make_augmenter(seed: int) -> Callable[[Any], Any]:
    """Random geometry, stroke thickness and blur for a batch of (b, 28, 28, 1) images in [0, 1].

    Rotation, zoom, shift and shear mimic handwriting and camera framing; thicker/thinner strokes
    and slight blur mimic pens, markers and photos (the preprocessing normalises most of it, the
    rest the model learns to ignore).
    """
    import keras
    import tensorflow as tf

    geometry = keras.Sequential(
        [
            keras.layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom((-0.12, 0.12), fill_mode="constant", seed=seed + 1),
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomShear(
                x_factor=0.15, y_factor=0.0, fill_mode="constant", seed=seed + 3
            ),
        ]
    )
    plus = tf.constant([[-1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-1.0, 0.0, -1.0]])[..., None]
    blur_kernel = tf.constant(
        np.outer(*[np.array([0.25, 0.5, 0.25], np.float32)] * 2)[..., None, None]
    )
    generator = tf.random.Generator.from_seed(seed)

    def augment(images: tf.Tensor) -> tf.Tensor:
        images = geometry(images, training=True)
        thicker = tf.nn.dilation2d(images, plus, [1, 1, 1, 1], "SAME", "NHWC", [1, 1, 1, 1])
        thinner = tf.nn.erosion2d(images, plus, [1, 1, 1, 1], "SAME", "NHWC", [1, 1, 1, 1])
        choice = generator.uniform([tf.shape(images)[0], 1, 1, 1])
        images = tf.where(choice < 0.12, thicker, tf.where(choice > 0.88, thinner, images))
        blurred = tf.nn.conv2d(images, blur_kernel, 1, "SAME")
        images = tf.where(generator.uniform(tf.shape(choice)) < 0.15, blurred, images)
        return tf.clip_by_value(images, 0.0, 1.0)

    return augment


def _progress_callback(progress: ProgressCallback, epochs: int) -> Any:
    import keras

    class ReportProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            elapsed = time.monotonic() - self.started
            done = epoch + 1
            progress(
                EpochReport(
                    epoch=done,
                    epochs=epochs,
                    loss=float(logs.get("loss", float("nan"))),
                    accuracy=float(logs.get("accuracy", float("nan"))),
                    val_loss=_maybe_float(logs.get("val_loss")),
                    val_accuracy=_maybe_float(logs.get("val_accuracy")),
                    seconds_left=elapsed / done * (epochs - done),
                )
            )

    return ReportProgress()


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


def fit(
    mnist: Mnist,
    *,
    arch: str,
    recipe: Recipe,
    seed: int,
    extra: ExtraSamples | None = None,
    progress: ProgressCallback | None = None,
    verbose: int | str = "auto",
    initial_model: Path | None = None,
) -> tuple[Any, dict[str, list[float]], dict[str, Any]]:
    """Build (or load `initial_model` to fine-tune), compile and fit a model.

    Returns the model, its per-epoch history and what the end of training chose (which weights
    were kept, see `_settle_average`).
    """
    import keras
    import tensorflow as tf

    from core.model import build_model

    keras.utils.set_random_seed(seed)
    # Same seed, same data -> the same model, bit for bit: without this, thread scheduling
    # changes the order of floating-point sums (two seed-0 runs gave 99.58 % and 99.72 %).
    tf.config.experimental.enable_op_determinism()
    model = build_model(arch) if initial_model is None else keras.models.load_model(initial_model)
    classes = int(model.output_shape[-1])  # whatever the served model predicts, not a constant
    if recipe.freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False

    train_x, train_y, val_x, val_y = split_validation(
        mnist.x_train, mnist.y_train, recipe.validation_split
    )
    # A model without a "no digit" output (seed, large, or a served one being fine-tuned)
    # cannot learn from generated non-digits: leave them out.
    train_x, train_y = train_x[train_y < classes], train_y[train_y < classes]
    val_x, val_y = val_x[val_y < classes], val_y[val_y < classes]
    weights = np.ones(len(train_x), dtype=np.float32)
    if extra is not None and len(extra.images):
        copies = user_copies(extra, len(train_x))
        train_x = np.concatenate([train_x, np.repeat(extra.images, copies, axis=0)])
        train_y = np.concatenate([train_y, np.repeat(extra.labels, copies)])
        weights = np.concatenate([weights, np.full(int(copies.sum()), extra.weight, np.float32)])

    steps_per_epoch = int(np.ceil(len(train_x) / recipe.batch_size))
    if recipe.schedule == "cosine":
        warmup = max(round(steps_per_epoch * recipe.warmup_epochs), 1)
        learning_rate: Any = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate / 10,
            decay_steps=max(steps_per_epoch * recipe.epochs - warmup, 1),
            alpha=0.01,
            warmup_target=recipe.learning_rate,
            warmup_steps=warmup,
        )
    elif recipe.schedule == "constant":
        learning_rate = recipe.learning_rate
    else:
        raise ValueError(f"unknown learning-rate schedule {recipe.schedule!r}")
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=learning_rate, use_ema=recipe.ema, ema_momentum=EMA_MOMENTUM
        ),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )

    snapshots = _weight_snapshots()
    callbacks = [snapshots]
    if progress is not None:
        callbacks.append(_progress_callback(progress, recipe.epochs))
    validation = (scale_images(val_x), one_hot(val_y, classes)) if len(val_x) else None
    if recipe.augment:
        augment = make_augmenter(seed)
        dataset = (
            tf.data.Dataset.from_tensor_slices(
                (scale_images(train_x), one_hot(train_y, classes), weights)
            )
            .shuffle(len(train_x), seed=seed, reshuffle_each_iteration=True)
            .batch(recipe.batch_size)
            .map(lambda x, y, w: (augment(x), y, w), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
        history = model.fit(
            dataset,
            epochs=recipe.epochs,
            validation_data=validation,
            callbacks=callbacks,
            verbose=verbose,
        )
    else:
        history = model.fit(
            scale_images(train_x),
            one_hot(train_y, classes),
            sample_weight=weights,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            shuffle=True,
            validation_data=validation,
            callbacks=callbacks,
            verbose=verbose,
        )
    history_lists = {key: [float(v) for v in values] for key, values in history.history.items()}
    ending = (
        _settle_average(model, snapshots, history_lists, validation)
        if recipe.ema
        else {"weights": "raw"}
    )
    return model, history_lists, ending


def _weight_snapshots() -> Any:
    """A Keras callback keeping the weights after the first step and at the end of training.

    Keras' weight average starts from the weights after step 1 and gives them the share
    momentum^(steps - 1) of the result: after the 15 steps of a short run that is 98 % of a
    barely trained model (a 1-epoch run on 2,000 images scored 11 % on test).
    """
    import keras

    class WeightSnapshots(keras.callbacks.Callback):
        first: list[np.ndarray] | None = None
        raw: list[np.ndarray] | None = None

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            if self.first is None:
                self.first = [v.numpy() for v in self.model.trainable_weights]

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            # Runs before Keras swaps the average in (after the last epoch's callbacks).
            self.raw = [v.numpy() for v in self.model.trainable_weights]

    return WeightSnapshots()


def _settle_average(
    model: Any,
    snapshots: Any,
    history: dict[str, list[float]],
    validation: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    """Bias-correct the weight average Keras swapped in, then keep it or the raw weights.

    The correction removes step 1's share (momentum^(steps - 1)), leaving the average of the
    trained weights alone. Below 1e-6 (the 33-epoch recipe: 0.999^14,189 = 7e-7) it is skipped:
    it would move a weight by about one float32 rounding step. Then the averaged and the raw
    weights are compared on the validation loss and the better is kept, so that a short run never
    ends worse than its raw weights.
    """
    if snapshots.first is None or snapshots.raw is None:
        return {"weights": "raw"}
    share = EMA_MOMENTUM ** max(int(model.optimizer.iterations) - 1, 0)
    variables = model.trainable_weights
    if 1e-6 <= share < 1.0:
        for variable, first in zip(variables, snapshots.first, strict=True):
            variable.assign((variable.numpy() - share * first) / (1.0 - share))
    ending: dict[str, Any] = {"weights": "average", "average_first_step_share": share}
    raw_losses = history.get("val_loss")
    if validation is None or not raw_losses:
        return ending
    average_loss = float(model.evaluate(*validation, batch_size=1000, verbose=0)[0])
    ending.update(average_val_loss=average_loss, raw_val_loss=raw_losses[-1])
    if raw_losses[-1] < average_loss:  # measured on the raw weights at the last epoch's end
        ending["weights"] = "raw"
        for variable, raw in zip(variables, snapshots.raw, strict=True):
            variable.assign(raw)
    return ending


def export_tflite(model: Any, path: Path) -> Path:
    """Write a float32 LiteRT flatbuffer of `model` (what the bot serves)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # The conversion prints the saved model's endpoints (a dozen TensorSpec lines) on stdout:
    # kept for the debug log, not shown in the middle of the training report.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        flatbuffer = converter.convert()
    logger.debug("LiteRT export: %s", printed.getvalue().strip())
    path.write_bytes(flatbuffer)
    return path


def keras_probabilities(model: Any, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    return np.asarray(model.predict(scale_images(images), batch_size=batch_size, verbose=0))


def write_artifacts(
    folder: Path, model: Any, mnist: Mnist, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate on the test set and write model, LiteRT export, plots and metadata into `folder`."""
    from core import plots  # matplotlib only when a model is trained

    evaluation = evaluate_probabilities(keras_probabilities(model, mnist.x_test), mnist.y_test)
    model.save(folder / registry.KERAS_FILE)
    export_tflite(model, folder / registry.TFLITE_FILE)
    metadata = {**metadata, **evaluation.as_dict(), "params": int(model.count_params())}
    plots.save_curves(metadata["history"], folder / "curves.png")
    plots.save_confusion(
        evaluation.confusion,
        folder / "confusion.png",
        title=f"{metadata['version']}: {evaluation.accuracy:.2%} on MNIST test",
    )
    # metadata.json last: its presence marks the folder complete.
    registry.write_json_atomic(folder / registry.METADATA_FILE, metadata)
    return metadata


def train_candidate(
    *,
    mnist_path: Path | str | None,
    model_dir: Path,
    arch: str = DEFAULT_ARCH,
    epochs: int | None = None,
    batch_size: int | None = None,
    validation_split: float | None = None,
    seed: int = 0,
    train_limit: int | None = None,
    extra_samples: ExtraSamples | None = None,
    progress: ProgressCallback | None = None,
    command: str = "",
    verbose: int | str = "auto",
    fine_tune_from: Path | None = None,
) -> Path:
    """Train, evaluate and write a complete, unpromoted version folder; return its path.

    With `fine_tune_from` (a version folder) the model starts from that version's weights and
    trains with the FINE_TUNE recipe; `arch` then only names the result.
    """
    if fine_tune_from is None and arch not in RECIPES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(RECIPES)}")
    if fine_tune_from is not None and not (Path(fine_tune_from) / registry.KERAS_FILE).is_file():
        raise ValueError(
            f"cannot fine-tune: {Path(fine_tune_from) / registry.KERAS_FILE} is missing"
        )
    base = RECIPES[arch] if fine_tune_from is None else FINE_TUNE
    recipe = replace(
        base,
        epochs=epochs or base.epochs,
        batch_size=batch_size or base.batch_size,
        validation_split=base.validation_split if validation_split is None else validation_split,
    )
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise ValueError("epochs and batch size must be at least 1")
    mnist = load_mnist(mnist_path)
    if train_limit is not None:
        if train_limit < 10:
            raise ValueError(f"train_limit must be at least 10, got {train_limit}")
        mnist = Mnist(
            mnist.x_train[:train_limit],
            mnist.y_train[:train_limit],
            mnist.x_test,
            mnist.y_test,
            mnist.source,
            mnist.sha256,
        )

    staging = registry.staging_dir(model_dir)
    try:
        started = time.monotonic()
        generated = round(recipe.generated * len(mnist.x_train))
        if generated:
            mnist = with_generated(mnist, generated, recipe.validation_split, seed)
        model, history, ending = fit(
            mnist,
            arch=arch,
            recipe=recipe,
            seed=seed,
            extra=extra_samples,
            progress=progress,
            verbose=verbose,
            initial_model=None
            if fine_tune_from is None
            else Path(fine_tune_from) / registry.KERAS_FILE,
        )
        train_seconds = time.monotonic() - started
        _, _, val_x, val_y = split_validation(mnist.x_train, mnist.y_train, recipe.validation_split)
        # Calibrated on the held-out part of the training data, never on the test set.
        temperature = (
            fit_temperature(keras_probabilities(model, val_x), val_y) if len(val_x) else 1.0
        )
        metadata: dict[str, Any] = {
            "version": registry.new_version_name(arch),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "arch": arch,
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "validation_split": recipe.validation_split,
            "augment": recipe.augment,
            "learning_rate": recipe.learning_rate,
            "schedule": recipe.schedule,
            "ema": recipe.ema,
            "warmup_epochs": recipe.warmup_epochs,
            "freeze_batch_norm": recipe.freeze_batch_norm,
            "ending": ending,
            "fine_tuned_from": None if fine_tune_from is None else Path(fine_tune_from).name,
            "temperature": temperature,
            "generated": generated,
            "seed": seed,
            "train_count": len(mnist.x_train),
            "train_seconds": round(train_seconds, 1),
            "data_source": mnist.source,
            "data_sha256": mnist.sha256,
            "command": command,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "history": history,
        }
        if extra_samples is not None:
            metadata["user_samples"] = len(extra_samples.images)
            metadata["user_weight"] = extra_samples.weight
            copies = user_copies(
                extra_samples,
                len(mnist.x_train) - round(len(mnist.x_train) * recipe.validation_split),
            )
            metadata["user_repeats"] = int(copies.min()) if len(copies) else 0
            if extra_samples.corrected is not None and extra_samples.corrected.any():
                metadata["user_corrected"] = int(extra_samples.corrected.sum())
                metadata["user_corrected_repeats"] = int(copies[extra_samples.corrected].min())
            if len(extra_samples.holdout_images):
                user_evaluation = evaluate_probabilities(
                    keras_probabilities(model, extra_samples.holdout_images),
                    extra_samples.holdout_labels,
                )
                metadata["user_accuracy"] = user_evaluation.accuracy
                metadata["user_holdout_count"] = user_evaluation.count
        write_artifacts(staging, model, mnist, metadata)
        staging.chmod(0o755)  # mkdtemp makes it private; the served folder is readable by all
    except BaseException:
        registry.discard(staging)
        raise
    return staging
