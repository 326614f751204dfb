"""The TriviaQA table `sample` made from two local GGUF models (data/local) stays intact.

The pinned numbers are those of the run recorded in data/local/PROVENANCE.md; each is also
recomputed here from the per-sample columns, so a table whose rows disagree with their own
samples fails too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firewall_routing.outcomes import load_table

LOCAL = Path(__file__).resolve().parents[2] / "data/local"
TABLE = LOCAL / "triviaqa-smollm2-135m-vs-gemma-3-270m.jsonl"
ROWS = 1200  # the run's --limit
# mean exact-match pass rates of the run (`sample` printed 0.055 and 0.092): 333 and 555 of
# the 6,000 samples per model; greedy: 91 and 144 of 1,200
WEAK_PASS, STRONG_PASS = 333 / 6000, 555 / 6000
WEAK_GREEDY, STRONG_GREEDY = 91 / 1200, 144 / 1200
TEST_ROWS = 300  # the router split: the last 300 rows are the test split


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines()]


def test_row_count_ids_and_samples(rows: list[dict[str, Any]]) -> None:
    table = load_table(TABLE)
    assert len(table) == ROWS and len(rows) == ROWS
    assert table.ids == tuple(f"triviaqa/{i}" for i in range(ROWS))  # a prefix of the 3-shot file, in order
    assert (table.weak.n == 5).all() and (table.strong.n == 5).all()
    assert not np.isnan(table.weak.greedy).any() and not np.isnan(table.strong.greedy).any()
    assert ROWS - TEST_ROWS >= 700 and TEST_ROWS >= 300


def test_pass_rates_are_the_recorded_ones(rows: list[dict[str, Any]]) -> None:
    table = load_table(TABLE)
    assert table.weak.pass_rate.mean() == pytest.approx(WEAK_PASS, abs=1e-9)
    assert table.strong.pass_rate.mean() == pytest.approx(STRONG_PASS, abs=1e-9)
    assert table.weak.greedy.mean() == pytest.approx(WEAK_GREEDY, abs=1e-9)
    assert table.strong.greedy.mean() == pytest.approx(STRONG_GREEDY, abs=1e-9)
    for side in ("weak", "strong"):
        samples = np.array([r[f"{side}_samples"] for r in rows], dtype=float)
        np.testing.assert_allclose(samples.mean(axis=1), [r[f"{side}_pass_rate"] for r in rows])


def test_f1_quality_is_present_and_agrees_with_exact_match(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        for side in ("weak", "strong"):
            quality, correct = r[f"{side}_quality"], r[f"{side}_samples"]
            assert len(quality) == len(correct) == 5
            assert all(0.0 <= q <= 1.0 for q in quality)
            # exact match implies F1 = 1 (same normalized text); the converse fails only for the
            # same tokens in another order ("Red, Green and Blue" for "Red, Blue and Green")
            assert all(q == 1.0 for q, c in zip(quality, correct, strict=True) if c)
            assert not r[f"{side}_greedy"] or r[f"{side}_greedy_quality"] == 1.0
    reordered = sum(
        1
        for r in rows
        for side in ("weak", "strong")
        for q, c in zip(r[f"{side}_quality"], r[f"{side}_samples"], strict=True)
        if q == 1.0 and not c
    )
    assert reordered == 6  # counted in the run recorded in PROVENANCE.md
