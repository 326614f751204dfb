"""`serve --workers N`: N processes on one port, metrics summed across them."""

from __future__ import annotations

import glob
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from firewall_routing.errors import InputError
from firewall_routing.processes import free_port, spawn_process, stop_process, wait_http
from firewall_routing.routers.random import RandomRouter
from firewall_routing.serve.config import load_config, with_overrides

HOST = "127.0.0.1"


def requests_counted(text: str) -> float:
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("firewall_requests_total{"))


def counts_per_worker(metrics_dir: str) -> dict[str, float]:
    """firewall_requests_total per worker, from each worker's own file (pid in the name)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for path in glob.glob(f"{metrics_dir}/counter_*.db"):
        families = MultiProcessCollector.merge([path], accumulate=True)  # type: ignore[no-untyped-call]
        out[Path(path).stem] = sum(
            s.value for f in families if f.name == "firewall_requests" for s in f.samples
        )
    return out


def test_serve_help_lists_workers() -> None:
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--workers" in result.output


def test_workers_setting_is_validated(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "router: r\nweak: {base_url: 'http://127.0.0.1:1/v1', model: w}\n"
        "strong: {base_url: 'http://127.0.0.1:1/v1', model: s}\nworkers: 3\n"
    )
    cfg = load_config(tmp_path / "c.yaml", env={})
    assert cfg.workers == 3 and with_overrides(cfg, workers=2).workers == 2
    with pytest.raises(InputError, match=r"'--workers'"):
        with_overrides(cfg, workers=0)


def spawn_serve(tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    """The installed CLI serving a random router with ``workers`` processes; (process, port, log).

    Both upstreams point at a port nothing listens on, so every request is a counted 502 and
    no upstream is needed.
    """
    RandomRouter(seed=0).save(tmp_path / "r")
    down = free_port()
    (tmp_path / "c.yaml").write_text(
        f"router: r\nweak: {{base_url: 'http://{HOST}:{down}/v1', model: w}}\n"
        f"strong: {{base_url: 'http://{HOST}:{down}/v1', model: s}}\n"
        "default_model: firewall@t=0.5\n"
    )
    port = free_port()
    cmd = [sys.executable, "-m", "firewall_routing.cli", "serve", "--config", str(tmp_path / "c.yaml")]
    log = tmp_path / "serve.log"
    return spawn_process([*cmd, "--port", str(port), "--workers", str(workers)], log), port, log


def test_two_workers_metrics_count_every_request(tmp_path: Path) -> None:
    """K requests spread over 2 workers: every /metrics answer reports all K, not one worker's."""
    proc, port, log = spawn_serve(tmp_path, workers=2)
    base = f"http://{HOST}:{port}"
    body = {"model": "firewall", "messages": [{"role": "user", "content": "hi"}]}
    sent = 0
    try:
        wait_http(f"{base}/healthz", proc, 120)
        found = re.search(r"metrics summed across them in (\S+)", log.read_text())
        assert found, log.read_text()
        metrics_dir = found.group(1)

        def one(_: int) -> int:  # a fresh connection each: the workers accept in turn
            return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30).status_code

        per_worker: dict[str, float] = {}
        for _ in range(5):  # until both workers have answered some (the kernel picks)
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(one, range(24)))
            sent += len(statuses)
            assert set(statuses) == {502}
            per_worker = counts_per_worker(metrics_dir)
            if sum(v > 0 for v in per_worker.values()) >= 2:
                break
        assert sum(v > 0 for v in per_worker.values()) == 2, per_worker
        assert sum(per_worker.values()) == sent
        for _ in range(4):  # whichever worker answers the scrape
            assert requests_counted(httpx.get(f"{base}/metrics", timeout=30).text) == sent
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith('{"endpoint"')]
        assert len(lines) == sent  # one JSON line per request, from both workers
    finally:
        stop_process(proc)
    deadline = time.monotonic() + 10
    while Path(metrics_dir).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(metrics_dir).exists()  # removed on exit: a restart must not sum stale files


def test_one_worker_needs_no_metrics_directory(tmp_path: Path, monkeypatch: Any) -> None:
    import uvicorn

    from firewall_routing.serve import app as app_module
    from firewall_routing.serve.commands import serve

    RandomRouter(seed=0).save(tmp_path / "r")
    (tmp_path / "c.yaml").write_text(
        "router: r\nweak: {base_url: 'http://127.0.0.1:1/v1', model: w}\n"
        "strong: {base_url: 'http://127.0.0.1:1/v1', model: s}\ndefault_model: firewall@t=0.5\n"
    )
    seen: dict[str, Any] = {}
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(app_module, "configure_logging", lambda: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    serve(config=tmp_path / "c.yaml", host=None, port=None, workers=None)
    assert "workers" not in seen and not isinstance(seen["app"], str)  # the app object itself


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_logs_one_line_per_request_with_any_worker_count(tmp_path: Path, workers: int) -> None:
    """uvicorn's logging set-up closes existing handlers: the request lines must survive it."""
    proc, port, log = spawn_serve(tmp_path, workers)
    body = {"model": "firewall", "messages": [{"role": "user", "content": "hi"}]}
    try:
        wait_http(f"http://{HOST}:{port}/healthz", proc, 120)
        for _ in range(3):
            r = httpx.post(f"http://{HOST}:{port}/v1/chat/completions", json=body, timeout=30)
            assert r.status_code == 502
        time.sleep(0.5)  # written within the writer's 50 ms period, not only at exit
        written = [ln for ln in log.read_text().splitlines() if ln.startswith('{"endpoint"')]
        assert len(written) == 3
    finally:
        stop_process(proc)
