"""Running a server as a subprocess: start it, log to a file, poll a health URL, stop it.

One routine for the local llama.cpp server (``sampling.local_server``), the serve tests and
the benchmarks. The process gets its own session, so stopping it signals the whole process
group (a server's own workers and children included); output goes to a log file whose tail
is in the error when the server never gets healthy. Servers here bind 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

HOST = "127.0.0.1"


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


def start_process(
    args: list[str],
    health_url: str,
    *,
    log: Path | None = None,
    timeout: float = 180.0,
    ok: tuple[int, ...] = (200,),
    env: Mapping[str, str] | None = None,
    nice: int = 0,
) -> tuple[subprocess.Popen[bytes], Path]:
    """:func:`spawn_process`, then wait for ``health_url``; (process, log).

    If the server never gets healthy it is stopped and the RuntimeError carries the tail of
    its log. The caller stops a healthy one (:func:`stop_process`, or use
    :func:`running_process`).
    """
    log = log or Path(tempfile.mkstemp(prefix="fwr-server-", suffix=".log")[1])
    proc = spawn_process(args, log, env=env, nice=nice)
    try:
        wait_http(health_url, proc, timeout, ok)
    except BaseException as e:
        stop_process(proc, hard=True)
        if not isinstance(e, RuntimeError | TimeoutError):
            raise
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{args[:4]}: {e}; log {log}:\n{tail}") from None
    return proc, log


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
    """:func:`start_process`, yield, then :func:`stop_process` (even if the block raised)."""
    proc, path = start_process(args, health_url, log=log, timeout=timeout, ok=ok, env=env, nice=nice)
    try:
        yield proc, path
    finally:
        stop_process(proc)
