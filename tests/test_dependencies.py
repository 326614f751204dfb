"""Dependency ranges: every one bounded above, and each admits what is installed.

Issue 12: ranges had no upper bounds, so a fresh install resolved typer 0.29 (which vendors
its own click) and every command-line mistake became a traceback, with no test failing.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BOUNDING = {"<", "<=", "==", "~=", "==="}


def _requirements() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = [("dependencies", Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out += [(f"[{extra}]", Requirement(r)) for r in reqs]
    return out


def _makefile_requirements() -> list[Requirement]:
    """Packages the Makefile installs by name (torch before the package, weights after)."""
    reqs = []
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "pip install" not in line:
            continue
        words = shlex.split(line.split("pip install", 1)[1])
        reqs += [Requirement(w) for w in words if re.match(r"^[A-Za-z][\w.-]*([<>=!~]|$)", w)]
    return reqs


def test_every_dependency_has_an_upper_bound() -> None:
    reqs = _requirements() + [("Makefile", r) for r in _makefile_requirements()]
    assert len(reqs) > 20
    unbounded = [f"{where}: {r}" for where, r in reqs if not any(s.operator in BOUNDING for s in r.specifier)]
    assert unbounded == [], "add an upper bound (<next major) to: " + ", ".join(unbounded)


def test_ranges_admit_the_installed_versions() -> None:
    """The environment the tests run in is one the ranges allow (so the pins are not fiction)."""
    bad = []
    for where, r in _requirements() + [("Makefile", r) for r in _makefile_requirements()]:
        try:
            v = Version(version(r.name))
        except PackageNotFoundError:
            pytest.fail(f"{r.name} ({where}) is not installed: run `make install`")
        if not r.specifier.contains(v, prereleases=True):
            bad.append(f"{where}: {r} but {v} is installed")
    assert bad == []


def test_upper_bounds_reject_the_next_major() -> None:
    """The bounds actually bite: typer 0.30 and numpy 3 are outside."""
    reqs = {r.name.lower(): r for _, r in _requirements()}
    assert not reqs["typer"].specifier.contains("0.30.0")
    assert not reqs["numpy"].specifier.contains("3.0.0")


def test_license_is_an_spdx_expression_and_metadata_builds_without_deprecation(tmp_path: Path) -> None:
    """Issue 25: ``license = { text = ... }`` made every install print setuptools' license
    deprecation warning (twice). Build the metadata of a copy and look for any warning."""
    import shutil
    import subprocess
    import sys

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "egg_info", "-e", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Deprecat" not in out.stderr + out.stdout, out.stderr
    pkg_info = next(tmp_path.glob("*.egg-info/PKG-INFO")).read_text()
    assert "License-Expression: Apache-2.0" in pkg_info
