"""The README's results tables, rendered from a `reproduce` run's results.json.

Why: the README's TriviaQA table once left out the designs that beat Soft Block in the same
run (issue 25). The tables are now generated, never typed: every router of the run gets a
row (identical routers share one, named), and each table is followed by which router won
and whether the difference is significant (the run's own paired bootstrap).

    PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 firewall-routing reproduce --out /tmp/default-repro
    python benchmarks/readme_tables.py /tmp/default-repro/results.json --write

prints the markdown and, with ``--write``, keeps the numbers it used in
benchmarks/results/readme-tables.json; tests/test_docs.py renders that file again and
checks the README holds exactly these tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "readme-tables.json"
DATASETS = ("gsm8k", "humaneval", "mbpp")
ORDER = (
    "random",
    "mf",
    "hard",
    "win-rate",
    "weak-pass-rate",
    "strong-pass-rate",
    "hard-block-greedy",
    "hard-block",
    "soft-block",
    "hybrid-det",
    "hybrid-prob",
    "hybrid-trans",
    "oracle",
)


def extract(results: dict[str, Any], command: str) -> dict[str, Any]:
    """The few numbers the README shows, from a full results.json."""
    main: dict[str, dict[str, list[float]]] = {}
    for r in results["results"]:
        if r["pair"] == "main" and r["dataset"] in DATASETS:
            ci = r["ci95"]["apgr"] if r["ci95"] else [float("nan")] * 2
            main.setdefault(r["router"], {})[r["dataset"]] = [r["mean"]["apgr"], *ci]
    comps = {k: v for k, v in results["comparisons"].items() if k.startswith("main/")}
    out: dict[str, Any] = {"command": command, "main": main, "comparisons": comps}
    tq = results.get("triviaqa")
    if tq:
        out["triviaqa"] = {
            "n_test": tq["n_test"],
            "weak_pass_rate": tq["weak_pass_rate"],
            "strong_pass_rate": tq["strong_pass_rate"],
            "rows": [[r["router"], r["apgr"], *r["apgr_ci"]] for r in tq["rows"]],
            "comparisons": tq["comparisons"],
        }
    return out


def _comparison(d: dict[str, Any]) -> Any:
    from firewall_routing.experiment.conclusion import Difference
    from firewall_routing.experiment.results import Comparison

    diffs = [Difference(**{k: v for k, v in x.items() if k != "separable"}) for x in d["differences"]]
    return Comparison(d["n_boot"], d["n_seeds"], d["groups"], d["apgr"], diffs)


def _name(router: str, groups: list[list[str]]) -> str:
    from firewall_routing.experiment.report import title

    group = next((g for g in groups if router in g), [router])
    others = [title(m) for m in group if m != router]
    return title(router) + (f" (= {', '.join(others)}: identical labels here)" if others else "")


def _cell(v: list[float]) -> str:
    apgr, lo, hi = v
    return f"{apgr:.2f}" if lo != lo else f"{apgr:.2f} [{lo:.1f}, {hi:.1f}]"


def render(data: dict[str, Any]) -> str:
    """The main APGR table and the TriviaQA table, each with its verdict lines."""
    from firewall_routing.experiment.triviaqa import PAPER_TRIVIAQA
    from firewall_routing.experiment.verdict import winner_line
    from firewall_routing.labels import DESIGN_TITLES

    groups = next(iter(data["comparisons"].values()))["groups"] if data["comparisons"] else []
    skip = {m for g in groups for m in g[1:]}  # identical routers: one row, named after the first
    lines = ["| router (`ridge` unless named) | GSM8K | HumanEval | MBPP |", "|---|---:|---:|---:|"]
    names = [n for n in ORDER if n in data["main"]] + [n for n in data["main"] if n not in ORDER]
    for n in names:
        if n in skip:
            continue
        cells = [_cell(data["main"][n][d]) if d in data["main"][n] else "–" for d in DATASETS]
        lines.append(f"| {_name(n, groups)} | " + " | ".join(cells) + " |")
    lines += ["", "Which won (the run's paired bootstrap over queries, 95 %):", ""]
    lines += [winner_line(k, _comparison(c)) for k, c in data["comparisons"].items()]
    tq = data.get("triviaqa")
    if tq:
        tq_groups = tq["comparisons"]["groups"] if tq["comparisons"] else []
        lines += [
            "",
            f"TriviaQA ({tq['n_test']} test questions; all-weak {tq['weak_pass_rate'] * 100:.2f} %, "
            f"all-strong {tq['strong_pass_rate'] * 100:.2f} % exact match), every router of the run:",
            "",
            "| router | APGR [95 % CI] | paper (Llama3.2-1B → 3.1-70B) |",
            "|---|---:|---:|",
        ]
        for router, apgr, lo, hi in tq["rows"]:
            group = next((g for g in tq_groups if router in g), [router])
            label = DESIGN_TITLES.get(router, router) + (
                f" (= {', '.join(m for m in group if m != router)} labels)" if len(group) > 1 else ""
            )
            paper = f"{PAPER_TRIVIAQA[router][0]:.2f}" if router in PAPER_TRIVIAQA else "–"
            lines.append(f"| {label} | {_cell([apgr, lo, hi])} | {paper} |")
        if tq["comparisons"]:
            lines += ["", winner_line("TriviaQA", _comparison(tq["comparisons"]))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="results.json of a `firewall-routing reproduce` run")
    ap.add_argument("--command", default="firewall-routing reproduce --out /tmp/default-repro")
    ap.add_argument("--write", action="store_true", help=f"keep the numbers in {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    data = extract(json.loads(args.results.read_text()), args.command)
    sys.stdout.write(render(data))
    if args.write:
        OUT.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
