"""Exact routing metrics (DESIGN.md §5), as pure functions over numpy arrays.

Convention: a router's score is "how sure we are the weak model is enough", so queries are
sent to the strong model in **ascending** score order. Routing a fraction α of N queries to
the strong model gives the system pass rate

    P(α) = (1/N) Σ_i [ pr_s(i) if i is routed strong else pr_w(i) ].

Ties: queries with equal scores are indistinguishable to the router, so within a tied group
the routed share is spread evenly (the expectation over random tie-breaking). Fractional α·N:
the curve is linearly interpolated between integer counts (again the expectation of routing
the boundary query with probability equal to the fraction). Both make the curve a
piecewise-linear function of α through the points at tie-group boundaries, which is what
:class:`Curve` stores — every metric here is read off that curve, so results never depend on
row order, and a router with constant scores (or the average over random orderings) gives
exactly the straight line from P_w to P_s, i.e. APGR = 50.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from firewall_routing.errors import MetricError, UndefinedGapError
from firewall_routing.outcomes import FloatArray

APGR_POINTS: FloatArray = np.linspace(0.0, 1.0, 11)
"""RouteLLM's APGR grid: α ∈ {0, 0.1, …, 1}."""

GAP_EPS = 1e-12
"""A performance gap P_s − P_w at or below this leaves PGR, APGR and CPT undefined."""

PASS_RATE_FRACTIONS = (0.2, 0.5, 0.8)
CPT_TARGETS = (0.5, 0.8)
COST_ADVANTAGES = (0.1, 0.2, 0.4)


@dataclass(frozen=True)
class Curve:
    """Deferral curve: system pass rate vs. fraction of queries routed to the strong model."""

    frac: FloatArray  # increasing, frac[0] = 0, frac[-1] = 1
    pass_rate: FloatArray
    weak_pass_rate: float  # P_w: everything to the weak model
    strong_pass_rate: float  # P_s: everything to the strong model

    def at(self, alpha: float | FloatArray) -> Any:
        return np.interp(alpha, self.frac, self.pass_rate)

    @property
    def gap(self) -> float:
        return self.strong_pass_rate - self.weak_pass_rate

    @property
    def gap_defined(self) -> bool:
        """True when the strong model beats the weak one overall, so PGR means something."""
        return self.gap > GAP_EPS

    def pgr(self, alpha: float | FloatArray) -> Any:
        """Performance gap recovered at α (0 = all-weak quality, 1 = all-strong quality)."""
        if abs(self.gap) < 1e-12:
            raise MetricError(
                f"weak and strong have the same overall pass rate ({self.weak_pass_rate:.4f}): "
                "the performance gap (and APGR) is undefined on this table"
            )
        return (self.at(alpha) - self.weak_pass_rate) / self.gap


def require_gap(
    weak_pass_rate: float, strong_pass_rate: float, weak: str = "weak", strong: str = "strong"
) -> None:
    """Raise :class:`UndefinedGapError` unless the strong model beats the weak one overall.

    PGR divides by P_s − P_w: with a zero gap it is undefined, and with a negative one it
    inverts (the oracle scores APGR −73 or −193), so callers that print APGR check first.
    """
    if strong_pass_rate - weak_pass_rate > GAP_EPS:
        return
    relation = (
        "the same pass rate as"
        if abs(strong_pass_rate - weak_pass_rate) <= GAP_EPS
        else "a lower pass rate than"
    )
    raise UndefinedGapError(
        f"APGR, PGR and CPT are undefined on this table: the strong model '{strong}' "
        f"({strong_pass_rate * 100:.2f} %) has {relation} the weak model '{weak}' "
        f"({weak_pass_rate * 100:.2f} %); if the pair is swapped, swap --weak and --strong "
        "(or the weak_/strong_ fields of the file)"
    )


def _check(scores: FloatArray, pr_w: FloatArray, pr_s: FloatArray) -> None:
    if not (len(scores) == len(pr_w) == len(pr_s)):
        raise ValueError(f"length mismatch: {len(scores)} scores, {len(pr_w)} weak, {len(pr_s)} strong")
    if len(scores) == 0:
        raise MetricError("no queries to evaluate")
    if np.isnan(scores).any():
        raise MetricError("router returned NaN scores")


@dataclass(frozen=True)
class _Order:
    """Sort order and tie-group ends of one score vector (reused across bootstrap draws)."""

    order: np.ndarray[Any, np.dtype[np.int64]]
    ends: np.ndarray[Any, np.dtype[np.int64]]  # index (in sorted order) of each group's last item


def _order(scores: FloatArray) -> _Order:
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return _Order(order, ends)


def deferral_curve(
    scores: FloatArray, pr_w: FloatArray, pr_s: FloatArray, weights: FloatArray | None = None
) -> Curve:
    """The exact curve; ``weights`` (e.g. bootstrap counts) weight queries, default 1 each."""
    scores, pr_w, pr_s = (np.asarray(a, dtype=np.float64) for a in (scores, pr_w, pr_s))
    _check(scores, pr_w, pr_s)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    o = _order(scores)
    return _curve_from_order(o, pr_w, pr_s, w)


def _curve_from_order(o: _Order, pr_w: FloatArray, pr_s: FloatArray, w: FloatArray) -> Curve:
    total = float(w.sum())
    ws = w[o.order]
    gain = (pr_s - pr_w)[o.order] * ws
    p_w = float(np.dot(w, pr_w) / total)
    x = np.r_[0.0, np.cumsum(ws)[o.ends] / total]
    y = p_w + np.r_[0.0, np.cumsum(gain)[o.ends] / total]
    return Curve(x, y, p_w, float(np.dot(w, pr_s) / total))


def apgr(curve: Curve) -> float:
    """RouteLLM's APGR in %: mean PGR over α ∈ {0, 0.1, …, 1}."""
    return float(np.mean(curve.pgr(APGR_POINTS)) * 100.0)


def apgr_area(curve: Curve) -> float:
    """Exact area under the PGR curve in % (the integral the 11-point APGR approximates)."""
    y = curve.pgr(curve.frac)
    return float(np.sum((y[1:] + y[:-1]) / 2.0 * np.diff(curve.frac)) * 100.0)


def cpt(curve: Curve, target: float) -> float:
    """Call-Performance Threshold: least strong fraction that recovers ``target`` of the gap."""
    y = curve.pgr(curve.frac)
    hit = np.flatnonzero(y >= target - 1e-12)
    i = int(hit[0])  # y[-1] == 1, so every target ≤ 1 is reached
    if i == 0:
        return 0.0
    x0, x1, y0, y1 = curve.frac[i - 1], curve.frac[i], y[i - 1], y[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def quality_drop(curve: Curve, cost_advantage: float) -> float:
    """Hybrid LLM's metric (Ding et al. 2024, §4): % drop in quality vs. all-strong when
    routing ``cost_advantage`` of the queries (the highest scores) to the weak model.

    drop(c) = (Q_s − Q(1 − c)) / |Q_s| · 100, Q = mean quality (pass rate, or any real-valued
    quality such as F1 or BARTScore, which is negative: hence |Q_s|, so a worse system is
    always a positive drop).
    """
    if curve.strong_pass_rate == 0:
        raise MetricError("all-strong quality is 0: relative quality drop undefined")
    p = float(curve.at(1.0 - cost_advantage))
    return (curve.strong_pass_rate - p) / abs(curve.strong_pass_rate) * 100.0


COST_ADVANTAGE_GRID: FloatArray = np.linspace(0.0, 1.0, 21)
"""Cost advantages (share of queries sent to the weak model) of the quality-drop curve."""


@dataclass(frozen=True)
class QualityCost:
    """Hybrid LLM's curve on real-valued quality: quality drop (%) vs. cost advantage."""

    cost_advantage: FloatArray
    quality_drop: FloatArray
    weak_quality: float  # mean quality, everything to the weak model
    strong_quality: float  # everything to the strong model

    def at(self, cost_advantage: float) -> float:
        return float(np.interp(cost_advantage, self.cost_advantage, self.quality_drop))


def quality_cost_curve(
    scores: FloatArray, q_w: FloatArray, q_s: FloatArray, grid: FloatArray = COST_ADVANTAGE_GRID
) -> QualityCost:
    """Quality drop at each cost advantage in ``grid`` for one router's scores.

    ``q_w``/``q_s`` are per-query expected qualities (mean over samples); queries leave the
    strong model in descending score order, with ties and fractions handled as in
    :func:`deferral_curve` (the same curve, read from the other end).
    """
    c = deferral_curve(scores, q_w, q_s)
    g = np.asarray(grid, dtype=np.float64)
    drops = np.array([quality_drop(c, float(x)) for x in g])
    return QualityCost(g, drops, c.weak_pass_rate, c.strong_pass_rate)


def strong_weights(scores: FloatArray, alpha: float) -> FloatArray:
    """Probability that each query is routed strong at fraction α (ties share evenly)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    o = _order(scores)
    k = alpha * n
    out = np.zeros(n)
    start = 0
    for end in o.ends:
        size = end - start + 1
        routed = min(max(k - start, 0.0), size)
        out[o.order[start : end + 1]] = routed / size
        start = end + 1
    return out


TAXONOMY = ("weak_ok", "strong_only", "both_ok", "both_fail")
"""Outcome of a strong call, as expected fractions from pass rates (independent samples):
weak_ok = weak right & strong wrong (the call made things worse), strong_only = only strong
right (the call paid off), both_ok = either was fine (call wasted on an easy query),
both_fail = neither (call wasted on a hopeless query: what blocking targets)."""


def taxonomy(scores: FloatArray, pr_w: FloatArray, pr_s: FloatArray, alpha: float) -> dict[str, float]:
    """Expected shares of the strong calls made at fraction α, by outcome."""
    w = strong_weights(scores, alpha)
    total = w.sum()
    parts = {
        "weak_ok": pr_w * (1 - pr_s),
        "strong_only": (1 - pr_w) * pr_s,
        "both_ok": pr_w * pr_s,
        "both_fail": (1 - pr_w) * (1 - pr_s),
    }
    if total == 0:
        return {k: float("nan") for k in parts}
    return {k: float(np.dot(w, v) / total) for k, v in parts.items()}


@dataclass(frozen=True)
class ScoreBin:
    lo: float
    hi: float
    count: int
    weak_pass_rate: float
    strong_pass_rate: float


def score_bins(scores: FloatArray, pr_w: FloatArray, pr_s: FloatArray, n_bins: int = 10) -> list[ScoreBin]:
    """Appendix-B view: queries in ascending score order, cut into equal-count bins."""
    o = np.argsort(np.asarray(scores), kind="stable")
    bins = []
    for chunk in np.array_split(o, min(n_bins, len(o))):
        bins.append(
            ScoreBin(
                float(scores[chunk].min()),
                float(scores[chunk].max()),
                len(chunk),
                float(pr_w[chunk].mean()),
                float(pr_s[chunk].mean()),
            )
        )
    return bins


# --------------------------------------------------------------------------- summary + CIs


@dataclass(frozen=True)
class Summary:
    """Every scalar metric of one router on one table."""

    apgr: float
    apgr_area: float
    pass_rate_at: dict[float, float]
    """Strong fraction α (:data:`PASS_RATE_FRACTIONS`) → system pass rate."""
    cpt: dict[float, float]
    """Share of the gap to recover (:data:`CPT_TARGETS`) → strong share needed."""
    quality_drop: dict[float, float]
    """Cost advantage (:data:`COST_ADVANTAGES`) → quality drop in %; empty when the
    all-strong pass rate is 0."""
    weak_pass_rate: float
    strong_pass_rate: float

    @classmethod
    def aggregate(cls, runs: Sequence[Summary], stat: Callable[[list[float]], Any]) -> Summary:
        """Field by field ``stat`` over ``runs`` (e.g. ``np.mean`` over seeds), as a Summary.

        The keys of the mappings come from the first run: every seed of one router is
        evaluated on the same table, so they all have the same ones."""

        def each(values: list[float]) -> float:
            return float(stat(values))

        def per_key(get: Callable[[Summary], dict[float, float]]) -> dict[float, float]:
            return {k: each([get(r)[k] for r in runs]) for k in get(runs[0])}

        return cls(
            apgr=each([r.apgr for r in runs]),
            apgr_area=each([r.apgr_area for r in runs]),
            pass_rate_at=per_key(lambda r: r.pass_rate_at),
            cpt=per_key(lambda r: r.cpt),
            quality_drop=per_key(lambda r: r.quality_drop),
            weak_pass_rate=each([r.weak_pass_rate for r in runs]),
            strong_pass_rate=each([r.strong_pass_rate for r in runs]),
        )


def summarize(scores: FloatArray, pr_w: FloatArray, pr_s: FloatArray) -> Summary:
    """All metrics; those relative to the gap (APGR, CPT) are NaN where it is ≤ 0 (see
    :func:`require_gap`), so a report can mark them undefined instead of printing nonsense."""
    c = deferral_curve(scores, pr_w, pr_s)
    ok = c.gap_defined
    nan = float("nan")
    return Summary(
        apgr=apgr(c) if ok else nan,
        apgr_area=apgr_area(c) if ok else nan,
        pass_rate_at={a: float(c.at(a)) for a in PASS_RATE_FRACTIONS},
        cpt={t: cpt(c, t) if ok else nan for t in CPT_TARGETS},
        quality_drop={ca: quality_drop(c, ca) for ca in COST_ADVANTAGES} if c.strong_pass_rate > 0 else {},
        weak_pass_rate=c.weak_pass_rate,
        strong_pass_rate=c.strong_pass_rate,
    )


MAX_BOOTSTRAP = 100_000  # resamples; the CLI's --bootstrap bound (CIs settle long before)
MAX_DRAW_CELLS = 50_000_000  # n_boot × n counts (400 MB of int64): beyond, refuse, not swap


def bootstrap_draws(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Multinomial resampling counts (n_boot × n). Share one draw across routers so their CIs
    are paired (same resampled query sets).

    ``--bootstrap 1000000000`` once tried to allocate 447 GiB here: more cells than
    ``MAX_DRAW_CELLS`` is a MetricError (one line, exit 2) naming the largest usable count.
    """
    if n_boot > MAX_BOOTSTRAP or n_boot * n > MAX_DRAW_CELLS:
        most = min(MAX_BOOTSTRAP, MAX_DRAW_CELLS // max(n, 1))
        raise MetricError(
            f"--bootstrap {n_boot} on {n} rows is too many resamples (at most {most} here; "
            "1000 gives stable 95 % CIs)"
        )
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.int64)


@dataclass(frozen=True)
class BootstrapMetrics:
    """Per-resample values (length n_boot) of the metrics that get a confidence interval."""

    apgr: FloatArray
    """NaN on resamples whose gap is ≤ 0."""
    pass_rate_at: dict[float, FloatArray]
    """Strong fraction α (:data:`PASS_RATE_FRACTIONS`) → system pass rate per resample."""


def bootstrap_metrics(
    score_sets: Sequence[FloatArray],
    pr_w: FloatArray,
    pr_s: FloatArray,
    draws: np.ndarray[Any, np.dtype[np.int64]],
) -> BootstrapMetrics:
    """Per-draw APGR and pass rates at 20/50/80 %, averaged over ``score_sets`` (e.g. seeds).

    Returns arrays of length n_boot; draws where the resampled gap is ≤ 0 have APGR NaN.
    """
    pr_w = np.asarray(pr_w, dtype=np.float64)
    pr_s = np.asarray(pr_s, dtype=np.float64)
    apgr_acc = np.zeros(len(draws))
    rate_acc = {a: np.zeros(len(draws)) for a in PASS_RATE_FRACTIONS}
    for scores in score_sets:
        o = _order(np.asarray(scores, dtype=np.float64))
        wc = draws[:, o.order].astype(np.float64)
        total = wc.sum(axis=1)
        p_w = (draws @ pr_w) / total
        p_s = (draws @ pr_s) / total
        gain = wc * (pr_s - pr_w)[o.order]
        xs = np.cumsum(wc, axis=1)[:, o.ends] / total[:, None]
        ys = np.cumsum(gain, axis=1)[:, o.ends] / total[:, None]
        gap = p_s - p_w
        with np.errstate(invalid="ignore", divide="ignore"):
            for b in range(len(draws)):
                x = np.r_[0.0, xs[b]]
                y = p_w[b] + np.r_[0.0, ys[b]]
                apgr_acc[b] += (
                    np.mean((np.interp(APGR_POINTS, x, y) - p_w[b]) / gap[b]) * 100.0
                    if gap[b] > GAP_EPS
                    else np.nan
                )
                pts = np.interp(PASS_RATE_FRACTIONS, x, y)
                for a, v in zip(PASS_RATE_FRACTIONS, pts, strict=True):
                    rate_acc[a][b] += v
    k = len(score_sets)
    return BootstrapMetrics(apgr_acc / k, {a: v / k for a, v in rate_acc.items()})


def ci95(values: FloatArray) -> tuple[float, float]:
    """Percentile 95 % interval, ignoring undefined draws."""
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(v, [2.5, 97.5])
    return (float(lo), float(hi))


# --------------------------------------------------------------------------- paired tests


def _score_sets(scores: FloatArray | Sequence[FloatArray]) -> list[FloatArray]:
    """One score vector, or several (e.g. one per seed) given as a list or a 2-D array."""
    arr = np.asarray(scores, dtype=np.float64)
    return [arr] if arr.ndim == 1 else [np.asarray(s, dtype=np.float64) for s in arr]


def bootstrap_apgr(
    scores: FloatArray | Sequence[FloatArray],
    pr_w: FloatArray,
    pr_s: FloatArray,
    draws: np.ndarray[Any, np.dtype[np.int64]],
) -> FloatArray:
    """APGR of every bootstrap draw (mean over score sets), vectorized over draws.

    Same numbers as ``bootstrap_metrics(...).apgr`` but without the per-draw Python loop,
    because the sweep needs it for ~15 pairs × 3 datasets × ~15 routers. Draws whose
    resampled gap is ≤ 0 are NaN (APGR is undefined there, as in ``bootstrap_metrics``).
    """
    pr_w = np.asarray(pr_w, dtype=np.float64)
    pr_s = np.asarray(pr_s, dtype=np.float64)
    sets = _score_sets(scores)
    acc = np.zeros(len(draws))
    for s in sets:
        _check(s, pr_w, pr_s)
        o = _order(s)
        wc = draws[:, o.order].astype(np.float64)
        total = wc.sum(axis=1)
        gap = (draws @ pr_s - draws @ pr_w) / total
        # Curve nodes per draw: x from 0 to 1, gain y from 0 (P - P_w); zero-weight groups
        # repeat a node with the same y, so interpolation stays well defined.
        x = np.c_[np.zeros(len(draws)), np.cumsum(wc, axis=1)[:, o.ends] / total[:, None]]
        y = np.c_[np.zeros(len(draws)), np.cumsum(wc * (pr_s - pr_w)[o.order], axis=1)[:, o.ends]]
        y /= total[:, None]
        rows = np.arange(len(draws))
        last = x.shape[1] - 1
        area = np.zeros(len(draws))
        for a in APGR_POINTS:
            k = np.clip((x <= a).sum(axis=1) - 1, 0, last - 1)
            x0, x1, y0, y1 = x[rows, k], x[rows, k + 1], y[rows, k], y[rows, k + 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                t = np.where(x1 > x0, np.clip((a - x0) / (x1 - x0), 0.0, 1.0), 1.0)
            area += y0 + t * (y1 - y0)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc += np.where(gap > GAP_EPS, area / len(APGR_POINTS) / gap * 100.0, np.nan)
    return acc / len(sets)


def mean_apgr(scores: FloatArray | Sequence[FloatArray], pr_w: FloatArray, pr_s: FloatArray) -> float:
    """APGR on the full table, averaged over score sets (seeds)."""
    return float(np.mean([apgr(deferral_curve(s, pr_w, pr_s)) for s in _score_sets(scores)]))


class PairedDifference(NamedTuple):
    """APGR(a) − APGR(b) on the same queries, with its paired-bootstrap 95 % CI and p-value
    (a tuple, so ``diff, lo, hi, p = ...`` works)."""

    diff: float
    lo: float
    hi: float
    p_two_sided: float

    def as_dict(self) -> dict[str, float]:
        return {"diff": self.diff, "lo": self.lo, "hi": self.hi, "p": self.p_two_sided}


def bootstrap_p_value(boot_diff: FloatArray) -> float:
    """Two-sided p of "difference = 0" from bootstrap draws of the difference.

    p = 2·min(#(d ≤ 0) + 1, #(d ≥ 0) + 1) / (B + 1), capped at 1: the smallest level at which
    the percentile interval excludes 0, with the +1 so a finite bootstrap never claims p = 0.
    Identical routers (every draw 0) get p = 1. Undefined (NaN) draws are ignored.
    """
    d = np.asarray(boot_diff, dtype=np.float64)
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return float("nan")
    le, ge = int(np.sum(d <= 0)), int(np.sum(d >= 0))
    return float(min(1.0, 2.0 * (min(le, ge) + 1) / (len(d) + 1)))


def paired_from_boot(point_diff: float, boot_diff: FloatArray) -> PairedDifference:
    """Package a point difference and its bootstrap draws (use when draws are reused)."""
    lo, hi = ci95(np.asarray(boot_diff, dtype=np.float64))
    return PairedDifference(float(point_diff), lo, hi, bootstrap_p_value(boot_diff))


def paired_apgr_difference(
    score_a: FloatArray | Sequence[FloatArray],
    score_b: FloatArray | Sequence[FloatArray],
    pr_w: FloatArray,
    pr_s: FloatArray,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedDifference:
    """Paired bootstrap over queries of APGR(a) − APGR(b).

    Both routers are scored on the *same* resampled query sets, so query difficulty, which
    moves both APGRs together, cancels out of the difference; unpaired CIs overlap far more
    than the difference's own CI. Several score vectors per router (seeds) are averaged, as
    in :func:`bootstrap_metrics`. Unpacks as ``diff, lo, hi, p = paired_apgr_difference(...)``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    draws = bootstrap_draws(len(pr_w), n_boot, seed)
    boot = bootstrap_apgr(score_a, pr_w, pr_s, draws) - bootstrap_apgr(score_b, pr_w, pr_s, draws)
    point = mean_apgr(score_a, pr_w, pr_s) - mean_apgr(score_b, pr_w, pr_s)
    return paired_from_boot(point, boot)


@dataclass(frozen=True)
class AcrossPairs:
    """Does design a beat b across model pairs? Counts and two paired tests on per-pair diffs."""

    n: int
    wins: int
    losses: int
    ties: int
    mean_diff: float
    sign_p: float
    wilcoxon_p: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "mean_diff": self.mean_diff,
            "sign_test_p": self.sign_p,
            "wilcoxon_p": self.wilcoxon_p,
        }


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test (ties dropped): binomial(wins + losses, 1/2)."""
    from scipy.stats import binomtest

    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n, 0.5, alternative="two-sided").pvalue)


def wilcoxon_p(diffs: FloatArray) -> float:
    """Two-sided Wilcoxon signed-rank p on per-pair differences (zeros dropped, scipy's
    exact distribution for small n without ties). NaN when every difference is 0."""
    from scipy.stats import wilcoxon

    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.abs(d) > 1e-12]
    if len(d) == 0:
        return float("nan")
    return float(wilcoxon(d, alternative="two-sided").pvalue)


def across_pairs(diffs: FloatArray, tol: float = 1e-12) -> AcrossPairs:
    """Sign test and Wilcoxon over per-pair APGR differences (a − b); |d| ≤ tol is a tie."""
    d = np.asarray(diffs, dtype=np.float64)
    wins, losses = int(np.sum(d > tol)), int(np.sum(d < -tol))
    return AcrossPairs(
        n=len(d),
        wins=wins,
        losses=losses,
        ties=len(d) - wins - losses,
        mean_diff=float(np.mean(d)) if len(d) else float("nan"),
        sign_p=sign_test_p(wins, losses),
        wilcoxon_p=wilcoxon_p(np.where(np.abs(d) > tol, d, 0.0)),
    )
