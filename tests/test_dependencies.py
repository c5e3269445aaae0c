"""What gets installed is pinned (constraints.txt, used by `make` and so by `.ci/run`), current
with pyproject.toml, and above the releases of Pillow, aiohttp and tornado with known
vulnerabilities."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

# The first releases without the advisories known when this was written (README, Security).
FLOORS = {"pillow": Version("12.3.0"), "aiohttp": Version("3.14.3"), "tornado": Version("6.5.9")}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"not a pin: {line}"
        found[normalized(requirement.name)] = Version(specifier.version)
    return found


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        line for extra in project["optional-dependencies"].values() for line in extra
    ]
    return [Requirement(line) for line in lines]


def test_every_requirement_of_pyproject_is_pinned_within_its_range() -> None:
    pinned = pins()
    for requirement in project_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # another platform's package (tensorflow where tensorflow-cpu is pinned)
        name = normalized(requirement.name)
        assert name in pinned, f"{requirement.name} is not in constraints.txt: run make constraints"
        assert requirement.specifier.contains(pinned[name]), (
            f"{name} {pinned[name]} vs {requirement}"
        )


def test_pins_and_lower_bounds_exclude_releases_with_known_vulnerabilities() -> None:
    pinned = pins()
    for name, floor in FLOORS.items():
        if name in pinned:  # tornado: no longer installed (PTB's webhooks extra is not used)
            assert pinned[name] >= floor, f"{name} {pinned[name]} is below {floor}"
    bounds = {normalized(r.name): r.specifier for r in project_requirements()}
    for name, last_vulnerable in (("pillow", "12.2.0"), ("aiohttp", "3.14.2")):
        assert not bounds[name].contains(last_vulnerable) and bounds[name].contains(FLOORS[name])


def test_make_and_ci_install_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c \$\(CONSTRAINTS\) -e '\.\[dev\]'", makefile)
    assert "CONSTRAINTS := constraints.txt" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
