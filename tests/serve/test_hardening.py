"""Issue 24 in process: what one hostile client could do to `serve`, each case pinned.

The same cases run against a real `serve` process in ``test_hostile.py``; here they run on
the in-process app (keyword scorer, fake upstream) so each fix has a fast test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from firewall_routing.serve.app import RelayResponse, RequestRecord, valid_header_value
from firewall_routing.serve.routing import OperatingPoint, UnknownModel, parse_model

from .conftest import FastServer

CHAT = [{"role": "user", "content": "hi"}]


def request_lines(caplog: Any) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "firewall_routing.serve.requests"]


# --------------------------------------------------------------------------- 1: model names


@pytest.mark.parametrize(
    "name", ["firewall@30%\n", "firewall@t=0.5\n", "firewall@t=0.5\r", "weak\n", "firewall@30%\n\n"]
)
def test_model_names_match_exactly(name: str) -> None:
    with pytest.raises(UnknownModel):
        parse_model(name)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", ["firewall@30%\n", "firewall@t=0.5\n"])
def test_trailing_newline_model_is_404_and_never_reaches_the_upstream(
    make_server: Any, name: str, stream: bool
) -> None:
    server: FastServer = make_server()
    r = server.post("/v1/chat/completions", {"model": name, "messages": CHAT, "stream": stream})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert server.upstream.requests == []


def test_header_values_are_checked_before_the_upstream_is_called(
    make_server: Any, caplog: Any, monkeypatch: Any
) -> None:
    """Whatever slips through name parsing, a header the HTTP layer would refuse is a 500
    before anything is sent upstream (and billed), logged once with that status."""
    server: FastServer = make_server()
    decider = server.client.app.state.firewall.decider  # type: ignore[attr-defined]
    monkeypatch.setattr(decider, "resolve", lambda m: OperatingPoint("firewall@t=0.5\n", "threshold", 0.5))
    caplog.set_level(logging.INFO)
    r = server.post("/v1/chat/completions", {"model": "firewall", "messages": CHAT, "stream": True})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert server.upstream.requests == []
    assert [line["status"] for line in request_lines(caplog)] == [500]


@pytest.mark.parametrize(
    ("value", "ok"),
    [("firewall@30%", True), ("", True), ("a b\tc", True), ("x\n", False), ("x\r", False),
     ("\x00", False), (" x", False), ("x ", False), ("\u2028", False), ("caf\xe9", True)],
)  # fmt: skip
def test_valid_header_value(value: str, ok: bool) -> None:
    assert valid_header_value(value) is ok


class TrackedStream(httpx.AsyncByteStream):
    """An upstream SSE body that records whether it was closed (returned to the pool)."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"data: {}\n\n"

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("error", [OSError("broken pipe"), RuntimeError("Invalid HTTP header value.")])
def test_stream_whose_start_cannot_be_sent_releases_the_upstream(
    make_server: Any, caplog: Any, error: Exception
) -> None:
    """The pool leak of issue 24: sending the response start failed, so the relay generator
    never started and its ``finally`` (which closes the upstream response) never ran."""
    server: FastServer = make_server()
    state = server.client.app.state.firewall  # type: ignore[attr-defined]
    body = TrackedStream()
    upstream = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)
    rec = RequestRecord(endpoint="chat", route="weak", stream=True)
    response = RelayResponse(state, rec, upstream, {"x-request-id": rec.request_id}, "text/event-stream")

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        raise error

    caplog.set_level(logging.INFO)
    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "POST", "headers": []}
    with contextlib.suppress(RuntimeError):  # a send failure other than a disconnect propagates
        asyncio.run(response(scope, receive, send))
    assert body.closed
    assert [line["status"] for line in request_lines(caplog)] == [499]


# --------------------------------------------------------------------------- 4: 400, not 500


def raw_post(server: FastServer, body: bytes) -> Any:
    headers = {"authorization": "Bearer test-key", "content-type": "application/json"}
    return server.client.post("/v1/chat/completions", content=body, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "firewall", "messages": [{"role": "user", "content": "\\ud800x"}]}',
        b'{"model": "firewall", "messages": [{"role": "user", "content": "ok"}], "user": "\\udfff"}',
        b'{"model": "firewall", "messages": [{"role": "user", "content": "ok"}], "\\ud800": 1}',
        b'{"model": "firewall", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udc00"}]}]}',
        b'{"model": "firewall", "messages": [{"role": "user", "content": "ok"}], "seed": 1' + b"9" * 5000 + b"}",
        b'{"model": "firewall", "messages": [{"role": "user", "content": "ok"}], "temperature": NaN}',
        b'{"model": "firewall", "messages": [{"role": "user", "content": "ok"}], "temperature": -Infinity}',
        b'{"model": "firewall", "messages": [{"role": "user", "content": "ok"}], "temperature": 1e999}',
    ],
    ids=["surrogate-content", "surrogate-extra", "surrogate-key", "surrogate-part", "huge-integer", "nan",
         "infinity", "overflow"],
)  # fmt: skip
def test_invalid_unicode_huge_integers_and_non_json_numbers_are_400(
    make_server: Any, caplog: Any, body: bytes
) -> None:
    server: FastServer = make_server(max_body_bytes=65536)
    caplog.set_level(logging.INFO)
    r = raw_post(server, body)
    assert r.status_code == 400, r.text
    assert (
        r.json()["error"]["code"] == "invalid_json" and r.json()["error"]["type"] == "invalid_request_error"
    )
    assert server.upstream.requests == [] and server.scorer.seen == []
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_valid_surrogate_pairs_and_escapes_still_pass(make_server: Any) -> None:
    server: FastServer = make_server()
    body = b'{"model": "firewall", "messages": [{"role": "user", "content": "easy \\ud83d\\ude00 \\u00e9"}]}'
    r = raw_post(server, body)
    assert r.status_code == 200, r.text
    assert server.scorer.seen == ["easy \U0001f600 \xe9"]


@pytest.mark.parametrize("stream", ["yes", 1, "true", None])
def test_stream_must_be_a_json_boolean(make_server: Any, stream: Any) -> None:
    """It was coerced (a JSON answer or a stream by truthiness) but forwarded upstream raw."""
    server: FastServer = make_server()
    r = server.post("/v1/chat/completions", {"model": "firewall", "messages": CHAT, "stream": stream})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"
    assert server.upstream.requests == []


def test_upstream_5xx_body_is_logged_not_echoed(make_server: Any, caplog: Any) -> None:
    server: FastServer = make_server()
    server.upstream.behaviour["strong"] = "500"  # answers {"error": {"message": "boom"}}
    caplog.set_level(logging.INFO)
    r = server.post("/v1/chat/completions", {"model": "firewall", "messages": CHAT})
    assert r.status_code == 502 and "boom" not in r.text
    assert r.json()["error"]["message"] == "strong upstream returned HTTP 500"
    assert any("boom" in rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING)


def test_huge_model_name_is_clipped_in_the_error_and_the_log_line(make_server: Any, caplog: Any) -> None:
    server: FastServer = make_server(max_body_bytes=2_000_000)
    caplog.set_level(logging.INFO)
    r = server.post("/v1/chat/completions", {"model": "m" * 1_000_000, "messages": CHAT})
    assert r.status_code == 404 and len(r.text) < 400
    (line,) = [rec.getMessage() for rec in caplog.records if rec.name == "firewall_routing.serve.requests"]
    assert len(line) < 1000


# --------------------------------------------------------------------------- 5: bounded scoring


class RecordingEncoder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Any, progress: bool = False) -> Any:
        import numpy as np

        self.seen.extend(texts)
        return np.zeros((len(texts), 3))


class RecordingHead:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def score_embeddings(self, emb: Any, texts: Any) -> Any:
        import numpy as np

        self.seen.extend(texts)
        return np.full(len(texts), 0.5)


def test_encoders_and_routers_get_a_bounded_prefix() -> None:
    """A 1 MB prompt reaches neither the encoder nor the router's text features whole."""
    from firewall_routing.serve.scoring import MAX_SCORED_CHARS, EmbeddingScorer

    encoder, head = RecordingEncoder(), RecordingHead()
    scorer = EmbeddingScorer(head, encoder, "fake")
    long, short = "word " * 200_000, "a short question"
    scorer([long, short])
    for seen in (encoder.seen, head.seen):
        assert seen == [long[:MAX_SCORED_CHARS], short]


def test_router_scorer_gets_a_bounded_prefix_too() -> None:
    from firewall_routing.routers.random import RandomRouter
    from firewall_routing.serve.scoring import MAX_SCORED_CHARS, RouterScorer

    router = RandomRouter(seed=0)
    long = "x" * 1_000_000
    assert RouterScorer(router)([long])[0] == router.score([long[:MAX_SCORED_CHARS]])[0]


def test_the_prefix_holds_every_token_the_encoders_read() -> None:
    """MiniLM and the static encoder read 256 tokens; natural text reaches them long before
    the prefix ends, so ordinary prompts score exactly as before."""
    from firewall_routing.serve.onnx_encoder import load_tokenizer
    from firewall_routing.serve.scoring import MAX_SCORED_CHARS

    tok = load_tokenizer()
    text = "Natalia sold clips to 48 of her friends in April, and then she sold half as many. " * 500
    head = text[:MAX_SCORED_CHARS]
    full_ids = tok.encode(text, add_special_tokens=False).ids[:256]
    assert tok.encode(head, add_special_tokens=False).ids[:256] == full_ids
