"""Metrics against hand-computed cases, order/tie invariance, and property tests."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firewall_routing import metrics as M
from firewall_routing.errors import MetricError, UndefinedGapError

# Four queries: gains pr_s - pr_w = [0.5, 0, -0.5, 1]
PR_W = np.array([0.5, 1.0, 0.5, 0.0])
PR_S = np.array([1.0, 1.0, 0.0, 1.0])
# P_w = 2/4 = 0.5, P_s = 3/4 = 0.75, gap 0.25


def test_curve_by_hand() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.1])  # strong order: q3 (gain 1), q0 (.5), q2 (-.5), q1 (0)
    c = M.deferral_curve(scores, PR_W, PR_S)
    np.testing.assert_allclose(c.frac, [0, 0.25, 0.5, 0.75, 1.0])
    # P: 0.5, +1/4 -> 0.75, +0.5/4 -> 0.875, -0.5/4 -> 0.75, +0 -> 0.75
    np.testing.assert_allclose(c.pass_rate, [0.5, 0.75, 0.875, 0.75, 0.75])
    assert c.weak_pass_rate == 0.5 and c.strong_pass_rate == 0.75


def test_apgr_by_hand() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.1])
    c = M.deferral_curve(scores, PR_W, PR_S)
    # PGR at nodes: 0, 1, 1.5, 1, 1 ; alpha grid 0..1 by 0.1, linear interpolation:
    pgr = np.interp(np.linspace(0, 1, 11), [0, 0.25, 0.5, 0.75, 1], [0, 1, 1.5, 1, 1])
    assert M.apgr(c) == pytest.approx(pgr.mean() * 100)
    # exact area: trapezoids 0.25*(0+1)/2 + 0.25*(1+1.5)/2 + 0.25*(1.5+1)/2 + 0.25*(1+1)/2
    assert M.apgr_area(c) == pytest.approx(100 * 0.25 * (0.5 + 1.25 + 1.25 + 1.0))


def test_ties_average_and_order_invariance() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.1])  # q3 first, then q0,q1,q2 tied
    c = M.deferral_curve(scores, PR_W, PR_S)
    # after q3: 0.75; tied group of gains (0.5, 0, -0.5) sums 0 -> 0.75 at the end, linear inside
    np.testing.assert_allclose(c.frac, [0, 0.25, 1.0])
    np.testing.assert_allclose(c.pass_rate, [0.5, 0.75, 0.75])
    perm = [2, 0, 3, 1]
    c2 = M.deferral_curve(scores[perm], PR_W[perm], PR_S[perm])
    assert M.apgr(c2) == M.apgr(c)


def test_tie_average_equals_mean_over_tie_breaks() -> None:
    rng = np.random.default_rng(1)
    pr_w, pr_s = rng.random(6), rng.random(6)
    scores = np.array([0.1, 0.3, 0.3, 0.3, 0.7, 0.7])
    want = []
    for p1 in itertools.permutations([1, 2, 3]):
        for p2 in itertools.permutations([4, 5]):
            order = [0, *p1, *p2]
            strict = np.empty(6)
            strict[order] = np.arange(6)
            want.append(M.apgr(M.deferral_curve(strict, pr_w, pr_s)))
    assert M.apgr(M.deferral_curve(scores, pr_w, pr_s)) == pytest.approx(np.mean(want))


def test_constant_scores_give_fifty() -> None:
    c = M.deferral_curve(np.zeros(4), PR_W, PR_S)
    assert M.apgr(c) == pytest.approx(50.0)
    assert M.apgr_area(c) == pytest.approx(50.0)


def test_pass_rate_at_and_cpt() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.1])
    c = M.deferral_curve(scores, PR_W, PR_S)
    assert c.at(0.5) == pytest.approx(0.875)
    assert c.at(0.2) == pytest.approx(0.5 + 0.8 * 0.25)  # interpolated inside the first query
    # PGR reaches 0.5 halfway through the first query: alpha = 0.125; 0.8 at 0.2
    assert M.cpt(c, 0.5) == pytest.approx(0.125)
    assert M.cpt(c, 0.8) == pytest.approx(0.2)
    assert M.cpt(c, 1.0) == pytest.approx(0.25)


def test_quality_drop_by_hand() -> None:
    c = M.deferral_curve(np.array([0.2, 0.9, 0.5, 0.1]), PR_W, PR_S)
    # cost advantage 0.5 -> alpha 0.5 -> P = 0.875 > P_s: drop -16.67 %
    assert M.quality_drop(c, 0.5) == pytest.approx((0.75 - 0.875) / 0.75 * 100)
    # cost advantage 1 -> all weak: drop (0.75-0.5)/0.75
    assert M.quality_drop(c, 1.0) == pytest.approx(100 / 3)


def test_taxonomy_by_hand() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.1])
    tax = M.taxonomy(scores, PR_W, PR_S, 0.5)  # strong calls: q3 (0,1) and q0 (0.5,1)
    assert tax["strong_only"] == pytest.approx((1.0 + 0.5) / 2)
    assert tax["both_ok"] == pytest.approx(0.5 / 2)
    assert tax["weak_ok"] == pytest.approx(0.0)
    assert tax["both_fail"] == pytest.approx(0.0)
    assert sum(tax.values()) == pytest.approx(1.0)


def test_strong_weights_split_ties() -> None:
    w = M.strong_weights(np.array([0.5, 0.5, 0.5, 0.1]), 0.5)
    np.testing.assert_allclose(w, [1 / 3, 1 / 3, 1 / 3, 1.0])


def test_undefined_gap_is_an_error() -> None:
    c = M.deferral_curve(np.array([0.1, 0.2]), np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    with pytest.raises(MetricError, match="undefined"):
        M.apgr(c)


def test_nan_scores_rejected() -> None:
    with pytest.raises(MetricError, match="NaN"):
        M.deferral_curve(np.array([np.nan, 0.1]), np.array([0.0, 1.0]), np.array([1.0, 1.0]))


def test_weights_equal_duplication() -> None:
    """Weight 2 on a query = that query listed twice (what bootstrap counts rely on)."""
    scores = np.array([0.2, 0.9, 0.5, 0.1])
    w = np.array([2, 0, 1, 3])
    c = M.deferral_curve(scores, PR_W, PR_S, weights=w)
    idx = np.repeat(np.arange(4), w)
    c2 = M.deferral_curve(scores[idx], PR_W[idx], PR_S[idx])
    assert M.apgr(c) == pytest.approx(M.apgr(c2))


def test_bootstrap_matches_direct_recomputation() -> None:
    rng = np.random.default_rng(3)
    n = 40
    pr_w, pr_s, scores = rng.random(n), rng.random(n), rng.random(n)
    draws = M.bootstrap_draws(n, 25, seed=5)
    boot = M.bootstrap_metrics([scores], pr_w, pr_s, draws)
    for b in range(25):
        c = M.deferral_curve(scores, pr_w, pr_s, weights=draws[b])
        if c.gap_defined:
            assert boot.apgr[b] == pytest.approx(M.apgr(c))
        else:  # a resampled table where strong is not better: APGR undefined
            assert np.isnan(boot.apgr[b])
        assert boot.pass_rate_at[0.5][b] == pytest.approx(c.at(0.5))


unit = st.integers(0, 10).map(lambda k: k / 10)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 25).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, n, elements=unit),
            arrays(np.float64, n, elements=unit),
            arrays(np.float64, n, elements=st.floats(0, 1)),
        )
    )
)
def test_oracle_apgr_at_least_any_router(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pr_w, pr_s, scores = data
    assume(pr_s.mean() - pr_w.mean() > 1e-9)
    oracle = (1 - (pr_s - pr_w)) / 2
    c_o = M.deferral_curve(oracle, pr_w, pr_s)
    c_r = M.deferral_curve(scores, pr_w, pr_s)
    assert M.apgr(c_o) >= M.apgr(c_r) - 1e-9
    assert M.apgr_area(c_o) >= M.apgr_area(c_r) - 1e-9
    assert np.all(c_o.at(np.linspace(0, 1, 21)) >= c_r.at(np.linspace(0, 1, 21)) - 1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda n: st.tuples(arrays(np.float64, n, elements=unit), arrays(np.float64, n, elements=unit))
    )
)
def test_random_router_expected_apgr_is_fifty(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Exact expectation over every ordering a random router could produce."""
    pr_w, pr_s = data
    assume(abs(pr_s.mean() - pr_w.mean()) > 1e-9)
    n = len(pr_w)
    vals = [
        M.apgr(M.deferral_curve(np.array(p, dtype=float), pr_w, pr_s))
        for p in itertools.permutations(range(n))
    ]
    assert np.mean(vals) == pytest.approx(50.0)


def _brute_apgr_routellm(weak: list[bool], strong: list[bool], scores: np.ndarray) -> float:
    """Independent brute force: for every alpha, enumerate which queries go strong by sorting,
    splitting tied boundary groups fractionally and the boundary query by its fraction."""
    n = len(weak)
    w, s = np.array(weak, float), np.array(strong, float)
    below = (scores[None, :] < scores[:, None]).sum(axis=1)  # queries strictly before i
    tied = (scores[None, :] == scores[:, None]).sum(axis=1)  # i's tie group size
    pgrs = []
    for alpha in [i / 10 for i in range(11)]:
        share = np.clip(alpha * n - below, 0.0, tied) / tied  # P(query i is routed strong)
        total = float(np.sum(share * s + (1 - share) * w))
        pgrs.append((total / n - w.mean()) / (s.mean() - w.mean()))
    return float(np.mean(pgrs) * 100)


def test_apgr_cross_check_routellm_gsm8k() -> None:
    """All 1,319 questions; random, coarse (many ties) and oracle scores."""
    path = Path(__file__).resolve().parents[1] / "data" / "routellm" / "gsm8k_responses.csv"
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    weak = [r["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True" for r in rows]
    strong = [r["gpt-4-1106-preview"] == "True" for r in rows]
    rng = np.random.default_rng(7)
    pr_w, pr_s = np.array(weak, float), np.array(strong, float)
    for scores in (rng.random(len(rows)), np.round(rng.random(len(rows)), 1), (1 - (pr_s - pr_w)) / 2):
        got = M.apgr(M.deferral_curve(scores, pr_w, pr_s))
        assert got == pytest.approx(_brute_apgr_routellm(weak, strong, scores), abs=1e-9)


# --------------------------------------------------------------------------- paired tests


def test_bootstrap_apgr_matches_loop_version() -> None:
    """The vectorized APGR-only bootstrap equals bootstrap_metrics' per-draw loop (ties, seeds)."""
    rng = np.random.default_rng(3)
    n = 40
    pr_w, pr_s = rng.random(n).round(1), rng.random(n).round(1)
    seeds = [rng.integers(0, 6, n).astype(float), rng.random(n)]
    draws = M.bootstrap_draws(n, 50, seed=2)
    want = M.bootstrap_metrics(seeds, pr_w, pr_s, draws).apgr
    np.testing.assert_allclose(M.bootstrap_apgr(seeds, pr_w, pr_s, draws), want, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(
        M.bootstrap_apgr(np.array(seeds), pr_w, pr_s, draws), want, rtol=1e-10, atol=1e-9
    )


def test_bootstrap_apgr_undefined_gap_is_nan() -> None:
    pr_w, pr_s = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    draws = np.array([[0, 2], [1, 1]])  # first draw: only q1 (gap 0)
    out = M.bootstrap_apgr(np.array([0.1, 0.2]), pr_w, pr_s, draws)
    # second draw: q0 (gain 1) routed first, PGR rises linearly to 1 at α = 0.5 -> grid sum 2 + 6
    assert np.isnan(out[0]) and out[1] == pytest.approx(100 * 8 / 11)


def test_bootstrap_p_value_by_hand() -> None:
    # d ≤ 0: 1 draw, d ≥ 0: 3 draws -> 2·(1+1)/(4+1)
    assert M.bootstrap_p_value(np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(0.8)
    assert M.bootstrap_p_value(np.full(99, 0.5)) == pytest.approx(2 / 100)
    assert M.bootstrap_p_value(np.zeros(10)) == 1.0
    assert M.bootstrap_p_value(np.array([np.nan, 1.0])) == pytest.approx(1.0)  # 2·1/2


def test_paired_difference_point_value_by_hand() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.1])
    # PGR on the 11-point grid (see test_apgr_by_hand): sum 10.5 -> APGR 100·10.5/11; constant = 50
    diff, lo, hi, p = M.paired_apgr_difference(scores, np.zeros(4), PR_W, PR_S, n_boot=200, seed=1)
    assert diff == pytest.approx(100 * 10.5 / 11 - 50)
    assert lo <= hi and 0 < p <= 1


def test_paired_difference_identical_order_has_zero_width() -> None:
    """Same ranking, different values: every paired draw gives difference 0 (an unpaired
    bootstrap would not), so the CI is [0, 0] and p = 1."""
    rng = np.random.default_rng(0)
    pr_w, pr_s = rng.random(30), rng.random(30)
    a = rng.random(30)
    r = M.paired_apgr_difference(a, np.exp(3 * a), pr_w, pr_s, n_boot=100, seed=0)
    assert (r.diff, r.lo, r.hi, r.p_two_sided) == (0.0, 0.0, 0.0, 1.0)


def test_paired_difference_detects_a_clear_winner() -> None:
    """The oracle order vs. its reverse on 200 queries: difference > 0, CI excludes 0, p small."""
    rng = np.random.default_rng(1)
    pr_w = rng.random(200) * 0.6
    pr_s = np.clip(pr_w + rng.normal(0.2, 0.3, 200), 0, 1)  # a clear positive gap
    good = -(pr_s - pr_w)  # ascending score = route strong first where the gain is largest
    r = M.paired_apgr_difference(good, -good, pr_w, pr_s, n_boot=300, seed=0)
    assert r.diff > 0 and r.lo > 0 and r.p_two_sided == pytest.approx(2 / 301)


def test_sign_test_by_hand() -> None:
    assert M.sign_test_p(15, 0) == pytest.approx(2 * 0.5**15)
    assert M.sign_test_p(3, 1) == pytest.approx(2 * (4 + 1) / 16)  # 2·P(X ≥ 3), X ~ Bin(4, ½)
    assert M.sign_test_p(0, 0) == 1.0


def test_wilcoxon_by_hand() -> None:
    # n = 3, all positive: W- = 0, exact P(W- ≤ 0) = 1/8, two-sided 1/4
    assert M.wilcoxon_p(np.array([1.0, 2.0, 3.0])) == pytest.approx(0.25)
    # ranks 1..4, W- = 2: subsets of {1,2,3,4} with sum ≤ 2 are {}, {1}, {2} -> 2·3/16
    assert M.wilcoxon_p(np.array([1.0, -2.0, 3.0, 4.0])) == pytest.approx(0.375)
    assert np.isnan(M.wilcoxon_p(np.zeros(3)))


def test_across_pairs_counts_ties_and_drops_them_from_tests() -> None:
    r = M.across_pairs(np.array([1.0, 0.0, -2.0, 3.0]))
    assert (r.n, r.wins, r.losses, r.ties) == (4, 2, 1, 1)
    assert r.mean_diff == pytest.approx(0.5)
    assert r.sign_p == pytest.approx(1.0)  # 2·P(X ≥ 2), X ~ Bin(3, ½) = 2·4/8, capped
    assert r.wilcoxon_p == pytest.approx(0.75)  # ranks 1,2,3; W- = 2: {}, {1}, {2} -> 2·3/8


# --------------------------------------------------------------------------- issue 12: gap ≤ 0


def test_negative_gap_summary_marks_gap_metrics_undefined() -> None:
    """Strong worse than weak (P_w = 0.75, P_s = 0.25): the oracle's APGR was −200, now NaN.

    By hand: PGR(α) = (P(α) − 0.75)/(−0.5); the oracle routes query 2 (pr_s 1 > pr_w 0)
    first, so P(0.5) = 1.0 and PGR = −0.5 — a number that means nothing.
    """
    pr_w, pr_s = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])
    oracle = pr_w - pr_s
    c = M.deferral_curve(oracle, pr_w, pr_s)
    assert c.gap == pytest.approx(-0.5) and not c.gap_defined
    s = M.summarize(oracle, pr_w, pr_s)
    assert np.isnan(s.apgr) and np.isnan(s.apgr_area)
    assert all(np.isnan(v) for v in s.cpt.values())
    assert s.weak_pass_rate == 0.75 and s.strong_pass_rate == 0.25  # still reported
    assert s.pass_rate_at[0.2] == pytest.approx(0.75 + 0.2 * 1.0)  # first 20 % is query 2's share


def test_require_gap_message_suggests_swapping() -> None:
    M.require_gap(0.3, 0.7)
    with pytest.raises(UndefinedGapError) as e:
        M.require_gap(0.75, 0.25, weak="w-model", strong="s-model")
    msg = str(e.value)
    assert "undefined" in msg and "'s-model' (25.00 %)" in msg and "lower pass rate" in msg
    assert "swap --weak and --strong" in msg
    with pytest.raises(UndefinedGapError, match="same pass rate"):
        M.require_gap(0.5, 0.5)


def test_bootstrap_negative_gap_draws_are_nan() -> None:
    pr_w, pr_s = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    # draw 0: only query 1 (gap +1, one query: the straight line, APGR 50); draw 1: only
    # query 0 (gap −1, undefined)
    draws = np.array([[0, 2], [2, 0]])
    boot = M.bootstrap_metrics([np.array([0.1, 0.2])], pr_w, pr_s, draws)
    assert boot.apgr[0] == pytest.approx(50.0) and np.isnan(boot.apgr[1])


def test_report_marks_undefined_apgr_instead_of_printing_nan() -> None:
    from firewall_routing.experiment import report
    from firewall_routing.experiment.results import BootstrapCI, ResultRow, RouterEvaluation

    nan = float("nan")
    s = M.Summary(nan, nan, {}, {}, {}, 0.5, 0.5)
    ev = RouterEvaluation([s, s, s], s, s, BootstrapCI((nan, nan), {}), {})
    assert report._apgr_cell(ResultRow("x", "design", "main", "toy", ev)) == "undefined"
    assert report._gap_metric(nan) == "undefined" and report._gap_metric(12.345) == "12.35"


def test_quality_cost_curve_real_valued_by_hand() -> None:
    # BARTScore-like (negative) quality. All-strong Q_s = (-2 - 2 - 3)/3 = -7/3.
    scores = np.array([0.9, 0.1, 0.5])
    q_w = np.array([-3.0, -5.0, -4.0])
    q_s = np.array([-2.0, -2.0, -3.0])
    qc = M.quality_cost_curve(scores, q_w, q_s, np.array([0.0, 1 / 3, 2 / 3, 1.0]))
    # 1/3 to weak: the top score (0.9) -> Q = (-3 - 2 - 3)/3 = -8/3; drop (1/3)/(7/3) = 100/7 %
    # 2/3: also 0.5 -> Q = (-3 - 2 - 4)/3 = -3; drop (2/3)/(7/3) = 200/7 %
    # all weak: Q = -4; drop (5/3)/(7/3) = 500/7 %
    np.testing.assert_allclose(qc.quality_drop, [0.0, 100 / 7, 200 / 7, 500 / 7], atol=1e-9)
    assert qc.strong_quality == pytest.approx(-7 / 3) and qc.weak_quality == pytest.approx(-4.0)
    # halfway between grid points the curve is linear (fractional routing of the next query)
    assert qc.at(0.5) == pytest.approx(150 / 7)


def test_quality_drop_undefined_at_zero_quality() -> None:
    with pytest.raises(MetricError):
        M.quality_cost_curve(np.array([0.1, 0.2]), np.array([0.0, 0.0]), np.array([0.0, 0.0]))
