"""The TriviaQA section of ``reproduce``: our own sampled table, shaped like the paper's Table 1.

The table is the one ``firewall-routing sample`` made from the shipped TriviaQA questions
with a local model pair (``data/local/triviaqa-<weak>-vs-<strong>.jsonl``, provenance in
``data/local/PROVENANCE.md``): exact match is the correctness, token F1 the real-valued
quality. Its router split is a rule, not a column: the last :data:`TEST_ROWS` rows are the
test split, the rows before them the train split. A router per label design is trained on
the train split and evaluated on the test split beside random, MF and the oracle; the
Hybrid LLM rows use F1 (where r_prob and r_trans differ from soft-block), and the paper's
own TriviaQA column (Llama3.2-1B → Llama3.1-70B) is printed beside ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from firewall_routing.designs import is_design
from firewall_routing.experiment.holdout import (
    DEFAULT_BASELINES,
    HoldoutResult,
    holdout_markdown,
    run_holdout,
    split_last,
)
from firewall_routing.labels import DESIGN_TITLES, Approximations
from firewall_routing.outcomes import load_generic

TABLE_GLOB = "triviaqa-*-vs-*.jsonl"
"""Where ``reproduce`` looks for the table, under ``<data dir>/local/``."""

TEST_ROWS = 300
"""The documented split rule (data/local/PROVENANCE.md): the last 300 rows are the test split."""

PAPER_TRIVIAQA: dict[str, tuple[float, float, float, float]] = {
    "random": (50.00, 19.95, 34.97, 49.99),
    "hybrid-trans": (49.17, 18.98, 34.38, 49.99),
    "mf": (51.58, 20.69, 36.27, 51.09),
    "hard-block": (53.16, 22.09, 37.85, 50.96),
    "soft-block": (55.00, 22.48, 38.99, 52.88),
}
"""Paper Table 1, TriviaQA column (APGR, pass rate @20/50/80 % strong), Llama3.2-1B weak,
Llama3.1-70B strong, DeBERTa-v3-large router; its "Hybrid LLM" row is listed under our
``hybrid-trans`` and "Linear Interpolation" under ``random``."""


def find_table(data_dir: Path) -> Path | None:
    """The TriviaQA table in ``<data_dir>/local/`` (first by name), or None when absent."""
    found = sorted((data_dir / "local").glob(TABLE_GLOB))
    return found[0] if found else None


def run_triviaqa(
    path: Path,
    designs: Sequence[str],
    baselines: Sequence[str] = DEFAULT_BASELINES,
    router: str | None = None,
    router_options: dict[str, Any] | None = None,
    seeds: int = 1,
    n_boot: int = 1000,
    approx: Approximations | None = None,
    progress: Callable[[str], None] | None = None,
) -> HoldoutResult:
    """Train on all rows but the last :data:`TEST_ROWS`, evaluate on those."""
    table = load_generic(path, "triviaqa")
    train, test = split_last(table, TEST_ROWS)
    return run_holdout(
        train,
        test,
        designs,
        baselines,
        router=router,
        router_options=router_options,
        seeds=seeds,
        n_boot=n_boot,
        approx=approx,
        progress=progress,
    )


def triviaqa_markdown(res: HoldoutResult, path: Path) -> str:
    """Our TriviaQA table, then ours next to the paper's column for the rows both have."""
    lines = [
        holdout_markdown(res, f"TriviaQA (our sampled table: `{path.name}`)"),
        "Next to the paper's TriviaQA column (Table 1: Llama3.2-1B → Llama3.1-70B, "
        "DeBERTa-v3-large router; ours: the pair above, this run's router). APGR / pass rate "
        "@20 / 50 / 80 % strong:",
        "",
        "| Router | ours | paper |",
        "|---|---|---|",
    ]
    for name, paper in PAPER_TRIVIAQA.items():
        try:
            row = res.row(name)
        except StopIteration:
            continue
        ours = f"{row.apgr:.2f} / " + " / ".join(
            f"{row.pass_rate_at[a] * 100:.2f}" for a in sorted(row.pass_rate_at)
        )
        label = DESIGN_TITLES[name] if is_design(name) else name
        lines.append(
            f"| {label} | {ours} | {paper[0]:.2f} / {paper[1]:.2f} / {paper[2]:.2f} / {paper[3]:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def triviaqa_json(res: HoldoutResult, path: Path) -> dict[str, Any]:
    """The section's numbers for results.json."""
    return {
        "table": str(path),
        "split": f"last {TEST_ROWS} rows = test",
        "weak": res.weak,
        "strong": res.strong,
        "n_train": res.n_train,
        "n_test": res.n_test,
        "weak_pass_rate": res.weak_pass_rate,
        "strong_pass_rate": res.strong_pass_rate,
        "weak_f1": res.weak_quality,
        "strong_f1": res.strong_quality,
        "t_star": res.t_star,
        "router": res.router,
        "seconds": res.seconds,
        "notes": list(res.notes),
        "comparisons": None if res.comparison is None else res.comparison.to_json(),
        "rows": [
            {
                "router": r.name,
                "kind": r.kind,
                "apgr": r.apgr,
                "apgr_ci": list(r.apgr_ci),
                "pass_rate_at": {str(int(a * 100)): v for a, v in r.pass_rate_at.items()},
                "pass_rate_ci": {str(int(a * 100)): list(r.pass_rate_ci(a)) for a in r.pass_rate_at},
                "f1_quality_drop": {str(int(c * 100)): v for c, v in r.quality_drop.items()},
                "same_labels_as": r.same_as,
                "labels_on_f1": r.uses_quality,
            }
            for r in res.rows
        ],
    }
