"""environment.yml (conda) and pyproject.toml list the same dependencies with the same lower bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$")


def _parse(spec: str) -> tuple[str, str]:
    match = _SPEC.match(spec)
    assert match, f"unparseable requirement {spec!r}"
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    return dict(_parse(spec) for spec in specs)


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs: list[str] = []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            specs.extend(item["pip"])
        else:
            specs.append(item)
    parsed = dict(_parse(spec) for spec in specs)
    parsed.pop("python")
    parsed.pop("pip")
    return parsed


def test_environment_lists_the_same_dependencies_as_pyproject() -> None:
    assert _environment() == _pyproject()


def test_environment_requires_python_311() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python>=3.11" in env["dependencies"]
