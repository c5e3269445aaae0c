"""Model architectures as plain functions that return an uncompiled Keras model.

`seed` is the teaching notebook's Sequential CNN, kept as it was. `compact` (the default, shipped
with the bot; ten digits and an eleventh class, "no digit") stacks 3x3 convolutions with batch
normalisation and dropout and downsamples early with strided convolutions: about 7 M
multiply-adds per image, so LiteRT answers in ~0.1 ms.
`large` is the Deotte-style MNIST CNN it was derived from: as accurate, five times the arithmetic.
TensorFlow/Keras is imported inside the functions so `import core.model` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
NO_DIGIT = 10  # the compact model's eleventh class: what is no digit (see core.synthetic)
# A crop is no digit only when the model is this sure of it; below, its likeliest digit is
# answered with its (low) probability, i.e. "not sure". On the real digits, dropping at the
# argmax lost more written 4s and 6s than it saved empty cells (docs/benchmarks.md).
NO_DIGIT_SURE = 0.9


def build_seed_model() -> keras.Model:
    """The notebook's CNN: Conv2D, MaxPooling2D, Flatten, Dense, softmax."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="seed",
    )


def build_large_model() -> keras.Model:
    """Conv-BN-ReLU blocks, strided downsampling, dropout; about 0.3 M parameters."""
    import keras
    from keras import layers

    def conv_block(
        inputs: keras.KerasTensor, filters: int, kernel: int, strides: int = 1
    ) -> keras.KerasTensor:
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(inputs)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input(shape=INPUT_SHAPE)
    x = conv_block(inputs, 32, 3)
    x = conv_block(x, 32, 3)
    x = conv_block(x, 32, 5, strides=2)  # learned downsampling instead of max pooling
    x = layers.Dropout(0.4)(x)
    x = conv_block(x, 64, 3)
    x = conv_block(x, 64, 3)
    x = conv_block(x, 64, 5, strides=2)
    x = layers.Dropout(0.4)(x)
    x = conv_block(x, 128, 4)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="large")


def build_compact_model() -> keras.Model:
    """The same blocks with early strided downsampling: a fifth of the arithmetic per image."""
    import keras
    from keras import layers

    def conv_block(
        inputs: keras.KerasTensor, filters: int, strides: int = 1, padding: str = "same"
    ) -> keras.KerasTensor:
        x = layers.Conv2D(filters, 3, strides=strides, padding=padding, use_bias=False)(inputs)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input(shape=INPUT_SHAPE)
    x = conv_block(inputs, 16)
    x = conv_block(x, 32, strides=2)  # 14x14
    x = conv_block(x, 32)
    x = layers.Dropout(0.25)(x)
    x = conv_block(x, 64, strides=2)  # 7x7
    x = conv_block(x, 64)
    x = conv_block(x, 128, padding="valid")  # 5x5
    x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(NUM_CLASSES + 1, activation="softmax")(x)  # + NO_DIGIT
    return keras.Model(inputs, outputs, name="compact")


ARCHITECTURES: dict[str, Callable[[], keras.Model]] = {
    "seed": build_seed_model,
    "compact": build_compact_model,
    "large": build_large_model,
}
DEFAULT_ARCH = "compact"


def build_model(arch: str) -> keras.Model:
    """Build the named architecture, or raise ValueError listing the known ones."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]()
