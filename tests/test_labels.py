"""Every label design against values computed by hand (DESIGN.md §3, paper Eqs. 1–7)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firewall_routing import labels as L
from firewall_routing.errors import InputError
from firewall_routing.outcomes import ModelOutcomes, OutcomeTable

# Four queries covering the four (weak, strong) situations.
PR_W = np.array([0.8, 0.2, 0.0, 0.5])
PR_S = np.array([0.6, 0.9, 0.0, 1.0])
G_W = np.array([1.0, 0.0, 0.0, 1.0])
G_S = np.array([1.0, 1.0, 0.0, 0.0])


def test_hard_label_eq1() -> None:
    # 1[g_s <= g_w]: (1,1)->1, (0,1)->0, (0,0)->1, (1,0)->1
    assert L.hard(G_W, G_S).tolist() == [1.0, 0.0, 1.0, 1.0]


def test_win_rate_eq2_paired_samples() -> None:
    w = [np.array([1, 0, 1, 0.0]), np.array([0, 0, 0, 0.0])]
    s = [np.array([1, 1, 0, 0.0]), np.array([1, 0, 1, 0.0])]
    # row 0: pairs (1,1)ok (0,1)no (1,0)ok (0,0)ok -> 3/4 ; row 1: (0,1)no (0,0) (0,1)no (0,0) -> 2/4
    assert L.win_rate(w, s).tolist() == [0.75, 0.5]


def test_win_rate_rejects_unpaired() -> None:
    with pytest.raises(ValueError, match="cannot be paired"):
        L.win_rate([np.array([1.0, 0.0])], [np.array([1.0])])


def test_win_rate_independent_is_expectation() -> None:
    # 1 - pr_s (1 - pr_w): 1-0.6*0.2=0.88, 1-0.9*0.8=0.28, 1-0=1, 1-1*0.5=0.5
    np.testing.assert_allclose(L.win_rate_independent(PR_W, PR_S), [0.88, 0.28, 1.0, 0.5])


def test_pass_rate_ablations() -> None:
    np.testing.assert_allclose(L.weak_pass_rate(PR_W), PR_W)
    np.testing.assert_allclose(L.strong_pass_rate(PR_S), [0.4, 0.1, 1.0, 0.0])


def test_hard_block_eq5() -> None:
    # pr_s <= pr_w -> 1 (rows 0 and 2), else pr_w
    np.testing.assert_allclose(L.hard_block(PR_W, PR_S), [1.0, 0.2, 1.0, 0.5])


def test_hard_block_greedy_eq6() -> None:
    # g_s == 0 -> 1 (rows 2, 3), else pr_w
    np.testing.assert_allclose(L.hard_block_greedy(PR_W, G_S), [0.8, 0.2, 1.0, 1.0])


def test_soft_block_eq7() -> None:
    # 1 - (1 - pr_w) pr_s: 1-0.2*0.6=0.88, 1-0.8*0.9=0.28, 1-1*0=1, 1-0.5*1=0.5
    np.testing.assert_allclose(L.soft_block(PR_W, PR_S), [0.88, 0.28, 1.0, 0.5])


def test_hybrid_det() -> None:
    assert L.hybrid_det(G_W, G_S).tolist() == [1.0, 0.0, 1.0, 1.0]
    # t = 1 forgives a one-point gap: every row becomes 1
    assert L.hybrid_det(G_W, G_S, t=1.0).tolist() == [1.0] * 4
    # t = -0.5: weak must be strictly better
    assert L.hybrid_det(G_W, G_S, t=-0.5).tolist() == [0.0, 0.0, 0.0, 1.0]


def test_hybrid_prob_matches_all_pairs_enumeration() -> None:
    # 10 samples each, k correct: enumerate all n^2 pairs by brute force
    rng = np.random.default_rng(0)
    for _ in range(20):
        kw, ks = rng.integers(0, 11, size=2)
        w = np.r_[np.ones(kw), np.zeros(10 - kw)]
        s = np.r_[np.ones(ks), np.zeros(10 - ks)]
        for t in (-1.0, -0.5, 0.0, 0.3, 1.0):
            brute = np.mean([wi >= sj - t for wi, sj in itertools.product(w, s)])
            got = L.hybrid_prob(np.array([kw / 10]), np.array([ks / 10]), t)[0]
            assert got == pytest.approx(brute), (kw, ks, t)
            assert L.hybrid_prob_samples([w], [s], t)[0] == pytest.approx(brute)


def test_hybrid_prob_hand_values() -> None:
    # t = 0: equals soft block; t in (-1, 0): P(w=1, s=0) = pr_w (1 - pr_s)
    np.testing.assert_allclose(L.hybrid_prob(PR_W, PR_S, 0.0), [0.88, 0.28, 1.0, 0.5])
    np.testing.assert_allclose(L.hybrid_prob(PR_W, PR_S, -0.5), [0.32, 0.02, 0.0, 0.0])


def test_mean_pairwise_difference() -> None:
    # pairs of [0, 0.5, 1]: 0.5, 1, 0.5 -> mean 2/3
    assert L.mean_pairwise_difference(np.array([1.0, 0.0, 0.5])) == pytest.approx(2 / 3)
    assert L.mean_pairwise_difference(np.array([0.3])) == 0.0


def test_t_star_search_by_hand() -> None:
    # Candidate label vectors: t=0 -> [0.88,0.28,1,0.5] (pairwise mean diff 0.3667),
    # t in (-1,0) -> [0.32,0.02,0,0] (0.1533), |t|>=1 -> constant (0). t* = 0.
    assert L.hybrid_t_star(PR_W, PR_S) == 0.0
    # A table where the strict variant spreads labels more: weak often right, strong
    # always right -> t=0 labels all equal pr_w... choose pr_s=0 so t=0 labels are all 1.
    pr_w, pr_s = np.array([0.9, 0.1, 0.5]), np.array([0.0, 0.0, 0.0])
    # t=0: all 1 (spread 0); t=-0.5: pr_w(1-pr_s) = pr_w (spread > 0) -> t* < 0, closest to 0
    t = L.hybrid_t_star(pr_w, pr_s)
    assert -1.0 < t < 0.0
    assert t == max(x for x in L.HYBRID_T_GRID if -1.0 < x < 0.0)
    np.testing.assert_allclose(L.hybrid_trans(pr_w, pr_s), pr_w)


def _table(
    pr_w: np.ndarray, pr_s: np.ndarray, g_w: np.ndarray | None = None, g_s: np.ndarray | None = None
) -> OutcomeTable:
    n = len(pr_w)
    nan = np.full(n, np.nan)
    ten = np.full(n, 10)
    return OutcomeTable.from_pair(
        ids=tuple(str(i) for i in range(n)),
        prompts=tuple(f"q{i}" for i in range(n)),
        weak=ModelOutcomes("w", pr_w, ten, nan if g_w is None else g_w),
        strong=ModelOutcomes("s", pr_s, ten, nan if g_s is None else g_s),
        margin=nan,
        benchmark=("b",) * n,
        source="mem",
    )


def test_compute_labels_uses_real_greedy_when_present() -> None:
    lab = L.compute_labels(_table(PR_W, PR_S, G_W, G_S), "hard")
    assert lab.values.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert lab.notes == ()


def test_compute_labels_reports_greedy_approximation() -> None:
    lab = L.compute_labels(_table(PR_W, PR_S), "hard")
    # majority: g_w = [1,0,0,1], g_s = [1,1,0,1] -> [1,0,1,1]
    assert lab.values.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert any("majority" in n for n in lab.notes)


def test_compute_labels_fails_without_greedy_when_approx_off() -> None:
    with pytest.raises(InputError, match=r"strong_greedy|weak_greedy"):
        L.compute_labels(_table(PR_W, PR_S), "hard-block-greedy", L.Approximations(greedy="none"))


def test_compute_labels_pairing_switch() -> None:
    lab = L.compute_labels(_table(PR_W, PR_S), "win-rate")
    assert any("independent" in n for n in lab.notes)
    with pytest.raises(InputError, match="paired"):
        L.compute_labels(_table(PR_W, PR_S), "win-rate", L.Approximations(pairing="none"))


def test_compute_labels_records_t_star() -> None:
    lab = L.compute_labels(_table(PR_W, PR_S), "hybrid-trans")
    assert lab.params == {"t": 0.0}


def test_unknown_design() -> None:
    """The type rules the name out; a Python caller without a type checker still gets the
    one clear error."""
    with pytest.raises(InputError, match="unknown label design"):
        L.compute_labels(_table(PR_W, PR_S), "nope")  # type: ignore[arg-type]


rates = arrays(np.float64, st.integers(1, 30), elements=st.integers(0, 10).map(lambda k: k / 10))


@given(rates, st.data())
def test_every_design_in_unit_interval(pr_w: np.ndarray, data: st.DataObject) -> None:
    pr_s = data.draw(arrays(np.float64, len(pr_w), elements=st.integers(0, 10).map(lambda k: k / 10)))
    table = _table(pr_w, pr_s)
    for design in L.DESIGNS:
        v = L.compute_labels(table, design).values
        assert v.shape == pr_w.shape
        assert np.all((v >= 0) & (v <= 1)), design


@given(rates, st.data())
def test_soft_block_bounds_hard_block(pr_w: np.ndarray, data: st.DataObject) -> None:
    """Soft block ≥ pr_w everywhere (blocking only ever pushes toward weak)."""
    pr_s = data.draw(arrays(np.float64, len(pr_w), elements=st.integers(0, 10).map(lambda k: k / 10)))
    assert np.all(L.soft_block(pr_w, pr_s) >= pr_w - 1e-12)
    assert np.all(L.hard_block(pr_w, pr_s) >= pr_w - 1e-12)


def test_pair_forms_from_predicted_success() -> None:
    """Greedy and paired designs become their expectation under independent answers."""
    from firewall_routing.labels import PAIR_FORMS, pair_label

    p_w, p_s = np.array([0.2, 1.0]), np.array([0.5, 0.0])
    soft = np.array([1 - 0.8 * 0.5, 1.0])
    for design in ("hard", "win-rate", "hard-block-greedy", "soft-block", "hybrid-det"):
        assert pair_label(design, p_w, p_s) == pytest.approx(soft), design
    assert pair_label("hard-block", p_w, p_s) == pytest.approx([0.2, 1.0])
    assert pair_label("weak-pass-rate", p_w, p_s) == pytest.approx([0.2, 1.0])
    assert pair_label("strong-pass-rate", p_w, p_s) == pytest.approx([0.5, 1.0])
    # hybrid-prob at t = 0: P(w ≥ s) = 1 − P(w = 0, s = 1), the same expectation
    assert pair_label("hybrid-prob", p_w, p_s) == pytest.approx(soft)
    assert set(PAIR_FORMS) == set(L.DESIGNS)


def test_model_success_targets_keep_missing_outcomes_missing() -> None:
    from firewall_routing.labels import Approximations, model_success

    nan = np.nan
    a = ModelOutcomes("a", np.array([0.8, 0.2, nan]), np.array([5, 5, 0]), np.array([1.0, nan, nan]))
    b = ModelOutcomes("b", np.array([0.4, 0.6, 1.0]), np.array([5, 5, 5]), np.full(3, nan))
    t = OutcomeTable(("1", "2", "3"), ("p", "q", "r"), (a, b), ("x",) * 3)
    pr = model_success(t, target="pass-rate")
    assert pr.models == ("a", "b")
    np.testing.assert_array_equal(pr.values, [[0.8, 0.4], [0.2, 0.6], [nan, 1.0]])
    g = model_success(t, ["b", "a"], target="greedy")
    # a: greedy known on row 1, majority on row 2, missing on row 3; b: majority everywhere
    np.testing.assert_array_equal(g.values, [[0.0, 1.0], [1.0, 0.0], [1.0, nan]])
    assert len(g.notes) == 2
    with pytest.raises(InputError, match="model 'a' has no greedy correctness on 1 rows"):
        model_success(t, target="greedy", approx=Approximations(greedy="none"))
