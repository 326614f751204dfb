"""The docs say what the code does (issue 25: docs/serving.md still called the default router
an MLP head after ``ridge`` became the default; the README gave no duration for ``make test``)."""

from __future__ import annotations

import re
from pathlib import Path

from firewall_routing.routers import DEFAULT_ROUTER

ROOT = Path(__file__).resolve().parents[1]


def test_serving_quick_start_names_the_default_router() -> None:
    text = (ROOT / "docs" / "serving.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_step = next(line for line in quick.splitlines() if line.startswith("# 1."))
    assert f"`{DEFAULT_ROUTER}`" in first_step
    assert "MLP" not in first_step


def test_readme_says_how_long_make_test_takes() -> None:
    first = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    assert re.search(r"`make test`[^\n]*\d+ passed[^\n]*in \d+ s", first.replace("\n", " ")), (
        "the README's first 60 lines give make test's measured duration"
    )
