"""``firewall-routing calibrate`` and ``firewall-routing serve``.

Heavy imports (torch, onnxruntime, FastAPI, uvicorn) stay inside the command functions so
``firewall-routing --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(calibrate)
    app.command()(serve)


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
        str,
        typer.Option(
            help="Scoring backend for embedding-head routers: onnx or torch. Use the one the "
            "server will use (its default is onnx)."
        ),
    ] = "onnx",
    weak: Annotated[str | None, typer.Option("--weak", help="Weak model (RouterDC files).")] = None,
    strong: Annotated[str | None, typer.Option("--strong", help="Strong model (RouterDC files).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output file (default: calibration.json inside the router directory)."),
    ] = None,
) -> None:
    """Compute score thresholds for 0–100 % strong calls and save calibration.json.

    Convention: a query goes strong iff score < threshold; a fraction f maps to the
    f-quantile of the calibration scores (ties handled: see firewall_routing.calibration).
    """
    from firewall_routing.calibration import calibrate as compute
    from firewall_routing.calibration import format_table, read_prompts, save_calibration
    from firewall_routing.errors import InputError
    from firewall_routing.routers import load_router
    from firewall_routing.serve.scoring import make_scorer

    if backend not in ("onnx", "torch"):
        raise InputError(f"--backend must be 'onnx' or 'torch', got '{backend}'")
    texts = read_prompts(prompts, weak, strong)
    r = load_router(router)
    scorer = make_scorer(r, backend)  # type: ignore[arg-type]
    # torch: router.score uses the on-disk embedding cache, same vectors as the server's.
    scores = r.score(texts) if scorer.backend == "torch" else scorer(texts, progress=True)
    cal = compute(scores, router=str(router), backend=scorer.backend, source=str(prompts))
    path = save_calibration(cal, out if out is not None else router)
    typer.echo(format_table(cal))
    typer.echo(f"calibrated on {len(texts)} prompts ({scorer.backend}) → {path}")


def serve(
    config: Annotated[Path, typer.Option("--config", help="Server config (.yaml or .toml).")],
    host: Annotated[str | None, typer.Option(help="Override the config's host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override the config's port.")] = None,
) -> None:
    """Run the OpenAI-compatible routing server (see docs/serving.md)."""
    import uvicorn

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.config import load_config

    cfg = load_config(config)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    # httpx logs every upstream call at INFO: keep it to one JSON line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(cfg)
    uvicorn.run(
        app,
        host=host or cfg.host,
        port=port if port is not None else cfg.port,
        access_log=False,
        log_level="info",
    )
