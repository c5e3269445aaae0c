"""The photo conditions of the synthetic phone photos: one table, and the draw of a photo's look.

`CONDITION_TABLE` is the one description of every condition: its name, what it shows (printed by
`digitbot bench --photos` and listed in the README) and the settings it draws differently from
the mild defaults of `DEFAULTS`. `choose_look` draws a photo's settings from both.

The order of the draws fixes the bytes of every photo for a seed (tests/fixtures/photos/ is
checked against the generator): the defaults are drawn step by step in the order of `DEFAULTS`,
and a condition's own draws for a step right after that step's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
RGB = tuple[float, float, float]


def pick(rng: np.random.Generator, options: tuple[T, ...]) -> T:
    """One element of `options`, chosen by `rng`."""
    return options[int(rng.integers(len(options)))]


def _screen_rgb(rgb: tuple[int, int, int]) -> RGB:
    """An 8-bit screen colour as reflectances in [0, 1]."""
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


# Ink reflectances (fraction of light an ink layer lets through, per RGB channel).
BLACK_INKS: tuple[RGB, ...] = ((0.10, 0.10, 0.12), (0.13, 0.13, 0.19), (0.16, 0.15, 0.17))
BLUE_INKS: tuple[RGB, ...] = ((0.12, 0.19, 0.58), (0.20, 0.30, 0.78), (0.10, 0.14, 0.45))
MARKER_INKS: tuple[RGB, ...] = (
    (0.07, 0.07, 0.08),
    (0.09, 0.17, 0.52),
    (0.70, 0.10, 0.12),
    (0.10, 0.42, 0.20),
)
WHITE_PAPERS: tuple[RGB, ...] = ((0.93, 0.93, 0.92), (0.95, 0.95, 0.95), (0.92, 0.92, 0.94))
TINTED_PAPERS: tuple[RGB, ...] = (
    (0.96, 0.91, 0.76),  # cream
    (0.98, 0.94, 0.66),  # yellow legal pad
    (0.99, 0.93, 0.48),  # sticky note
    (0.78, 0.78, 0.76),  # grey recycled
    (0.88, 0.86, 0.80),  # greyish newsprint
)
SCREEN_BACKGROUNDS: tuple[RGB, ...] = tuple(
    _screen_rgb(rgb) for rgb in ((0, 0, 0), (18, 18, 18), (32, 33, 36), (22, 27, 44), (40, 44, 52))
)
SCREEN_INKS: tuple[RGB, ...] = tuple(
    _screen_rgb(rgb) for rgb in ((255, 255, 255), (236, 236, 236), (255, 244, 170), (150, 220, 255))
)


# --- how a setting is drawn -------------------------------------------------------------------


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class Signed:
    """low-high degrees, either way."""

    low: float
    high: float

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> float:
        return float(rng.uniform(self.low, self.high)) * float(rng.choice([-1, 1]))


@dataclass(frozen=True)
class Integers:
    """low to high - 1."""

    low: int
    high: int

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> int:
        return int(rng.integers(self.low, self.high))


@dataclass(frozen=True)
class Pick:
    options: tuple[Any, ...]

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> Any:
        return pick(rng, self.options)


@dataclass(frozen=True)
class Fixed:
    value: Any

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class Either:
    """`first` with probability `share`, else `second`."""

    share: float
    first: str
    second: str

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> str:
        return self.first if rng.random() < self.share else self.second


@dataclass(frozen=True)
class Per:
    """A uniform range chosen by a setting drawn before (the blur size by the blur kind)."""

    setting: str
    ranges: Mapping[str, tuple[float, float]]

    def __call__(self, rng: np.random.Generator, drawn: Mapping[str, Any]) -> float:
        return float(rng.uniform(*self.ranges[drawn[self.setting]]))


Draw = Uniform | Signed | Integers | Pick | Fixed | Either | Per

# The mild defaults of every photo, step by step (the order of the draws, see the docstring).
DEFAULTS: dict[str, dict[str, Draw]] = {
    "kind": {"screenshot": Fixed(False), "ruling": Fixed("none"), "shadow": Fixed(False)},
    "size": {"height_fraction": Uniform(0.15, 0.50)},  # digit ink height / frame height
    # Default pens are ballpoints and felt tips; MNIST strokes are felt-tip thick.
    "pen": {"stroke_fraction": Uniform(0.06, 0.13)},  # stroke width / digit height
    "ink": {
        "ink_rgb": Pick(BLACK_INKS),
        "ink_opacity": Uniform(0.85, 0.97),
        "ink_variation": Uniform(0.05, 0.2),  # how much pen pressure varies along the stroke
    },
    "paper": {"paper_rgb": Pick(WHITE_PAPERS)},
    "camera": {"roll": Uniform(-3, 3), "pitch": Signed(0, 6), "yaw": Uniform(-4, 4)},  # degrees
    "light": {  # light lost across the frame, vignetting, exposure
        "gradient": Uniform(0.0, 0.15),
        "vignette": Uniform(0.05, 0.2),
        "exposure": Uniform(0.82, 1.04),
    },
    "colour": {"warmth": Uniform(-0.05, 0.12)},  # warm bulbs, neutral daylight or a cool shade
    "blur": {"blur_kind": Fixed("none"), "blur_size": Fixed(0.0)},  # disc radius, motion length
    "noise": {"noise_sigma": Uniform(1.0, 3.0)},  # luma noise in 8-bit levels
    "jpeg": {"jpeg_quality": Integers(70, 96)},
    "finish": {"texture": Uniform(0.6, 1.4), "sharpen_percent": Integers(30, 110)},
}


@dataclass(frozen=True)
class Condition:
    """One photo condition: what it shows, and its own draws by step of `DEFAULTS`."""

    name: str
    description: str
    draws: Mapping[str, Mapping[str, Draw]]


CONDITION_TABLE: tuple[Condition, ...] = (
    Condition("clean", "dark ink on white paper, only the mild defaults", {}),
    Condition(
        "paper_tint",
        "cream, yellow (legal pad, sticky note) or grey recycled paper",
        {"paper": {"paper_rgb": Pick(TINTED_PAPERS)}},
    ),
    Condition(
        "light_gradient",
        "strongly uneven light: brightness falls off across the frame, vignetting",
        {
            "light": {
                "gradient": Uniform(0.35, 0.6),
                "vignette": Uniform(0.25, 0.45),
                "exposure": Uniform(0.95, 1.1),
            }
        },
    ),
    Condition(
        "shadow",
        "a soft-edged shadow band (phone or hand) darkens part of the frame",
        {"kind": {"shadow": Fixed(True)}},
    ),
    Condition(
        "blue_ink",
        "blue ballpoint or fountain-pen ink",
        {"ink": {"ink_rgb": Pick(BLUE_INKS), "ink_opacity": Uniform(0.8, 0.95)}},
    ),
    Condition(
        "thin_pen",
        "thin strokes, about 2.5-5 % of the digit height (fineliner, ballpoint)",
        {"pen": {"stroke_fraction": Uniform(0.025, 0.05)}},
    ),
    Condition(
        "thick_marker",
        "thick marker strokes, about 17-25 % of the digit height",
        {
            "pen": {"stroke_fraction": Uniform(0.17, 0.25)},
            "ink": {
                "ink_rgb": Pick(MARKER_INKS),
                "ink_opacity": Uniform(0.9, 0.98),
                "ink_variation": Uniform(0.02, 0.08),
            },
        },
    ),
    Condition(
        "grid_paper",
        "squared paper, light blue or grey lines every 5 mm",
        {"kind": {"ruling": Fixed("grid")}},
    ),
    Condition(
        "ruled_paper",
        "ruled paper, lines every 7-9 mm plus a red margin line",
        {"kind": {"ruling": Fixed("ruled")}},
    ),
    Condition(
        "small_digit",
        "the digit is 10-20 % of the frame height",
        {"size": {"height_fraction": Uniform(0.10, 0.20)}},
    ),
    Condition(
        "large_digit",
        "the digit is 45-60 % of the frame height",
        {"size": {"height_fraction": Uniform(0.45, 0.60)}},
    ),
    Condition(
        "rotation",
        "camera rolled by 4-15 degrees either way",
        {"camera": {"roll": Signed(4, 15)}},
    ),
    Condition(
        "perspective",
        "camera tilted 12-28 degrees (keystone) and turned up to 12 degrees",
        {"camera": {"pitch": Signed(12, 28), "yaw": Uniform(-12, 12)}},
    ),
    Condition(
        "blur",
        "slight defocus (disc) or motion blur (hand shake)",
        {
            "blur": {
                "blur_kind": Either(0.5, "defocus", "motion"),
                "blur_size": Per("blur_kind", {"defocus": (2.0, 4.5), "motion": (6, 14)}),
            }
        },
    ),
    Condition(
        "noise",
        "low light: darker exposure and strong sensor noise",
        {"noise": {"noise_sigma": Uniform(8.0, 15.0), "exposure": Uniform(0.6, 0.8)}},
    ),
    Condition("low_jpeg", "JPEG quality 20-40", {"jpeg": {"jpeg_quality": Integers(20, 41)}}),
    Condition(
        "inverted",
        "a screenshot of a drawing app: light digit on a flat dark background",
        {
            "kind": {"screenshot": Fixed(True)},
            "pen": {"stroke_fraction": Uniform(0.07, 0.16)},
            "ink": {
                "ink_rgb": Pick(SCREEN_INKS),
                "ink_opacity": Fixed(1.0),
                "ink_variation": Fixed(0.0),
            },
            "paper": {"paper_rgb": Pick(SCREEN_BACKGROUNDS)},
        },
    ),
)
CONDITIONS_BY_NAME: dict[str, Condition] = {
    condition.name: condition for condition in CONDITION_TABLE
}
CONDITIONS: tuple[str, ...] = tuple(CONDITIONS_BY_NAME)
CONDITION_NOTES: dict[str, str] = {c.name: c.description for c in CONDITION_TABLE}


@dataclass(frozen=True)
class Look:
    """Every random setting of one photo except geometry drawn later (line phases, shadow)."""

    screenshot: bool
    height_fraction: float
    stroke_fraction: float | None  # None keeps MNIST's own stroke width
    ink_rgb: RGB
    ink_opacity: float
    ink_variation: float
    paper_rgb: RGB
    texture: float
    ruling: str  # "none", "grid" or "ruled"
    roll: float
    pitch: float
    yaw: float
    gradient: float
    vignette: float
    exposure: float
    cast: RGB  # colour of the light
    shadow: bool
    blur_kind: str  # "none", "defocus" or "motion"
    blur_size: float
    noise_sigma: float
    sharpen_percent: int
    jpeg_quality: int


def choose_look(condition: str, rng: np.random.Generator) -> Look:
    """Draw the photo settings: the mild defaults, then the condition's own draws, step by step."""
    if condition not in CONDITIONS_BY_NAME:
        raise ValueError(
            f"unknown photo condition {condition!r}; choose one of {', '.join(CONDITIONS)}"
        )
    own = CONDITIONS_BY_NAME[condition].draws
    drawn: dict[str, Any] = {}
    for step, defaults in DEFAULTS.items():
        for draws in (defaults, own.get(step, {})):
            for setting, draw in draws.items():
                drawn[setting] = draw(rng, drawn)
    warmth = drawn.pop("warmth")
    cast = (1.0, 1.0 - 0.4 * warmth, 1.0 - warmth)
    return Look(cast=cast, **drawn)


def markdown_table() -> str:
    """The condition table as Markdown, as the README shows it (a test keeps the two equal)."""
    lines = ["| condition | what the photo shows |", "| --- | --- |"]
    lines += [f"| `{c.name}` | {c.description} |" for c in CONDITION_TABLE]
    return "\n".join(lines)
