"""Router training targets: the ten label designs of DESIGN.md §3.

Every label is the probability that the query should go to the **weak** model (1 = weak is
enough), so a router trained with BCE on any of them is used the same way: low score →
strong. The formulas are pure functions over numpy arrays; :func:`compute_labels` picks the
right inputs from an :class:`~firewall_routing.outcomes.OutcomeTable` and records every
approximation it had to make, so reports can print them.

Correctness is binary (δ ∈ {0, 1}), so expectations over independent samples are exact
functions of the pass rates: e.g. the all-pairs Hybrid LLM label
(1/n²) Σ_{i,j} 1[w_i ≥ s_j − t] needs only the counts of correct samples.

Hybrid LLM (Ding et al., ICLR 2024, arXiv:2404.14618, §3) defines its three labels on a
real-valued quality q (BARTScore there), with H(x) = q(small) − q(large):

* r_det (§3.1): y = 1[q(W(x)) ≥ q(S(x))] on one response of each model;
* r_prob (§3.2): y = Pr[H(x) ≥ 0], estimated over all pairs of sampled responses,
  (1/(n_w·n_s)) Σ_{i,j} 1[q(w_i) ≥ q(s_j)];
* r_trans (§3.3): y(t) = Pr[H(x) ≥ −t], the same estimate with the comparison relaxed by t,
  at t* = argmax_t (1/N²) Σ_{i,i'} |y_i(t) − y_i'(t)| — the t whose labels differ most on
  average between queries (the paper grid-searches t).

When an :class:`~firewall_routing.outcomes.OutcomeTable` carries per-sample quality, the
``hybrid-*`` designs use it (:func:`hybrid_det`, :func:`hybrid_prob_samples`,
:func:`hybrid_t_star_samples`); without it they fall back to 0/1 correctness, where
they equal the pass-rate forms (tested), i.e. what they always computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firewall_routing.designs import DesignName, GreedyApprox, ModelTarget, PairingApprox, as_design
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
    """Hybrid LLM r_det (§3.1): 1[q_w ≥ q_s − t] on one answer each (the greedy one here);
    q is 0/1 correctness or any real-valued quality. The paper's r_det has t = 0."""
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
    """Hybrid LLM r_prob (§3.2) and, with t > 0, r_trans's y(t) (§3.3) on real-valued quality:
    the fraction of all sample pairs (i, j) with q(w_i) ≥ q(s_j) − t. Rows may have different
    sample counts (each row averages over its own n_w·n_s pairs)."""
    return np.array(
        [
            float(np.mean(np.asarray(w)[:, None] >= np.asarray(s)[None, :] - t))
            for w, s in zip(w_samples, s_samples, strict=True)
        ]
    )


def pair_differences(w_samples: Sequence[FloatArray], s_samples: Sequence[FloatArray]) -> FloatArray:
    """Every q(w_i) − q(s_j) of every row, one row per query, NaN-padded to the longest row.

    The r_trans search evaluates y(t) for a whole grid of t; with the differences computed
    once, y(t) = #(d ≥ −t) / #pairs per row (NaN compares False, so padding never counts).
    """
    diffs = [
        (np.asarray(w, dtype=np.float64)[:, None] - np.asarray(s, dtype=np.float64)[None, :]).ravel()
        for w, s in zip(w_samples, s_samples, strict=True)
    ]
    width = max((len(d) for d in diffs), default=0)
    out = np.full((len(diffs), width), np.nan)
    for i, d in enumerate(diffs):
        out[i, : len(d)] = d
    return out


def _labels_from_differences(d: FloatArray, t: float) -> FloatArray:
    counts = np.sum(~np.isnan(d), axis=1)
    with np.errstate(invalid="ignore"):
        hits = np.sum(d >= -t, axis=1)
    out: FloatArray = (hits / counts).astype(np.float64)
    return out


def hybrid_t_grid(max_gap: float, grid: FloatArray = HYBRID_T_GRID) -> FloatArray:
    """The t grid for real-valued quality: ``grid`` (81 points over [−1, 1]) scaled by the
    largest |q(w_i) − q(s_j)| in the data, because beyond ±max_gap every label is constant.
    On 0/1 correctness max_gap is 1 (when any pair disagrees), so the grid is the pass-rate one."""
    return np.round(grid * max_gap, 12) if max_gap > 0 else np.zeros(1)


def _argmax_spread(candidates: Sequence[float], spread: Callable[[float], float]) -> float:
    """The t of largest label spread; ties go to the t closest to 0, then the smaller t."""
    best_t, best_v = 0.0, -1.0
    for t in sorted(candidates, key=lambda x: (abs(x), x)):
        v = spread(float(t))
        if v > best_v + 1e-12:
            best_t, best_v = float(t), v
    return best_t


def hybrid_t_star_samples(
    w_samples: Sequence[FloatArray], s_samples: Sequence[FloatArray], grid: FloatArray = HYBRID_T_GRID
) -> float:
    """Hybrid LLM r_trans's t* (§3.3) on real-valued quality: argmax over the scaled grid
    (:func:`hybrid_t_grid`) of the mean pairwise difference of y(t) between queries
    (:func:`mean_pairwise_difference`; the paper's (1/N²) Σ_{i,i'} has the same argmax)."""
    d = pair_differences(w_samples, s_samples)
    max_gap = float(np.nanmax(np.abs(d))) if d.size else 0.0
    return _argmax_spread(
        list(hybrid_t_grid(max_gap, grid)),
        lambda t: mean_pairwise_difference(_labels_from_differences(d, t)),
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
    """Hybrid LLM's r_trans (§3.3) on 0/1 correctness: t* = argmax_t mean pairwise
    |label_i − label_j|.

    Ties (flat stretches of the objective) go to the t closest to 0, then the smaller t, so
    the choice does not depend on how the grid is ordered.
    """
    return _argmax_spread(list(grid), lambda t: mean_pairwise_difference(hybrid_prob(pr_w, pr_s, t)))


def hybrid_trans(pr_w: FloatArray, pr_s: FloatArray, t: float | None = None) -> FloatArray:
    """Hybrid LLM transformed probabilistic label: hybrid_prob at t* (searched if not given)."""
    return hybrid_prob(pr_w, pr_s, hybrid_t_star(pr_w, pr_s) if t is None else t)


# --------------------------------------------------------------------------- predicted pass rates → pair label

PairForm = Callable[[FloatArray, FloatArray], FloatArray]

PAIR_FORMS: dict[DesignName, PairForm] = {
    "hard": win_rate_independent,
    "win-rate": win_rate_independent,
    "weak-pass-rate": lambda p_w, p_s: weak_pass_rate(p_w),
    "strong-pass-rate": lambda p_w, p_s: strong_pass_rate(p_s),
    "hard-block": hard_block,
    "hard-block-greedy": win_rate_independent,
    "soft-block": soft_block,
    "hybrid-det": win_rate_independent,
    "hybrid-prob": hybrid_prob,
    "hybrid-trans": hybrid_trans,
}
"""Design → its label as a function of the two models' success probabilities only, for
routers that predict every model's success (``predicts_models``) and route a pair.

The greedy and paired designs take their expectation under independent answers with
success probabilities p_w, p_s: E 1[g_s ≤ g_w] (hard, hybrid-det) = E (1 if g_s = 0 else
p_w) (hard-block-greedy) = P(s ≤ w) (win-rate) = 1 − p_s·(1 − p_w), which is soft-block's
formula; the pass-rate designs read p_w, p_s as pass rates. hybrid-trans searches its t* on
the predictions it is given (they are all it knows)."""


def pair_label(design: DesignName, p_w: FloatArray, p_s: FloatArray) -> FloatArray:
    """``design``'s label from predicted success probabilities (see :data:`PAIR_FORMS`)."""
    form = PAIR_FORMS[as_design(design)]
    out: FloatArray = np.clip(form(np.asarray(p_w, np.float64), np.asarray(p_s, np.float64)), 0.0, 1.0)
    return out


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


def uses_quality(table: OutcomeTable, design: str) -> bool:
    """Whether ``design`` reads the table's real-valued quality (else 0/1 correctness)."""
    return design.startswith("hybrid-") and _quality(table) is not None


def _quality(table: OutcomeTable) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]] | None:
    """Both models' per-sample quality, or None when the table has only correctness."""
    wq, sq = table.weak.quality, table.strong.quality
    return None if wq is None or sq is None else (wq, sq)


def _one_answer_quality(
    table: OutcomeTable, side: str, approx: Approximations, notes: list[str]
) -> FloatArray:
    """r_det's "one response": the greedy answer's quality, else the first sample's (reported)."""
    m = table.weak if side == "weak" else table.strong
    assert m.quality is not None
    first = np.array([float(q[0]) for q in m.quality])
    gq = m.greedy_quality
    if gq is not None and not np.isnan(gq).any():
        return gq
    if approx.greedy == "none":
        raise InputError(
            f"hybrid-det needs {side}_greedy_quality and {table.source or 'the table'} lacks it; "
            "add it or allow --greedy-approx majority (uses the first sample's quality)",
            field=f"{side}_greedy_quality",
        )
    notes.append(
        f"hybrid-det: {side} greedy quality approximated by the first sample's quality (one response)"
    )
    return first if gq is None else np.where(np.isnan(gq), first, gq)


def _hybrid_det(t: OutcomeTable, a: Approximations, n: list[str], p: dict[str, float]) -> FloatArray:
    if _quality(t) is not None:
        return hybrid_det(
            _one_answer_quality(t, "weak", a, n), _one_answer_quality(t, "strong", a, n), p.get("t", 0.0)
        )
    return hybrid_det(_greedy(t, "weak", a, n), _greedy(t, "strong", a, n), p.get("t", 0.0))


def _hybrid_prob(t: OutcomeTable, a: Approximations, n: list[str], p: dict[str, float]) -> FloatArray:
    q = _quality(t)
    if q is not None:
        return hybrid_prob_samples(q[0], q[1], p.get("t", 0.0))
    return hybrid_prob(t.weak.pass_rate, t.strong.pass_rate, p.get("t", 0.0))


def _hybrid_trans(t: OutcomeTable, a: Approximations, n: list[str], p: dict[str, float]) -> FloatArray:
    q = _quality(t)
    if q is not None:
        if "t" not in p:
            p["t"] = hybrid_t_star_samples(q[0], q[1])
        return hybrid_prob_samples(q[0], q[1], p["t"])
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
    "hybrid-prob": _hybrid_prob,
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


MIN_TRAIN_ROWS = 10  # below this a router learns nothing and the validation split is empty


def require_learnable(values: FloatArray, design: str, source: str = "") -> None:
    """Labels a router can learn from: enough rows, and not all the same value.

    One or two rows, every pass rate 0, or weak == strong all gave constant labels, and
    training then saved a router whose every score is the same (exit 0, a silent useless
    router). Raised before training, naming why.
    """
    where = f" in {source}" if source else ""
    if len(values) < MIN_TRAIN_ROWS:
        raise InputError(f"only {len(values)} training rows{where}: a router needs at least {MIN_TRAIN_ROWS}")
    if float(np.ptp(values)) == 0.0:
        raise InputError(
            f"every {design} label{where} is {float(values[0]):g} ({len(values)} rows): nothing to learn "
            "(do both models fail or pass everywhere? are --weak and --strong the same?)"
        )


# --------------------------------------------------------------------------- every model's target

MODEL_TARGETS: tuple[ModelTarget, ...] = ("pass-rate", "greedy", "quality")
"""What a ``predicts_models`` router learns per model: the pass rate (soft, the expected
correctness of one sampled answer), the greedy answer's 0/1 correctness, or the mean
real-valued quality of one answer (scored tables)."""


@dataclass(frozen=True)
class ModelLabels:
    """The ``fit_models`` target: rows × models values (NaN = missing) and what was approximated."""

    values: FloatArray
    target: ModelTarget
    models: tuple[str, ...]
    notes: tuple[str, ...] = ()


def model_success(
    table: OutcomeTable,
    names: Sequence[str] | None = None,
    target: ModelTarget = "pass-rate",
    approx: Approximations | None = None,
) -> ModelLabels:
    """rows × models training target for ``fit_models`` (``values`` is 2-D; NaN = missing).

    Missing outcomes stay NaN (the routers skip them). ``greedy`` on a model without
    greedy answers uses ``approx.greedy`` (majority of samples, reported in ``notes``) or
    fails naming the model.
    """
    a = approx or Approximations()
    models = [table.model(n) for n in (names if names is not None else table.model_names)]
    notes: list[str] = []
    if target == "pass-rate":
        values = table.pass_rate_matrix([m.name for m in models])
    elif target == "quality":
        values = table.quality_matrix([m.name for m in models])
    elif target == "greedy":
        cols = []
        for m in models:
            known = ~np.isnan(m.greedy) if len(m.greedy) else np.zeros(len(table), dtype=bool)
            col = np.where(known, m.greedy, np.nan) if len(m.greedy) else np.full(len(table), np.nan)
            gap = ~known & ~m.missing
            if gap.any():
                if a.greedy == "none":
                    raise InputError(
                        f"model {m.name!r} has no greedy correctness on {int(gap.sum())} rows; "
                        "allow --greedy-approx majority",
                        path=table.source or None,
                        field="greedy",
                    )
                col = np.where(gap, (m.pass_rate >= 0.5).astype(np.float64), col)
                notes.append(
                    f"{m.name}: greedy correctness approximated as 1[pass rate ≥ 0.5] on {int(gap.sum())} rows"
                )
            cols.append(col)
        values = np.stack(cols, axis=1)
    else:
        raise InputError(
            f"unknown model target '{target}'; available: {', '.join(MODEL_TARGETS)}", field="target"
        )
    return ModelLabels(values.astype(np.float64), target, tuple(m.name for m in models), tuple(notes))
