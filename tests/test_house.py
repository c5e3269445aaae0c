"""The house rules on size keep themselves: no Python module in bot/, core/ or tests/ over 700
lines and no class over 400 (the developers' brief); `make test` fails the day one grows past."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

MAX_MODULE_LINES = 700
MAX_CLASS_LINES = 400


def python_modules() -> list[Path]:
    return sorted(path for top in ("bot", "core", "tests") for path in (ROOT / top).rglob("*.py"))


def long_classes(source: str) -> dict[str, int]:
    """Class name -> its length in lines (decorators left out), for each class over the limit;
    nested classes count on their own too."""
    return {
        node.name: length
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and (length := node.end_lineno - node.lineno + 1) > MAX_CLASS_LINES
    }


def test_the_class_check_measures_from_class_to_its_last_line() -> None:
    body = "".join(f"    field_{number}: int = {number}\n" for number in range(MAX_CLASS_LINES))
    too_long = f"import dataclasses\n\n\nclass Long:\n{body}\n\ndef after() -> None:\n    pass\n"
    assert long_classes(too_long) == {"Long": MAX_CLASS_LINES + 1}
    assert long_classes(too_long.replace("    field_0: int = 0\n", "", 1)) == {}


def test_no_module_is_over_700_lines() -> None:
    modules = python_modules()
    assert len(modules) > 100, f"found only {len(modules)} modules: is ROOT right?"
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules by concern (at most {MAX_MODULE_LINES} lines)"


def test_no_class_is_over_400_lines() -> None:
    long = {
        f"{path.relative_to(ROOT)}:{name}": lines
        for path in python_modules()
        for name, lines in long_classes(path.read_text()).items()
    }
    assert long == {}, f"split these classes by concern (at most {MAX_CLASS_LINES} lines)"
