"""The shared process runner (local llama.cpp server, serve tests, benchmarks)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from firewall_routing.processes import free_port, running_process, start_process


def test_running_process_stops_the_whole_group(tmp_path: Path) -> None:
    """The helper tests and benchmarks share: own session, health polled, group stopped."""
    port = free_port()
    code = (
        "import http.server, subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "print(child.pid, flush=True)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    log = tmp_path / "log.txt"
    with running_process([sys.executable, "-c", code], f"http://127.0.0.1:{port}/", log=log) as (proc, _):
        assert proc.poll() is None
        child = int(log.read_text().split()[0])
    assert proc.poll() is not None
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the server's child outlived it"


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever inherited it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_running_process_reports_the_log_of_a_dead_server(tmp_path: Path) -> None:
    code = "import sys; print('boom: cannot start'); sys.exit(3)"
    with (
        pytest.raises(RuntimeError, match="boom: cannot start"),
        running_process([sys.executable, "-c", code], "http://127.0.0.1:1/", timeout=30),
    ):
        pass


def test_start_process_stops_a_server_that_never_gets_healthy(tmp_path: Path) -> None:
    """Alive but never answering: stopped before the error, so no server is left behind."""
    log = tmp_path / "log.txt"
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(300)"
    with pytest.raises(RuntimeError, match="not ready after 5s"):
        start_process([sys.executable, "-c", code], "http://127.0.0.1:1/", log=log, timeout=5)
    assert not _alive(int(log.read_text().split()[0]))
