"""``firewall-routing sweep``: every label design on every RouterDC pair with a real gap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from firewall_routing.experiment.commands import DataDirOpt, RouterDCGreedyOpt
from firewall_routing.metrics import MAX_BOOTSTRAP


def register(app: typer.Typer) -> None:
    app.command()(sweep)


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def sweep(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("runs/sweep"),
    min_gap: Annotated[
        float, typer.Option(help="Keep ordered pairs whose GSM8K-train strong − weak pass rate is ≥ this.")
    ] = 0.10,
    min_test_gap: Annotated[
        float,
        typer.Option(
            help="Leave a pair out of a dataset's means and tests when its test strong − weak pass "
            "rate is below this (APGR divides by it)."
        ),
    ] = 0.05,
    router: Annotated[
        str | None,
        typer.Option(help="Router trained per label design [default: the project's default router]."),
    ] = None,
    router_options: Annotated[
        str, typer.Option(help="Router options as JSON, e.g. '{\"epochs\": 20}'.")
    ] = "{}",
    designs: Annotated[str, typer.Option(help="Comma-separated label designs, or 'all'.")] = "all",
    baselines: Annotated[
        str,
        typer.Option(
            help="Comma-separated trained baseline routers (random is always added as its expected "
            "APGR-50 line; oracle and the ceilings are always added)."
        ),
    ] = "mf,knn",
    baseline_options: Annotated[
        str, typer.Option(help='Per-baseline options as JSON, e.g. \'{"mf": {"epochs": 50}}\'.')
    ] = "{}",
    knn_label: Annotated[
        str,
        typer.Option(
            help="Target the knn baseline averages: 'gain' ((1 − (pr_s − pr_w))/2, RouterBench-style "
            "per-model quality prediction) or a label design."
        ),
    ] = "gain",
    datasets: Annotated[
        str, typer.Option(help="Comma-separated evaluation sets: gsm8k,humaneval,mbpp.")
    ] = "gsm8k,humaneval,mbpp",
    seeds: Annotated[int, typer.Option(help="Seeds (0..n-1) per router; scores are averaged.")] = 1,
    bootstrap: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_BOOTSTRAP, help="Bootstrap resamples for CIs and paired tests (0 = off)."
        ),
    ] = 1000,
    bootstrap_seed: Annotated[int, typer.Option(help="Seed of the bootstrap draws.")] = 0,
    max_pairs: Annotated[
        int | None, typer.Option(help="Only the first N pairs (largest gap first), for a quick look.")
    ] = None,
    data_dir: DataDirOpt = None,
    greedy_approx: RouterDCGreedyOpt = "majority",
    plots: Annotated[bool, typer.Option(help="Write the forest plot.")] = True,
) -> None:
    """Train every label design and baseline on every RouterDC pair with a GSM8K-train gap ≥
    --min-gap; evaluate on GSM8K test, HumanEval and MBPP with paired tests across pairs.

    Writes results.json, summary.md and plots/sweep-apgr.png into --out.
    """
    from firewall_routing.experiment.sweep import SweepConfig, run
    from firewall_routing.files import json_object

    fields: dict[str, Any] = {
        "min_gap": min_gap,
        "min_test_gap": min_test_gap,
        "knn_label": knn_label,
        "router_options": json_object(router_options, "--router-options"),
        "designs": designs,
        "baselines": _names(baselines),
        "baseline_options": json_object(baseline_options, "--baseline-options"),
        "datasets": _names(datasets),
        "seeds": seeds,
        "n_boot": bootstrap,
        "boot_seed": bootstrap_seed,
        "max_pairs": max_pairs,
        "data_dir": data_dir,
        "greedy_approx": greedy_approx,
        "plots": plots,
    }
    if router is not None:
        fields["router"] = router
    run(SweepConfig(**fields), out)
