"""``firewall-routing reproduce``: the paper's experiment on the shipped RouterDC data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(reproduce)


def reproduce(
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default runs/reproduce-<time>).")
    ] = None,
    weak: Annotated[
        str, typer.Option(help="Weak model of the training pair.")
    ] = "HuggingFaceH4/zephyr-7b-beta",
    strong: Annotated[
        str, typer.Option(help="Strong model.")
    ] = "cognitivecomputations/dolphin-2.9-llama3-8b",
    gen_weak: Annotated[
        str, typer.Option(help="Weak model of the generalization pair (Table 2); '' to skip.")
    ] = "mistralai/Mistral-7B-v0.1",
    datasets: Annotated[
        str, typer.Option(help="Comma-separated evaluation sets: gsm8k,humaneval,mbpp.")
    ] = "gsm8k,humaneval,mbpp",
    designs: Annotated[str, typer.Option(help="Comma-separated label designs, or 'all'.")] = "all",
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..n-1) per router.")] = 3,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for 95 % CIs.")] = 1000,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with routerdc/ (default: the shipped data/).")
    ] = None,
    greedy_approx: Annotated[
        str, typer.Option(help="'majority' or 'none' (see `labels --help`).")
    ] = "majority",
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
) -> None:
    """Train one router per label design on RouterDC GSM8K and evaluate in/out of distribution.

    Writes report.md, results.json and PNG plots into the output directory it prints.
    """
    from firewall_routing.experiment import ExperimentConfig, run

    cfg = ExperimentConfig(
        weak=weak,
        strong=strong,
        gen_weak=gen_weak or None,
        datasets=[d.strip() for d in datasets.split(",") if d.strip()],
        designs=designs,
        seeds=seeds,
        n_boot=bootstrap,
        data_dir=data_dir,
        greedy_approx=greedy_approx,
        plots=plots,
    )
    run(cfg, out)
