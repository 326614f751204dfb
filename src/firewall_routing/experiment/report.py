"""Turning results into what people read: the ``evaluate`` table, report.md, PNG plots.

Rendering only: every number comes typed from :mod:`~firewall_routing.experiment.evaluation`
(the tables: :mod:`~firewall_routing.experiment.results`, also in results.json; the plots'
curves: :func:`~firewall_routing.experiment.evaluation.router_lines` and
:func:`~firewall_routing.experiment.evaluation.curve_band`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.experiment.evaluation import GRID, RouterLine, bin_pass_rates, curve_band, router_lines
from firewall_routing.experiment.results import (
    Comparison,
    Evaluation,
    ExperimentResults,
    ResultRow,
    RouterRun,
    TableInfo,
    percent,
)
from firewall_routing.experiment.verdict import best, signed, winner_line
from firewall_routing.experiment.verdict import is_blocking as _is_blocking
from firewall_routing.experiment.verdict import is_design as _is_design
from firewall_routing.experiment.verdict import pairwise as _pairwise
from firewall_routing.experiment.verdict import set_lines as _set_lines
from firewall_routing.experiment.verdict import vs_random as _vs_random
from firewall_routing.labels import DESIGN_TITLES
from firewall_routing.outcomes import OutcomeTable

TITLES: dict[str, str] = {
    "random": "Linear Interpolation (random)",
    "oracle": "Oracle (upper bound)",
    "mf": "RouteLLM MF (MiniLM emb.)",
    "margin": "Margin Sampling",
}
TITLES |= {name: t for name, t in DESIGN_TITLES.items()}  # design names are str too

TABLE1_ROWS = ("random", "mf", "margin", "hybrid-trans", "hard-block", "soft-block", "oracle")
"""Paper Table 1/2 rows. Baseline routers (``mf``, ``margin``) appear when the run has them;
rows without results are left out. Other baselines are appended after these (see
:func:`table1_rows`)."""
HYBRID_ROWS = ("hybrid-det", "hybrid-prob", "hybrid-trans")
TABLE3_ROWS = (
    "weak-pass-rate",
    "strong-pass-rate",
    "hard",
    "hard-block-greedy",
    "hard-block",
    "soft-block",
    "win-rate",
    "hybrid-det",
    "hybrid-prob",
    "hybrid-trans",
)

TAXONOMY_TITLES = {
    "weak_ok": "weak-ok",
    "strong_only": "strong-only",
    "both_ok": "both-ok",
    "both_fail": "both-fail",
}


def title(name: str) -> str:
    return TITLES.get(name, name)


# --------------------------------------------------------------------------- `evaluate`


def _with_ci(value: float, ci: tuple[float, float] | None, scale: float = 1.0) -> str:
    s = f"{value * scale:.2f}"
    if ci is not None:
        lo, hi = ci
        s += f"  [{lo * scale:.2f}, {hi * scale:.2f}]"
    return s


def format_evaluation(r: Evaluation) -> str:
    """The table ``firewall-routing evaluate`` prints."""
    m, ci = r.ev.mean, r.ev.ci95
    lines = [
        f"router {r.router} on {r.table} ({r.n} queries; weak {r.weak}, strong {r.strong})",
        f"  all-weak pass rate      {m.weak_pass_rate * 100:.2f} %",
        f"  all-strong pass rate    {m.strong_pass_rate * 100:.2f} %",
        f"  APGR (11-point)         {_with_ci(m.apgr, ci.apgr if ci else None)}"
        + ("   (95 % bootstrap CI)" if ci else ""),
        f"  APGR (exact area)       {m.apgr_area:.2f}",
    ]
    for a, v in m.pass_rate_at.items():
        band = ci.pass_rate_at.get(a) if ci else None
        lines.append(f"  pass rate @ {percent(a)} % strong  {_with_ci(v, band, 100)} %")
    lines.append(
        "  CPT(50 %) / CPT(80 %)   "
        + " / ".join(f"{m.cpt[t] * 100:.1f} %" for t in metrics.CPT_TARGETS)
        + " strong calls"
    )
    for c, qd in m.quality_drop.items():
        lines.append(f"  quality drop @ {percent(c)} % cost advantage  {qd:.2f} %")
    lines.append("  strong calls by outcome (expected shares):")
    lines.append("    strong %  " + "  ".join(f"{v:>11}" for v in TAXONOMY_TITLES.values()))
    for a, tax in r.ev.taxonomy.items():
        lines.append(
            f"    {percent(a):>7}   " + "  ".join(f"{tax[k] * 100:>10.1f}%" for k in TAXONOMY_TITLES)
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- report.md


UNDEFINED = "undefined"
"""Shown for APGR/CPT where the strong model is not better than the weak one (metrics NaN)."""


def _gap_metric(v: float, spec: str = ".2f") -> str:
    return UNDEFINED if math.isnan(v) else format(v, spec)


def _apgr_cell(r: ResultRow) -> str:
    ev = r.ev
    if math.isnan(ev.mean.apgr):
        return UNDEFINED
    s = f"{ev.mean.apgr:.2f}"
    if ev.n_seeds > 1:
        s += f" ± {ev.std.apgr:.2f}"
    if ev.ci95 is not None:
        lo, hi = ev.ci95.apgr
        s += f" [{lo:.1f}, {hi:.1f}]"
    return s


def table1_rows(res: ExperimentResults) -> tuple[str, ...]:
    """TABLE1_ROWS, then every other label design the run trained (issue 25: a table that
    leaves out designs which beat the paper's rows misleads), then any extra baseline, then
    the oracle row."""
    extra = [b for b in res.config.baselines if b not in TABLE1_ROWS]
    designs = [d for d in TABLE3_ROWS if d not in TABLE1_ROWS]
    return (*TABLE1_ROWS[:-1], *designs, *extra, TABLE1_ROWS[-1])


def _winners(res: ExperimentResults, pair: str) -> list[str]:
    """Under a table: per evaluation set, which router won and whether that is significant."""
    comps = {k: c for k, c in res.comparisons.items() if k.startswith(pair + "/")}
    if not comps:
        return ["", "No bootstrap was run (`--bootstrap 0`): no verdict on which router won."]
    return [
        "",
        "Which won (paired bootstrap over queries, 95 %; details under Conclusion):",
        "",
        *(winner_line(k, c) for k, c in comps.items()),
    ]


def _paper_table(res: ExperimentResults, pair: str, rows: Sequence[str]) -> list[str]:
    datasets = res.config.datasets
    head = "| Router | " + " | ".join(f"{d} APGR ↑ | {d} 20 % | {d} 50 % | {d} 80 %" for d in datasets) + " |"
    out = [head, "|---|" + "---:|" * (4 * len(datasets))]
    for name in rows:
        cells = []
        for d in datasets:
            r = res.row(name, pair, d)
            if r is None:
                cells += ["–"] * 4
                continue
            cells.append(_apgr_cell(r))
            cells += [f"{v * 100:.2f}" for v in r.ev.mean.pass_rate_at.values()]
        if any(c != "–" for c in cells):
            out.append(f"| {title(name)} | " + " | ".join(cells) + " |")
    return out


def _seed_note(res: ExperimentResults) -> str:
    """How many routers per design were trained: a deterministic router is trained once,
    whatever ``--seeds`` says."""
    if res.router_seeded:
        return f"{res.router_seeds} seed(s) per label design"
    return "deterministic (trained once per label design; no seeds)"


def _epoch_note(res: ExperimentResults) -> str:
    """Only routers that train in epochs pick the best one on the validation rows (the label
    designs' router; baselines such as ``mf`` are described by their own rows)."""
    baselines = set(res.config.baselines)
    records = [r for name, rs in res.training.items() if name not in baselines for r in rs]
    if any(r.best_epoch is not None for r in records):
        return "; best epoch by validation APGR"
    return ""


def write_markdown(res: ExperimentResults, path: Path, wall_seconds: float) -> None:
    cfg = res.config
    pairs = res.pairs
    lines = [
        "# firewall-routing reproduce report",
        "",
        f"Produced by `firewall-routing reproduce` in {wall_seconds:.1f} s; every number below "
        "is computed from the data by that run (also in `results.json`).",
        "",
        f"* Router: `{cfg.router}`{_router_options(cfg.router_options)}, {_seed_note(res)}; "
        f"trained on `{res.train.source}` ({res.train.rows} train / "
        f"{res.train.val_rows} validation rows, split seed {cfg.split_seed}){_epoch_note(res)}.",
        f"* Main pair: weak `{pairs['main'].weak}`, strong `{pairs['main'].strong}`.",
    ]
    if "gen" in pairs:
        lines.append(
            f"* Generalization pair (Table 2, routers not retrained): weak "
            f"`{pairs['gen'].weak}`, strong `{pairs['gen'].strong}`."
        )
    ci_note = (
        f" [95 % paired bootstrap CI of the seed mean, {cfg.n_boot} resamples over queries]"
        if cfg.n_boot
        else " (no CIs: this run used --bootstrap 0)"
    )
    lines += [
        f"* Cells: APGR (mean ± std over seeds for a router trained with several){ci_note}; pass rates in % at 20/50/80 % of queries "
        "routed to the strong model (seed mean).",
        "",
        answer(res).replace("Answer:", "**Answer:**", 1),
        "",
        "## Conclusion",
        "",
        "Computed by this run from the numbers in the tables below (also in `results.json` "
        "under `comparisons`).",
        "",
        *conclusion_lines(res.comparisons, res.tables),
        "",
        "## Evaluation sets",
        "",
        "| table | queries | all-weak pass rate % | all-strong pass rate % |",
        "|---|---:|---:|---:|",
    ]
    for k, t in res.tables.items():
        lines.append(f"| {k} | {t.n} | {t.weak_pass_rate * 100:.2f} | {t.strong_pass_rate * 100:.2f} |")
    lines += ["", "## Table 1 — main pair (in-distribution GSM8K, OOD HumanEval/MBPP)", ""]
    lines += _paper_table(res, "main", table1_rows(res))
    lines += _winners(res, "main")
    if "gen" in pairs:
        lines += ["", "## Table 2 — generalization pair, same routers", ""]
        lines += _paper_table(res, "gen", table1_rows(res))
        lines += _winners(res, "gen")
    lines += ["", "## Table 3 — label designs, main pair", ""]
    lines += _paper_table(res, "main", (*TABLE3_ROWS, "random", "oracle"))
    lines += _winners(res, "main")
    lines += _hybrid_llm(res)
    lines += _more_metrics(res)
    lines += _taxonomy(res)
    lines += ["", "## Approximations and label parameters", ""]
    any_note = False
    for design, notes in res.label_notes.items():
        for n in notes:
            lines.append(f"* `{design}`: {n}")
            any_note = True
    if not any_note:
        lines.append("* none")
    for design, p in res.label_params.items():
        if p:
            lines.append(f"* `{design}` parameters: " + ", ".join(f"{k} = {v:g}" for k, v in p.items()))
    lines += [
        "",
        "## Training",
        "",
        "| design | best epoch per seed | val APGR per seed | fit seconds per seed |",
        "|---|---|---|---|",
    ]
    for design, runs in res.training.items():
        epochs = ", ".join(str(r.best_epoch) for r in runs if r.best_epoch is not None) or "–"
        vals = ", ".join(f"{r.best_val_apgr:.1f}" for r in runs if r.best_val_apgr is not None) or "–"
        secs = ", ".join(f"{r.seconds:.1f}" for r in runs)
        lines.append(f"| {design} | {epochs} | {vals} | {secs} |")
    if cfg.plots:
        lines += [
            "",
            "## Plots",
            "",
            "* `plots/deferral-<pair>.png`: system pass rate vs. % of calls to the strong model "
            "per dataset, with the all-weak and all-strong levels, random as its expected straight "
            "line, the oracle and every router (seed mean; identical routers drawn once); the "
            "highest-APGR router is thick"
            + (" with its 95 % bootstrap band" if cfg.n_boot else "")
            + ". Bottom row: each curve minus the random line (gain over random, % points).",
            "* `plots/bins-<pair>-<dataset>.png`: Appendix-B view — queries in score order cut "
            "into 10 equal bins; bars are the strong/weak pass rates per bin, the line their "
            "difference (seed mean).",
        ]
    path.write_text("\n".join(lines) + "\n")


def _router_options(router_options: dict[str, Any]) -> str:
    """The options that define a fine-tuned router (``--paper``), shown next to its name."""
    opts = {k: v for k, v in router_options.items() if k != "progress"}
    if not opts:
        return ""
    return " (" + ", ".join(f"{k} = {v}" for k, v in sorted(opts.items())) + ")"


def _identity_notes(res: ExperimentResults) -> list[str]:
    """Which Hybrid LLM label designs coincided with which others on this run's data."""
    out = []
    for design in HYBRID_ROWS:
        for n in res.label_notes.get(design, []):
            if n.startswith("labels identical"):
                out.append(f"* `{design}`: {n}.")
    return out


def _hybrid_llm(res: ExperimentResults) -> list[str]:
    """Hybrid LLM (Ding et al.) as a system: its three labels, its own metric beside APGR."""
    if not any(res.row(d, "main", ds) for d in HYBRID_ROWS for ds in res.config.datasets):
        return []
    lines = [
        "",
        "## Hybrid LLM as a system (Ding et al., ICLR 2024)",
        "",
        "Routers trained on the three Hybrid LLM labels (r_det, r_prob at t = 0, r_trans at the "
        "automatically searched t*), scored with Hybrid LLM's own metric — quality drop (% of "
        "the all-strong pass rate) at a cost advantage c (share of queries sent to the weak "
        "model) — beside APGR. Seed means.",
        "",
        "With 0/1 correctness, as on this data, the Hybrid LLM labels are not new targets: "
        "r_prob(t = 0) = 1 − (1 − pr_w)·pr_s is exactly Soft Blocking (Eq. 7), r_trans equals "
        "it whenever t* = 0, and r_det = 1[g_w ≥ g_s] is exactly the Hard Label (Eq. 1) "
        "(see `labels.py`). The identities found on this run's training labels:",
        "",
    ]
    lines += _identity_notes(res) or ["* none: every Hybrid LLM label differed from the other designs."]
    t_star = res.label_params.get("hybrid-trans", {}).get("t")
    if t_star is not None:
        lines.append(f"* searched t* for r_trans: {t_star:g}.")
    lines += [
        "",
        "| pair | dataset | router | APGR | QD@10 % | QD@20 % | QD@40 % |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for pair in res.pairs:
        for ds in res.config.datasets:
            for name in (*HYBRID_ROWS, "soft-block", "random"):
                r = res.row(name, pair, ds)
                if r is None:
                    continue
                m = r.ev.mean
                qd = [f"{m.quality_drop.get(c, float('nan')):.2f}" for c in metrics.COST_ADVANTAGES]
                lines.append(
                    f"| {pair} | {ds} | {title(name)} | {_gap_metric(m.apgr)} | " + " | ".join(qd) + " |"
                )
    return lines


def _more_metrics(res: ExperimentResults) -> list[str]:
    lines = [
        "",
        "## More metrics, main pair (seed means)",
        "",
        "APGR-area = exact area under the gap-recovered curve; CPT(x) = share of strong calls "
        "needed to recover x of the gap; QD@c = quality drop (% of all-strong pass rate) when "
        "a share c goes to the weak model (Hybrid LLM's cost advantage).",
        "",
        "| dataset | router | APGR | APGR-area | CPT(50 %) | CPT(80 %) | QD@10 % | QD@20 % | QD@40 % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res.results:
        if r.pair != "main":
            continue
        m = r.ev.mean
        qd = [f"{m.quality_drop[c]:.2f}" if c in m.quality_drop else "–" for c in metrics.COST_ADVANTAGES]
        cpt = [f"{_gap_metric(m.cpt[t] * 100, '.1f')} %" for t in metrics.CPT_TARGETS]
        lines.append(
            f"| {r.dataset} | {title(r.router)} | {_gap_metric(m.apgr)} | {_gap_metric(m.apgr_area)} | "
            + " | ".join(cpt)
            + " | "
            + " | ".join(qd)
            + " |"
        )
    return lines


def _taxonomy(res: ExperimentResults) -> list[str]:
    lines = [
        "",
        "## Where the strong calls go (main pair, 50 % routed to strong)",
        "",
        "Expected shares of the strong calls, from pass rates: weak-ok = weak right & strong "
        "wrong; strong-only = only strong right (the call paid off); both-ok = either fine; "
        "both-fail = neither (the calls blocking is meant to save).",
        "",
        "| dataset | router | " + " | ".join(TAXONOMY_TITLES.values()) + " |",
        "|---|---|" + "---:|" * len(TAXONOMY_TITLES),
    ]
    for r in res.results:
        if r.pair != "main":
            continue
        tax = r.ev.taxonomy[0.5]
        lines.append(
            f"| {r.dataset} | {title(r.router)} | "
            + " | ".join(f"{tax[k] * 100:.1f} %" for k in TAXONOMY_TITLES)
            + " |"
        )
    return lines


# --------------------------------------------------------------------------- conclusion


def short(model: str) -> str:
    """``org/name`` → ``name`` (tables and plots need narrow labels)."""
    return model.rsplit("/", 1)[-1]


def conclusion_lines(comps: dict[str, Comparison], tables: dict[str, TableInfo]) -> list[str]:
    """The plain-language verdict of a run, every statement read off its comparisons.

    Why: readers look at overlapping CIs and conclude "no difference" (or at two point
    estimates and conclude "better"); the paired test answers the question they mean.
    """
    if not comps:
        return [
            "No bootstrap was run (`--bootstrap 0`), so nothing here says which routers are "
            "separable from random or from each other; rerun with `--bootstrap 1000`."
        ]
    any_comp = next(iter(comps.values()))
    n_seeds = any_comp.n_seeds
    lines = [
        f"How it is decided: for every evaluation set, a paired bootstrap over queries "
        f"({any_comp.n_boot} resamples, the same resampled query sets for every router) of "
        "the difference in APGR; two routers are *separable at 95 %* when the 95 % interval of "
        "their difference excludes 0. Random's reference is its expected APGR of 50 (the "
        'straight line from all-weak to all-strong), so "better than random" means the '
        "router's own 95 % CI lies above 50. Differences are in APGR points, "
        '"+d [lo, hi]". Routers with identical scores (identical labels) count once '
        '(joined with "="). The oracle is left out (it reads the test outcomes).',
    ]
    if n_seeds > 1:
        lines.append("")
        lines.append(
            f"For a router trained with several seeds (here up to {n_seeds}; a deterministic "
            "router has one) the compared number is the seed-mean APGR (the one in the "
            "tables): each resample re-scores all seeds and averages them. So the test covers "
            "which queries happened to be sampled, given these trained routers, not seed-to-seed "
            "training variance (the ± std in the tables). It does not average the scores over "
            "seeds: that ensemble would be a different router from the one reported."
        )
    lines.append("")
    lines.append(
        "Not corrected for multiple comparisons: of N comparisons without a real difference, "
        'about N/20 come out "separable" by chance.'
    )
    lines += ["", *_overall(comps), "", "**Per evaluation set.**", ""]
    for key, comp in comps.items():
        lines += _set_lines(key, comp, tables[key].n)
    return lines


def _overall(comps: dict[str, Comparison]) -> list[str]:
    """Across all evaluation sets: per router how often it beats random; the blocking claim."""
    wins: dict[str, list[str]] = {}
    for key, comp in comps.items():
        for d in _vs_random(comp):
            wins.setdefault(d.a, [])
            if d.separable and d.diff > 0:
                wins[d.a].append(key)
    n_sets = len(comps)
    lines = ["**In short.**", ""]
    some = [k for k, comp in comps.items() if any(d.separable and d.diff > 0 for d in _vs_random(comp))]
    none = [k for k in comps if k not in some]
    if not some:
        lines.append(f"* No router beats random at 95 % on any of the {n_sets} evaluation sets.")
    else:
        lines.append(
            f"* On {len(some)} of {n_sets} evaluation sets at least one router beats random at 95 %"
            + (f"; on {', '.join(none)} none does." if none else ".")
        )
    never = [name for name, w in wins.items() if not w]
    for name, w in wins.items():
        if w:
            lines.append(f"* {name} beats random at 95 % on {len(w)} of {n_sets} sets ({', '.join(w)}).")
    if never:
        lines.append(f"* Better than random on no set: {', '.join(never)}.")
    block = [
        d
        for comp in comps.values()
        for d in _pairwise(comp)
        if _is_design(d.a) and _is_design(d.b) and _is_blocking(d.a) != _is_blocking(d.b)
    ]
    if block:
        up = sum(d.separable and _is_blocking(d.a) for d in block)
        down = sum(d.separable and not _is_blocking(d.a) for d in block)
        chance = 0.05 * len(block)
        if up + down <= chance:
            verdict = (
                f"no more separations than the ≈ {chance:.1f} chance alone would give, so these "
                "data do not show blocking labels beating the others"
            )
        else:
            verdict = f"more separations than the ≈ {chance:.1f} chance alone would give, mostly in " + (
                "favour of blocking"
                if up > down
                else "favour of the other designs"
                if down > up
                else "both directions"
            )
        lines.append(
            f"* Blocking labels (hard-block, hard-block-greedy, soft-block) vs the other label "
            f"designs, over all sets: separably better in {up}, separably worse in {down}, not "
            f"separable in {len(block) - up - down} of {len(block)} comparisons: {verdict}."
        )
    return lines


GAIN_SHARE = 0.8
"""The one-sentence answer quotes the strong-call share that recovers this share of the gap
(CPT(80 %)): the operating point most deployments ask about."""


def answer(res: ExperimentResults) -> str:
    """The run in one sentence: on the main in-distribution table, which router to use at
    what share of strong calls for 80 % of the all-strong gain, and whether it is
    significant (issue 25: a reader wanted this before the long conclusion)."""
    key = f"main/{res.config.datasets[0]}"
    comp = res.comparisons.get(key)
    if comp is None:
        return f"Answer: this run used --bootstrap 0, so no router is claimed better than random on {key}."
    top = best(comp)
    if top is None:
        return f"Answer: no router to compare on {key}."
    lead = top.split(" = ")[0]
    row = res.row(lead, "main", res.config.datasets[0])
    vs_r = next((d for d in _vs_random(comp) if d.a == top), None)
    cpt = row.ev.mean.cpt.get(GAIN_SHARE, float("nan")) if row is not None else float("nan")
    share = f"{GAIN_SHARE * 100:.0f} %"
    if vs_r is None or not (vs_r.separable and vs_r.diff > 0):
        return (
            f"Answer: on {key} no router beats random at 95 % (highest: {title(lead)}, "
            f"{'' if vs_r is None else signed(vs_r) + ' APGR points over random'}); routing by "
            f"these routers buys nothing over random here ({share} of the gain costs about "
            f"{share} strong calls)."
        )
    tied = [d.b for d in _pairwise(comp) if d.a == top and not d.separable]
    point = "undefined" if math.isnan(cpt) else f"{cpt * 100:.0f} %"
    return (
        f"Answer: on {key}, use {title(lead)} at {point} strong calls: {share} of the all-strong "
        f"gain (random needs {share}); it beats random at 95 % ({signed(vs_r)} APGR points)"
        + (
            f"; not separable from it: {', '.join(tied)}."
            if tied
            else "; every other router is separably below it."
        )
    )


def console_summary(res: ExperimentResults) -> str:
    """What ``reproduce`` prints at the end: the one-sentence answer, the APGR table (seed
    mean, 95 % CI) and where the full conclusion is (report.md only: ~60 lines)."""
    datasets = res.config.datasets
    lines = ["", answer(res)]
    for pair, models in res.pairs.items():
        lines.append(f"\nAPGR, {pair} pair (weak {models.weak}):")
        rows = []
        for name in dict.fromkeys((*TABLE3_ROWS, *table1_rows(res))):
            cells = []
            for d in datasets:
                r = res.row(name, pair, d)
                cells.append("–" if r is None else _apgr_cell(r))
            if any(c != "–" for c in cells):
                rows.append((title(name), cells))
        w = 2 + max([len(d) for d in datasets] + [len(c) for _, cells in rows for c in cells])
        lines.append(f"  {'router':<32}" + "".join(f"{d:>{w}}" for d in datasets))
        lines += [f"  {name:<32}" + "".join(f"{c:>{w}}" for c in cells) for name, cells in rows]
    comps = [winner_line(k, c) for k, c in res.comparisons.items()]
    if comps:
        lines += ["", "Which won, per evaluation set (paired bootstrap, 95 %):"]
        lines += [_plain(x) for x in comps]
    lines += [
        "",
        "The full conclusion (what is separable from what, blocking vs the other designs) is in "
        "report.md, section Conclusion.",
    ]
    return "\n".join(lines)


def _plain(line: str) -> str:
    """Markdown emphasis and backticks off, for the terminal."""
    return line.replace("**", "").replace("`", "")


# --------------------------------------------------------------------------- plots

DATASET_TITLES = {"gsm8k": "GSM8K", "humaneval": "HumanEval", "mbpp": "MBPP"}


def _label(ln: RouterLine) -> str:
    """A line's legend entry: the router's title, identical routers named after it."""
    return title(ln.name) + (f" (= {', '.join(ln.group[1:])})" if len(ln.group) > 1 else "")


def _pair_title(t: OutcomeTable, pair: str) -> str:
    return f"weak {short(t.weak.name)} → strong {short(t.strong.name)} ({pair} pair)"


def _dataset(key: str) -> str:
    ds = key.split("/", 1)[1]
    return DATASET_TITLES.get(ds, ds)


def write_plots(
    runs: list[RouterRun], tables: dict[str, OutcomeTable], out: Path, n_boot: int = 1000, seed: int = 0
) -> list[Path]:
    """``plots/deferral-<pair>.png`` and ``plots/bins-<pair>-<dataset>.png``; returns the paths.

    ``n_boot`` sets the resamples of the best router's CI band (0: no band).
    """
    plt = _pyplot()
    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    written = []
    for pair in dict.fromkeys(k.split("/")[0] for k in tables):
        keys = [k for k in tables if k.startswith(pair + "/")]
        figures = [(f"deferral-{pair}.png", deferral_figure(runs, tables, keys, n_boot, seed), 110)]
        figures += [(f"bins-{k.replace('/', '-')}.png", bin_figure(runs, tables[k], k), 100) for k in keys]
        for name, fig, dpi in figures:
            fig.savefig(pdir / name, dpi=dpi)
            plt.close(fig)
            written.append(pdir / name)
    return written


def _pyplot() -> Any:
    """matplotlib on the file-only backend, imported on first use (keeps the CLI fast)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def featured(routers: Sequence[RouterLine]) -> list[RouterLine]:
    """The curves that answer the question, at most three: the highest-APGR router, the best
    of the other side of the paper's claim (the best blocking design if the winner is not
    one, else the best other design) and RouteLLM's MF when the run has it."""
    if not routers:
        return []
    best = max(routers, key=lambda ln: ln.apgr)
    other = [ln for ln in routers if ln is not best and _is_design(ln.name)]
    other = [ln for ln in other if _is_blocking(ln.name) != _is_blocking(best.name)]
    out = [best]
    if other:
        out.append(max(other, key=lambda ln: ln.apgr))
    out += [ln for ln in routers if ln.name == "mf" and ln not in out]
    return out


def deferral_figure(
    runs: list[RouterRun], tables: dict[str, OutcomeTable], keys: list[str], n_boot: int, seed: int = 0
) -> Any:
    """Top row: pass rate vs strong share; middle row: the same minus the random line, both
    for the few curves that matter (:func:`featured`); bottom row: every router's gain over
    random, thin (nine curves bunched together in the top row hid the answer; issue 25).

    Each router keeps one colour in every panel; the best router of a panel (highest
    seed-mean APGR, oracle aside) is drawn thick with its 95 % band in its own colour.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        3,
        len(keys),
        figsize=(5.2 * len(keys), 10.4),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 2, 2]},
    )
    from matplotlib.lines import Line2D

    cmap = plt.get_cmap("tab10")
    palette = [cmap(i) for i in range(10) if i != 7]  # grey is for the reference lines
    colour: dict[str, Any] = {}
    handles: dict[str, Any] = {}
    n_seeds = max(len(r.scores[keys[0]]) for r in runs)
    for col, key in enumerate(keys):
        t = tables[key]
        top, bottom, rest = axes[0][col], axes[1][col], axes[2][col]
        lines = [ln for ln in router_lines(runs, t, key) if ln.name != "random"]
        p_w, p_s = float(t.weak.pass_rate.mean()), float(t.strong.pass_rate.mean())
        x = GRID * 100
        random_line = p_w + GRID * (p_s - p_w)
        handles["strong"] = top.axhline(p_s * 100, color="0.4", lw=1.0, ls="-.", label="all-strong")
        handles["weak"] = top.axhline(p_w * 100, color="0.4", lw=1.0, ls=(0, (1, 2)), label="all-weak")
        # Curves start at all-weak (left) and end at all-strong (right): label the other ends.
        for level, name, at, ha in ((p_s, "all-strong", 0, "left"), (p_w, "all-weak", 100, "right")):
            top.annotate(
                f"{name} {level * 100:.1f} %",
                (at, level * 100),
                xytext=(3 if ha == "left" else -3, 3),
                textcoords="offset points",
                ha=ha,
                va="bottom",
                fontsize=7,
                color="0.3",
            )
        handles["random"] = top.plot(x, random_line * 100, "k--", lw=1.1, label="Random (expected)")[0]
        bottom.axhline(0, color="k", ls="--", lw=1.1)
        rest.axhline(0, color="k", ls="--", lw=1.1)
        routers = [ln for ln in lines if ln.name != "oracle"]
        best = max(routers, key=lambda ln: ln.apgr) if routers else None
        shown = featured(routers)
        gains, all_gains = [], []
        for ln in routers:
            c = colour.setdefault(_label(ln), palette[len(colour) % len(palette)])
            lw = 2.4 if ln is best else 1.0
            handles.setdefault(_label(ln), Line2D([], [], color=c, lw=1.5, label=_label(ln)))
            gain = (ln.curve - random_line) * 100
            all_gains.append(gain)
            rest.plot(x, gain, color=c, lw=1.8 if ln is best else 0.9)
            if ln in shown:
                top.plot(x, ln.curve * 100, color=c, lw=lw)
                gains.append(gain)
                bottom.plot(x, gain, color=c, lw=lw)
        if best is not None and n_boot:
            lo, hi, glo, ghi = curve_band(best.score_sets, t.weak.pass_rate, t.strong.pass_rate, n_boot, seed)
            c = colour[_label(best)]
            top.fill_between(x, lo * 100, hi * 100, color=c, alpha=0.2, lw=0)
            bottom.fill_between(x, glo * 100, ghi * 100, color=c, alpha=0.2, lw=0)
            gains += [glo * 100, ghi * 100]
        if best is not None:
            band = ", shaded: its 95 % CI" if n_boot else ""
            bottom.set_title(
                f"thick: highest APGR here, {best.name} ({best.apgr:.1f}){band}",
                fontsize=8,
                color=colour[_label(best)],
            )
        for ln in lines:
            if ln.name == "oracle":
                handles["oracle"] = top.plot(x, ln.curve * 100, "k:", lw=1.2, label=title("oracle"))[0]
        for ax, gs in ((bottom, gains), (rest, all_gains)):
            if gs:
                g = np.concatenate(gs)
                pad = max(0.5, 0.08 * float(np.ptp(g)))
                ax.set_ylim(min(float(g.min()), 0.0) - pad, max(float(g.max()), 0.0) + pad)
        top.set_title(f"{_dataset(key)} (n = {len(t)})")
        top.set_ylabel("system pass rate (%)")
        bottom.set_ylabel("gain over random (% points)")
        rest.set_ylabel("every router: gain (% points)")
        rest.set_title(f"all {len(routers)} routers (the rows above: {len(shown)} of them)", fontsize=8)
        rest.set_xlabel("calls to the strong model (% of queries)")
        rest.set_xlim(0, 100)
        for ax in (top, bottom, rest):
            ax.grid(alpha=0.3)
    t0 = tables[keys[0]]
    seeds = f"curves: seed mean (up to {n_seeds} seeds); " if n_seeds > 1 else ""
    fig.suptitle(
        f"Deferral curves, {_pair_title(t0, keys[0].split('/')[0])}\n"
        f"{seeds}top two rows: the winner (thick), the best design of the other label family "
        "(blocking / not), MF\nbottom row: every router minus the random line (oracle omitted)",
        fontsize=11,
    )
    order = ["strong", "weak", "random", "oracle"]
    names = [k for k in order if k in handles] + [k for k in handles if k not in order]
    fig.legend(
        [handles[k] for k in names],
        [handles[k].get_label() for k in names],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    rows = int(np.ceil(len(names) / 4))
    fig.tight_layout(rect=(0, 0.03 * rows, 1, 1))
    return fig


def _columns(n: int) -> int:
    """3 or 4 panels a row, whichever leaves fewer empty cells (4 on a tie); fewer if n < 3."""
    if n <= 3:
        return max(n, 1)
    return min((4, 3), key=lambda c: -n % c)


def bin_figure(runs: list[RouterRun], t: OutcomeTable, key: str) -> Any:
    """Appendix-B view: per router, pass rates of both models in each of 10 score bins.

    One panel per router (identical routers merged, random left out: its bins are flat at
    the whole-set pass rates, drawn as dashed lines in every panel), a shared y axis so
    panels compare at a glance, one legend for the figure."""
    lines = [ln for ln in router_lines(runs, t, key) if ln.name != "random"] or router_lines(runs, t, key)
    n_seeds = max(len(ln.score_sets) for ln in lines)
    plt = _pyplot()
    cols = _columns(len(lines))
    rows = int(np.ceil(len(lines) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.9 * cols, 2.9 * rows + 1.2), squeeze=False, sharex=True, sharey=True
    )
    p_w, p_s = float(t.weak.pass_rate.mean()) * 100, float(t.strong.pass_rate.mean()) * 100
    lows, highs = [0.0], [max(p_w, p_s)]
    handles: dict[str, Any] = {}
    for ax, ln in zip(axes.flat, lines, strict=False):
        strong, weak = (v * 100 for v in bin_pass_rates(ln.score_sets, t))
        x = np.arange(1, len(strong) + 1)
        handles["strong"] = ax.bar(x - 0.2, strong, 0.4, color="tab:blue", label="strong model pass rate")
        handles["weak"] = ax.bar(x + 0.2, weak, 0.4, color="tab:orange", label="weak model pass rate")
        handles["gain"] = ax.plot(x, strong - weak, "k.-", lw=1, label="gain = strong − weak")[0]
        handles["all-strong"] = ax.axhline(
            p_s, color="tab:blue", ls="--", lw=0.8, label="all-strong (whole set)"
        )
        handles["all-weak"] = ax.axhline(
            p_w, color="tab:orange", ls="--", lw=0.8, label="all-weak (whole set)"
        )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(_label(ln), fontsize=8)
        ax.set_xticks(x)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        lows.append(float((strong - weak).min()))
        highs.append(float(max(strong.max(), weak.max())))
    for ax in list(axes.flat)[len(lines) :]:
        ax.axis("off")
    lo = 10 * np.floor(min(lows) / 10) - 5 if min(lows) < 0 else -5
    axes[0][0].set_ylim(lo, min(105.0, 10 * np.ceil(max(highs) / 10) + 5))
    for r in range(rows):
        axes[r][0].set_ylabel("pass rate (%)")
    for ax in axes[-1]:
        ax.set_xlabel("router-score bin (1 = lowest)")
    for c in range(cols):  # last filled panel of each column gets the x label when rows are ragged
        filled = [r for r in range(rows) if r * cols + c < len(lines)]
        if filled and filled[-1] != rows - 1:
            axes[filled[-1]][c].set_xlabel("router-score bin (1 = lowest)")
            axes[filled[-1]][c].xaxis.set_tick_params(labelbottom=True)
    seeds = f", seed mean (up to {n_seeds} seeds)" if n_seeds > 1 else ""
    fig.suptitle(
        f"{_dataset(key)}, {_pair_title(t, key.split('/')[0])}\n"
        f"queries in router-score order cut into 10 equal bins (bin 1 is sent to the strong model first){seeds}",
        fontsize=10,
    )
    fig.legend(
        list(handles.values()),
        [h.get_label() for h in handles.values()],
        loc="lower center",
        ncol=5,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def format_models_evaluation(res: dict[str, Any]) -> str:
    """The N-model table of ``evaluate`` (``evaluation.evaluate_models`` plus ``costs``)."""

    def pct(x: float | None) -> str:
        return "never" if x is None or not math.isfinite(x) else f"{x:.4g}"

    best = res["models"][res["best"]]
    lines = [
        f"{res['rows']} queries, {len(res['models'])} models; costs: {res['costs']}",
        f"best single model {res['best']}: quality {best['quality']:.4f} at cost {best['cost']:.4g}; "
        f"cheapest {res['cheapest']}",
        f"oracle (cheapest correct model): quality {res['oracle']['quality']:.4f} at cost {res['oracle']['cost']:.4g}; "
        f"random model per query: {res['random']['quality']:.4f} at {res['random']['cost']:.4g}",
        "hull of single models: cost at 95/99/100 % of the best = "
        + " / ".join(pct(res["hull_cost_at"][k]) for k in ("0.95", "0.99", "1")),
        f"policy (blocking below {res['hopeless']:g})  area over hull  gain at best cost  cost at 95/99/100 %",
    ]
    for name, row in res["policies"].items():
        area = "n/a" if row["area"] is None else f"{row['area']:+.4f}"
        if "area_ci95" in row and row["area"] is not None:
            area += f" [{row['area_ci95'][0]:+.4f}, {row['area_ci95'][1]:+.4f}]"
        lines.append(
            f"  {name:10s} {area:30s} {row['gain']:+.4f}   "
            + " / ".join(pct(row["cost_at"][k]) for k in ("0.95", "0.99", "1"))
        )
    return "\n".join(lines)
