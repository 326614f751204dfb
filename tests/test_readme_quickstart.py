"""The README's Quick start works as written, in a fresh shell (issue 25).

After ``make``, ``firewall-routing`` was not on PATH and every Quick-start command failed with
``command not found``. These tests read the commands from the README itself, so they fail when
the README drifts from what works:

* fast: a fresh shell (empty environment) that follows the README's install-and-PATH lines
  finds ``firewall-routing``; every file the commands name exists; the serve config they use
  loads and points at the servers the other lines start and call;
* slow (``make test-slow``: it embeds 1,200 prompts and starts a llama.cpp server): the whole
  block, as written, in a fresh shell in a copy of the repository, ends with a routed answer.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ("git clone", "make install")  # what the test environment has already done


def quickstart() -> list[str]:
    """The commands of the README's first ``## Quick start`` block, continuations joined."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's Quick start has a ```bash block"
    return [c.strip() for c in block.group(1).replace("\\\n", " ").splitlines() if c.strip()]


def _words(cmd: str) -> list[str]:
    return shlex.split(cmd.rstrip("&").strip(), comments=True)


def _fresh_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a new login shell has: no venv on PATH. PYTHONPATH is kept so a worktree's tests
    run its own sources through the shared venv (in a plain clone it is unset)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    for key in ("PYTHONPATH", "FIREWALL_ROUTING_CACHE", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env | (extra or {})


def _clone(tmp: Path) -> Path:
    """A stand-in for ``git clone && make install``: the repository's files the commands read,
    and ``.venv`` (the repository's own, else the one running these tests)."""
    repo = tmp / "firewall-routing"
    repo.mkdir()
    for name in ("data", "docs"):
        (repo / name).symlink_to(ROOT / name)
    # copied, not linked: a config's relative paths resolve from its real location
    shutil.copytree(ROOT / "examples", repo / "examples")
    venv = ROOT / ".venv" if (ROOT / ".venv" / "bin" / "activate").is_file() else Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file():
        pytest.skip("tests do not run in a virtual environment (no bin/activate)")
    (repo / ".venv").symlink_to(venv)
    return repo


def test_quickstart_starts_from_clone_and_install() -> None:
    cmds = quickstart()
    assert cmds[0].startswith("git clone") and "make install" in cmds[1]
    assert any(c.startswith("source .venv/bin/activate") for c in cmds[:3])
    tools = {_words(c)[0] for c in cmds}
    assert tools <= {"git", "make", "source", "firewall-routing", "curl"}, tools


def test_a_fresh_shell_following_the_readme_finds_the_command(tmp_path: Path) -> None:
    """The bug: without the PATH step, ``firewall-routing`` is ``command not found``."""
    repo = _clone(tmp_path)
    setup = [c for c in quickstart() if not c.startswith(SETUP) and not c.startswith("firewall-routing")]
    setup = [c for c in setup if not c.startswith("curl")]
    script = "\n".join(["set -e", *setup, "command -v firewall-routing", "firewall-routing --help"])
    out = subprocess.run(
        ["bash", "-c", script], cwd=repo, env=_fresh_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "serve" in out.stdout
    bare = subprocess.run(
        ["bash", "-c", "command -v firewall-routing"], cwd=repo, env=_fresh_env(), capture_output=True
    )
    assert bare.returncode != 0, "the test's fresh shell must not already have the command on PATH"


def test_every_file_the_quickstart_names_exists_and_the_config_matches_it() -> None:
    from firewall_routing.serve.config import load_config

    cmds = quickstart()
    files = [w for c in cmds for w in _words(c) if re.match(r"^(data|examples|docs)/", w)]
    assert files, "the Quick start reads shipped files"
    missing = [f for f in files if not (ROOT / f).exists()]
    assert missing == []
    train = next(_words(c) for c in cmds if c.startswith("firewall-routing train"))
    out_dir = train[train.index("--out") + 1]
    serve = next(_words(c) for c in cmds if c.startswith("firewall-routing serve"))
    config_path = ROOT / serve[serve.index("--config") + 1]
    cfg = load_config(config_path, env={})
    assert cfg.router.resolve() == (ROOT / out_dir).resolve(), "serve uses the router train wrote"
    local = next(_words(c) for c in cmds if c.startswith("firewall-routing local-server"))
    port = local[local.index("--port") + 1]
    assert cfg.weak.base_url == cfg.strong.base_url == f"http://127.0.0.1:{port}/v1"
    curl = next(c for c in cmds if c.startswith("curl"))
    assert f"http://{cfg.host}:{cfg.port}/v1/chat/completions" in curl


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_quickstart_as_written_ends_with_a_routed_answer(tmp_path: Path) -> None:
    if not (_port_free(8000) and _port_free(8080)):
        pytest.skip("ports 8000/8080 are in use on this machine")
    repo = _clone(tmp_path)
    cmds = [c for c in quickstart() if not c.startswith(SETUP)]
    env = _fresh_env()
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    # Files, not pipes: the background servers inherit the shell's output and keep a pipe
    # open after the last command has ended.
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            ["bash", "-c", "\n".join(["set -e", *cmds])],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # the background servers share its process group
        )
        try:
            proc.wait(timeout=1700)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert proc.returncode == 0, "\n".join(ln for ln in stderr.splitlines() if "curl: (7)" not in ln)[-3000:]
    headers = stdout.lower()
    assert "http/1.1 200" in headers
    route = re.search(r"x-firewall-route: (weak|strong)", headers)
    assert route, stdout[-2000:]
    assert re.search(r"x-firewall-score: [0-9.]+", headers)
    assert '"choices"' in stdout
    assert (repo / "runs" / "quick" / "calibration.json").is_file()
    shutil.rmtree(repo / "runs", ignore_errors=True)
