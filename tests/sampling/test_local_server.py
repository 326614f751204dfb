"""``local-server`` without a model loaded: thread default, a taken port."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firewall_routing.errors import InputError
from firewall_routing.sampling import local_server as ls


@pytest.fixture()
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 8)])
def test_default_threads_is_half_the_cores(cpus: int, threads: int) -> None:
    assert ls.default_threads(cpus) == threads


def test_server_options_always_set_threads(tmp_path: Path) -> None:
    """llama.cpp's own default (every physical core) must never be used implicitly."""
    opts = ls.ServerOptions(tmp_path / "m.gguf")
    assert opts.threads == ls.default_threads()


def test_cli_passes_the_default_threads(monkeypatch: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from firewall_routing.cli import app

    seen: list[ls.ServerOptions] = []
    monkeypatch.setattr(ls, "serve_forever", lambda opts, announce: seen.append(opts))
    monkeypatch.setattr(ls, "default_threads", lambda cpus=None: 3)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    result = CliRunner().invoke(app, ["local-server", "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert seen[0].threads == 3
    result = CliRunner().invoke(app, ["local-server", "--model", str(model), "--threads", "1"])
    assert seen[1].threads == 1


def test_check_port_free(taken_port: int) -> None:
    with pytest.raises(InputError, match=f"port {taken_port} on 127.0.0.1 is already in use"):
        ls.check_port_free(taken_port)
    ls.check_port_free(ls.free_port())


def test_taken_port_is_one_line_exit_2(taken_port: int, tmp_path: Path) -> None:
    """Checked before the model is loaded: a dummy file is enough to reach the check."""
    model = tmp_path / "m.gguf"
    model.write_bytes(b"not a gguf")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "firewall_routing.cli",
            "local-server",
            "--model",
            str(model),
            "--port",
            str(taken_port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(taken_port) in lines[0] and "already in use" in lines[0], lines
