"""``firewall-routing calibrate`` and ``firewall-routing serve``.

Heavy imports (torch, onnxruntime, FastAPI, uvicorn) stay inside the command functions so
``firewall-routing --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

SERVE_EPILOG = """A minimal config (YAML; TOML takes the same keys):

\b
  router: routers/mine        # a directory saved by `firewall-routing train`
  weak:   {base_url: http://127.0.0.1:8081/v1, model: small}
  strong: {base_url: https://api.example.com/v1, model: big}
  default_model: firewall@30%  # needs <router>/calibration.json (`calibrate`)

Clients name the model per request: firewall@N% (about N % strong calls, from the
calibration), firewall@t=T (raw score threshold), weak or strong. Optional settings:
calibration, auth_keys, default_model, max_body_bytes, fallback, backend, context_tokens,
scoring_threads, encoder_threads, keep_alive_timeout, host, port. API keys come from
FIREWALL_ROUTING_WEAK_API_KEY / FIREWALL_ROUTING_STRONG_API_KEY, client keys from
FIREWALL_ROUTING_AUTH_KEYS. A config error names every bad setting."""


def register(app: typer.Typer) -> None:
    app.command()(calibrate)
    app.command(epilog=SERVE_EPILOG)(serve)


def calibrate(
    router: Annotated[Path, typer.Argument(help="Saved router directory.")],
    prompts: Annotated[
        Path,
        typer.Argument(
            help="Calibration prompts: text (one per line), JSONL with 'prompt', or an outcome "
            "file (.json RouterDC, .csv)."
        ),
    ],
    backend: Annotated[
        Literal["onnx", "torch", "static"],  # serve.scoring.Backend, spelt here so --help imports no numpy
        typer.Option(
            help="Scoring backend for embedding routers: onnx, torch or static (routers "
            "trained with encoder static). Use the one the server will use (its default is onnx)."
        ),
    ] = "onnx",
    weak: Annotated[str | None, typer.Option("--weak", help="Weak model (RouterDC files).")] = None,
    strong: Annotated[str | None, typer.Option("--strong", help="Strong model (RouterDC files).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output file (default: calibration.json inside the router directory)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing calibration file.")] = False,
) -> None:
    """Compute score thresholds for 0–100 % strong calls and save calibration.json.

    Convention: a query goes strong iff score < threshold; a fraction f maps to the
    f-quantile of the calibration scores (ties handled: see firewall_routing.calibration).
    Needs at least 100 prompts; refuses to replace an existing file without --force.
    """
    from firewall_routing.calibration import calibrate as compute
    from firewall_routing.calibration import (
        calibration_path,
        check_enough_prompts,
        format_table,
        missed_percents,
        read_prompts,
        router_fingerprint,
        save_calibration,
    )
    from firewall_routing.errors import InputError
    from firewall_routing.routers import load_router
    from firewall_routing.serve.scoring import make_scorer

    target = calibration_path(out if out is not None else router)
    if target.exists() and not force:  # checked before scoring: fail in a second, not minutes
        raise InputError("calibration file already exists: pass --force to replace it", path=target)
    texts = read_prompts(prompts, weak, strong)
    check_enough_prompts(len(texts))
    r = load_router(router)
    scorer = make_scorer(r, backend)
    # torch: router.score uses the on-disk embedding cache, same vectors as the server's.
    scores = r.score(texts) if scorer.backend == "torch" else scorer(texts, progress=True)
    cal = compute(
        scores,
        router=str(router.resolve()),  # absolute: the file may be read from elsewhere
        router_sha256=router_fingerprint(router),
        backend=scorer.backend,
        source=str(prompts.resolve()),
    )
    path = save_calibration(cal, target, overwrite=force)
    typer.echo(format_table(cal))
    typer.echo(f"calibrated on {len(texts)} prompts ({scorer.backend}) → {path}")
    if missed := missed_percents(cal):
        typer.echo(
            f"warning: tied scores: {len(missed)} of 101 percents cannot be produced within "
            f"0.5 points (e.g. {missed[0]} %); see the observed column",
            err=True,
        )


def serve(
    config: Annotated[Path, typer.Option("--config", help="Server config (.yaml or .toml).")],
    host: Annotated[str | None, typer.Option(help="Override the config's host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override the config's port.")] = None,
) -> None:
    """Run the OpenAI-compatible routing server (config keys below)."""
    import uvicorn

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.config import load_config, with_overrides

    cfg = with_overrides(load_config(config), host=host, port=port)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    # httpx logs every upstream call at INFO: keep it to one JSON line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(cfg)
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        access_log=False,
        log_level="info",
        # Above the idle expiry of client pools (httpx/openai 5 s): uvicorn's own 5 s default
        # closed connections exactly when clients reused them (1 in ~4,500 requests failed).
        timeout_keep_alive=cfg.keep_alive_timeout,
    )
