"""Hybrid LLM's labels on real-valued quality (Ding et al. 2024, §3.1–3.3), by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewall_routing import labels as L
from firewall_routing.designs import DesignName
from firewall_routing.errors import InputError
from firewall_routing.outcomes import ModelOutcomes, OutcomeTable


def test_r_det_real_valued() -> None:
    q_w = np.array([0.3, 0.9, -2.0])
    q_s = np.array([0.5, 0.9, -3.0])
    # 0.3 < 0.5 -> 0 ; tie 0.9 = 0.9 -> 1 ; -2 > -3 -> 1
    assert L.hybrid_det(q_w, q_s).tolist() == [0.0, 1.0, 1.0]
    # relaxed by 0.25: 0.3 >= 0.25 -> 1
    assert L.hybrid_det(q_w, q_s, 0.25).tolist() == [1.0, 1.0, 1.0]


def test_r_prob_all_pairs_real_valued() -> None:
    w = [np.array([0.2, 0.6])]
    s = [np.array([0.5, 0.1, 0.4])]
    # 0.2 >= {0.5 no, 0.1 yes, 0.4 no}; 0.6 >= all three -> 4 of 6 pairs
    assert L.hybrid_prob_samples(w, s)[0] == pytest.approx(4 / 6)
    # t = 0.25: thresholds 0.25, -0.15, 0.15 -> 0.2 passes two, 0.6 all three -> 5 of 6
    assert L.hybrid_prob_samples(w, s, 0.25)[0] == pytest.approx(5 / 6)
    # rows with different sample counts each average over their own pairs
    got = L.hybrid_prob_samples(
        [np.array([1.0]), np.array([0.0, 2.0])], [np.array([0.5, 1.5]), np.array([1.0])]
    )
    assert got.tolist() == [0.5, 0.5]


# Weak is worse on every query, by 0.25 on two and 0.5 on two (all in exact binary fractions).
W_Q = (np.array([0.25]), np.array([0.5]), np.array([0.0]), np.array([0.25]))
S_Q = (np.array([0.5]), np.array([0.75]), np.array([0.5]), np.array([0.75]))


def test_t_star_by_hand() -> None:
    # y(t) = 1[d >= -t] with d = [-0.25, -0.25, -0.5, -0.5]:
    #   t < 0.25 -> [0,0,0,0] (spread 0); 0.25 <= t < 0.5 -> [1,1,0,0] (spread 4/6);
    #   t >= 0.5 -> all 1 (spread 0). Grid = 81 points over [-0.5, 0.5] (step 0.0125), so
    #   t* is the point of [0.25, 0.5) closest to 0: 0.25.
    assert L.hybrid_t_star_samples(W_Q, S_Q) == 0.25
    np.testing.assert_array_equal(L.hybrid_prob_samples(W_Q, S_Q, 0.25), [1, 1, 0, 0])
    # r_prob (t = 0) gives every query label 0 here: no signal at all, which r_trans fixes
    np.testing.assert_array_equal(L.hybrid_prob_samples(W_Q, S_Q), [0, 0, 0, 0])


def test_pair_differences_pads_ragged_rows() -> None:
    d = L.pair_differences([np.array([1.0, 2.0]), np.array([0.0])], [np.array([0.5]), np.array([1.0])])
    assert d.shape == (2, 2)
    assert d[0].tolist() == [0.5, 1.5] and d[1, 0] == -1.0 and np.isnan(d[1, 1])


def test_t_grid_scales_with_largest_gap() -> None:
    g = L.hybrid_t_grid(0.5)
    assert g[0] == -0.5 and g[-1] == 0.5 and len(g) == 81 and 0.0 in g
    assert L.hybrid_t_grid(0.0).tolist() == [0.0]
    np.testing.assert_array_equal(L.hybrid_t_grid(1.0), L.HYBRID_T_GRID)


# ---------------------------------------------------------------- 0/1 data: today's labels


binary = st.lists(st.integers(0, 1), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(binary, binary), min_size=1, max_size=8), st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0])
)
def test_binary_quality_reduces_to_pass_rate_forms(rows: list[tuple[list[int], list[int]]], t: float) -> None:
    w = [np.array(a, dtype=float) for a, _ in rows]
    s = [np.array(b, dtype=float) for _, b in rows]
    pr_w = np.array([x.mean() for x in w])
    pr_s = np.array([x.mean() for x in s])
    np.testing.assert_allclose(L.hybrid_prob_samples(w, s, t), L.hybrid_prob(pr_w, pr_s, t))
    assert L.hybrid_t_star_samples(w, s) == L.hybrid_t_star(pr_w, pr_s)


def _table(w: list[list[float]], s: list[list[float]], quality: bool, greedy: bool = True) -> OutcomeTable:
    n = len(w)
    ws = tuple(np.array(x, dtype=float) for x in w)
    ss = tuple(np.array(x, dtype=float) for x in s)
    gw = np.array([x[0] for x in ws]) if greedy else np.full(n, np.nan)
    gs = np.array([x[0] for x in ss]) if greedy else np.full(n, np.nan)

    def side(name: str, samples: tuple[np.ndarray, ...], g: np.ndarray) -> ModelOutcomes:
        return ModelOutcomes(
            name,
            np.array([x.mean() for x in samples]),
            np.array([len(x) for x in samples]),
            g,
            samples,
            samples if quality else None,
            g.copy() if quality and greedy else None,
        )

    return OutcomeTable.from_pair(
        ids=tuple(map(str, range(n))),
        prompts=tuple(f"q{i}" for i in range(n)),
        weak=side("w", ws, gw),
        strong=side("s", ss, gs),
        margin=np.full(n, np.nan),
        benchmark=("b",) * n,
    )


W01 = [[1.0, 0, 1], [0.0, 0, 0], [1.0, 1, 1], [0.0, 1, 0], [0.0, 0, 1]]
S01 = [[1.0, 1, 1], [1.0, 0, 1], [0.0, 0, 0], [1.0, 1, 0], [1.0, 1, 1]]


@pytest.mark.parametrize("design", ["hybrid-det", "hybrid-prob", "hybrid-trans"])
def test_compute_labels_on_binary_quality_equals_today(design: DesignName) -> None:
    today = L.compute_labels(_table(W01, S01, quality=False), design)
    with_q = L.compute_labels(_table(W01, S01, quality=True), design)
    np.testing.assert_allclose(with_q.values, today.values)
    assert with_q.params == today.params


def test_compute_labels_uses_real_quality_and_reports_t_star() -> None:
    t = _table([[0.25], [0.5], [0.0], [0.25]], [[0.5], [0.75], [0.5], [0.75]], quality=True)
    lab = L.compute_labels(t, "hybrid-trans")
    assert lab.params == {"t": 0.25}
    assert lab.values.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert L.uses_quality(t, "hybrid-trans") and not L.uses_quality(t, "soft-block")
    soft = L.compute_labels(t, "soft-block").values
    assert not np.allclose(lab.values, soft)


def test_r_det_without_greedy_quality_uses_first_sample_or_fails() -> None:
    t = _table([[0.25, 0.9], [0.5, 0.0]], [[0.5, 0.0], [0.25, 1.0]], quality=True, greedy=False)
    lab = L.compute_labels(t, "hybrid-det")
    assert lab.values.tolist() == [0.0, 1.0]  # 0.25 < 0.5 ; 0.5 >= 0.25
    assert any("first sample" in n for n in lab.notes)
    with pytest.raises(InputError, match="weak_greedy_quality"):
        L.compute_labels(t, "hybrid-det", L.Approximations(greedy="none"))
