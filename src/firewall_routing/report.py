"""Turning metrics into what people read: tables, report.md, PNG plots.

Formatting only — every number comes from ``metrics`` via the caller; nothing here computes
a result that is not also in results.json.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from firewall_routing import metrics
from firewall_routing.labels import DESIGN_TITLES
from firewall_routing.outcomes import OutcomeTable

if TYPE_CHECKING:
    from firewall_routing.experiment import RouterRun
    from firewall_routing.routers import Router

TITLES: dict[str, str] = {
    "random": "Linear Interpolation (random)",
    "oracle": "Oracle (upper bound)",
    "mf": "RouteLLM MF (MiniLM emb.)",
    "margin": "Margin Sampling",
}
TITLES |= DESIGN_TITLES

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


def evaluate_router(router: Router, table: OutcomeTable, n_boot: int = 1000) -> dict[str, Any]:
    """All metrics of one router on one table, as a JSON-ready dict."""
    scores = router.score_table(table)
    pr_w, pr_s = table.weak.pass_rate, table.strong.pass_rate
    summary = metrics.summarize(scores, pr_w, pr_s).as_dict()
    ci: dict[str, tuple[float, float]] = {}
    if n_boot:
        boot = metrics.bootstrap_metrics([scores], pr_w, pr_s, metrics.bootstrap_draws(len(table), n_boot))
        ci = {k: metrics.ci95(v) for k, v in boot.items()}
    return {
        "router": router.name,
        "table": table.source,
        "n": len(table),
        "weak": table.weak.name,
        "strong": table.strong.name,
        "metrics": summary,
        "ci95": ci,
        "taxonomy": {
            str(int(a * 100)): metrics.taxonomy(scores, pr_w, pr_s, a) for a in metrics.PASS_RATE_FRACTIONS
        },
    }


def format_evaluation(r: dict[str, Any]) -> str:
    m, ci = r["metrics"], r["ci95"]

    def with_ci(key: str, scale: float = 1.0) -> str:
        s = f"{m[key] * scale:.2f}"
        if key in ci:
            lo, hi = ci[key]
            s += f"  [{lo * scale:.2f}, {hi * scale:.2f}]"
        return s

    lines = [
        f"router {r['router']} on {r['table']} ({r['n']} queries; weak {r['weak']}, strong {r['strong']})",
        f"  all-weak pass rate      {m['weak_pass_rate'] * 100:.2f} %",
        f"  all-strong pass rate    {m['strong_pass_rate'] * 100:.2f} %",
        f"  APGR (11-point)         {with_ci('apgr')}" + ("   (95 % bootstrap CI)" if ci else ""),
        f"  APGR (exact area)       {m['apgr_area']:.2f}",
    ]
    for a in (20, 50, 80):
        lines.append(f"  pass rate @ {a} % strong  {with_ci(f'pass_rate@{a}', 100)} %")
    lines.append(
        f"  CPT(50 %) / CPT(80 %)   {m['cpt50'] * 100:.1f} % / {m['cpt80'] * 100:.1f} % strong calls"
    )
    for c in (10, 20, 40):
        k = f"quality_drop@cost_adv{c}"
        if k in m:
            lines.append(f"  quality drop @ {c} % cost advantage  {m[k]:.2f} %")
    lines.append("  strong calls by outcome (expected shares):")
    lines.append("    strong %  " + "  ".join(f"{v:>11}" for v in TAXONOMY_TITLES.values()))
    for a, tax in r["taxonomy"].items():
        lines.append(f"    {a:>7}   " + "  ".join(f"{tax[k] * 100:>10.1f}%" for k in TAXONOMY_TITLES))
    return "\n".join(lines)


# --------------------------------------------------------------------------- report.md


def _row(results: list[dict[str, Any]], router: str, pair: str, dataset: str) -> dict[str, Any] | None:
    for r in results:
        if (r["router"], r["pair"], r["dataset"]) == (router, pair, dataset):
            return r
    return None


UNDEFINED = "undefined"
"""Shown for APGR/CPT where the strong model is not better than the weak one (metrics NaN)."""


def _gap_metric(v: float, spec: str = ".2f") -> str:
    return UNDEFINED if math.isnan(v) else format(v, spec)


def _apgr_cell(r: dict[str, Any]) -> str:
    if math.isnan(r["mean"]["apgr"]):
        return UNDEFINED
    s = f"{r['mean']['apgr']:.2f}"
    if r["n_seeds"] > 1:
        s += f" ± {r['std']['apgr']:.2f}"
    if "apgr" in r["ci95"]:
        lo, hi = r["ci95"]["apgr"]
        s += f" [{lo:.1f}, {hi:.1f}]"
    return s


def table1_rows(res: dict[str, Any]) -> tuple[str, ...]:
    """TABLE1_ROWS plus any extra baseline router the run had, before the oracle row."""
    extra = [b for b in res["config"].get("baselines", []) if b not in TABLE1_ROWS]
    return (*TABLE1_ROWS[:-1], *extra, TABLE1_ROWS[-1])


def _paper_table(res: dict[str, Any], pair: str, rows: Sequence[str]) -> list[str]:
    datasets = res["config"]["datasets"]
    head = "| Router | " + " | ".join(f"{d} APGR ↑ | {d} 20 % | {d} 50 % | {d} 80 %" for d in datasets) + " |"
    out = [head, "|---|" + "---:|" * (4 * len(datasets))]
    for name in rows:
        cells = []
        for d in datasets:
            r = _row(res["results"], name, pair, d)
            if r is None:
                cells += ["–"] * 4
                continue
            cells.append(_apgr_cell(r))
            cells += [f"{r['mean'][f'pass_rate@{a}'] * 100:.2f}" for a in (20, 50, 80)]
        if any(c != "–" for c in cells):
            out.append(f"| {title(name)} | " + " | ".join(cells) + " |")
    return out


def write_markdown(res: dict[str, Any], path: Path, wall_seconds: float) -> None:
    cfg = res["config"]
    pairs = res["pairs"]
    lines = [
        "# firewall-routing reproduce report",
        "",
        f"Produced by `firewall-routing reproduce` in {wall_seconds:.1f} s; every number below "
        "is computed from the data by that run (also in `results.json`).",
        "",
        f"* Router: `{cfg['router']}`{_router_options(cfg)}, {cfg['seeds']} seed(s) per label design; "
        f"trained on `{res['train']['source']}` ({res['train']['rows']} train / "
        f"{res['train']['val_rows']} validation rows, split seed {cfg['split_seed']}); best epoch "
        "by validation APGR.",
        f"* Main pair: weak `{pairs['main']['weak']}`, strong `{pairs['main']['strong']}`.",
    ]
    if "gen" in pairs:
        lines.append(
            f"* Generalization pair (Table 2, routers not retrained): weak "
            f"`{pairs['gen']['weak']}`, strong `{pairs['gen']['strong']}`."
        )
    lines += [
        "* Cells: APGR mean ± std over seeds [95 % paired bootstrap CI of the seed mean, "
        f"{cfg['n_boot']} resamples over queries]; pass rates in % at 20/50/80 % of queries "
        "routed to the strong model (seed mean).",
        "",
        "## Evaluation sets",
        "",
        "| table | queries | all-weak pass rate % | all-strong pass rate % |",
        "|---|---:|---:|---:|",
    ]
    for k, t in res["tables"].items():
        lines.append(
            f"| {k} | {t['n']} | {t['weak_pass_rate'] * 100:.2f} | {t['strong_pass_rate'] * 100:.2f} |"
        )
    lines += ["", "## Table 1 — main pair (in-distribution GSM8K, OOD HumanEval/MBPP)", ""]
    lines += _paper_table(res, "main", table1_rows(res))
    if "gen" in pairs:
        lines += ["", "## Table 2 — generalization pair, same routers", ""]
        lines += _paper_table(res, "gen", table1_rows(res))
    lines += ["", "## Table 3 — label designs, main pair", ""]
    lines += _paper_table(res, "main", (*TABLE3_ROWS, "random", "oracle"))
    lines += _hybrid_llm(res)
    lines += _more_metrics(res)
    lines += _taxonomy(res)
    lines += ["", "## Approximations and label parameters", ""]
    any_note = False
    for design, notes in res["label_notes"].items():
        for n in notes:
            lines.append(f"* `{design}`: {n}")
            any_note = True
    if not any_note:
        lines.append("* none")
    for design, p in res["label_params"].items():
        if p:
            lines.append(f"* `{design}` parameters: " + ", ".join(f"{k} = {v:g}" for k, v in p.items()))
    lines += ["", "## Training", "", "| design | best epoch per seed | val APGR per seed |", "|---|---|---|"]
    for design, runs in res["training"].items():
        lines.append(
            f"| {design} | {', '.join(str(r['best_epoch']) for r in runs)} | "
            + ", ".join(f"{r['best_val_apgr']:.1f}" for r in runs if r["best_val_apgr"] is not None)
            + " |"
        )
    if cfg.get("plots", True):
        lines += [
            "",
            "## Plots",
            "",
            "* `plots/deferral-<pair>.png`: pass rate vs. share routed to strong, every router (seed mean).",
            "* `plots/bins-<pair>-<dataset>.png`: Appendix-B view — queries in score order cut "
            "into 10 equal bins; bars are the strong/weak pass rates per bin (seed 0).",
        ]
    path.write_text("\n".join(lines) + "\n")


def _router_options(cfg: dict[str, Any]) -> str:
    """The options that define a fine-tuned router (``--paper``), shown next to its name."""
    opts = {k: v for k, v in cfg.get("router_options", {}).items() if k != "progress"}
    if not opts:
        return ""
    return " (" + ", ".join(f"{k} = {v}" for k, v in sorted(opts.items())) + ")"


def _identity_notes(res: dict[str, Any]) -> list[str]:
    """Which Hybrid LLM label designs coincided with which others on this run's data."""
    out = []
    for design in HYBRID_ROWS:
        for n in res["label_notes"].get(design, []):
            if n.startswith("labels identical"):
                out.append(f"* `{design}`: {n}.")
    return out


def _hybrid_llm(res: dict[str, Any]) -> list[str]:
    """Hybrid LLM (Ding et al.) as a system: its three labels, its own metric beside APGR."""
    if not any(_row(res["results"], d, "main", ds) for d in HYBRID_ROWS for ds in res["config"]["datasets"]):
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
    t_star = res["label_params"].get("hybrid-trans", {}).get("t")
    if t_star is not None:
        lines.append(f"* searched t* for r_trans: {t_star:g}.")
    lines += [
        "",
        "| pair | dataset | router | APGR | QD@10 % | QD@20 % | QD@40 % |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for pair in res["pairs"]:
        for ds in res["config"]["datasets"]:
            for name in (*HYBRID_ROWS, "soft-block", "random"):
                r = _row(res["results"], name, pair, ds)
                if r is None:
                    continue
                m = r["mean"]
                qd = [f"{m.get(f'quality_drop@cost_adv{c}', float('nan')):.2f}" for c in (10, 20, 40)]
                lines.append(
                    f"| {pair} | {ds} | {title(name)} | {_gap_metric(m['apgr'])} | " + " | ".join(qd) + " |"
                )
    return lines


def _more_metrics(res: dict[str, Any]) -> list[str]:
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
    for r in res["results"]:
        if r["pair"] != "main":
            continue
        m = r["mean"]
        qd = [
            f"{m[f'quality_drop@cost_adv{c}']:.2f}" if f"quality_drop@cost_adv{c}" in m else "–"
            for c in (10, 20, 40)
        ]
        lines.append(
            f"| {r['dataset']} | {title(r['router'])} | {_gap_metric(m['apgr'])} | {_gap_metric(m['apgr_area'])} | "
            f"{_gap_metric(m['cpt50'] * 100, '.1f')} % | {_gap_metric(m['cpt80'] * 100, '.1f')} % | "
            + " | ".join(qd)
            + " |"
        )
    return lines


def _taxonomy(res: dict[str, Any]) -> list[str]:
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
    for r in res["results"]:
        if r["pair"] != "main":
            continue
        tax = r["taxonomy"]["50"]
        lines.append(
            f"| {r['dataset']} | {title(r['router'])} | "
            + " | ".join(f"{tax[k] * 100:.1f} %" for k in TAXONOMY_TITLES)
            + " |"
        )
    return lines


def console_summary(res: dict[str, Any]) -> str:
    """The APGR table printed at the end of ``reproduce`` (seed mean, 95 % CI)."""
    datasets = res["config"]["datasets"]
    lines = []
    for pair in res["pairs"]:
        lines.append(f"\nAPGR, {pair} pair (weak {res['pairs'][pair]['weak']}):")
        lines.append(f"  {'router':<32}" + "".join(f"{d:>24}" for d in datasets))
        for name in dict.fromkeys((*TABLE3_ROWS, *table1_rows(res))):
            cells = []
            for d in datasets:
                r = _row(res["results"], name, pair, d)
                cells.append("–" if r is None else _apgr_cell(r))
            if any(c != "–" for c in cells):
                lines.append(f"  {title(name):<32}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def write_plots(runs: list[RouterRun], tables: dict[str, OutcomeTable], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    pairs = sorted({k.split("/")[0] for k in tables})
    grid = np.linspace(0, 1, 101)
    for pair in pairs:
        keys = [k for k in tables if k.startswith(pair + "/")]
        fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.6), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            t = tables[key]
            for run in runs:
                ys = [
                    metrics.deferral_curve(s, t.weak.pass_rate, t.strong.pass_rate).at(grid)
                    for s in run.scores[key]
                ]
                style = {"random": "k--", "oracle": "k:"}.get(run.name, "-")
                ax.plot(grid * 100, np.mean(ys, axis=0) * 100, style, lw=1.2, label=title(run.name))
            ax.set_title(f"{key} (n={len(t)})")
            ax.set_xlabel("% of queries routed to strong")
            ax.set_ylabel("system pass rate %")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(pdir / f"deferral-{pair}.png", dpi=110)
        plt.close(fig)
        for key in keys:
            _bin_plot(plt, runs, tables[key], key, pdir / f"bins-{key.replace('/', '-')}.png")


def _bin_plot(plt: Any, runs: list[RouterRun], t: OutcomeTable, key: str, path: Path) -> None:
    cols = 4
    rows = int(np.ceil(len(runs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, run in zip(axes.flat, runs, strict=False):
        bins = metrics.score_bins(run.scores[key][0], t.weak.pass_rate, t.strong.pass_rate)
        x = np.arange(len(bins))
        ax.bar(x - 0.2, [b.strong_pass_rate * 100 for b in bins], 0.4, label="strong")
        ax.bar(x + 0.2, [b.weak_pass_rate * 100 for b in bins], 0.4, label="weak")
        ax.plot(x, [(b.strong_pass_rate - b.weak_pass_rate) * 100 for b in bins], "k.-", lw=1, label="gain")
        ax.set_title(title(run.name), fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels([str(i + 1) for i in x], fontsize=7)
        ax.set_ylim(-40, 100)
    for ax in list(axes.flat)[len(runs) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{key}: pass rate per router-score bin (bin 1 = lowest score = first to strong)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
