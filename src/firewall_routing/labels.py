"""Router training targets: the ten label designs of DESIGN.md §3.

Every label is the probability that the query should go to the **weak** model (1 = weak is
enough), so a router trained with BCE on any of them is used the same way: low score →
strong. The formulas are pure functions over numpy arrays; :func:`compute_labels` picks the
right inputs from an :class:`~firewall_routing.outcomes.OutcomeTable` and records every
approximation it had to make, so reports can print them.

Correctness is binary (δ ∈ {0, 1}), so expectations over independent samples are exact
functions of the pass rates: e.g. the all-pairs Hybrid LLM label
(1/n²) Σ_{i,j} 1[w_i ≥ s_j − t] needs only the counts of correct samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firewall_routing.designs import DesignName, GreedyApprox, PairingApprox, as_design
from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable

HYBRID_T_GRID: FloatArray = np.round(np.linspace(-1.0, 1.0, 81), 10)
"""Grid searched for Hybrid LLM's t* (the paper grid-searches t; with binary correctness the
label only changes at t = −1, 0, 1, so any grid containing 0 and a point in (−1, 0) is exact)."""


# --------------------------------------------------------------------------- formulas


def hard(g_w: FloatArray, g_s: FloatArray) -> FloatArray:
    """Eq. 1: 1[δ(S(x)) ≤ δ(W(x))] on greedy correctness."""
    return (g_s <= g_w).astype(np.float64)


def win_rate(w_samples: Sequence[FloatArray], s_samples: Sequence[FloatArray]) -> FloatArray:
    """Eq. 2: (1/n) Σ_j 1[s_j ≤ w_j] over *paired* samples j (sample j of each model)."""
    out = np.empty(len(w_samples))
    for i, (w, s) in enumerate(zip(w_samples, s_samples, strict=True)):
        if len(w) != len(s):
            raise ValueError(f"row {i}: {len(w)} weak vs {len(s)} strong samples cannot be paired")
        out[i] = float(np.mean(s <= w))
    return out


def win_rate_independent(pr_w: FloatArray, pr_s: FloatArray) -> FloatArray:
    """Expected Eq. 2 when samples are independent: P(s ≤ w) = 1 − pr_s·(1 − pr_w).

    This is the approximation used when the data has pass rates but no sample vectors; it
    coincides with soft blocking (Eq. 7), which is the paper's own reading of Eq. 2.
    """
    return 1.0 - pr_s * (1.0 - pr_w)


def weak_pass_rate(pr_w: FloatArray) -> FloatArray:
    """Table 3 ablation: the weak model's pass rate as the label."""
    return pr_w.astype(np.float64, copy=True)


def strong_pass_rate(pr_s: FloatArray) -> FloatArray:
    """Table 3 ablation: 1 − pr_s, oriented so that larger = weak (strong likely fails anyway)."""
    return 1.0 - pr_s


def hard_block(pr_w: FloatArray, pr_s: FloatArray) -> FloatArray:
    """Eq. 4–5: 1 for the unsolvable set Q_u (pr_s ≤ pr_w), else pr_w."""
    return np.where(pr_s <= pr_w, 1.0, pr_w)


def hard_block_greedy(pr_w: FloatArray, g_s: FloatArray) -> FloatArray:
    """Eq. 6 ("w/o SMS"): Q_u is where the strong model's greedy answer fails."""
    return np.where(g_s == 0, 1.0, pr_w)


def soft_block(pr_w: FloatArray, pr_s: FloatArray) -> FloatArray:
    """Eq. 7: 1 − (1 − pr_w)·pr_s = P(weak right) + P(weak wrong and strong wrong)."""
    return 1.0 - (1.0 - pr_w) * pr_s


def hybrid_det(q_w: FloatArray, q_s: FloatArray, t: float = 0.0) -> FloatArray:
    """Hybrid LLM deterministic label 1[q_w ≥ q_s − t] on one (greedy) answer each."""
    return (q_w >= q_s - t).astype(np.float64)


def hybrid_prob(pr_w: FloatArray, pr_s: FloatArray, t: float = 0.0) -> FloatArray:
    """Hybrid LLM probabilistic label (1/n²) Σ_{i,j} 1[w_i ≥ s_j − t] for 0/1 quality.

    With independent Bernoulli samples this is exactly Σ_{a,b∈{0,1}} P_w(a) P_s(b) 1[a ≥ b − t].
    """
    out = np.zeros_like(pr_w, dtype=np.float64)
    for a, pa in ((0.0, 1.0 - pr_w), (1.0, pr_w)):
        for b, pb in ((0.0, 1.0 - pr_s), (1.0, pr_s)):
            if a >= b - t:
                out = out + pa * pb
    return out


def hybrid_prob_samples(
    w_samples: Sequence[FloatArray], s_samples: Sequence[FloatArray], t: float = 0.0
) -> FloatArray:
    """The same label from explicit per-sample quality scores (any real-valued quality)."""
    return np.array(
        [
            float(np.mean(np.asarray(w)[:, None] >= np.asarray(s)[None, :] - t))
            for w, s in zip(w_samples, s_samples, strict=True)
        ]
    )


def mean_pairwise_difference(labels: FloatArray) -> float:
    """Mean over unordered pairs i < j of |label_i − label_j| (Gini mean difference), O(n log n)."""
    x = np.sort(np.asarray(labels, dtype=np.float64))
    n = len(x)
    if n < 2:
        return 0.0
    k = np.arange(n)
    return float(np.sum(x * (2 * k - n + 1)) / (n * (n - 1) / 2))


def hybrid_t_star(pr_w: FloatArray, pr_s: FloatArray, grid: FloatArray = HYBRID_T_GRID) -> float:
    """Hybrid LLM's r_trans: t* = argmax_t mean pairwise |label_i − label_j|.

    Ties (flat stretches of the objective) go to the t closest to 0, then the smaller t, so
    the choice does not depend on how the grid is ordered.
    """
    best_t, best_v = 0.0, -1.0
    for t in sorted(grid, key=lambda x: (abs(x), x)):
        v = mean_pairwise_difference(hybrid_prob(pr_w, pr_s, float(t)))
        if v > best_v + 1e-12:
            best_t, best_v = float(t), v
    return best_t


def hybrid_trans(pr_w: FloatArray, pr_s: FloatArray, t: float | None = None) -> FloatArray:
    """Hybrid LLM transformed probabilistic label: hybrid_prob at t* (searched if not given)."""
    return hybrid_prob(pr_w, pr_s, hybrid_t_star(pr_w, pr_s) if t is None else t)


# --------------------------------------------------------------------------- table → labels


@dataclass(frozen=True)
class Approximations:
    """How to fill what RouterDC-like data lacks. Each use is reported, never silent.

    * ``greedy="majority"``: greedy correctness ≈ 1[pass rate ≥ 0.5] (the mode of the
      sampled answers stands in for the temperature-0 answer). ``"none"``: fail instead.
    * ``pairing="independent"``: without per-sample vectors, the paired win rate (Eq. 2) is
      replaced by its expectation under independent samples. ``"none"``: fail instead.
    """

    greedy: GreedyApprox = "majority"
    pairing: PairingApprox = "independent"


@dataclass(frozen=True)
class Labels:
    values: FloatArray
    design: DesignName
    notes: tuple[str, ...] = ()
    params: dict[str, float] = field(default_factory=dict)


def _greedy(table: OutcomeTable, side: str, approx: Approximations, notes: list[str]) -> FloatArray:
    m = table.weak if side == "weak" else table.strong
    if m.has_greedy:
        return m.greedy
    if approx.greedy == "none":
        raise InputError(
            f"this label design needs {side}_greedy (greedy correctness) and {table.source or 'the table'} "
            "has none; sample greedy answers or allow --greedy-approx majority",
            field=f"{side}_greedy",
        )
    note = f"{side} greedy correctness approximated as 1[{side} pass rate ≥ 0.5] (majority of samples)"
    if note not in notes:
        notes.append(note)
    known = ~np.isnan(m.greedy)
    return np.where(known, m.greedy, (m.pass_rate >= 0.5).astype(np.float64))


def _win_rate(table: OutcomeTable, approx: Approximations, notes: list[str]) -> FloatArray:
    ws, ss = table.weak.samples, table.strong.samples
    if ws is not None and ss is not None and all(len(a) == len(b) for a, b in zip(ws, ss, strict=True)):
        return win_rate(ws, ss)
    if approx.pairing == "none":
        raise InputError(
            "win-rate needs paired per-sample correctness (weak_samples/strong_samples) and "
            f"{table.source or 'the table'} has none; allow --pairing-approx independent",
            field="weak_samples",
        )
    notes.append(
        "win-rate: no paired samples; used its expectation under independent samples, "
        "1 − pr_s·(1 − pr_w) (equals soft-block)"
    )
    return win_rate_independent(table.weak.pass_rate, table.strong.pass_rate)


LabelFn = Callable[[OutcomeTable, Approximations, list[str], dict[str, float]], FloatArray]


def _hybrid_det(t: OutcomeTable, a: Approximations, n: list[str], p: dict[str, float]) -> FloatArray:
    return hybrid_det(_greedy(t, "weak", a, n), _greedy(t, "strong", a, n), p.get("t", 0.0))


def _hybrid_trans(t: OutcomeTable, a: Approximations, n: list[str], p: dict[str, float]) -> FloatArray:
    if "t" not in p:
        p["t"] = hybrid_t_star(t.weak.pass_rate, t.strong.pass_rate)
    return hybrid_prob(t.weak.pass_rate, t.strong.pass_rate, p["t"])


DESIGNS: dict[DesignName, LabelFn] = {
    "hard": lambda t, a, n, p: hard(_greedy(t, "weak", a, n), _greedy(t, "strong", a, n)),
    "win-rate": lambda t, a, n, p: _win_rate(t, a, n),
    "weak-pass-rate": lambda t, a, n, p: weak_pass_rate(t.weak.pass_rate),
    "strong-pass-rate": lambda t, a, n, p: strong_pass_rate(t.strong.pass_rate),
    "hard-block": lambda t, a, n, p: hard_block(t.weak.pass_rate, t.strong.pass_rate),
    "hard-block-greedy": lambda t, a, n, p: hard_block_greedy(t.weak.pass_rate, _greedy(t, "strong", a, n)),
    "soft-block": lambda t, a, n, p: soft_block(t.weak.pass_rate, t.strong.pass_rate),
    "hybrid-det": _hybrid_det,
    "hybrid-prob": lambda t, a, n, p: hybrid_prob(t.weak.pass_rate, t.strong.pass_rate, p.get("t", 0.0)),
    "hybrid-trans": _hybrid_trans,
}
"""Label design name → function. Order is the report's row order."""

DESIGN_TITLES: dict[DesignName, str] = {
    "hard": "Hard Label (Eq. 1)",
    "win-rate": "Win Rate (Eq. 2)",
    "weak-pass-rate": "Weak Model Pass Rate",
    "strong-pass-rate": "Strong Model Pass Rate",
    "hard-block": "Hard Block (Eq. 5)",
    "hard-block-greedy": "Hard Blocking w/o SMS (Eq. 6)",
    "soft-block": "Soft Block (Eq. 7)",
    "hybrid-det": "Hybrid LLM r_det",
    "hybrid-prob": "Hybrid LLM r_prob",
    "hybrid-trans": "Hybrid LLM r_trans",
}


def compute_labels(
    table: OutcomeTable,
    design: DesignName,
    approx: Approximations | None = None,
    params: dict[str, Any] | None = None,
) -> Labels:
    """Labels of one design for every row of ``table`` (with the approximations it needed)."""
    design = as_design(design)  # a Python caller's string is checked too
    notes: list[str] = []
    p: dict[str, float] = {k: float(v) for k, v in (params or {}).items()}
    values = DESIGNS[design](table, approx or Approximations(), notes, p).astype(np.float64)
    return Labels(values=values, design=design, notes=tuple(notes), params=p)
