"""Train on one split of a table, evaluate on another: every label design plus baselines.

This is the shape of the paper's Table 1 for one benchmark (APGR with its 95 % CI and the
pass rate at 20/50/80 % of queries routed to the strong model), and, where the table holds
real-valued quality, Hybrid LLM's own metric beside it: the quality drop at 10/20/40 % cost
advantage on the mean sampled quality (Ding et al. 2024, §4). It serves the TriviaQA
section of ``reproduce`` and ``firewall-routing hybrid-llm`` (Hybrid LLM's experiment on
MixInstruct or any file with quality).

It is deliberately small and self-contained: routers are trained once per design (once per
seed for seeded routers) on the train split, and every router is scored on the same test
rows and the same bootstrap resamples, so CIs are paired across rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.designs import as_design
from firewall_routing.errors import InputError
from firewall_routing.experiment import conclusion
from firewall_routing.experiment.evaluation import Draws, evaluate_scores
from firewall_routing.experiment.results import Comparison, RouterEvaluation, RouterKind
from firewall_routing.experiment.verdict import set_lines, winner_line
from firewall_routing.labels import DESIGN_TITLES, Approximations, compute_labels, uses_quality
from firewall_routing.outcomes import FloatArray, OutcomeTable

DEFAULT_BASELINES = ("random", "mf", "oracle")


@dataclass(frozen=True)
class HoldoutRow:
    """One router on the test split: the shared evaluation (:func:`evaluate_scores`, means
    over seeds, paired-bootstrap CIs) plus Hybrid LLM's quality drop on real-valued quality."""

    name: str
    kind: RouterKind
    ev: RouterEvaluation
    quality_drop: dict[float, float]  # real-valued quality; empty when the table has none
    same_as: str | None = None  # identical training labels to this earlier design
    uses_quality: bool = False  # its labels were computed on real-valued quality
    boot_apgr: FloatArray | None = field(default=None, repr=False, compare=False)  # per resample
    score_sets: tuple[FloatArray, ...] = field(default=(), repr=False, compare=False)

    @property
    def apgr(self) -> float:
        return self.ev.mean.apgr

    @property
    def pass_rate_at(self) -> dict[float, float]:
        return self.ev.mean.pass_rate_at

    @property
    def apgr_ci(self) -> tuple[float, float]:
        return _NAN2 if self.ev.ci95 is None else tuple(self.ev.ci95.apgr)  # type: ignore[return-value]

    def pass_rate_ci(self, alpha: float) -> tuple[float, float]:
        return _NAN2 if self.ev.ci95 is None else tuple(self.ev.ci95.pass_rate_at[alpha])  # type: ignore[return-value]


_NAN2 = (float("nan"), float("nan"))


@dataclass(frozen=True)
class HoldoutResult:
    """Everything a report needs about one train/test experiment."""

    weak: str
    strong: str
    n_train: int
    n_test: int
    weak_pass_rate: float  # test split, all-weak
    strong_pass_rate: float
    weak_quality: float | None  # test split, mean quality, all-weak
    strong_quality: float | None
    router: str
    rows: tuple[HoldoutRow, ...]
    t_star: float | None  # r_trans's t*, searched on the train split
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    params: dict[str, dict[str, float]] = field(default_factory=dict)
    comparison: Comparison | None = None  # paired tests on the test split (None: no bootstrap)

    def row(self, name: str) -> HoldoutRow:
        return next(r for r in self.rows if r.name == name)


def split_last(table: OutcomeTable, n_test: int) -> tuple[OutcomeTable, OutcomeTable]:
    """Train = all rows but the last ``n_test``, test = the last ``n_test`` (file order):
    a split anyone can redo from the file alone."""
    if not 0 < n_test < len(table):
        raise InputError(f"test split of {n_test} rows needs 0 < n < {len(table)} (the table's rows)")
    idx = np.arange(len(table))
    return table.take(idx[:-n_test]), table.take(idx[-n_test:])


def _has_quality(t: OutcomeTable) -> bool:
    return t.weak.has_quality and t.strong.has_quality


def _quality_drops(scores: FloatArray, test: OutcomeTable) -> dict[float, float]:
    if not _has_quality(test):
        return {}
    qc = metrics.quality_cost_curve(scores, test.weak.mean_quality(), test.strong.mean_quality())
    return {c: qc.at(c) for c in metrics.COST_ADVANTAGES}


def _row(
    name: str,
    kind: RouterKind,
    score_sets: Sequence[FloatArray],
    test: OutcomeTable,
    draws: Draws | None,
    quality_scores: FloatArray | None = None,
    same_as: str | None = None,
    quality: bool = False,
) -> HoldoutRow:
    ev, boot_apgr = evaluate_scores(score_sets, test, draws)
    drops = [
        _quality_drops(s, test) for s in ([quality_scores] if quality_scores is not None else score_sets)
    ]
    return HoldoutRow(
        name=name,
        kind=kind,
        ev=ev,
        quality_drop={c: float(np.mean([d[c] for d in drops])) for c in drops[0]}
        if drops and drops[0]
        else {},
        same_as=same_as,
        uses_quality=quality,
        boot_apgr=boot_apgr,
        score_sets=tuple(score_sets),
    )


def compare_rows(rows: Sequence[HoldoutRow], n_boot: int) -> Comparison | None:
    """Which rows are separable (paired bootstrap on the shared resamples; identical routers
    merged), as ``reproduce`` does for its main tables. None without a bootstrap."""
    if not rows or any(r.boot_apgr is None for r in rows):
        return None
    groups = conclusion.identical_groups({r.name: r.score_sets for r in rows})
    by = {r.name: r for r in rows}
    name = {g[0]: conclusion.group_name(g) for g in groups}
    points = {name[g[0]]: by[g[0]].apgr for g in groups}
    boots = {name[g[0]]: by[g[0]].boot_apgr for g in groups}
    return Comparison(
        n_boot=n_boot,
        n_seeds=max(len(r.score_sets) for r in rows),
        groups=[g for g in groups if len(g) > 1],
        apgr=points,
        differences=conclusion.compare(points, {k: v for k, v in boots.items() if v is not None}),
    )


def run_holdout(
    train: OutcomeTable,
    test: OutcomeTable,
    designs: Sequence[str],
    baselines: Sequence[str] = DEFAULT_BASELINES,
    router: str | None = None,
    router_options: dict[str, Any] | None = None,
    seeds: int = 1,
    n_boot: int = 1000,
    approx: Approximations | None = None,
    progress: Callable[[str], None] | None = None,
) -> HoldoutResult:
    """Train one ``router`` per label design on ``train``, the baselines as they train, and
    evaluate all on ``test`` (see the module docstring)."""
    from firewall_routing.routers import DEFAULT_ROUTER, make_router, router_class

    start = time.perf_counter()
    design_names = [as_design(d, "designs") for d in designs]
    router = router or DEFAULT_ROUTER
    say = progress or (lambda _msg: None)
    draws = metrics.bootstrap_draws(len(test), n_boot) if n_boot > 0 else None
    rows: list[HoldoutRow] = []
    notes: list[str] = list(dict.fromkeys(train.notes + test.notes))
    params: dict[str, dict[str, float]] = {}
    trained: dict[str, tuple[FloatArray, list[FloatArray]]] = {}
    cls = router_class(router)
    n_seeds = seeds if cls.seeded() else 1
    for design in design_names:
        lab = compute_labels(train, design, approx)
        notes += [f"{design}: {n}" for n in lab.notes if f"{design}: {n}" not in notes]
        if lab.params:
            params[design] = dict(lab.params)
        same = next((d for d, (v, _) in trained.items() if np.allclose(v, lab.values, atol=1e-12)), None)
        if same is not None:
            score_sets = trained[same][1]
        else:
            say(f"training {router} on {design} labels ({len(train)} queries)")
            score_sets = []
            for seed in range(n_seeds):
                r = make_router(router, **(router_options or {}) | ({"seed": seed} if cls.seeded() else {}))
                r.fit(train.prompts, lab.values)
                score_sets.append(r.score_table(test))
        trained[design] = (lab.values, score_sets)
        rows.append(
            _row(design, "design", score_sets, test, draws, same_as=same, quality=uses_quality(train, design))
        )
    for name in baselines:
        bcls = router_class(name)
        if bcls.trains and not bcls.fits_table:
            raise InputError(
                f"baseline '{name}' needs label-design labels: use it as the router", field="baselines"
            )
        say(f"baseline {name}")
        score_sets = []
        for seed in range(seeds if bcls.seeded() else 1):
            r = make_router(name, **({"seed": seed} if bcls.seeded() else {}))
            if bcls.fits_table:
                r.fit_table(train)
            score_sets.append(r.score_table(test))
        # The oracle of real-valued quality ranks by the quality gap, not the pass-rate gap.
        q_scores = None
        if name == "oracle" and _has_quality(test):
            q_scores = test.weak.mean_quality() - test.strong.mean_quality()
        rows.append(_row(name, "baseline", score_sets, test, draws, quality_scores=q_scores))
    q = _has_quality(test)
    return HoldoutResult(
        weak=test.weak.name,
        strong=test.strong.name,
        n_train=len(train),
        n_test=len(test),
        weak_pass_rate=float(test.weak.pass_rate.mean()),
        strong_pass_rate=float(test.strong.pass_rate.mean()),
        weak_quality=float(test.weak.mean_quality().mean()) if q else None,
        strong_quality=float(test.strong.mean_quality().mean()) if q else None,
        router=router,
        rows=tuple(rows),
        t_star=params.get("hybrid-trans", {}).get("t"),
        notes=tuple(notes),
        seconds=time.perf_counter() - start,
        params=params,
        comparison=compare_rows(rows, n_boot) if n_boot > 0 else None,
    )


def _pct(v: float) -> str:
    return "undefined" if np.isnan(v) else f"{v:.2f}"


def _ci(ci: tuple[float, float], scale: float = 1.0) -> str:
    lo, hi = ci
    return "" if np.isnan(lo) else f" [{lo * scale:.2f}, {hi * scale:.2f}]"


def holdout_markdown(res: HoldoutResult, title: str = "") -> str:
    """The paper's Table 1 column for one benchmark, plus the quality-drop columns."""
    q = res.weak_quality is not None
    head = "| Router | APGR [95 % CI] | PR @20 % | PR @50 % | PR @80 % |"
    rule = "|---|---|---|---|---|"
    if q:
        head += " quality drop @10 / 20 / 40 % cost adv. |"
        rule += "---|"
    lines = [f"### {title}", ""] if title else []
    lines += [
        f"Weak `{res.weak}`, strong `{res.strong}`; router `{res.router}` trained on {res.n_train} "
        f"queries, evaluated on {res.n_test} held-out ones. Test split: all-weak pass rate "
        f"{res.weak_pass_rate * 100:.2f} %, all-strong {res.strong_pass_rate * 100:.2f} %"
        + (
            f"; mean quality all-weak {res.weak_quality:.4g}, all-strong {res.strong_quality:.4g}."
            if q
            else "."
        ),
        "",
        head,
        rule,
    ]
    for r in res.rows:
        label = DESIGN_TITLES.get(as_design(r.name), r.name) if r.kind == "design" else r.name
        if r.same_as:
            label += f" (= {r.same_as} labels)"
        if r.uses_quality:
            label += " ‡"
        cells = [
            label,
            _pct(r.apgr) + _ci(r.apgr_ci),
            *(
                f"{r.pass_rate_at[a] * 100:.2f}" + _ci(r.pass_rate_ci(a), 100)
                for a in metrics.PASS_RATE_FRACTIONS
            ),
        ]
        if q:
            cells.append(
                " / ".join(f"{r.quality_drop[c]:.2f}" for c in metrics.COST_ADVANTAGES)
                if r.quality_drop
                else "–"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "APGR and pass rates (PR, % at that share of queries sent to the strong model) use 0/1 "
        "correctness; CIs are 95 % bootstrap over test queries (the same resamples for every row)."
    )
    if q:
        lines.append(
            "Quality drop (%, Hybrid LLM §4): (Q_s − Q(c)) / |Q_s| at cost advantage c (share sent "
            "to the weak model), Q = mean sampled quality per query; the oracle row ranks by the "
            "quality gap. ‡ = labels computed on real-valued quality."
        )
    if res.t_star is not None:
        lines.append(f"Hybrid LLM r_trans t* = {res.t_star:g} (searched on the train split).")
    for n in res.notes:
        lines.append(f"- note: {n}")
    lines += ["", *verdict_lines(res)]
    return "\n".join(lines)


def verdict_lines(res: HoldoutResult) -> list[str]:
    """Which router won on the test split and whether that is significant, in plain words."""
    if res.comparison is None:
        return ["No bootstrap was run, so nothing here says which routers are separable.", ""]
    return [
        f"**Which won** (paired bootstrap over the {res.n_test} test queries, "
        f"{res.comparison.n_boot} resamples shared by every row; separable = the 95 % interval "
        "of the APGR difference excludes 0; random = its expected APGR 50; oracle left out):",
        "",
        winner_line("test split", res.comparison),
        *set_lines("test split", res.comparison, res.n_test)[1:],
        "",
    ]
