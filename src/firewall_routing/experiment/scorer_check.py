"""How far a scorer can be trusted: its verdicts against a trusted scorer's on the same answers.

Two outcome tables of the same weak/strong pair and queries — one scored by the scorer under
test (e.g. ``sample --scorer reference``), one by a trusted one (the exact graders on GSM8K /
TriviaQA, GPT-4-turbo's AlpacaEval preferences) — are compared on:

* **pairwise accuracy**: on each query where the trusted scorer prefers one model's answers
  (mean quality differs), does the scorer prefer the same one? (½ when it sees a tie);
* **Spearman ρ** of the per-answer quality (per-row mean quality when the tables' samples do
  not line up one to one, e.g. a judge left some verdicts missing);
* **Cohen's κ** of pass/fail at each table's threshold (per answer, else per row: pass rate ≥ ½);
* **routing regret**: APGR of a router trained on the scorer's labels minus that of the same
  router trained on the trusted labels, both evaluated on the trusted labels of held-out
  queries, with a paired-bootstrap 95 % CI. Regret near 0 means the scorer is good enough to
  train a router on, whatever its agreement numbers say.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.designs import as_design
from firewall_routing.errors import InputError
from firewall_routing.labels import compute_labels
from firewall_routing.outcomes import FloatArray, OutcomeTable


@dataclass(frozen=True)
class ScorerCheck:
    """The agreement numbers and the routing regret (see the module docstring)."""

    rows: int
    answers: int
    level: str  # "answer" or "row"
    pairwise_accuracy: float
    pairwise_n: int
    spearman: float
    kappa: float
    regret: float
    regret_ci95: tuple[float, float]
    apgr_scorer: float
    apgr_trusted: float
    design: str
    router: str
    n_train: int
    n_test: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def align(candidate: OutcomeTable, trusted: OutcomeTable) -> tuple[OutcomeTable, OutcomeTable]:
    """Both tables restricted to their common query ids, in the trusted table's order."""
    pos = {i: k for k, i in enumerate(candidate.ids)}
    common = [k for k, i in enumerate(trusted.ids) if i in pos]
    if len(common) < 10:
        raise InputError(f"the two tables share {len(common)} query ids; scorer-check needs at least 10")
    return candidate.take([pos[trusted.ids[k]] for k in common]), trusted.take(common)


def _answer_values(t: OutcomeTable) -> tuple[list[FloatArray], list[FloatArray]] | None:
    """Per row and model: the samples' quality (else 0/1 correctness) and 0/1 pass."""
    qual, passed = [], []
    for m in (t.weak, t.strong):
        if m.samples is None:
            return None
        qual.append(list(m.quality) if m.quality is not None else list(m.samples))
        passed.append(list(m.samples))
    return [np.concatenate([*qual[0], *qual[1]])], [np.concatenate([*passed[0], *passed[1]])]


def _aligned_answers(c: OutcomeTable, t: OutcomeTable) -> bool:
    for mc, mt in ((c.weak, t.weak), (c.strong, t.strong)):
        if mc.samples is None or mt.samples is None:
            return False
        if any(len(a) != len(b) for a, b in zip(mc.samples, mt.samples, strict=True)):
            return False
    return True


def _row_quality(t: OutcomeTable) -> tuple[FloatArray, FloatArray]:
    """Mean quality of one answer per row and model (pass rate where there is no quality)."""
    w = t.weak.mean_quality() if t.weak.has_quality or t.weak.has_greedy_quality else t.weak.pass_rate
    s = t.strong.mean_quality() if t.strong.has_quality or t.strong.has_greedy_quality else t.strong.pass_rate
    return np.asarray(w, dtype=np.float64), np.asarray(s, dtype=np.float64)


def pairwise_accuracy(dc: FloatArray, dt: FloatArray, tol: float = 1e-9) -> tuple[float, int]:
    """Share of queries with a trusted preference (|dt| > tol) where sign(dc) agrees; a tie
    of the scorer counts ½. Returns (accuracy, number of such queries)."""
    keep = np.abs(dt) > tol
    if not keep.any():
        return float("nan"), 0
    sc = np.where(np.abs(dc[keep]) <= tol, 0.0, np.sign(dc[keep]))
    agree = np.where(sc == 0, 0.5, (sc == np.sign(dt[keep])).astype(np.float64))
    return float(agree.mean()), int(keep.sum())


def cohen_kappa(a: FloatArray, b: FloatArray) -> float:
    """Cohen's κ of two 0/1 vectors (NaN when both are constant and equal: no information)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    po = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    return float("nan") if pe >= 1.0 else (po - pe) / (1.0 - pe)


def spearman(a: FloatArray, b: FloatArray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def check(
    candidate: OutcomeTable,
    trusted: OutcomeTable,
    design: str = "soft-block",
    router: str | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    n_boot: int = 1000,
) -> ScorerCheck:
    """Agreement and routing regret of ``candidate`` against ``trusted`` (module docstring)."""
    from firewall_routing.routers import DEFAULT_ROUTER, make_router, router_class

    c, t = align(candidate, trusted)
    if _aligned_answers(c, t):
        cv, cp = _answer_values(c) or ([], [])
        tv, tp = _answer_values(t) or ([], [])
        qa, qb, pa, pb, level = cv[0], tv[0], cp[0], tp[0], "answer"
    else:
        cw, cs = _row_quality(c)
        tw, ts = _row_quality(t)
        qa, qb = np.r_[cw, cs], np.r_[tw, ts]
        pa = np.r_[c.weak.pass_rate, c.strong.pass_rate] >= 0.5
        pb = np.r_[t.weak.pass_rate, t.strong.pass_rate] >= 0.5
        level = "row"
    cw, cs = _row_quality(c)
    tw, ts = _row_quality(t)
    acc, n_pref = pairwise_accuracy(cw - cs, tw - ts)

    name = router or DEFAULT_ROUTER
    d = as_design(design)
    # The same seeded rows for both (the rule of outcomes.split_train_val).
    perm = np.random.default_rng(seed).permutation(len(t))
    n_test = round(len(t) * test_fraction)
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    t_test = t.take(test_idx)
    scores = []
    for table in (c, t):
        tr = table.take(train_idx)
        lab = compute_labels(tr, d)
        cls = router_class(name)
        r = make_router(name, **({"seed": seed} if cls.seeded() else {}))
        r.fit(tr.prompts, lab.values)
        scores.append(r.score_table(t_test))
    pr_w, pr_s = t_test.weak.pass_rate, t_test.strong.pass_rate
    diff = metrics.paired_apgr_difference(scores[0], scores[1], pr_w, pr_s, n_boot=max(1, n_boot), seed=seed)
    return ScorerCheck(
        rows=len(t),
        answers=len(qa),
        level=level,
        pairwise_accuracy=acc,
        pairwise_n=n_pref,
        spearman=spearman(qa, qb),
        kappa=cohen_kappa(pa, pb),
        regret=diff.diff,
        regret_ci95=(diff.lo, diff.hi),
        apgr_scorer=metrics.mean_apgr(scores[0], pr_w, pr_s),
        apgr_trusted=metrics.mean_apgr(scores[1], pr_w, pr_s),
        design=d,
        router=name,
        n_train=len(train_idx),
        n_test=len(test_idx),
    )


def markdown_row(label: str, r: ScorerCheck) -> str:
    """One line of the docs' scorer-check table."""
    lo, hi = r.regret_ci95
    return (
        f"| {label} | {r.rows} ({r.level}s: {r.answers}) | {r.pairwise_accuracy:.3f} (n={r.pairwise_n}) | "
        f"{r.spearman:.3f} | {r.kappa:.3f} | {r.apgr_scorer:.2f} vs {r.apgr_trusted:.2f} | "
        f"{r.regret:+.2f} [{lo:+.2f}, {hi:+.2f}] |"
    )


MARKDOWN_HEAD = (
    "| scorer vs trusted | queries | pairwise accuracy | Spearman ρ | Cohen's κ | APGR scorer-trained vs "
    "trusted-trained | regret [95 % CI] |\n|---|---|---|---|---|---|---|"
)
