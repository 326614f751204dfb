"""The hostile-but-fair client of issue 24, replayed against a real `serve` process.

`firewall-routing serve` runs as a subprocess (uvicorn + httptools, as deployed) in front of
a fake OpenAI upstream that runs in this process (uvicorn in a thread), so every case goes
through the real HTTP layer: header parsing, the 431/413 limits, header validation at send
time, the pooled upstream client. Each test is one case of the issue, named after it. The
in-process twins of these cases, one per fix, are in ``test_hardening.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from firewall_routing.calibration import calibrate, save_calibration
from firewall_routing.processes import free_port, spawn_process, stop_process, wait_http
from firewall_routing.routers.random import RandomRouter

HOST = "127.0.0.1"
KEY = "hostile-test-key"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- fake upstream


@dataclass
class Upstream:
    """An OpenAI-shaped upstream on a real port; counts calls and open streams."""

    port: int = field(default_factory=free_port)
    calls: int = 0
    open_streams: int = 0
    delay: float = 0.0  # seconds before answering (drain tests)
    status: int = 200

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status >= 500:
            return JSONResponse({"error": {"message": "secret upstream trace"}}, self.status)
        if body.get("stream"):
            return StreamingResponse(self.events(body["model"]), media_type="text/event-stream")
        message = {"role": "assistant", "content": f"answer from {body['model']}"}
        return JSONResponse(
            {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
             "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}
        )  # fmt: skip

    async def events(self, model: str) -> AsyncIterator[bytes]:
        self.open_streams += 1
        try:
            for word in ("hello", " there"):
                chunk = {"model": model, "choices": [{"index": 0, "delta": {"content": word}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                await asyncio.sleep(0.01)
            yield b"data: [DONE]\n\n"
        finally:
            self.open_streams -= 1

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    server = uvicorn.Server(uvicorn.Config(up.app(), host=HOST, port=up.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield up
    server.should_exit = True
    thread.join(10)


# --------------------------------------------------------------------------- the server


@dataclass
class Served:
    base: str
    process: Any
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        """The JSON request log lines written so far."""
        text = self.log.read_text(errors="replace")
        return [json.loads(ln) for ln in text.splitlines() if ln.startswith('{"endpoint"')]

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))


def write_config(tmp: Path, upstream_port: int, **extra: Any) -> Path:
    router = tmp / "r"
    RandomRouter(seed=0).save(router)
    save_calibration(calibrate(np.linspace(0.0, 1.0, 101)), router)
    up = f"http://{HOST}:{upstream_port}/v1"
    cfg = {
        "router": "r",
        "weak": {"base_url": up, "model": "w", "timeout": 5},
        "strong": {"base_url": up, "model": "s", "timeout": 5},
        "auth_keys": [KEY],
        "default_model": "firewall@t=0.5",
        **extra,
    }
    (tmp / "c.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    return tmp / "c.yaml"


def spawn_serve(tmp: Path, upstream_port: int, workers: int = 1, **extra: Any) -> Served:
    config = write_config(tmp, upstream_port, **extra)
    port = free_port()
    cmd = [sys.executable, "-m", "firewall_routing.cli", "serve", "--config", str(config)]
    log = tmp / "serve.log"
    proc = spawn_process([*cmd, "--port", str(port), "--workers", str(workers)], log)
    base = f"http://{HOST}:{port}"
    try:
        wait_http(f"{base}/healthz", proc, 120)
    except BaseException:
        stop_process(proc, hard=True)
        raise
    return Served(base, proc, log)


@pytest.fixture(scope="module")
def served(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = spawn_serve(tmp_path_factory.mktemp("hostile"), upstream.port)
    yield s
    stop_process(s.process)


def chat(served: Served, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{served.base}/v1/chat/completions", json=body, headers=AUTH, timeout=30, **kw)


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"}
    if code is not None:
        assert err["code"] == code


# --------------------------------------------------------------------------- 1: model names


@pytest.mark.parametrize("stream", [False, True])
def test_1_trailing_newline_names_are_404_and_bill_nothing(
    served: Served, upstream: Upstream, stream: bool
) -> None:
    before = upstream.calls
    for name in ("firewall@30%\n", "firewall@t=0.5\n"):
        r = chat(served, {"model": name, "messages": CHAT, "stream": stream})
        assert_openai_error(r, 404, "model_not_found")
    assert upstream.calls == before


def test_1_pool_survives_300_streams_abandoned_by_the_client(served: Served, upstream: Upstream) -> None:
    """More streams than the pool has connections (256) that once leaked one each — the
    trailing-newline name (refused now) and streams the client drops — then normal requests
    (before: every later request to that upstream was a 504 PoolTimeout)."""
    body = {"model": "firewall", "messages": CHAT, "stream": True}
    with httpx.Client(timeout=30) as client:
        for _ in range(300):
            bad = {**body, "model": "firewall@t=0.5\n"}
            r = client.post(f"{served.base}/v1/chat/completions", json=bad, headers=AUTH)
            assert r.status_code == 404
        for _ in range(300):
            with client.stream("POST", f"{served.base}/v1/chat/completions", json=body, headers=AUTH) as r:
                assert r.status_code == 200
            # (closing without reading the body drops the connection: a disconnect)
    for _ in range(5):
        r = chat(served, {"model": "firewall", "messages": CHAT})
        assert r.status_code == 200, r.text
        with httpx.stream(
            "POST", f"{served.base}/v1/chat/completions", json=body, headers=AUTH, timeout=30
        ) as s:
            assert s.status_code == 200 and b"[DONE]" in s.read()
    deadline = time.monotonic() + 5
    while upstream.open_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.open_streams == 0


# --------------------------------------------------------------------------- 2: size limits


def raw_request(served: Served, head: bytes, body: bytes = b"", read: bool = True) -> bytes:
    host, port = served.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        # refused mid-send: what was answered is still readable (or it was reset)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        data = b""
        if read:
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    data += chunk
        return data


def test_2_huge_header_is_431_in_openai_shape_before_auth(served: Served) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    answer = raw_request(served, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_header_fields_too_large"


def test_2_many_headers_add_up_to_the_same_limit(served: Served) -> None:
    many = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 100) for i in range(2000))
    answer = raw_request(served, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_2_normal_headers_and_a_large_body_in_one_read_pass(served: Served) -> None:
    """A small head followed at once by a body over the head limit is not a big head."""
    payload = json.dumps({"model": "firewall", "messages": [{"role": "user", "content": "x" * 200_000}]})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    ).encode()
    assert raw_request(served, head, payload.encode()).startswith(b"HTTP/1.1 200 ")


def test_2_twenty_25mb_headers_do_not_grow_memory(served: Served) -> None:
    """Was 155 MB -> 700 MB RSS; now each connection is cut at 64 KiB."""
    before = served.rss_kib()
    head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 25_000_000 + b"\r\n\r\n"
    threads = [threading.Thread(target=raw_request, args=(served, head)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    grown = (served.rss_kib() - before) / 1024
    assert grown < 40, f"RSS grew {grown:.0f} MB"
    assert httpx.get(f"{served.base}/healthz", timeout=10).status_code == 200


def test_2_declared_oversize_body_is_413_before_auth(served: Served) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 10000000\r\n\r\n"
    )
    answer = raw_request(served, head, b"{")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_too_large"


# --------------------------------------------------------------------------- 4: 400, not 500


@pytest.mark.parametrize(
    "raw",
    [
        # two user turns: the earlier one goes through the real MiniLM token counter
        b'{"model":"firewall","messages":[{"role":"user","content":"\\ud800x"},{"role":"user","content":"hi"}]}',
        b'{"model":"firewall","messages":[{"role":"user","content":"\\ud800x"}]}',
        b'{"model":"firewall","messages":[{"role":"user","content":"hi"}],"seed":' + b"9" * 5000 + b"}",
        b'{"model":"firewall","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
        b'{"model":"firewall","messages":[{"role":"user","content":"hi"}],"temperature":Infinity}',
    ],
    ids=["surrogate-earlier-turn", "surrogate", "5000-digit-int", "nan", "infinity"],
)
def test_4_invalid_unicode_and_huge_numbers_are_400(served: Served, upstream: Upstream, raw: bytes) -> None:
    before = upstream.calls
    r = httpx.post(
        f"{served.base}/v1/chat/completions",
        content=raw,
        headers={**AUTH, "content-type": "application/json"},
        timeout=30,
    )
    assert_openai_error(r, 400, "invalid_json")
    assert upstream.calls == before


# --------------------------------------------------------------------------- also seen


def test_also_stream_yes_is_400(served: Served) -> None:
    assert_openai_error(chat(served, {"model": "firewall", "messages": CHAT, "stream": "yes"}), 400)


def test_also_1mb_model_name_makes_a_short_log_line(served: Served) -> None:
    r = chat(served, {"model": "m" * 1_000_000, "messages": CHAT})
    assert_openai_error(r, 404, "model_not_found")
    time.sleep(0.3)  # the log writer drains every 50 ms
    assert max(len(json.dumps(line)) for line in served.lines()) < 2000


def test_also_upstream_5xx_body_is_not_echoed(served: Served, upstream: Upstream) -> None:
    upstream.status = 500
    try:
        r = chat(served, {"model": "firewall", "messages": CHAT})
    finally:
        upstream.status = 200
    assert_openai_error(r, 502)
    assert "secret" not in r.text


def test_schemathesis_against_the_real_server(served: Served) -> None:
    """The OpenAPI fuzz of ``test_fuzz.py``, but over HTTP against the real process (its
    HTTP layer, limits and header checks included), with the key, in CI time."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{served.base}/openapi.json", headers=AUTH)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    statuses: list[int] = []

    @given(case=cases)
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def one(case: Any) -> None:
        case.headers = {
            **{k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"},
            **AUTH,
        }
        response = case.call(base_url=served.base, timeout=30)
        assert response.status_code != 500, response.text  # 502: the fake upstream refused it
        assert "x-request-id" in response.headers
        statuses.append(response.status_code)

    one()
    assert len(statuses) >= 60
    assert httpx.get(f"{served.base}/healthz", timeout=10).status_code == 200


def test_no_tracebacks_in_the_server_log(served: Served) -> None:
    """Runs last in this file's module-scoped server: nothing above produced a 5xx bug."""
    time.sleep(0.3)
    text = served.log.read_text(errors="replace")
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    assert all(line["status"] < 500 or line["status"] == 502 for line in served.lines())


# --------------------------------------------------------------------------- 6: SIGTERM drain


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[Upstream]:
    """An upstream that takes 2 s per answer: requests are in flight when SIGTERM comes."""
    up = Upstream(delay=2.0)
    server = uvicorn.Server(uvicorn.Config(up.app(), host=HOST, port=up.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield up
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("workers", [1, 2])
def test_6_sigterm_drains_in_flight_requests_with_any_worker_count(
    slow_upstream: Upstream, tmp_path: Path, workers: int
) -> None:
    """Was, with 2 workers: 64 in-flight requests reset, 403 answers / 402 log lines, exit 0.

    Now every request that reached the server is answered and logged once, and the exit
    status is the one of a single worker (killed by the re-raised SIGTERM: 143 in a shell).
    A client that connects after the listening socket closed is refused (ConnectError):
    nothing was sent, so it is safe to retry, unlike a reset.
    """
    served = spawn_serve(tmp_path, slow_upstream.port, workers=workers)
    n = 48
    before = slow_upstream.calls

    def one(_: int) -> str:
        try:
            return str(chat(served, {"model": "firewall", "messages": CHAT}).status_code)
        except httpx.ConnectError:
            return "refused"
        except httpx.HTTPError as e:
            return type(e).__name__

    try:
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(one, i) for i in range(n)]
            deadline = time.monotonic() + 30
            while slow_upstream.calls - before < n // 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(served.process.pid, signal.SIGTERM)  # as systemd / stop_process do
            results = [f.result() for f in futures]
        code = served.process.wait(60)
    finally:
        stop_process(served.process, hard=True)
    answered = results.count("200")
    assert set(results) <= {"200", "refused"}, results  # no reset, no dropped connection
    assert answered >= n // 2
    time.sleep(0.2)
    assert len(served.lines()) == answered  # one log line per answer
    assert code == -signal.SIGTERM  # the same for 1 and 2 workers


# --------------------------------------------------------------------------- slow clients


@pytest.fixture(scope="module")
def served_short_keepalive(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = spawn_serve(tmp_path_factory.mktemp("slow"), upstream.port, keep_alive_timeout=2)
    yield s
    stop_process(s.process)


@pytest.mark.parametrize(
    ("sent", "answer"),
    [(b"", b""), (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n", b"HTTP/1.1 408 ")],
    ids=["nothing", "half-a-head"],
)
def test_slow_client_is_cut_after_the_keep_alive_timeout(
    served_short_keepalive: Served, sent: bytes, answer: bytes
) -> None:
    """Was: a connection that sent nothing, or half a head, was held open forever."""
    host, port = served_short_keepalive.base.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(sent)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    waited = time.monotonic() - start
    assert data.startswith(answer), data[:200]
    assert 1.5 < waited < 20, waited
    r = httpx.get(f"{served_short_keepalive.base}/healthz", timeout=10)
    assert r.status_code == 200
