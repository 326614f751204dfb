"""The ``firewall-routing`` command line.

Only light modules are imported here so ``--help`` is instant; each command imports what it
needs. User errors (:class:`InputError`) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from firewall_routing.designs import DESIGNS_EPILOG, GreedyApprox, ModelTarget, PairingApprox, as_design
from firewall_routing.errors import InputError, MetricError, validation_problems
from firewall_routing.files import json_object
from firewall_routing.metrics import MAX_BOOTSTRAP
from firewall_routing.routers import DEFAULT_ROUTER

if TYPE_CHECKING:
    from firewall_routing.outcomes import OutcomeTable
    from firewall_routing.routers import Router

app = typer.Typer(
    name="firewall-routing",
    help="Route LLM queries between a weak and a strong model (Firewall Routing, EMNLP 2025).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help, not rich: rich ate "[...]" in help texts as markup, printed "<bool>"
    # beside flags and cut long defaults at 80 columns when stdout was not a terminal.
    rich_markup_mode=None,
)

if TYPE_CHECKING:
    from firewall_routing.labels import Approximations

WeakOpt = Annotated[str | None, typer.Option("--weak", help="Weak model name (files with several models).")]
StrongOpt = Annotated[
    str | None, typer.Option("--strong", help="Strong model name (files with several models).")
]
GreedyOpt = Annotated[
    GreedyApprox,
    typer.Option(
        "--greedy-approx",
        help="Where greedy answers are missing: 'majority' (1[pass rate ≥ 0.5], reported) or 'none' (fail).",
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Outcome file format: auto (by suffix and first row), routerdc, routellm, generic "
        "(weak_/strong_ pair), multi (N models), mmlu-pro, alpacaeval, or mixinstruct "
        "(LLM-Blender's MixInstruct: instruction + candidates with scores; needs --weak/--strong).",
    ),
]
DropIncompleteOpt = Annotated[
    bool,
    typer.Option(
        "--drop-incomplete",
        help="Leave out the rows where the weak or strong model has no outcome (a note says how "
        "many); without it such a row is an error, never counted as a failure.",
    ),
]
MetricOpt = Annotated[
    str | None,
    typer.Option(
        "--metric", help="--format mixinstruct: the candidate score used as quality (default bartscore)."
    ),
]
QualityThresholdOpt = Annotated[
    float,
    typer.Option(
        "--quality-threshold",
        help="Where a file has quality scores but no correctness, a sample counts as correct "
        "when its quality is ≥ this (pass rates, APGR); reported whenever used.",
    ),
]
PairingOpt = Annotated[
    PairingApprox,
    typer.Option(
        "--pairing-approx",
        help="Where paired samples are missing (win-rate): "
        "'independent' (expectation, reported) or 'none' (fail).",
    ),
]


def _approx(greedy: GreedyApprox, pairing: PairingApprox) -> Approximations:
    from firewall_routing.labels import Approximations

    return Approximations(greedy=greedy, pairing=pairing)


def _load(
    outcomes: Path,
    weak: str | None,
    strong: str | None,
    fmt: str,
    metric: str | None,
    threshold: float,
    drop_incomplete: bool = False,
) -> OutcomeTable:
    """Load an outcome file with the shared format options; say how pass rates were made."""
    from firewall_routing.outcomes import load_table

    table = load_table(
        outcomes,
        weak,
        strong,
        fmt=fmt,  # type: ignore[arg-type]
        metric=metric,
        quality_threshold=threshold,
        drop_incomplete=drop_incomplete,
    )
    if table.has_pair and table.weak.name == table.strong.name:
        raise InputError(
            f"the weak and the strong model are both '{table.weak.name}': routing between a model "
            "and itself means nothing (choose two models with --weak/--strong)",
            path=outcomes,
        )
    for note in table.notes:
        typer.echo(f"note: {note}", err=True)
    return table


def _say_quality(table: OutcomeTable, design: str) -> None:
    from firewall_routing.labels import uses_quality

    if uses_quality(table, design):
        typer.echo(f"note: {design} compares real-valued quality (weak_quality/strong_quality)", err=True)


@app.command(epilog=DESIGNS_EPILOG)
def labels(
    outcomes: Annotated[
        Path, typer.Argument(help="Outcome file (RouterDC .json, RouteLLM .csv, generic .jsonl/.csv).")
    ],
    design: Annotated[str, typer.Option(help="Label design: one of the ten listed below.")] = "soft-block",
    out: Annotated[Path, typer.Option(help="Output JSONL: id, prompt, label.")] = Path("labels.jsonl"),
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    greedy_approx: GreedyOpt = "majority",
    pairing_approx: PairingOpt = "independent",
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    fmt: FormatOpt = "auto",
    metric: MetricOpt = None,
    quality_threshold: QualityThresholdOpt = 0.5,
    drop_incomplete: DropIncompleteOpt = False,
) -> None:
    """Write the labels of one design for every query of an outcome file (to train elsewhere)."""
    import json

    from firewall_routing.files import check_output_file
    from firewall_routing.labels import compute_labels

    check_output_file(out, "--out", force=force)
    table = _load(outcomes, weak, strong, fmt, metric, quality_threshold, drop_incomplete)
    lab = compute_labels(table, as_design(design), _approx(greedy_approx, pairing_approx))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")  # a failed write never leaves half a file at --out
    with tmp.open("w", encoding="utf-8") as f:
        for i, p, v in zip(table.ids, table.prompts, lab.values, strict=True):
            f.write(json.dumps({"id": i, "prompt": p, "label": float(v), "design": design}) + "\n")
    tmp.replace(out)
    for note in lab.notes:
        typer.echo(f"approximation: {note}", err=True)
    _say_quality(table, design)
    if lab.params:
        typer.echo(f"parameters: {lab.params}", err=True)
    if design == "hybrid-trans":
        typer.echo(
            f"t* = {lab.params['t']:g} (Hybrid LLM r_trans: the t whose labels differ most between queries)"
        )
    typer.echo(f"wrote {len(table)} labels ({design}, mean {lab.values.mean():.3f}) to {out}")


def _say(msg: str) -> None:
    """What a long step is doing, on stderr (stdout keeps the results)."""
    typer.echo(msg, err=True)


def _embeds(r: Any) -> str:
    if not getattr(r, "scores_embeddings", False):
        return ""
    encoder = getattr(r, "encoder", None)
    if not encoder:
        return ""
    return f": embedding the prompts with {encoder} (cached on disk after the first run)"


def _fit_steps(r: Any) -> str:
    """The steps of ``fit`` that take long, said before they run (issue 25: ``train`` was
    silent for 14-43 s while ridge fitted its GSM8K solution prior)."""
    steps = []
    if getattr(getattr(r, "options", None), "prior", None) == "gsm8k":
        steps.append('fitting its GSM8K solution prior (router option prior; \'{"prior": "none"}\' skips it)')
    if emb := _embeds(r):
        steps.append(emb.removeprefix(": "))
    return (": " + ", then ".join(steps)) if steps else ""


@app.command(epilog=DESIGNS_EPILOG)
def train(
    outcomes: Annotated[Path, typer.Argument(help="Training outcome file.")],
    out: Annotated[Path, typer.Option(help="Directory to save the router into.")],
    design: Annotated[str, typer.Option(help="Label design: one of the ten listed below.")] = "soft-block",
    router: Annotated[
        str, typer.Option(help="Router type (`firewall-routing routers` lists them).")
    ] = DEFAULT_ROUTER,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    val_fraction: Annotated[float, typer.Option(help="Held-out share for best-epoch selection.")] = 0.1,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing router at --out (all of its files).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for the split and the router (if it takes one).")] = 0,
    router_options: Annotated[
        str,
        typer.Option(
            help="Router options as JSON, e.g. '{\"k\": 50}' for knn; 'help' (or "
            "`firewall-routing routers`) lists each router's options, types and defaults."
        ),
    ] = "{}",
    greedy_approx: GreedyOpt = "majority",
    pairing_approx: PairingOpt = "independent",
    fmt: FormatOpt = "auto",
    metric: MetricOpt = None,
    quality_threshold: QualityThresholdOpt = 0.5,
    drop_incomplete: DropIncompleteOpt = False,
    models: Annotated[
        str | None,
        typer.Option(
            help="Learn every model's success instead of one pair: 'all' or comma-separated names "
            "(routers that predict every model: ridge, knn, mf, embedding-head)."
        ),
    ] = None,
    target: Annotated[
        ModelTarget,
        typer.Option(help="With --models: what is learned per model: pass-rate, greedy or quality."),
    ] = "pass-rate",
) -> None:
    """Train a router on an outcome file with one label design and save it.

    Train-free routers (random, oracle, margin) are saved as they are, so every router can
    be passed to `evaluate` and `serve` as a directory. With ``--models`` the router learns
    every named model's success (missing outcomes skipped); `evaluate` then reports the
    N-model quality–cost table with a cost table (``--costs``).
    """
    from firewall_routing.embeddings import progress_bars
    from firewall_routing.files import replace_dir
    from firewall_routing.labels import compute_labels, require_learnable
    from firewall_routing.outcomes import split_train_val
    from firewall_routing.routers import RouterMetadata, Validation, make_router, router_class, router_help
    from firewall_routing.routers.base import check_router_out

    if router_options.strip() == "help":
        typer.echo(router_help(router))
        return
    check_router_out(out, force)  # before loading and training: fail in a second
    cls = router_class(router)
    r = make_router(
        router, **({"seed": seed} if cls.seeded() else {}) | json_object(router_options, "--router-options")
    )
    table = _load(outcomes, weak, strong, fmt, metric, quality_threshold, drop_incomplete)
    if models is not None:
        _say(f"training {router} on every model of --models{_fit_steps(r)}")
        with progress_bars():
            _train_models(r, table, models, target, val_fraction, seed, greedy_approx, pairing_approx, out)
        return
    weak_name, strong_name = table.weak.name, table.strong.name
    if not cls.trains:
        replace_dir(out, lambda d: r.save(d, RouterMetadata(weak=weak_name, strong=strong_name)))
        typer.echo(f"{router} does not train: saved its options → {out}")
        return
    tr, va = split_train_val(table, val_fraction, seed)
    lab = compute_labels(tr, as_design(design), _approx(greedy_approx, pairing_approx))
    require_learnable(lab.values, design, str(outcomes))
    _say(f"training {router} on {len(tr)} queries ({design} labels){_fit_steps(r)}")
    with progress_bars():
        if cls.table_only:  # learns every model of the table (irt)
            rep = r.fit_table(tr, val=Validation.from_table(va) if len(va) else None)
            r.use_pair(weak_name, strong_name, as_design(design))
        else:
            rep = r.fit(tr.prompts, lab.values, val=Validation.from_table(va) if len(va) else None)
    meta = RouterMetadata.for_training(
        tr.prompts, lab.values, label_design=design, weak=weak_name, strong=strong_name
    )
    replace_dir(out, lambda d: r.save(d, meta))
    for note in lab.notes:
        typer.echo(f"approximation: {note}", err=True)
    _say_quality(table, design)
    if design == "hybrid-trans":
        typer.echo(f"t* = {lab.params['t']:g} (Hybrid LLM r_trans, searched on the training split)")
    for key, value in r.trained_info().items():  # what training chose (saved in router.json)
        if isinstance(value, list | str):
            shown = value if isinstance(value, str) else ", ".join(value) or "none"
            typer.echo(f"{key.replace('_', ' ')}: {shown}")
    best = f", best epoch {rep.best_epoch} (val APGR {rep.best_val_apgr:.2f})" if rep.best_val_apgr else ""
    typer.echo(f"trained {router} on {len(tr)} queries ({design}){best} in {rep.seconds:.1f}s → {out}")


def _train_models(
    r: Router,
    table: OutcomeTable,
    models: str,
    target: ModelTarget,
    val_fraction: float,
    seed: int,
    greedy_approx: GreedyApprox,
    pairing_approx: PairingApprox,
    out: Path,
) -> None:
    """``train --models``: fit_models on every named model's success (``labels.model_success``)."""
    from firewall_routing.files import replace_dir
    from firewall_routing.labels import model_success
    from firewall_routing.outcomes import split_train_val
    from firewall_routing.routers.base import ModelValidation, RouterMetadata, training_hash

    if not r.predicts_models:
        raise InputError(
            f"router '{r.name}' learns one pair only; --models needs ridge, knn, mf or embedding-head"
        )
    names = (
        list(table.model_names)
        if models.strip() == "all"
        else [m.strip() for m in models.split(",") if m.strip()]
    )
    for m in names:
        table.model(m)  # an unknown name is one line listing the file's models
    tr, va = split_train_val(table, val_fraction, seed)
    approx = _approx(greedy_approx, pairing_approx)
    lab = model_success(tr, names, target, approx)
    val = ModelValidation(va.prompts, model_success(va, names, target, approx).values) if len(va) else None
    rep = r.fit_models(tr.prompts, lab.values, names, val=val)
    meta = RouterMetadata(
        label_design=f"every model: {target}",
        model_names=tuple(names),
        train_rows=len(tr),
        train_sha256=training_hash(tr.prompts, lab.values),
    )
    replace_dir(out, lambda d: r.save(d, meta))
    for note in lab.notes:
        typer.echo(f"approximation: {note}", err=True)
    import numpy as np

    missing = int(np.isnan(lab.values).sum())
    typer.echo(
        f"trained {r.name} on {len(tr)} queries × {len(names)} models ({target}; {missing} missing outcomes "
        f"skipped) in {rep.seconds:.1f}s → {out}"
    )


@app.command("hybrid-llm")
def hybrid_llm(
    outcomes: Annotated[
        Path,
        typer.Argument(help="Outcome file with the training queries (and the test ones without --test)."),
    ],
    test: Annotated[Path | None, typer.Option(help="Separate test file (same format and pair).")] = None,
    test_last: Annotated[
        int | None,
        typer.Option(min=1, help="Without --test: the last N rows are the test split (default: last 25 %)."),
    ] = None,
    designs: Annotated[
        str, typer.Option(help="Comma-separated label designs.")
    ] = "hybrid-det,hybrid-prob,hybrid-trans,soft-block",
    baselines: Annotated[
        str, typer.Option(help="Comma-separated baselines ('' for none).")
    ] = "random,mf,oracle",
    router: Annotated[str, typer.Option(help="Router trained per design.")] = DEFAULT_ROUTER,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per seeded router (averaged).")] = 1,
    bootstrap: Annotated[
        int, typer.Option(min=0, max=MAX_BOOTSTRAP, help="Bootstrap resamples for the 95 % CIs (0 = off).")
    ] = 1000,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fmt: FormatOpt = "auto",
    metric: MetricOpt = None,
    quality_threshold: QualityThresholdOpt = 0.5,
    greedy_approx: GreedyOpt = "majority",
    pairing_approx: PairingOpt = "independent",
    report: Annotated[Path | None, typer.Option(help="Also write the table as Markdown here.")] = None,
    drop_incomplete: DropIncompleteOpt = False,
) -> None:
    """Hybrid LLM's experiment: train a router per label design on one split, report APGR
    [95 % CI], pass rate @20/50/80 % and, on real-valued quality, the quality drop at
    10/20/40 % cost advantage on the other split (e.g. MixInstruct with --format mixinstruct).
    """
    from firewall_routing.experiment.holdout import holdout_markdown, run_holdout, split_last

    table = _load(outcomes, weak, strong, fmt, metric, quality_threshold, drop_incomplete)
    if test is not None:
        if test_last is not None:
            raise InputError("--test and --test-last both choose the test split: pass one")
        train_t, test_t = table, _load(test, weak, strong, fmt, metric, quality_threshold, drop_incomplete)
        if (test_t.weak.name, test_t.strong.name) != (train_t.weak.name, train_t.strong.name):
            raise InputError("the test file holds another model pair than the training file", path=test)
    else:
        train_t, test_t = split_last(table, test_last or max(1, len(table) // 4))
    res = run_holdout(
        train_t,
        test_t,
        [d.strip() for d in designs.split(",") if d.strip()],
        [b.strip() for b in baselines.split(",") if b.strip()],
        router=router,
        seeds=seeds,
        n_boot=bootstrap,
        approx=_approx(greedy_approx, pairing_approx),
        progress=lambda msg: typer.echo(msg, err=True),
    )
    text = holdout_markdown(res, f"Hybrid LLM experiment: {outcomes.name}")
    typer.echo(text)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(text, encoding="utf-8")


@app.command("scorer-check")
def scorer_check(
    candidate: Annotated[Path, typer.Argument(help="Outcome table scored by the scorer under test.")],
    trusted: Annotated[Path, typer.Argument(help="The same answers scored by a trusted scorer.")],
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fmt: FormatOpt = "auto",
    trusted_format: Annotated[
        str, typer.Option(help="Format of the trusted file (e.g. alpacaeval); default: --format.")
    ] = "",
    quality_threshold: QualityThresholdOpt = 0.5,
    trusted_threshold: Annotated[
        float | None, typer.Option(help="Pass threshold of the trusted file (default --quality-threshold).")
    ] = None,
    design: Annotated[str, typer.Option(help="Label design both routers train on.")] = "soft-block",
    router: Annotated[str, typer.Option(help="Router trained on each scorer's labels.")] = DEFAULT_ROUTER,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Held-out share for the regret.")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Split and bootstrap seed.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for the regret CI.")] = 1000,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the numbers as JSON here.")
    ] = None,
) -> None:
    """How far a scorer can be trusted: pairwise accuracy, Spearman ρ, Cohen's κ at the pass
    threshold, and the routing regret (APGR of a router trained on the scorer's labels minus
    one trained on the trusted labels, both evaluated on the trusted labels) with a 95 % CI."""
    import json

    from firewall_routing.experiment.scorer_check import MARKDOWN_HEAD, check, markdown_row

    cand = _load(candidate, weak, strong, fmt, None, quality_threshold)
    trust = _load(
        trusted,
        weak,
        strong,
        trusted_format or fmt,
        None,
        quality_threshold if trusted_threshold is None else trusted_threshold,
    )
    if (cand.weak.name, cand.strong.name) != (trust.weak.name, trust.strong.name):
        typer.echo(
            f"note: pairs differ by name ({cand.weak.name} → {cand.strong.name} vs "
            f"{trust.weak.name} → {trust.strong.name}); rows are matched by query id",
            err=True,
        )
    res = check(cand, trust, design, router, test_fraction, seed, bootstrap)
    typer.echo(MARKDOWN_HEAD)
    typer.echo(markdown_row(f"{candidate.name} vs {trusted.name}", res))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(res.to_json(), indent=2) + "\n", encoding="utf-8")


@app.command()
def routers() -> None:
    """List every router: what it can do and its options (type = default  description)."""
    from firewall_routing.routers import REGISTRY, router_help

    typer.echo("\n\n".join(router_help(name) for name in REGISTRY))


@app.command("costs")
def costs_command(
    costs: Annotated[
        str,
        typer.Argument(help="Cost table CSV, or a shipped one by name: mmlu-pro, routerdc, alpacaeval."),
    ],
    outcomes: Annotated[
        Path | None,
        typer.Option(
            help="Outcome file whose models the table must price, exactly; prints their pass rates."
        ),
    ] = None,
    fmt: FormatOpt = "auto",
    quality_threshold: QualityThresholdOpt = 0.5,
) -> None:
    """Check a cost table (and that it prices an outcome file's models) and print it.

    One row per model: a relative cost per query, or prices per 1M input/output tokens,
    with its source and date (docs: README, "N-model tables").
    """
    import numpy as np

    from firewall_routing.costs import SHIPPED, load_costs, shipped_costs
    from firewall_routing.outcomes import load_table

    table = load_costs(shipped_costs(costs) if costs in SHIPPED else Path(costs))
    rates: dict[str, str] = {}
    if outcomes is not None:
        t = load_table(outcomes, fmt=fmt, quality_threshold=quality_threshold)  # type: ignore[arg-type]
        table.check_models(t.model_names, str(outcomes))
        for m in t.models:
            missing = int(m.missing.sum())
            rate = f"{np.nanmean(m.pass_rate):.3f}" if missing < len(t) else "n/a"
            rates[m.name] = rate + (f" ({missing} rows without an outcome)" if missing else "")
    typer.echo(f"cost table {table.path}: {table.describe()}")
    width = max(len(c.model) for c in table.costs)
    for c in table.costs:
        cost = (
            f"{c.relative_cost:g}"
            if c.kind == "relative"
            else f"${c.input_per_1m:g} in / ${c.output_per_1m:g} out"
        )
        rate = f"  pass rate {rates[c.model]}" if rates else ""
        note = f"  [{c.note}]" if c.note else ""
        typer.echo(f"  {c.model:<{width}}  {cost:>10}{rate}  ({c.source}, {c.date}){note}")


@app.command()
def evaluate(
    router: Annotated[
        str, typer.Argument(help="Saved router directory, or a train-free router name (random, oracle).")
    ],
    outcomes: Annotated[Path, typer.Argument(help="Outcome file to score.")],
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, max=MAX_BOOTSTRAP, help="Bootstrap resamples for the 95 % CIs (0 = off).")
    ] = 1000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON.")] = None,
    fmt: FormatOpt = "auto",
    metric: MetricOpt = None,
    quality_threshold: QualityThresholdOpt = 0.5,
    drop_incomplete: DropIncompleteOpt = False,
    costs: Annotated[
        str | None,
        typer.Option(
            help="Cost table for a router trained on every model (train --models): a .csv or a shipped "
            "name (mmlu-pro, routerdc, alpacaeval)."
        ),
    ] = None,
    hopeless: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="N-model blocking: a query predicted below this for every model goes to the cheapest.",
        ),
    ] = 0.0,
) -> None:
    """Score a router on an outcome file and print the metrics table.

    A router trained on every model (``train --models``) without ``--weak/--strong`` gets the
    N-model table instead: single models, their hull, the oracle, and per policy the area of
    its quality–cost curve over the hull and the cost at 95/99/100 % of the best model,
    priced by ``--costs`` (named in the output).

    On a file with real-valued quality it also prints Hybrid LLM's own metric: the quality
    drop (%) vs. all-strong at 10/20/40 % cost advantage, on the mean sampled quality.
    """
    from dataclasses import replace

    from firewall_routing.embeddings import progress_bars
    from firewall_routing.experiment.evaluation import evaluate_router, require_evaluable
    from firewall_routing.experiment.report import format_evaluation
    from firewall_routing.files import check_output_file
    from firewall_routing.metrics import require_gap
    from firewall_routing.routers import REGISTRY, RouterMetadata, load_router, make_router

    if json_out is not None:
        check_output_file(json_out, "--json")  # before the metrics: not a traceback after them
    table = _load(outcomes, weak, strong, fmt, metric, quality_threshold, drop_incomplete)
    require_evaluable(table)
    builtin = router in REGISTRY and not Path(router).exists()
    r = make_router(router) if builtin else load_router(router)
    if r.model_names and r.metadata.weak is None:
        if weak is None and strong is None:
            _say(f"scoring {len(table)} queries with {r.name}{_embeds(r)}")
            with progress_bars():
                _evaluate_models(r, table, costs, hopeless, bootstrap, json_out)
            return
        r.use_pair(table.weak.name, table.strong.name, "soft-block")
    # Before any scoring: APGR on a pair whose "strong" model is not better is meaningless.
    p_w, p_s = float(table.weak.pass_rate.mean()), float(table.strong.pass_rate.mean())
    require_gap(p_w, p_s, table.weak.name, table.strong.name)
    boot = f", then {bootstrap} bootstrap resamples for the CIs" if bootstrap else ""
    _say(f"scoring {len(table)} queries with {r.name}{_embeds(r)}{boot}")
    with progress_bars():
        result = evaluate_router(r, table, n_boot=bootstrap)
    trained = (r.metadata.weak, r.metadata.strong)
    if None not in trained and trained != (table.weak.name, table.strong.name):
        typer.echo(
            f"note: the router was trained on {trained[0]} → {trained[1]} (router.json); "
            f"this table is {table.weak.name} → {table.strong.name}",
            err=True,
        )
    if r.metadata != RouterMetadata():
        result = replace(result, router_metadata=r.metadata.model_dump(mode="json"))
    typer.echo(format_evaluation(result))
    extra: dict[str, object] = {"notes": list(table.notes)} if table.notes else {}
    if table.weak.has_quality and table.strong.has_quality:
        from firewall_routing.metrics import COST_ADVANTAGES, quality_cost_curve

        qc = quality_cost_curve(r.score_table(table), table.weak.mean_quality(), table.strong.mean_quality())
        drops = {f"quality_drop@cost_adv{int(c * 100)}": qc.at(c) for c in COST_ADVANTAGES}
        extra["real_valued_quality"] = {"weak": qc.weak_quality, "strong": qc.strong_quality, **drops}
        typer.echo(
            f"Hybrid LLM metric on real-valued quality (mean per query; all-weak {qc.weak_quality:.4g}, "
            f"all-strong {qc.strong_quality:.4g}): quality drop "
            + ", ".join(f"{qc.at(c):.2f} % at {int(c * 100)} % cost advantage" for c in COST_ADVANTAGES)
        )
    if json_out is not None:
        import json

        json_out.write_text(json.dumps(result.to_json() | extra, indent=2) + "\n")


def _evaluate_models(
    r: Router, table: OutcomeTable, costs: str | None, hopeless: float, bootstrap: int, json_out: Path | None
) -> None:
    """``evaluate`` of a router trained on every model: the N-model quality–cost table."""
    import json

    from firewall_routing.costs import SHIPPED, load_costs, shipped_costs
    from firewall_routing.experiment.evaluation import evaluate_models
    from firewall_routing.experiment.report import format_models_evaluation

    if costs is None:
        raise InputError(
            "this router predicts every model: pass --costs (a .csv or one of "
            f"{', '.join(SHIPPED)}) to price them, or --weak/--strong to route one pair",
            field="--costs",
        )
    cost_table = load_costs(shipped_costs(costs) if costs in SHIPPED else Path(costs))
    models = list(r.model_names)
    for m in models:
        table.model(m)  # a model the router learned but the table lacks: one line
    source = str(table.source or "the outcome table")
    ghosts = [m for m in cost_table.model_names if m not in table.model_names]
    if ghosts:  # a typo in the cost table would otherwise price nothing, silently
        raise InputError(
            f"model {ghosts[0]!r} has a cost but is not in {source}", path=cost_table.path, field="model"
        )
    cost_table.require(models, source)
    rows = table.complete(models)
    pred = r.predict_models(rows.prompts)
    res = evaluate_models(
        pred, rows, models, cost_table.query_costs(models, len(rows)), hopeless=hopeless, n_boot=bootstrap
    )
    res["costs"] = cost_table.describe()
    res["cost_provenance"] = cost_table.provenance()
    typer.echo(format_models_evaluation(res))
    if json_out is not None:
        json_out.write_text(json.dumps(res, indent=2) + "\n")


# Commands of later pipeline stages register themselves here (each module keeps its heavy
# imports inside the command functions).
from firewall_routing.experiment.commands import register as _register_reproduce  # noqa: E402

_register_reproduce(app)
from firewall_routing.experiment.sweep_commands import register as _register_sweep  # noqa: E402

_register_sweep(app)
from firewall_routing.sampling.commands import register as _register_sampling  # noqa: E402

_register_sampling(app)
from firewall_routing.serve.commands import register as _register_serve  # noqa: E402

_register_serve(app)


def _untruncated_command_list(typer_app: typer.Typer) -> None:
    """Give every command an explicit short help (its docstring's first paragraph).

    click cuts a derived short help to the terminal width with "..."; an explicit one is
    wrapped instead, so ``firewall-routing --help`` shows each command's whole summary.
    """
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(doc.strip().split("\n\n")[0].split())


_untruncated_command_list(app)


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Base classes of typer's command-line usage errors, whichever click typer runs on.

    typer 0.29 vendors click as ``typer._click`` and its errors derive from
    ``typer.TyperException``, not from ``click.ClickException``; older typer raised the
    real click's. Catching only one of the two turned every usage mistake into a traceback
    (issue 12), so both are caught; ``tests/test_cli.py`` runs the installed script to prove it.
    """
    types: list[type[Exception]] = []
    typer_exc = getattr(typer, "TyperException", None)
    if isinstance(typer_exc, type) and issubclass(typer_exc, Exception):
        types.append(typer_exc)
    try:
        import click
    except ImportError:
        pass
    else:
        types.append(click.ClickException)
    return tuple(types)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _show_usage_error(e: Exception) -> int:
    """Print a usage error as one line (no usage block, no panel); return its exit status."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        # A bare command with no_args_is_help: the help *is* the message (click exits 2).
        typer.echo(ctx.get_help(), err=True)
        return 2
    fmt = getattr(e, "format_message", None)
    message = _one_line(fmt() if callable(fmt) else str(e))
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    typer.echo(f"error: {message}{hint}", err=True)
    code = getattr(e, "exit_code", 2)
    return code if isinstance(code, int) else 2


def _quiet_third_party_progress() -> None:
    """No "Loading weights" bars from transformers on every command's stderr.

    transformers reads huggingface_hub's switch when it is first imported (lazily, inside a
    command), so setting the variable here is enough and costs no import; a user who wants
    the bars back sets HF_HUB_DISABLE_PROGRESS_BARS=0. Our own progress bars are plain tqdm.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _validation_summary(e: ValidationError) -> str:
    """Every bad option of a pydantic check on one line (not only the first one)."""
    return "; ".join(
        f"option '{where}': {_one_line(msg)}" if where else _one_line(msg)
        for where, msg in validation_problems(e, missing="Field required")
    )


def main() -> None:
    """Console-script entry: one-line errors with exit 2 for any user mistake, 130 on Ctrl-C."""
    _quiet_third_party_progress()
    try:
        rv = app(standalone_mode=False)
    except (InputError, MetricError) as e:
        typer.echo(f"error: {_one_line(str(e))}", err=True)
        sys.exit(2)
    except ValidationError as e:  # option values checked by a pydantic config model
        typer.echo(f"error: {_validation_summary(e)}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except (MemoryError, OSError) as e:  # a file or the machine refused: one line, not a traceback
        # (commands check their outputs first; this is the net for whatever slips past)
        where = f"{e.filename}: " if isinstance(e, OSError) and e.filename else ""
        what = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
        typer.echo(f"error: {where}{_one_line(what)}", err=True)
        sys.exit(2)
    except _usage_error_types() as e:
        sys.exit(_show_usage_error(e))
    # Without standalone mode, typer returns a command's ``typer.Exit(code)`` as the value.
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


if __name__ == "__main__":
    main()
