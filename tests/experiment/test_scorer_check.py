"""scorer-check: agreement metrics by hand, and the regret is 0 for a scorer equal to the trusted one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.experiment.scorer_check import check, cohen_kappa, pairwise_accuracy, spearman
from firewall_routing.outcomes import load_generic


def test_pairwise_accuracy_by_hand() -> None:
    dc = np.array([0.2, -0.1, 0.0, 0.3, 0.5])
    dt = np.array([0.1, 0.4, -0.2, 0.0, 0.2])  # row 4 has no trusted preference
    acc, n = pairwise_accuracy(dc, dt)
    assert n == 4 and acc == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_kappa_and_spearman_by_hand() -> None:
    a = np.array([1, 1, 0, 0, 1, 0], dtype=float)
    b = np.array([1, 0, 0, 0, 1, 1], dtype=float)
    po, pe = 4 / 6, 0.5 * 0.5 + 0.5 * 0.5
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(np.ones(3), np.ones(3)))
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 30, 20])) == pytest.approx(0.5)


def _write(path: Path, rng: np.random.Generator, noise: float, rows: int = 80) -> Path:
    with path.open("w") as f:
        for k in range(rows):
            qw, qs = rng.random(3), rng.random(3)
            f.write(
                json.dumps(
                    {
                        "id": f"q{k}",
                        "prompt": f"question number {k} about topic {k % 7}",
                        "weak_quality": list(np.clip(qw + noise * rng.standard_normal(3), 0, 1)),
                        "strong_quality": list(np.clip(qs + noise * rng.standard_normal(3), 0, 1)),
                    }
                )
                + "\n"
            )
    return path


def test_a_scorer_equal_to_the_trusted_one_agrees_fully_and_has_zero_regret(tmp_path: Path) -> None:
    t = load_generic(_write(tmp_path / "t.jsonl", np.random.default_rng(0), 0.0))
    r = check(t, t, design="soft-block", router="ridge", n_boot=200)
    assert r.level == "answer" and r.answers == 80 * 6
    assert r.pairwise_accuracy == 1.0 and r.spearman == pytest.approx(1.0) and r.kappa == pytest.approx(1.0)
    assert r.regret == 0.0 and r.regret_ci95 == (0.0, 0.0)


def test_noisier_scorer_agrees_less(tmp_path: Path) -> None:
    t = load_generic(_write(tmp_path / "t.jsonl", np.random.default_rng(0), 0.0))
    c = load_generic(_write(tmp_path / "c.jsonl", np.random.default_rng(0), 0.3))
    r = check(c, t, router="ridge", n_boot=200)
    assert 0.5 < r.pairwise_accuracy < 1.0 and 0.3 < r.spearman < 0.99 and r.kappa < 1.0
    lo, hi = r.regret_ci95
    assert lo <= r.regret <= hi


def test_tables_without_common_queries_are_one_line(tmp_path: Path) -> None:
    t = load_generic(_write(tmp_path / "t.jsonl", np.random.default_rng(0), 0.0, rows=12))
    other = t.take(np.arange(5))
    with pytest.raises(InputError, match="share 5 query ids"):
        check(other, t)
