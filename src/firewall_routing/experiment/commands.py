"""``firewall-routing reproduce``: the paper's experiment on the shipped RouterDC data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from firewall_routing.designs import GreedyApprox
from firewall_routing.metrics import MAX_BOOTSTRAP

DEFAULT_SEEDS = 3


# Shared by `reproduce` and `sweep`, which read the same shipped RouterDC files.
DataDirOpt = Annotated[Path | None, typer.Option(help="Folder with routerdc/ (default: the shipped data/).")]
RouterDCGreedyOpt = Annotated[GreedyApprox, typer.Option(help="'majority' or 'none' (see `labels --help`).")]


def register(app: typer.Typer) -> None:
    app.command()(reproduce)


def reproduce(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output directory (default runs/reproduce-<time>). Written only when the run "
            "succeeds; a non-empty one needs --resume or --force."
        ),
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
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Seeds (0..n-1) per seeded router; a deterministic one (the default ridge) is trained once.",
            show_default=f"{DEFAULT_SEEDS}; 1 with --paper",
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, max=MAX_BOOTSTRAP, help="Bootstrap resamples for 95 % CIs (0 = none).")
    ] = 1000,
    data_dir: DataDirOpt = None,
    greedy_approx: RouterDCGreedyOpt = "majority",
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated baseline routers beside the designs ('' for none).")
    ] = "random,mf,oracle",
    router_options: Annotated[
        str,
        typer.Option(
            help='Options of the trained router as JSON, e.g. \'{"encoder": "static"}\' for the '
            "static encoder (see `firewall-routing train --router-options help`)."
        ),
    ] = "{}",
    paper: Annotated[
        bool,
        typer.Option(
            "--paper",
            help="Use the paper's router type: a fine-tuned `encoder` (MiniLM by default) per "
            "label design (one seed unless --seeds is given). Slow on CPU: minutes per epoch per design.",
        ),
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="--paper: fine-tuning epochs (default 3).")
    ] = None,
    backbone: Annotated[
        str | None, typer.Option(help="--paper: encoder backbone path/name (default all-MiniLM-L6-v2).")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(min=1, help="--paper: max tokens per prompt (256).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="--paper: training batch size (16).")] = None,
    lr: Annotated[float | None, typer.Option(help="--paper: peak learning rate (5e-5).")] = None,
    device: Annotated[str | None, typer.Option(help="--paper: torch device, e.g. cuda (cpu).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Reuse finished routers' scores from --out (same settings).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a non-empty --out, once the new run has succeeded."),
    ] = False,
    triviaqa: Annotated[
        bool,
        typer.Option(
            "--triviaqa/--no-triviaqa",
            help="The TriviaQA section, when our sampled table <data dir>/local/triviaqa-*-vs-*.jsonl "
            "is there: every design trained on it (last 300 rows = test), Hybrid LLM rows on "
            "token-F1 quality, next to the paper's TriviaQA column.",
        ),
    ] = True,
) -> None:
    """Train one router per label design on RouterDC GSM8K and evaluate in/out of distribution.

    Writes report.md, results.json and PNG plots into the output directory it prints; with
    our sampled TriviaQA table in data/local/, also a TriviaQA section (train on it, test on
    its last 300 rows).
    """
    from firewall_routing.errors import InputError
    from firewall_routing.experiment.config import ExperimentConfig, paper_config
    from firewall_routing.experiment.run import run
    from firewall_routing.experiment.rundir import staged_run_dir
    from firewall_routing.files import json_object

    fields: dict[str, Any] = {
        "weak": weak,
        "strong": strong,
        "gen_weak": gen_weak or None,
        "datasets": [d.strip() for d in datasets.split(",") if d.strip()],
        "designs": designs,
        "n_boot": bootstrap,
        "data_dir": data_dir,
        "greedy_approx": greedy_approx,
        "plots": plots,
        "baselines": [b.strip() for b in baselines.split(",") if b.strip()],
        "resume": resume,
        "triviaqa": triviaqa,
    }
    tuning = {
        "epochs": epochs,
        "backbone": backbone,
        "max_length": max_length,
        "batch_size": batch_size,
        "lr": lr,
        "device": device,
    }
    chosen = {k: v for k, v in tuning.items() if v is not None}
    options = json_object(router_options, "--router-options")
    if resume and out is None:
        raise InputError("--resume needs the --out directory of the run to resume")
    if resume and force:
        raise InputError("--resume continues the run in --out and --force replaces it: pass one")
    if paper:
        cfg = paper_config(chosen | options, **fields, seeds=1 if seeds is None else seeds)
    elif chosen:
        raise InputError(f"{', '.join('--' + k.replace('_', '-') for k in chosen)} only apply with --paper")
    else:
        seeds = DEFAULT_SEEDS if seeds is None else seeds
        cfg = ExperimentConfig(seeds=seeds, router_options=options, **fields)
    target = out or Path("runs") / f"reproduce-{datetime.now():%Y%m%d-%H%M%S}"
    with staged_run_dir(target, resume=resume, force=force) as work:
        run(cfg, work, shown=target)
