"""The training recipes and the light records of a training run, apart from the training code.

`RECIPES` (one per architecture) and `FINE_TUNE` say how a model is trained; `EpochReport` is
what a run says after each epoch; `ExtraSamples` are users' digits mixed into training. Only
numpy here, so the bot and the CLI import these without TensorFlow or matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Recipe:
    """How an architecture is trained; flags on `digitbot train` override these."""

    epochs: int
    batch_size: int
    validation_split: float
    augment: bool
    learning_rate: float
    schedule: str  # "constant" (the notebook's adam) or "cosine" (warm-up then cosine decay)
    ema: bool = False  # keep an exponential moving average of the weights and use it at the end
    warmup_epochs: float = 1.0  # with "cosine": epochs of linear warm-up from a tenth of the rate
    # Fine-tuning: batch normalisation keeps its statistics and scales (inference mode), as Keras
    # advises, so that batches rich in users' digits do not move what MNIST is read with.
    freeze_batch_norm: bool = False
    generated: float = 0.0  # core.synthetic samples added, as a share of the MNIST training set


RECIPES: dict[str, Recipe] = {
    # The teaching notebook, unchanged: adam, 10 epochs of 64, a quarter held out for validation.
    "seed": Recipe(
        epochs=10,
        batch_size=64,
        validation_split=0.25,
        augment=False,
        learning_rate=1e-3,
        schedule="constant",
    ),
    # The shipped model: augmentation that also prepares for photos, a short warm-up then cosine
    # decay, an average of the weights (EMA) at the end; 1/12 of the training set for validation.
    # A fifth more generated samples (12,000: non-digits for the "no digit" class, printed
    # digits, distorted digits in cells) as the bot's preprocessing cuts them; 27 epochs of the
    # larger set take as many steps as 33 of MNIST alone did.
    "compact": Recipe(
        epochs=27,
        batch_size=128,
        validation_split=1 / 12,
        augment=True,
        learning_rate=3e-3,
        schedule="cosine",
        ema=True,
        generated=0.2,
    ),
    "large": Recipe(
        epochs=14,
        batch_size=128,
        validation_split=1 / 12,
        augment=True,
        learning_rate=2e-3,
        schedule="cosine",
    ),
}

# Fine-tuning the served model (`/retrain`): a few epochs from its weights, so a tenth of the
# compact recipe's peak rate and a short warm-up (Adam's moment estimates start from zero);
# batch normalisation frozen (on exam digits: 99.56 % MNIST test instead of 99.51 %, see
# docs/benchmarks.md). Works for whatever architecture is served.
FINE_TUNE = Recipe(
    epochs=3,
    batch_size=128,
    validation_split=1 / 12,
    augment=True,
    learning_rate=3e-4,
    schedule="cosine",
    ema=True,
    warmup_epochs=0.2,
    freeze_batch_norm=True,
)


@dataclass(frozen=True)
class EpochReport:
    """What a training run says after each epoch (for progress bars and /retrain messages)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds_left: float


@dataclass
class ExtraSamples:
    """User-confirmed digits to mix into training, already in MNIST's format (uint8, ink=255)."""

    images: np.ndarray
    labels: np.ndarray
    weight: float = 3.0
    # The share of each epoch's examples they make up at least: a few hundred digits among
    # 55,000 are otherwise seen three times in a fine-tune and not learned (3 of 33 corrected
    # exam digits read right after it); repeated, each copy is augmented anew.
    share: float = 0.0
    # Which of them users corrected (the bot had read them wrong), and the share of each epoch
    # those make up at least: they are the few digits the served model does not read yet, and
    # among hundreds of confirmed-right ones a common share teaches them too little.
    corrected: np.ndarray | None = None
    corrected_share: float = 0.0
    holdout_images: np.ndarray = field(default_factory=lambda: np.zeros((0, 28, 28), np.uint8))
    holdout_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.uint8))


ProgressCallback = Callable[[EpochReport], None]
