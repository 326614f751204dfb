"""The one evaluation path: metrics of routers' scores on outcome tables.

``firewall-routing evaluate`` (one router, one table: :func:`evaluate_router`) and
``reproduce`` (every router × table, plus paired comparisons: :func:`evaluate_and_compare`)
both go through :func:`evaluate_scores`, so a number means the same in both outputs. Also
the curves the plots draw (:func:`router_lines`, :func:`curve_band`), computed here so the
report only renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.errors import InputError
from firewall_routing.experiment import conclusion
from firewall_routing.experiment.results import (
    BootstrapCI,
    Comparison,
    Evaluation,
    ResultRow,
    RouterEvaluation,
    RouterRun,
)
from firewall_routing.metrics import Summary
from firewall_routing.outcomes import FloatArray, OutcomeTable

if TYPE_CHECKING:
    from firewall_routing.routers import Router

Draws = np.ndarray[Any, np.dtype[np.int64]]


def evaluate_scores(
    score_sets: Sequence[FloatArray], table: OutcomeTable, draws: Draws | None
) -> tuple[RouterEvaluation, FloatArray | None]:
    """Metrics of one router (one score vector per seed) on ``table``: per-seed summaries,
    seed mean/std, the paired-bootstrap CIs on ``draws`` (None: no bootstrap) and the
    taxonomy of strong calls. Also returns the per-resample seed-mean APGRs (for the paired
    comparisons), None without a bootstrap."""
    pr_w, pr_s = table.weak.pass_rate, table.strong.pass_rate
    per_seed = [metrics.summarize(s, pr_w, pr_s) for s in score_sets]
    ci: BootstrapCI | None = None
    boot_apgr: FloatArray | None = None
    if draws is not None:
        boot = metrics.bootstrap_metrics(score_sets, pr_w, pr_s, draws)
        ci, boot_apgr = BootstrapCI.from_boot(boot), boot.apgr
    taxonomy = {}
    for a in metrics.PASS_RATE_FRACTIONS:
        per = [metrics.taxonomy(s, pr_w, pr_s, a) for s in score_sets]
        taxonomy[a] = {k: float(np.mean([t[k] for t in per])) for k in metrics.TAXONOMY}
    ev = RouterEvaluation(
        per_seed=per_seed,
        mean=Summary.aggregate(per_seed, np.mean),
        std=Summary.aggregate(per_seed, np.std),
        ci95=ci,
        taxonomy=taxonomy,
    )
    return ev, boot_apgr


def evaluate_router(router: Router, table: OutcomeTable, n_boot: int = 1000, seed: int = 0) -> Evaluation:
    """All metrics of one router on one table (``firewall-routing evaluate``)."""
    draws = metrics.bootstrap_draws(len(table), n_boot, seed) if n_boot else None
    ev, _ = evaluate_scores([router.score_table(table)], table, draws)
    return Evaluation(router.name, table.source, len(table), table.weak.name, table.strong.name, ev)


def evaluate_and_compare(
    runs: list[RouterRun], tables: dict[str, OutcomeTable], n_boot: int, seed: int = 0
) -> tuple[list[ResultRow], dict[str, Comparison]]:
    """Metrics per router × table and, per table, which routers are separable.

    The comparisons reuse the per-resample APGRs behind the CIs, so they cost nothing extra
    and test exactly the number in the tables: the seed-mean APGR. With several seeds each
    resample re-scores every seed and averages, so the test covers which queries were
    sampled, given these trained routers — not seed-to-seed training variance (the ± std).
    Empty when ``n_boot`` is 0.
    """
    rows: list[ResultRow] = []
    comparisons: dict[str, Comparison] = {}
    for key, t in tables.items():
        draws = metrics.bootstrap_draws(len(t), n_boot, seed) if n_boot else None
        points: dict[str, float] = {}
        boots: dict[str, FloatArray] = {}
        pair, dataset = key.split("/")
        for run in runs:
            ev, boot_apgr = evaluate_scores(run.scores[key], t, draws)
            if boot_apgr is not None:
                points[run.name], boots[run.name] = ev.mean.apgr, boot_apgr
            rows.append(ResultRow(run.name, run.kind, pair, dataset, ev))
        if draws is not None:
            comparisons[key] = _compare_table(runs, key, points, boots, n_boot)
    return rows, comparisons


def _compare_table(
    runs: list[RouterRun], key: str, points: dict[str, float], boots: dict[str, FloatArray], n_boot: int
) -> Comparison:
    """Paired differences on one table, identical routers merged into one entry."""
    groups = conclusion.identical_groups({r.name: r.scores[key] for r in runs})
    name = {g[0]: conclusion.group_name(g) for g in groups}
    diffs = conclusion.compare(
        {name[g[0]]: points[g[0]] for g in groups}, {name[g[0]]: boots[g[0]] for g in groups}
    )
    return Comparison(
        n_boot=n_boot,
        n_seeds=max(len(r.scores[key]) for r in runs),
        groups=[g for g in groups if len(g) > 1],
        apgr={name[g[0]]: points[g[0]] for g in groups},
        differences=diffs,
    )


# --------------------------------------------------------------------------- curves for plots

GRID = np.linspace(0.0, 1.0, 101)
"""Strong fractions at which the plots draw the deferral curves."""


@dataclass(frozen=True)
class RouterLine:
    """One router as drawn: identical routers merged, seed-mean curve and APGR."""

    group: list[str]  # identical routers; the first names the line
    curve: FloatArray  # pass rate on GRID, mean over seeds
    apgr: float
    score_sets: list[FloatArray]

    @property
    def name(self) -> str:
        return self.group[0]


def router_lines(runs: list[RouterRun], t: OutcomeTable, key: str) -> list[RouterLine]:
    """Each group of identical routers once, with its seed-mean deferral curve on :data:`GRID`."""
    groups = conclusion.identical_groups({r.name: r.scores[key] for r in runs})
    by_name = {r.name: r for r in runs}
    out = []
    for g in groups:
        sets = by_name[g[0]].scores[key]
        curves = [metrics.deferral_curve(s, t.weak.pass_rate, t.strong.pass_rate) for s in sets]
        out.append(
            RouterLine(
                g,
                np.mean([c.at(GRID) for c in curves], axis=0),
                float(np.mean([metrics.apgr(c) for c in curves])),
                list(sets),
            )
        )
    return out


def curve_band(
    score_sets: Sequence[FloatArray], pr_w: FloatArray, pr_s: FloatArray, n_boot: int, seed: int = 0
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """95 % bootstrap band (over queries) of the seed-mean deferral curve on :data:`GRID`,
    and of its gain over the random line, as (lo, hi, gain_lo, gain_hi), in [0, 1] units.

    Same resamples as the tables' CIs (``bootstrap_draws`` with the same seed). The gain is
    taken within each resample (curve minus that resample's own straight line), so its band
    is not inflated by the uncertainty of the all-weak/all-strong levels. Each resample's
    curve is the tie-aware :func:`metrics.deferral_curve` with the resample counts as
    weights, evaluated once per seed with the sort order shared across resamples (speed).
    """
    pr_w = np.asarray(pr_w, dtype=np.float64)
    pr_s = np.asarray(pr_s, dtype=np.float64)
    draws = metrics.bootstrap_draws(len(pr_w), n_boot, seed).astype(np.float64)
    total = draws.sum(axis=1)
    p_w, p_s = draws @ pr_w / total, draws @ pr_s / total
    ys = np.zeros((n_boot, len(GRID)))
    for scores in score_sets:
        order = np.argsort(scores, kind="stable")
        s = np.asarray(scores)[order]
        ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie group
        w = draws[:, order]
        xs = np.cumsum(w, axis=1)[:, ends] / total[:, None]
        gs = np.cumsum(w * (pr_s - pr_w)[order], axis=1)[:, ends] / total[:, None]
        for b in range(n_boot):
            ys[b] += p_w[b] + np.interp(GRID, np.r_[0.0, xs[b]], np.r_[0.0, gs[b]])
    ys /= len(score_sets)
    gains = ys - (p_w[:, None] + GRID[None, :] * (p_s - p_w)[:, None])
    lo, hi = np.percentile(ys, [2.5, 97.5], axis=0)
    glo, ghi = np.percentile(gains, [2.5, 97.5], axis=0)
    return lo, hi, glo, ghi


def bin_pass_rates(score_sets: Sequence[FloatArray], t: OutcomeTable) -> tuple[FloatArray, FloatArray]:
    """Appendix-B view: (strong, weak) pass rate in each of 10 equal score bins, seed mean."""
    per_seed = [metrics.score_bins(s, t.weak.pass_rate, t.strong.pass_rate) for s in score_sets]
    strong = np.mean([[b.strong_pass_rate for b in bins] for bins in per_seed], axis=0)
    weak = np.mean([[b.weak_pass_rate for b in bins] for bins in per_seed], axis=0)
    return strong, weak


MIN_EVAL_ROWS = 10  # fewer rows: every metric is a constant or a coin flip


def require_evaluable(table: OutcomeTable) -> None:
    """Refuse metrics on too few rows (one row gave exit 0 and constant, meaningless numbers)."""
    if len(table) < MIN_EVAL_ROWS:
        raise InputError(
            f"only {len(table)} rows: evaluating a router needs at least {MIN_EVAL_ROWS}", path=table.source
        )


# --------------------------------------------------------------------------- N models


def evaluate_models(
    pred: FloatArray,
    table: OutcomeTable,
    models: Sequence[str],
    cost: FloatArray,
    *,
    hopeless: float = 0.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """N-model metrics of a ``predicts_models`` router's predictions ``pred`` (rows ×
    ``models``) on ``table`` with per-query costs ``cost``: single models, their hull, the
    oracle, random, and per policy (threshold, utility; blocking at ``hopeless``) the curve's
    area over the hull, gain, cost at 95/99/100 % of the best model and bootstrap CIs
    (metrics.nmodel). JSON-ready; the caller adds which costs it used."""
    from firewall_routing.metrics import nmodel
    from firewall_routing.routers.policies import POLICIES, sweep

    success = table.complete(models).pass_rate_matrix(models)
    ref = nmodel.reference(success, cost)
    oc, oq = nmodel.points_of([nmodel.oracle_choice(success, cost)], success, cost)
    best_q = float(ref.single_quality[ref.best])
    out: dict[str, Any] = {
        "rows": len(table),
        "models": {
            m: {"cost": float(c), "quality": float(q)}
            for m, c, q in zip(models, ref.single_cost, ref.single_quality, strict=True)
        },
        "best": models[ref.best],
        "cheapest": models[ref.cheapest],
        "oracle": {"cost": float(oc[0]), "quality": float(oq[0])},
        "random": {"cost": float(ref.single_cost.mean()), "quality": float(ref.single_quality.mean())},
        "hull_cost_at": {f"{t:g}": ref.hull.cost_for(t * best_q) for t in nmodel.QUALITY_TARGETS},
        "hopeless": hopeless,
        "policies": {},
    }
    for policy in POLICIES:
        _, choices = sweep(policy, pred, cost, hopeless=hopeless)
        c, q = nmodel.points_of(choices, success, cost)
        summ = nmodel.summarize(nmodel.frontier(c, q), ref)
        row = summ.as_dict()
        if n_boot:
            boot = nmodel.bootstrap_curve(choices, success, cost, draws=n_boot, seed=seed)
            row["area_ci95"] = list(boot.ci(boot.area))
            row["gain_ci95"] = list(boot.ci(boot.gain))
            row["ci_excludes_hull_over_middle"] = boot.excludes_hull()
        out["policies"][policy] = row
    return out
