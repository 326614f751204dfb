"""N-model routing metrics: quality against cost (DESIGN.md §9), as pure numpy functions.

Convention: ``success`` is rows × models, each model's observed quality on each query in
[0, 1] (0/1 correctness, or a pass rate); it must be complete (a missing outcome is not a
failure, so a row without every model's outcome cannot be scored and is the caller's to
drop). ``cost`` is rows × models (``CostTable.query_costs``). A *choice* names one model
(a column) per row; its operating point is (mean cost, mean quality) over the rows.

Anyone can mix operating points at random (answer a query with policy A with probability
p, else with B), so what a set of points achieves is its **frontier**: the largest quality
reachable at mean cost ≤ c by mixing them — the upper concave, non-decreasing envelope of
the points (equivalently, the cost needed for a quality is their lower convex hull).
RouterBench's baseline is the frontier of the single models (the *hull*); a router's
*curve* is the frontier of its points over the policy's knob. Below the cheapest point no
mix exists (NaN); past the best point quality stays flat (extra budget need not be spent).

* ``area``: the mean of (curve − hull) over costs from the cheapest to the best single
  model, in quality units (the area between them divided by the width of the cost range):
  0 is "no better than mixing single models", +0.05 is five accuracy points above the hull
  on average, negative is worse than mixing. (Dividing also by the quality gap between the
  two models, as PGR does, made it explode where that gap is tiny, e.g. RouterDC's GSM8K.)
  Undefined (NaN) when the best single model is also the cheapest (no cost range): then
  routing can only add quality, which ``gain`` measures.
* ``gain``: curve − best single model's quality at that model's cost (> 0: the router
  beats the best model without spending more).
* ``cost at x %``: the least mean cost at which the curve reaches x % of the best single
  model's quality, also as a fraction of that model's cost (inf when never reached).
* The **oracle** sends each query to the cheapest model with the row's best quality
  (the cheapest correct model, for 0/1 success; the cheapest model if none is correct).
* Random: every query to a model drawn uniformly — the mean of the single models.
* Bootstrap: queries are resampled (the same draws for every router and the hull, so
  differences are paired); a router's choices are fixed, only the rows move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firewall_routing.errors import MetricError
from firewall_routing.outcomes import FloatArray, IntArray

QUALITY_TARGETS: tuple[float, ...] = (0.95, 0.99, 1.0)
"""Fractions of the best single model's quality at which the cost is reported."""

COST_GRID: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 1.0, 21))
"""Fractions of the cheapest → best single model cost range where curve − hull is bootstrapped."""

MIDDLE = (0.25, 0.75)
"""The "middle of the cost range" (fractions of the cheapest → best single model range)."""


def check_matrices(success: FloatArray, cost: FloatArray) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(success, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim == 1:
        c = np.broadcast_to(c, s.shape)
    if s.ndim != 2 or s.shape != c.shape or s.shape[0] == 0:
        raise MetricError(f"success {s.shape} and cost {c.shape} must be the same non-empty rows × models")
    if np.isnan(s).any():
        raise MetricError("success has missing outcomes: drop incomplete rows before scoring N-model routing")
    if (s < 0).any() or (s > 1).any() or not np.isfinite(c).all() or (c < 0).any():
        raise MetricError("success must lie in [0, 1] and costs be finite and ≥ 0")
    return s, c


def points_of(
    choices: Sequence[IntArray] | IntArray, success: FloatArray, cost: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(mean cost, mean quality) of each choice vector (K choices × rows)."""
    s, c = check_matrices(success, cost)
    ch = np.asarray(choices, dtype=np.int64).reshape(-1, len(s))
    rows = np.arange(len(s))
    return c[rows, ch].mean(axis=1), s[rows, ch].mean(axis=1)


def single_models(success: FloatArray, cost: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Each model's operating point: (mean cost, mean quality) per column."""
    s, c = check_matrices(success, cost)
    return c.mean(axis=0), s.mean(axis=0)


@dataclass(frozen=True)
class Frontier:
    """The vertices of a frontier (see the module doc), cost strictly increasing."""

    cost: FloatArray
    quality: FloatArray

    def at(self, c: float | FloatArray) -> FloatArray:
        """Best quality reachable at mean cost ≤ c (NaN below the cheapest vertex)."""
        x = np.asarray(c, dtype=np.float64)
        out = np.interp(x, self.cost, self.quality)  # flat past the last vertex
        res: FloatArray = np.where(x < self.cost[0] - 1e-12 * max(1.0, abs(self.cost[0])), np.nan, out)
        return res

    def cost_for(self, q: float) -> float:
        """Least mean cost reaching quality ≥ q (inf if the frontier never does)."""
        if q > self.quality[-1] + 1e-12:
            return float("inf")
        if q <= self.quality[0]:
            return float(self.cost[0])
        return float(np.interp(q, self.quality, self.cost))

    @property
    def best_quality(self) -> float:
        return float(self.quality[-1])


def frontier(cost: FloatArray, quality: FloatArray) -> Frontier:
    """Upper concave non-decreasing envelope of the points (cost_i, quality_i)."""
    c = np.asarray(cost, dtype=np.float64).reshape(-1)
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if len(c) == 0 or len(c) != len(q) or not (np.isfinite(c).all() and np.isfinite(q).all()):
        raise MetricError("a frontier needs finite points (cost, quality)")
    order = np.lexsort((-q, c))
    xs: list[float] = []
    ys: list[float] = []
    for i in order:
        x, y = float(c[i]), float(q[i])
        if ys and y <= ys[-1]:
            continue  # dominated: a cheaper (or as cheap) point is at least as good
        while len(xs) >= 2:
            # drop the last vertex if it lies on or below the chord from the one before to (x, y)
            x0, y0, x1, y1 = xs[-2], ys[-2], xs[-1], ys[-1]
            if (y1 - y0) * (x - x0) <= (y - y0) * (x1 - x0):
                xs.pop()
                ys.pop()
            else:
                break
        if xs and x == xs[-1]:
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)
    return Frontier(np.array(xs), np.array(ys))


def oracle_choice(success: FloatArray, cost: FloatArray) -> IntArray:
    """Per row the cheapest model with the row's best quality (cheapest correct model)."""
    s, c = check_matrices(success, cost)
    best = s.max(axis=1, keepdims=True)
    masked = np.where(s >= best, c, np.inf)
    out: IntArray = np.argmin(masked, axis=1).astype(np.int64)
    return out


def area_between(curve: Frontier, hull: Frontier, lo: float, hi: float) -> float:
    """Mean of (curve − hull) over costs in [lo, hi] (see module doc).

    Exact: both are piecewise linear, so the trapezoid rule over every vertex in [lo, hi]
    integrates their difference without error. A curve undefined somewhere in [lo, hi] (its
    cheapest point costs more than the cheapest model) is an error, not a silent number:
    every policy here reaches the cheapest model's point.
    """
    if not hi > lo:
        raise MetricError("the cost range is empty: the best single model is also the cheapest")
    xs = np.unique(np.concatenate([[lo, hi], curve.cost, hull.cost]))
    xs = xs[(xs >= lo) & (xs <= hi)]
    diff = curve.at(xs) - hull.at(xs)
    if np.isnan(diff).any():
        raise MetricError("the router's curve does not reach the cheapest model's cost")
    return float(np.trapezoid(diff, xs) / (hi - lo))


@dataclass(frozen=True)
class Reference:
    """What every router is measured against on one set of rows."""

    single_cost: FloatArray
    single_quality: FloatArray
    hull: Frontier
    best: int  # column of the best single model (ties: the cheaper)
    cheapest: int  # column of the cheapest single model (ties: the better)

    @property
    def lo(self) -> float:
        return float(self.single_cost[self.cheapest])

    @property
    def hi(self) -> float:
        return float(self.single_cost[self.best])

    @property
    def gap(self) -> float:
        return float(self.single_quality[self.best] - self.single_quality[self.cheapest])


def reference(success: FloatArray, cost: FloatArray) -> Reference:
    """The single models, their hull, the best and the cheapest model on these rows."""
    c, q = single_models(success, cost)
    return _reference_from(c, q)


@dataclass(frozen=True)
class CurveSummary:
    """One router's curve against the reference (numbers of :func:`summarize`)."""

    area: float  # NaN when the best single model is also the cheapest
    gain: float  # curve at the best model's cost − its quality
    cost_at: dict[float, float]  # quality fraction → least mean cost (inf = never)
    cost_fraction_at: dict[float, float]  # the same / the best single model's cost
    quality_at_cost: dict[float, float] = field(default_factory=dict)  # cost fraction of range → curve

    def as_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {
            "area": num(self.area),
            "gain": self.gain,
            "cost_at": {f"{k:g}": num(v) for k, v in self.cost_at.items()},
            "cost_fraction_at": {f"{k:g}": num(v) for k, v in self.cost_fraction_at.items()},
            "quality_at_cost": {f"{k:g}": num(v) for k, v in self.quality_at_cost.items()},
        }


def summarize(
    curve: Frontier, ref: Reference, targets: Sequence[float] = QUALITY_TARGETS, grid: Sequence[float] = ()
) -> CurveSummary:
    """Area over the hull, cost at each quality target, and the curve at cost fractions ``grid``
    of the cheapest → best range."""
    best_q = float(ref.single_quality[ref.best])
    cost_at = {t: curve.cost_for(t * best_q) for t in targets}
    frac = {t: v / ref.hi if ref.hi > 0 else float("nan") for t, v in cost_at.items()}
    at = {g: float(curve.at(ref.lo + g * (ref.hi - ref.lo))) for g in grid}
    area = area_between(curve, ref.hull, ref.lo, ref.hi) if ref.hi > ref.lo else float("nan")
    return CurveSummary(area, float(curve.at(ref.hi)) - best_q, cost_at, frac, at)


def mixed(quality_cost: Sequence[tuple[float, float]], weights: Sequence[float]) -> tuple[float, float]:
    """(cost, quality) of a random mix of points with the given weights (sums to 1)."""
    w = np.asarray(weights, dtype=np.float64)
    pts = np.asarray(quality_cost, dtype=np.float64).reshape(-1, 2)
    return float(w @ pts[:, 0]), float(w @ pts[:, 1])


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class CurveBootstrap:
    """Bootstrap draws (rows resampled, paired across routers): per draw the area, the cost
    fraction at each target, and curve − hull at each cost-range fraction of ``grid``."""

    grid: FloatArray
    area: FloatArray  # (B,), NaN in a draw where the best single model is also the cheapest
    gain: FloatArray  # (B,)
    cost_fraction_at: dict[float, FloatArray]  # target → (B,)
    above_hull: FloatArray  # (B, len(grid))

    def ci(self, values: FloatArray, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval; NaN draws (undefined area) are left out, +inf ones kept."""
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return float("nan"), float("nan")
        finite = values[np.isfinite(values)]
        if len(finite) < len(values):  # a draw that never reaches a target: its cost is +inf
            lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
            srt = np.sort(np.where(np.isfinite(values), values, np.inf))
            return float(np.quantile(srt, lo_q, method="lower")), float(
                np.quantile(srt, hi_q, method="higher")
            )
        lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
        return float(lo), float(hi)

    def excludes_hull(self, lo: float = MIDDLE[0], hi: float = MIDDLE[1], level: float = 0.95) -> bool:
        """Whether the lower CI bound of curve − hull is > 0 at every grid cost in [lo, hi]."""
        sel = (self.grid >= lo - 1e-12) & (self.grid <= hi + 1e-12)
        lower = np.quantile(self.above_hull[:, sel], (1 - level) / 2, axis=0)
        return bool((lower > 0).all())


def bootstrap_curve(
    choices: Sequence[IntArray] | IntArray,
    success: FloatArray,
    cost: FloatArray,
    draws: int = 1000,
    seed: int = 0,
    targets: Sequence[float] = QUALITY_TARGETS,
    grid: Sequence[float] | FloatArray = COST_GRID,
) -> CurveBootstrap:
    """Resample the rows ``draws`` times; per draw rebuild the single models, the hull and the
    router's curve from the same rows and summarise (see :class:`CurveBootstrap`). The same
    ``seed`` gives the same draws for every router on the same rows (paired)."""
    s, c = check_matrices(success, cost)
    ch = np.asarray(choices, dtype=np.int64).reshape(-1, len(s))
    rows = np.arange(len(s))
    chosen_q, chosen_c = s[rows, ch].T, c[rows, ch].T  # rows × K
    g = np.asarray(grid, dtype=np.float64)
    rng = np.random.default_rng(seed)
    area, gain = np.empty(draws), np.empty(draws)
    frac = {t: np.empty(draws) for t in targets}
    above = np.empty((draws, len(g)))
    n = len(s)
    for b in range(draws):
        w = np.bincount(rng.integers(0, n, n), minlength=n) / n
        sq, sc = w @ s, w @ c
        ref = _reference_from(sc, sq)
        curve = frontier(w @ chosen_c, w @ chosen_q)
        summ = summarize(curve, ref, targets, ())
        area[b], gain[b] = summ.area, summ.gain
        for t in targets:
            frac[t][b] = summ.cost_fraction_at[t]
        xs = ref.lo + g * (ref.hi - ref.lo)
        above[b] = curve.at(xs) - ref.hull.at(xs)
    return CurveBootstrap(g, area, gain, frac, above)


def _reference_from(c: FloatArray, q: FloatArray) -> Reference:
    best = int(np.lexsort((c, -q))[0])
    cheapest = int(np.lexsort((-q, c))[0])
    return Reference(c, q, frontier(c, q), best, cheapest)
