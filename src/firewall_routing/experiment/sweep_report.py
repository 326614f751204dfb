"""Tables and the forest plot of a ``sweep`` run, all read from its results.json payload.

Kept apart from :mod:`firewall_routing.experiment.sweep` so the numbers (computed there) and their
presentation (here) can change independently; matplotlib is imported only to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firewall_routing.experiment.config import CEILING_PREFIX, CEILING_PW, ORACLE, PLOT_ROUTERS, RANDOM

OPPONENTS: tuple[str, ...] = (RANDOM, "mf", "knn", "weak-pass-rate", "soft-block")
"""Columns of the console's win table: the baselines the issue asks about, and soft-block."""


def _f(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:.1e}" if x < 0.001 else f"{x:.3f}"


def _cell(r: dict[str, Any], ci: bool = True) -> str:
    s = _f(r["apgr"])
    if ci and r.get("ci95"):
        lo, hi = r["ci95"]
        s += f" [{_f(lo)}, {_f(hi)}]"
    return s


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _plain(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Fixed-width text table for the console."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(r: Sequence[str]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(cells))

    return [line(header), *(line(r) for r in rows)]


def _all_names(res: dict[str, Any]) -> list[str]:
    """Every router row (contenders, then ceilings) in the order the sweep produced them."""
    names: dict[str, None] = {}
    for p in res["pairs"]:
        for d in p["datasets"].values():
            names |= dict.fromkeys(d.get("routers", {}))
    return list(names)


def _key_routers(res: dict[str, Any]) -> list[str]:
    names = _all_names(res)
    return [n for n in (*PLOT_ROUTERS, CEILING_PW, ORACLE) if n in names]


def per_pair_rows(res: dict[str, Any], ds: str, routers: Sequence[str], ci: bool) -> list[list[str]]:
    rows = []
    for p in res["pairs"]:
        d = p["datasets"][ds]
        if "excluded" in d:
            cells = [f"excluded (test gap {d['gap']:+.3f})"] + [""] * (len(routers) - 1)
        else:
            cells = [_cell(d["routers"][n], ci) for n in routers]
        rows.append([p["label"], _f(p["train_gap"], 3), _f(d["gap"], 3), *cells])
    return rows


def mean_rows(res: dict[str, Any], names: Sequence[str]) -> list[list[str]]:
    rows = []
    for n in names:
        cells = [_title(res, n)]
        for ds in res["config"]["datasets"]:
            m = res["summary"][ds]["mean"].get(n)
            if m is None:
                cells.append("—")
                continue
            c = _f(m["apgr"])
            if "of_ceiling" in m:
                c += f" ({_f(m['of_ceiling'], 2)} / {_f(m['of_pw_ceiling'], 2)})"
            cells.append(c)
        rows.append(cells)
    return rows


def _win_cell(w: dict[str, Any]) -> str:
    return (
        f"{w['wins']}-{w['losses']}-{w['ties']} ({w['significant_wins']}*/{w['significant_losses']}*) "
        f"{_p(w['sign_test_p'])}/{_p(w['wilcoxon_p'])}"
    )


def _shown(res: dict[str, Any], names: Sequence[str]) -> list[str]:
    """Names without the aliases (designs identical to another in every pair) and their ceilings."""
    hidden = set(res.get("aliases", {}))
    return [n for n in names if n not in hidden and n.removeprefix(CEILING_PREFIX) not in hidden]


def _title(res: dict[str, Any], name: str) -> str:
    """``soft-block (= win-rate, hybrid-prob)`` when other designs are the same router."""
    same = [a for a, f in res.get("aliases", {}).items() if f == name]
    return f"{name} (= {', '.join(same)})" if same else name


def win_rows(res: dict[str, Any], ds: str, opponents: Sequence[str]) -> list[list[str]]:
    wins = res["summary"][ds]["wins"]
    return [
        [_title(res, a), *(_win_cell(wins[a][b]) if b in wins.get(a, {}) else "" for b in opponents)]
        for a in _shown(res, res["contenders"])
    ]


def _dataset_headers(res: dict[str, Any]) -> list[str]:
    return [f"{ds} ({res['summary'][ds]['n_pairs']} pairs)" for ds in res["config"]["datasets"]]


def _opponents(res: dict[str, Any]) -> list[str]:
    return [o for o in OPPONENTS if o in res["contenders"]]


WIN_LEGEND = (
    "cell = wins-losses-ties over pairs (pairs where the paired 95 % CI of the difference "
    "excludes 0: *wins / *losses) sign-test p / Wilcoxon p"
)
MEAN_LEGEND = (
    "mean APGR over pairs (fraction of own ceiling / of the true-weak-pass-rate ceiling, "
    "(APGR − 50)/(ceiling − 50) on the pair means)"
)


def console(res: dict[str, Any]) -> str:
    """What the command prints: the in-distribution per-pair table, means, wins, p-values."""
    datasets = res["config"]["datasets"]
    ds0 = datasets[0]
    key = _key_routers(res)
    lines = ["", f"APGR per pair on {ds0} (test), {res['n_pairs']} pairs (gaps: train, test):"]
    lines += _plain(["pair", "gap", "test", *key], per_pair_rows(res, ds0, key, ci=False))
    lines += ["", MEAN_LEGEND + ":"]
    lines += _plain(["router", *_dataset_headers(res)], mean_rows(res, _shown(res, _all_names(res))))
    opp = _opponents(res)
    for ds in datasets:
        if not res["summary"][ds]["n_pairs"]:
            continue
        lines += ["", f"{ds} ({res['summary'][ds]['n_pairs']} pairs): row vs column, {WIN_LEGEND}:"]
        lines += _plain(["router", *(f"vs {o}" for o in opp)], win_rows(res, ds, opp))
    return "\n".join(lines)


def markdown(res: dict[str, Any]) -> str:
    cfg = res["config"]
    datasets = cfg["datasets"]
    lines = [
        "# Sweep over RouterDC model pairs",
        "",
        f"Produced by `firewall-routing sweep` ({res['n_pairs']} ordered pairs with GSM8K-train gap ≥ "
        f"{cfg['min_gap']}; router `{cfg['router']}`, {cfg['seeds']} seed(s), {cfg['n_boot']} bootstrap "
        f"draws, wall time {res['wall_seconds']} s). Routers are trained on RouterDC GSM8K train "
        "(seeded 90/10 split) and evaluated on GSM8K test and, out of distribution, HumanEval and MBPP.",
        "",
        *(f"- {n}" for n in res["notes"]),
        "",
        "## Mean over pairs",
        "",
        MEAN_LEGEND + ".",
        "",
        *_table(["router", *_dataset_headers(res)], mean_rows(res, _shown(res, _all_names(res)))),
    ]
    for ds in datasets:
        excl = res["summary"][ds]["excluded"]
        n_ds = res["summary"][ds]["n_pairs"]
        lines += ["", f"## Wins on {ds} ({n_ds} pairs)", "", f"Row vs column; {WIN_LEGEND}."]
        if excl:
            lines += ["", f"Excluded (test gap below {cfg['min_test_gap']}): {', '.join(excl)}."]
        lines += [""]
        opp = _shown(res, res["contenders"])
        lines += _table(["router", *(f"vs {o}" for o in opp)], win_rows(res, ds, opp))
    names = _shown(res, _all_names(res))
    for ds in datasets:
        lines += ["", f"## APGR per pair on {ds} [95 % bootstrap CI]", ""]
        lines += _table(["pair", "train gap", "test gap", *names], per_pair_rows(res, ds, names, ci=True))
    ident = sorted({f"{d}: {n}" for p in res["pairs"] for d, n in p["identical_labels"].items()})
    if ident:
        lines += ["", "## Identical labels (trained once)", "", *(f"- {x}" for x in ident[:20])]
    return "\n".join(lines) + "\n"


def write_plot(res: dict[str, Any], path: Path, routers: Sequence[str] = PLOT_ROUTERS) -> None:
    """Forest plot: APGR per pair with its 95 % CI, one panel per dataset, the random line at 50
    and the true-weak-pass-rate ceiling as a cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = res["config"]["datasets"]
    present = [r for r in routers if r in res["contenders"]]
    pairs = res["pairs"]
    n = len(pairs)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.2 * len(datasets) + 2.5, 0.42 * n + 1.8), sharey=True, squeeze=False
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    offsets = [(i - (len(present) - 1) / 2) * 0.16 for i in range(len(present))]
    for ax, ds in zip(axes[0], datasets, strict=True):
        for j, name in enumerate(present):
            ys, xs, lo, hi = [], [], [], []
            for i, p in enumerate(pairs):
                if "excluded" in p["datasets"][ds]:
                    continue
                r = p["datasets"][ds]["routers"][name]
                ys.append(n - 1 - i + offsets[j])
                xs.append(r["apgr"])
                ci = r.get("ci95") or [r["apgr"], r["apgr"]]
                lo.append(r["apgr"] - ci[0])
                hi.append(ci[1] - r["apgr"])
            ax.errorbar(
                xs, ys, xerr=[lo, hi], fmt="o", ms=3.5, lw=1, color=colors[j % len(colors)], label=name
            )
        kept = [i for i, p in enumerate(pairs) if "excluded" not in p["datasets"][ds]]
        ceil = [pairs[i]["datasets"][ds]["routers"][CEILING_PW]["apgr"] for i in kept]
        for i, p in enumerate(pairs):
            if "excluded" in p["datasets"][ds]:
                ax.annotate(
                    f"excluded: test gap {p['datasets'][ds]['gap']:+.2f}",
                    (0.02, n - 1 - i),
                    xycoords=("axes fraction", "data"),
                    fontsize=6,
                    color="grey",
                    va="center",
                )
        ax.plot(
            ceil,
            [n - 1 - i for i in kept],
            "x",
            color="black",
            ms=5,
            label="ceiling: true test weak pass rate",
        )
        ax.axvline(50, color="grey", ls="--", lw=1, label="random (expected)")
        kind = "test" if ds == "gsm8k" else "out of distribution"
        ax.set_title(f"{ds} ({kind}, {len(kept)} pairs)")
        ax.set_xlabel("APGR (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(n))
    axes[0][0].set_yticklabels([p["label"] for p in reversed(pairs)], fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    cfg = res["config"]
    fig.suptitle(
        f"APGR per weak → strong pair, router {cfg['router']} trained on GSM8K train "
        f"({cfg['seeds']} seed(s), 95 % bootstrap CIs over queries)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


__all__ = ["console", "markdown", "write_plot"]
