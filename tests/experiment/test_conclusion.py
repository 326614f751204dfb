"""Separability verdicts: hand-made differences and scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from firewall_routing import metrics
from firewall_routing.experiment import conclusion
from firewall_routing.experiment.evaluation import evaluate_and_compare
from firewall_routing.experiment.results import Comparison, RouterRun
from firewall_routing.outcomes import OutcomeTable

from ..conftest import make_table


def test_paired_difference_hand_computed() -> None:
    # 40 resampled differences: 1, 2, ..., 40 → all above 0; p = 2·(0 + 1)/(40 + 1)
    d = conclusion.paired_difference("a", "b", 20.5, np.arange(1.0, 41.0))
    assert d.separable and d.p == pytest.approx(2 / 41) and (d.a, d.b, d.diff) == ("a", "b", 20.5)
    assert d.lo == pytest.approx(np.percentile(np.arange(1.0, 41.0), 2.5))
    # symmetric around 0: 0 in the interval, p capped at 1
    sym = conclusion.paired_difference("a", "b", 0.0, np.arange(-20.0, 21.0))
    assert not sym.separable and sym.p == 1.0
    # 3 of 40 resamples at or below 0: p = 2·(3 + 1)/41
    some = conclusion.paired_difference("a", "b", 5.0, np.r_[-1.0, -0.5, 0.0, np.ones(37)])
    assert some.p == pytest.approx(8 / 41)
    # identical routers: every difference 0 → p = 1, not separable
    same = conclusion.paired_difference("a", "b", 0.0, np.zeros(50))
    assert not same.separable and same.p == 1.0
    # a negative difference is separable too
    assert conclusion.paired_difference("a", "b", -3.0, -np.arange(1.0, 41.0)).separable


def test_identical_groups_merge_equal_scores_only() -> None:
    a, b = np.array([0.1, 0.2]), np.array([0.2, 0.1])
    groups = conclusion.identical_groups({"x": [a], "y": [b], "z": [a.copy()], "w": [a, b], "v": [a, b]})
    assert groups == [["x", "z"], ["y"], ["w", "v"]]
    # a merged group is named after the paper's blocking design when it contains one
    merged = conclusion.identical_groups({"win-rate": [a], "soft-block": [a], "hybrid-prob": [a]})
    assert merged == [["soft-block", "win-rate", "hybrid-prob"]]


def _scenario(n: int = 600) -> tuple[list[RouterRun], dict[str, OutcomeTable]]:
    """Weak passes the "easy" half, fails the "hard" half; strong passes everything.

    * ``good``: scores = weak pass rate → sends every hard query to strong first (near oracle).
    * ``good2``: the same ordering, scores shifted → APGR identical to ``good``.
    * ``noise``: independent uniform scores → APGR ≈ 50.
    """
    rng = np.random.default_rng(1)
    pr_w = np.r_[np.ones(n // 2), np.zeros(n // 2)]
    rng.shuffle(pr_w)
    pr_s = np.ones(n)
    table = make_table([f"q{i}" for i in range(n)], pr_w, pr_s)
    key = "main/toy"
    runs = [
        RouterRun("good", "design", {key: [pr_w + 0.01 * rng.random(n)]}),
        RouterRun("good2", "design", {key: [pr_w + 5.0 + 0.01 * rng.random(n)]}),
        RouterRun("noise", "design", {key: [rng.random(n)]}),
        RouterRun("random", "baseline", {key: [rng.random(n)]}),
        RouterRun("oracle", "baseline", {key: [pr_w - pr_s]}),
    ]
    return runs, {key: table}


def _by_pair(comp: Comparison) -> dict[tuple[str, str], conclusion.Difference]:
    return {(d.a, d.b): d for d in comp.differences}


def test_known_separable_and_not_separable() -> None:
    runs, tables = _scenario()
    rows, comps = evaluate_and_compare(runs, tables, n_boot=300)
    comp = comps["main/toy"]
    d = _by_pair(comp)
    # hand-computed: PGR(α) = min(2α, 1) → APGR = (0+.2+.4+.6+.8+6·1)/11 = 800/11
    assert d[("good", "random")].separable
    assert d[("good", "random")].diff == pytest.approx(800 / 11 - 50)
    assert not d[("noise", "random")].separable
    assert d[("good", "noise")].separable
    # the same ordering: exactly the same APGR on every resample
    pair = d.get(("good", "good2")) or d[("good2", "good")]
    assert not pair.separable and pair.diff == pytest.approx(0.0) and pair.p == 1.0
    # neither the random draw nor the oracle is compared
    assert all("oracle" not in k and k[0] != "random" for k in d)
    # the compared number is the one in the tables (seed-mean APGR)
    apgr = {r.router: r.ev.mean.apgr for r in rows}
    assert d[("good", "noise")].diff == pytest.approx(apgr["good"] - apgr["noise"])
    # and it is the sweep's paired test, on the same resamples (bootstrap seed 0)
    t = tables["main/toy"]
    ref = metrics.paired_apgr_difference(
        runs[0].scores["main/toy"], runs[2].scores["main/toy"], t.weak.pass_rate, t.strong.pass_rate, 300, 0
    )
    got = d[("good", "noise")]
    assert (got.diff, got.lo, got.hi, got.p) == pytest.approx(tuple(ref))


def test_identical_routers_counted_once() -> None:
    runs, tables = _scenario(200)
    key = "main/toy"
    runs.append(RouterRun("good-copy", "design", {key: list(runs[0].scores[key])}))
    _, comps = evaluate_and_compare(runs, tables, n_boot=50)
    comp = comps[key]
    assert comp.groups == [["good", "good-copy"]]
    assert "good = good-copy" in comp.apgr and "good" not in comp.apgr


def test_no_bootstrap_no_comparisons() -> None:
    runs, tables = _scenario(100)
    rows, comps = evaluate_and_compare(runs, tables, n_boot=0)
    assert comps == {} and rows and all(r.ev.ci95 is None for r in rows)


def test_multi_seed_compares_seed_mean() -> None:
    """With 2 seeds the difference is of seed-mean APGRs, not of an ensemble of scores."""
    runs, tables = _scenario(300)
    key = "main/toy"
    rng = np.random.default_rng(5)
    t = tables[key]
    pr_w = t.weak.pass_rate
    two = RouterRun("two", "design", {key: [pr_w + rng.random(300) * 0.5, rng.random(300)]})
    rows, comps = evaluate_and_compare([two, runs[2]], tables, n_boot=100)
    apgr = {r.router: r.ev.mean.apgr for r in rows}
    d = _by_pair(comps[key])
    pair = d.get(("two", "noise")) or d[("noise", "two")]
    assert abs(pair.diff) == pytest.approx(abs(apgr["two"] - apgr["noise"]))
    assert comps[key].n_seeds == 2
