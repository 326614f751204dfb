"""The table `sample` made from two real local models (data/local) stays intact and usable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firewall_routing.labels import DESIGNS, Approximations, compute_labels
from firewall_routing.outcomes import load_table

TABLE = Path(__file__).resolve().parents[2] / "data/local/gsm8k-qwen-0.5b-vs-1.5b.jsonl"


def test_shipped_table_matches_its_provenance() -> None:
    table = load_table(TABLE)
    assert len(table) == 60 and table.ids[0] == "gsm8k-test/0" and table.ids[-1] == "gsm8k-test/59"
    assert (table.weak.n == 4).all() and (table.strong.n == 4).all()
    # the pass rates PROVENANCE.md reports, and each one is the mean of its four graded samples
    assert np.isclose(table.weak.pass_rate.mean(), 0.175) and np.isclose(
        table.strong.pass_rate.mean(), 29 / 60
    )
    assert table.weak.samples is not None
    assert all(np.isclose(s.mean(), p) for s, p in zip(table.weak.samples, table.weak.pass_rate, strict=True))
    assert np.isclose(np.nanmean(table.weak.greedy), 0.25)
    assert ((table.margin >= 0) & (table.margin <= 1)).all()


def test_every_label_design_runs_on_it_without_approximations() -> None:
    table = load_table(TABLE)
    for design in DESIGNS:
        result = compute_labels(table, design, Approximations(greedy="none", pairing="none"))
        labels = result.values
        assert result.notes == ()  # greedy answers and paired samples are real, not approximated
        assert labels.shape == (60,) and ((labels >= 0) & (labels <= 1)).all()
