"""The README says what is true: its Layout section draws the real tree, and its table of photo
conditions is the generator's own (core.bench.looks)."""

from __future__ import annotations

import re

from core.bench.looks import markdown_table
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def layout_rooms() -> dict[str, str]:
    """Room (a folder, "core/bench/") -> its text in the Layout section (continuation lines too)."""
    block = README.split("## Layout", 1)[1].split("```", 2)[1]
    rooms: dict[str, str] = {}
    room = ""
    for line in block.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            room, _, line = line.partition(" ")
            rooms[room] = ""
        rooms[room] += " " + line.strip()
    return rooms


def test_the_layout_names_every_package_and_module() -> None:
    rooms = layout_rooms()
    packages = sorted(
        f"{init.parent.relative_to(ROOT)}/"
        for top in ("core", "bot")
        for init in (ROOT / top).rglob("__init__.py")
    )
    missing = [package for package in packages if package not in rooms]
    assert missing == [], f"draw {missing} in the README's Layout section, one line a room"
    for package in packages:
        words = set(re.findall(r"\w+", rooms[package]))
        modules = sorted(
            path.stem for path in (ROOT / package).glob("*.py") if path.stem != "__init__"
        )
        missing = [module for module in modules if module not in words]
        assert missing == [], f"name {missing} on the {package} line of the README's Layout"


def test_the_layout_names_only_what_exists() -> None:
    assert [room for room in layout_rooms() if not (ROOT / room).exists()] == []


def test_the_photo_conditions_are_the_generators() -> None:
    assert markdown_table() in README


def test_the_readme_stays_short() -> None:
    assert len(README) < 25_000, "measurements belong in docs/benchmarks.md"
