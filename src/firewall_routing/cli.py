"""The ``firewall-routing`` command line.

Only light modules are imported here so ``--help`` is instant; each command imports what it
needs. User errors (:class:`InputError`) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from firewall_routing.errors import InputError, MetricError

app = typer.Typer(
    name="firewall-routing",
    help="Route LLM queries between a weak and a strong model (Firewall Routing, EMNLP 2025).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WeakOpt = Annotated[str | None, typer.Option("--weak", help="Weak model name (files with several models).")]
StrongOpt = Annotated[
    str | None, typer.Option("--strong", help="Strong model name (files with several models).")
]
GreedyOpt = Annotated[
    str,
    typer.Option(
        "--greedy-approx",
        help="Where greedy answers are missing: 'majority' (1[pass rate ≥ 0.5], reported) or 'none' (fail).",
    ),
]
PairingOpt = Annotated[
    str,
    typer.Option(
        "--pairing-approx",
        help="Where paired samples are missing (win-rate): "
        "'independent' (expectation, reported) or 'none' (fail).",
    ),
]


def _approx(greedy: str, pairing: str):  # type: ignore[no-untyped-def]
    from firewall_routing.labels import Approximations

    if greedy not in ("none", "majority"):
        raise InputError(f"--greedy-approx must be 'none' or 'majority', got '{greedy}'")
    if pairing not in ("none", "independent"):
        raise InputError(f"--pairing-approx must be 'none' or 'independent', got '{pairing}'")
    return Approximations(greedy=greedy, pairing=pairing)  # type: ignore[arg-type]


def _json_options(text: str) -> dict[str, object]:
    import json

    try:
        opts = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--router-options is not valid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(opts, dict):
        raise InputError("--router-options must be a JSON object")
    return opts


@app.command()
def labels(
    outcomes: Annotated[
        Path, typer.Argument(help="Outcome file (RouterDC .json, RouteLLM .csv, generic .jsonl/.csv).")
    ],
    design: Annotated[
        str, typer.Option(help="Label design (see DESIGN.md §3), e.g. soft-block.")
    ] = "soft-block",
    out: Annotated[Path, typer.Option(help="Output JSONL: id, prompt, label.")] = Path("labels.jsonl"),
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    greedy_approx: GreedyOpt = "majority",
    pairing_approx: PairingOpt = "independent",
) -> None:
    """Write the labels of one design for every query of an outcome file (to train elsewhere)."""
    import json

    from firewall_routing.labels import compute_labels
    from firewall_routing.outcomes import load_table

    table = load_table(outcomes, weak, strong)
    lab = compute_labels(table, design, _approx(greedy_approx, pairing_approx))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for i, p, v in zip(table.ids, table.prompts, lab.values, strict=True):
            f.write(json.dumps({"id": i, "prompt": p, "label": float(v), "design": design}) + "\n")
    for note in lab.notes:
        typer.echo(f"approximation: {note}", err=True)
    if lab.params:
        typer.echo(f"parameters: {lab.params}", err=True)
    typer.echo(f"wrote {len(table)} labels ({design}, mean {lab.values.mean():.3f}) to {out}")


@app.command()
def train(
    outcomes: Annotated[Path, typer.Argument(help="Training outcome file.")],
    out: Annotated[Path, typer.Option(help="Directory to save the router into.")],
    design: Annotated[str, typer.Option(help="Label design.")] = "soft-block",
    router: Annotated[str, typer.Option(help="Router type (`firewall-routing routers` lists them).")] = (
        "embedding-head"
    ),
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    val_fraction: Annotated[float, typer.Option(help="Held-out share for best-epoch selection.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for the split and the router (if it takes one).")] = 0,
    router_options: Annotated[
        str,
        typer.Option(
            help='Router options as JSON, e.g. \'{"epochs": 3, "max_length": 128}\'; '
            "'help' lists the router's options, types, defaults (see docs/routers.md)."
        ),
    ] = "{}",
    greedy_approx: GreedyOpt = "majority",
    pairing_approx: PairingOpt = "independent",
) -> None:
    """Train a router on an outcome file with one label design and save it.

    Train-free routers (random, oracle, margin) are saved as they are, so every router can
    be passed to `evaluate` and `serve` as a directory.
    """
    from firewall_routing.experiment import split_train_val
    from firewall_routing.labels import compute_labels
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers import RouterMetadata, Validation, make_router, router_class, router_help

    if router_options.strip() == "help":
        typer.echo(router_help(router))
        return
    cls = router_class(router)
    r = make_router(router, **({"seed": seed} if cls.seeded() else {}) | _json_options(router_options))
    table = load_table(outcomes, weak, strong)
    weak_name, strong_name = table.weak.name, table.strong.name
    if not cls.trains:
        r.save(out, RouterMetadata(weak=weak_name, strong=strong_name))
        typer.echo(f"{router} does not train: saved its options → {out}")
        return
    tr, va = split_train_val(table, val_fraction, seed)
    lab = compute_labels(tr, design, _approx(greedy_approx, pairing_approx))
    rep = r.fit(tr.prompts, lab.values, val=Validation.from_table(va) if len(va) else None)
    r.save(
        out,
        RouterMetadata.for_training(
            tr.prompts, lab.values, label_design=design, weak=weak_name, strong=strong_name
        ),
    )
    for note in lab.notes:
        typer.echo(f"approximation: {note}", err=True)
    best = f", best epoch {rep.best_epoch} (val APGR {rep.best_val_apgr:.2f})" if rep.best_val_apgr else ""
    typer.echo(f"trained {router} on {len(tr)} queries ({design}){best} in {rep.seconds:.1f}s → {out}")


@app.command()
def routers() -> None:
    """List every router: what it can do and its options (type = default  description)."""
    from firewall_routing.routers import REGISTRY, router_help

    typer.echo("\n\n".join(router_help(name) for name in REGISTRY))


@app.command()
def evaluate(
    router: Annotated[
        str, typer.Argument(help="Saved router directory, or a train-free router name (random, oracle).")
    ],
    outcomes: Annotated[Path, typer.Argument(help="Outcome file to score.")],
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95 % CIs (0 = off).")] = 1000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON.")] = None,
) -> None:
    """Score a router on an outcome file and print the metrics table."""
    from firewall_routing.outcomes import load_table
    from firewall_routing.report import evaluate_router, format_evaluation
    from firewall_routing.routers import REGISTRY, RouterMetadata, load_router, make_router

    table = load_table(outcomes, weak, strong)
    builtin = router in REGISTRY and not Path(router).exists()
    r = make_router(router) if builtin else load_router(router)
    result = evaluate_router(r, table, n_boot=bootstrap)
    trained = (r.metadata.weak, r.metadata.strong)
    if None not in trained and trained != (table.weak.name, table.strong.name):
        typer.echo(
            f"note: the router was trained on {trained[0]} → {trained[1]} (router.json); "
            f"this table is {table.weak.name} → {table.strong.name}",
            err=True,
        )
    if r.metadata != RouterMetadata():
        result["router_metadata"] = r.metadata.model_dump(mode="json")
    typer.echo(format_evaluation(result))
    if json_out is not None:
        import json

        json_out.write_text(json.dumps(result, indent=2) + "\n")


# Commands of later pipeline stages register themselves here (each module keeps its heavy
# imports inside the command functions).
from firewall_routing.experiment_cli import register as _register_reproduce  # noqa: E402

_register_reproduce(app)
from firewall_routing.sampling.commands import register as _register_sampling  # noqa: E402

_register_sampling(app)
from firewall_routing.serve.commands import register as _register_serve  # noqa: E402

_register_serve(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except InputError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except MetricError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except ValidationError as e:  # option values checked by a pydantic config model
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        typer.echo(f"error: option '{where}': {err['msg'].removeprefix('Value error, ')}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
