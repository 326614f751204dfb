"""``firewall-routing calibrate`` and ``firewall-routing serve``.

Heavy imports (torch, onnxruntime, FastAPI, uvicorn) stay inside the command functions so
``firewall-routing --help`` stays instant.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    import uvicorn

    from firewall_routing.serve.config import ServeConfig

SERVE_EPILOG = """A minimal config (YAML; TOML takes the same keys):

\b
  router: routers/mine        # a directory saved by `firewall-routing train`
  weak:   {base_url: http://127.0.0.1:8081/v1, model: small}
  strong: {base_url: https://api.example.com/v1, model: big}
  default_model: firewall@30%  # needs <router>/calibration.json (`calibrate`)

Clients name the model per request: firewall@N% (about N % strong calls, from the
calibration), firewall@t=T (raw score threshold), weak or strong. Optional settings:
calibration, auth_keys, default_model, max_body_bytes, fallback, backend, context_tokens,
scoring_threads, scoring_batch_size, scoring_batch_window_ms, scoring_inline, encoder_threads, keep_alive_timeout, workers, host, port. API keys come from
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

    # Inputs first: with a calibration already there, a mistyped prompts file said
    # "calibration file already exists" instead of naming the missing file.
    if not router.is_dir():
        raise InputError(
            "router not found (a directory saved by `train`)"
            if not router.exists()
            else "not a router directory",
            path=router,
        )
    if not prompts.is_file():
        raise InputError("file not found" if not prompts.exists() else "not a file", path=prompts)
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
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes sharing the port (default: the config's workers, 1); about "
            "one per core. Each loads the router; /metrics sums all of them."
        ),
    ] = None,
    scoring_batch_size: Annotated[
        int | None,
        typer.Option(
            help="Override the config's scoring_batch_size: most prompts per batched scoring call (default 64)."
        ),
    ] = None,
    scoring_batch_window_ms: Annotated[
        float | None,
        typer.Option(
            help="Override the config's scoring_batch_window_ms: how long a free scoring thread "
            "gathers more prompts while another batch runs (default 0: what is queued now)."
        ),
    ] = None,
) -> None:
    """Run the OpenAI-compatible routing server (config keys below)."""
    import uvicorn

    from firewall_routing.serve.config import load_config, with_overrides
    from firewall_routing.serve.protocol import http_options

    scoring = {"scoring_batch_size": scoring_batch_size, "scoring_batch_window_ms": scoring_batch_window_ms}
    cfg = with_overrides(load_config(config), host=host, port=port, workers=workers, **scoring)
    check_port(cfg.host, cfg.port)  # before the router loads: seconds, then 8 lines of uvicorn errors
    options = {
        **http_options(),  # request heads over 64 KiB: 431 before the app (and auth) runs
        "host": cfg.host,
        "port": cfg.port,
        "access_log": False,  # one JSON line per request is written by the app itself
        "log_level": "info",
        # Above the idle expiry of client pools (httpx/openai 5 s): uvicorn's own 5 s default
        # closed connections exactly when clients reused them (1 in ~4,500 requests failed).
        "timeout_keep_alive": cfg.keep_alive_timeout,
    }
    if cfg.workers == 1:
        from firewall_routing.serve.app import configure_logging, create_app, freeze_startup_objects

        configure_logging()
        app = create_app(cfg)
        freeze_startup_objects()
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    serve_workers(cfg, config, options, {k: v for k, v in scoring.items() if v is not None})


def check_port(host: str, port: int) -> None:
    """One line and exit 2 when ``host:port`` cannot be listened on (in use, no such address).

    uvicorn binds with SO_REUSEADDR, so this does too: a port left in TIME_WAIT by an
    earlier run is usable and is not refused here. Port 0 (the OS picks) is not checked.
    """
    import socket

    from firewall_routing.errors import InputError

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}", field="host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror}", field="port") from None


def serve_workers(
    cfg: ServeConfig, config: Path, options: dict[str, object], overrides: dict[str, object]
) -> None:
    """``cfg.workers`` uvicorn worker processes, each building the app from ``config``.

    Metrics: prometheus_client's multiprocess mode, in a directory created here and removed
    on exit (stale files from an earlier run would be summed in). It is set before the app
    module (and so prometheus_client) is imported, here and in the spawned workers.
    """
    import json
    import os
    import tempfile

    import uvicorn

    from firewall_routing.serve.prometheus import MULTIPROC_ENV

    with tempfile.TemporaryDirectory(prefix="firewall-routing-metrics-") as metrics_dir:
        os.environ[MULTIPROC_ENV] = metrics_dir
        from firewall_routing.serve.app import CONFIG_ENV, OVERRIDES_ENV, configure_logging
        from firewall_routing.serve.routing import build_decider

        # Load the router once here first: a bad router is then one error line and exit 2,
        # not N workers crashing (and being restarted) with tracebacks.
        build_decider(
            cfg.router,
            cfg.calibration,
            backend=cfg.backend,
            default_model=cfg.default_model,
            context_tokens=cfg.context_tokens,
            threads=cfg.encoder_threads,
        )
        os.environ[CONFIG_ENV] = str(config.resolve())
        os.environ[OVERRIDES_ENV] = json.dumps(overrides)  # the workers apply the same options
        configure_logging()
        logging.getLogger("firewall_routing.serve").info(
            "%d workers; metrics summed across them in %s", cfg.workers, metrics_dir
        )
        stopped_by = run_workers(
            uvicorn.Config(
                "firewall_routing.serve.app:app_from_env",
                factory=True,
                workers=cfg.workers,
                **options,  # type: ignore[arg-type]
            )
        )
    if stopped_by is not None:  # exit as one worker does (143 for SIGTERM), after the clean-up
        for handler in logging.getLogger().handlers:
            handler.flush()  # dying of the signal runs no atexit hook
        signal.signal(stopped_by, signal.SIG_DFL)
        signal.raise_signal(stopped_by)


def run_workers(config: uvicorn.Config) -> int | None:
    """uvicorn's worker supervisor, draining like one worker does; returns the stop signal.

    The supervisor holds its own copy of the listening socket and, on SIGTERM, only
    noticed it within 0.5 s and never closed it: the workers closed theirs, and the kernel
    went on completing connections into the queue of the supervisor's copy, which nobody
    accepts; they were reset when it exited (issue 24: 64 in-flight requests got
    ECONNRESET, with one worker all finished). Closing the copy in the signal handler
    makes a late client's connection refused (safe to retry: nothing was sent), as with
    one worker, while the workers finish what they accepted.
    """
    from uvicorn.supervisors.multiprocess import Multiprocess

    class Draining(Multiprocess):
        stop_signal: int | None = None

        def stop(self, sig: int, frame: object) -> None:
            for sock in self.sockets:
                sock.close()
            if self.stop_signal is None:
                self.stop_signal = sig
            self.should_exit.set()

    supervisor = Draining(config, sockets=[config.bind_socket()])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.stop)
    supervisor.run()
    if supervisor.stop_signal is not None:
        name = signal.Signals(supervisor.stop_signal).name
        logging.getLogger("firewall_routing.serve").info("stopped by %s: workers drained", name)
    return supervisor.stop_signal
