"""The routing proxy against a fake upstream: status codes, routing, headers, logs, metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import openai
import pytest

from firewall_routing.outcomes import FloatArray
from firewall_routing.serve.routing import LISTED_PERCENTS
from firewall_routing.serve.scoring import MAX_SCORED_CHARS

from .conftest import API_KEY, FastServer

CHAT = "/v1/chat/completions"


def chat(content: str, model: str = "firewall@t=0.5", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def assert_openai_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    assert err["code"] == code
    assert err["message"]
    return dict(err)


# --------------------------------------------------------------------------- 4xx


def test_missing_bearer_key_is_401(make_server: Any) -> None:
    s: FastServer = make_server()
    assert_openai_error(s.post(CHAT, chat("easy"), key=None), 401, "invalid_api_key")
    assert s.upstream.requests == []


def test_wrong_bearer_key_is_401_and_right_key_passes(make_server: Any) -> None:
    s: FastServer = make_server()
    assert_openai_error(s.post(CHAT, chat("easy"), key="nope"), 401, "invalid_api_key")
    assert s.post(CHAT, chat("easy"), key=API_KEY).status_code == 200


def test_models_endpoint_needs_auth_too(make_server: Any) -> None:
    s: FastServer = make_server()
    assert s.client.get("/v1/models").status_code == 401


def test_body_over_limit_is_413(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.post(CHAT, chat("x" * 5000))
    assert_openai_error(r, 413, "request_too_large")
    assert s.upstream.requests == []


def test_chunked_body_over_limit_is_413(make_server: Any) -> None:
    s: FastServer = make_server()
    body = json.dumps(chat("y" * 5000)).encode()

    def chunks() -> Any:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = s.client.post(CHAT, content=chunks(), headers={"authorization": f"Bearer {API_KEY}"})
    assert_openai_error(r, 413, "request_too_large")


def test_malformed_json_is_400(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.client.post(
        CHAT, content=b'{"model": "weak", "messages": [', headers={"authorization": f"Bearer {API_KEY}"}
    )
    assert_openai_error(r, 400, "invalid_json")


def test_json_that_is_not_an_object_is_400(make_server: Any) -> None:
    s: FastServer = make_server()
    assert_openai_error(s.post(CHAT, [1, 2]), 400, "invalid_json")


@pytest.mark.parametrize("model", ["gpt-4", "firewall@101%", "firewall@t=abc", "firewall@"])
def test_unknown_model_is_404(make_server: Any, model: str) -> None:
    s: FastServer = make_server()
    assert_openai_error(s.post(CHAT, chat("easy", model=model)), 404, "model_not_found")


def test_percent_model_without_calibration_is_404(make_server: Any) -> None:
    s: FastServer = make_server(calibrated=False)
    err = assert_openai_error(s.post(CHAT, chat("easy", model="firewall@30%")), 404, "model_not_found")
    assert "calibrat" in err["message"]


def test_missing_messages_is_400(make_server: Any) -> None:
    s: FastServer = make_server()
    err = assert_openai_error(s.post(CHAT, {"model": "firewall"}), 400, "missing_required_parameter")
    assert err["param"] == "messages"


def test_empty_messages_is_400(make_server: Any) -> None:
    s: FastServer = make_server()
    err = assert_openai_error(s.post(CHAT, {"model": "firewall", "messages": []}), 400, "invalid_value")
    assert err["param"] == "messages"


def test_conversation_without_user_turn_is_400(make_server: Any) -> None:
    s: FastServer = make_server()
    body = {"model": "firewall", "messages": [{"role": "system", "content": "be nice"}]}
    assert_openai_error(s.post(CHAT, body), 400, "invalid_value")


def test_unknown_path_is_openai_shaped_404(make_server: Any) -> None:
    s: FastServer = make_server()
    assert_openai_error(s.client.get("/v1/nothing"), 404, "not_found")


# --------------------------------------------------------------------------- routing


def test_low_score_goes_strong_with_decision_headers(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.post(CHAT, chat("prove the Riemann hypothesis"))
    assert r.status_code == 200
    assert r.headers["x-firewall-route"] == "strong"
    assert float(r.headers["x-firewall-score"]) == pytest.approx(0.1)
    assert float(r.headers["x-firewall-threshold"]) == 0.5
    assert r.json()["choices"][0]["message"]["content"] == "answer from strong"
    sent = s.upstream.requests[-1]
    assert (sent["side"], sent["body"]["model"], sent["path"]) == (
        "strong",
        "big-model",
        "/v1/chat/completions",
    )


def test_high_score_goes_weak_with_upstream_key_not_client_key(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.post(CHAT, chat("an easy one", temperature=0.3))
    assert r.headers["x-firewall-route"] == "weak"
    sent = s.upstream.requests[-1]
    assert sent["body"]["model"] == "small-model"
    assert sent["body"]["temperature"] == 0.3  # other fields pass through
    assert sent["auth"] == "Bearer weak-secret"


def test_calibrated_percent_uses_calibration_threshold(make_server: Any) -> None:
    s: FastServer = make_server()  # calibrated on 0.00, 0.01, …, 1.00
    r = s.post(CHAT, chat("easy", model="firewall@95%"))
    assert float(r.headers["x-firewall-threshold"]) == pytest.approx(0.955)
    assert r.headers["x-firewall-route"] == "strong"  # 0.9 < 0.955
    r = s.post(CHAT, chat("easy", model="firewall@30%"))
    assert r.headers["x-firewall-route"] == "weak"


def test_forced_sides_skip_scoring(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.post(CHAT, chat("easy", model="strong"))
    assert r.headers["x-firewall-route"] == "strong"
    assert "x-firewall-score" not in r.headers
    assert s.post(CHAT, chat("hard", model="weak")).headers["x-firewall-route"] == "weak"
    assert s.scorer.seen == []


def test_default_model_comes_from_config(make_server: Any) -> None:
    s: FastServer = make_server(default_model="firewall@t=0.95")
    r = s.post(CHAT, chat("easy", model="firewall"))
    assert r.headers["x-firewall-operating-point"] == "firewall@t=0.95"
    assert r.headers["x-firewall-route"] == "strong"


def test_scored_text_includes_earlier_user_turns_within_budget(make_server: Any) -> None:
    s: FastServer = make_server(context_tokens=50)
    messages = [
        {"role": "system", "content": "system words are ignored"},
        {"role": "user", "content": "an easy question"},
        {"role": "assistant", "content": "assistant text is ignored"},
        {"role": "user", "content": [{"type": "text", "text": "and the next?"}]},
    ]
    r = s.post(CHAT, {"model": "firewall", "messages": messages})
    assert r.headers["x-firewall-route"] == "weak"  # 'easy' only in the earlier turn
    assert s.scorer.seen[-1] == "and the next?\n\nan easy question"


def test_context_budget_drops_old_turns(make_server: Any) -> None:
    s: FastServer = make_server(context_tokens=4)
    messages = [{"role": "user", "content": "an easy question"}, {"role": "user", "content": "and the next?"}]
    r = s.post(CHAT, {"model": "firewall", "messages": messages})
    assert r.headers["x-firewall-route"] == "strong"
    assert s.scorer.seen[-1] == "and the next?"


def test_completions_endpoint_routes_on_prompt(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.post("/v1/completions", {"model": "firewall", "prompt": "easy sum", "max_tokens": 3})
    assert r.headers["x-firewall-route"] == "weak"
    assert s.upstream.requests[-1]["path"] == "/v1/completions"
    assert_openai_error(s.post("/v1/completions", {"model": "firewall"}), 400, "missing_required_parameter")


def test_models_lists_operating_points(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.client.get("/v1/models", headers={"authorization": f"Bearer {API_KEY}"})
    ids = [m["id"] for m in r.json()["data"]]
    assert {"firewall", "weak", "strong", "firewall@t=0.5"} <= set(ids)
    assert all(f"firewall@{p}%" in ids for p in LISTED_PERCENTS)


# --------------------------------------------------------------------------- streaming


def test_streaming_passes_events_through(make_server: Any) -> None:
    s: FastServer = make_server()
    r = s.post(CHAT, chat("easy", stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-firewall-route"] == "weak"
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    words = [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert "".join(words) == "hello from weak"


def test_official_client_streams_and_reads_headers(make_server: Any) -> None:
    s: FastServer = make_server()
    client = openai.OpenAI(
        base_url="http://testserver/v1", api_key=API_KEY, http_client=s.client, max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="firewall@t=0.5", messages=[{"role": "user", "content": "hard"}]
    )
    assert raw.headers["x-firewall-route"] == "strong"
    assert raw.parse().choices[0].message.content == "answer from strong"
    stream = client.chat.completions.create(
        model="weak", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "hello from weak"


def test_midstream_failure_ends_with_error_event(make_server: Any) -> None:
    s: FastServer = make_server()
    s.upstream.behaviour["weak"] = "midstream"
    client = openai.OpenAI(
        base_url="http://testserver/v1", api_key=API_KEY, http_client=s.client, max_retries=0
    )
    stream = client.chat.completions.create(
        model="weak", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["hello"]  # the half-sent event was dropped, not forwarded broken
    assert s.client.get("/healthz").json()["status"] == "ok"
    assert s.post(CHAT, chat("hi", model="strong")).status_code == 200


# --------------------------------------------------------------------------- upstream errors


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("down", 502, "upstream_unavailable"),
        ("500", 502, "upstream_status"),
        ("timeout", 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_map_to_502_504(make_server: Any, mode: str, status: int, code: str) -> None:
    s: FastServer = make_server()
    s.upstream.behaviour["strong"] = mode
    for stream in (False, True):
        r = s.post(CHAT, chat("hard", stream=stream))
        err = assert_openai_error(r, status, code)
        assert err["type"] == "upstream_error"
    assert s.client.get("/healthz").status_code == 200


def test_upstream_4xx_passes_through(make_server: Any) -> None:
    s: FastServer = make_server()
    s.upstream.behaviour["weak"] = "400"
    r = s.post(CHAT, chat("easy"))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "bad param"


def test_fallback_to_other_side_when_enabled(make_server: Any) -> None:
    s: FastServer = make_server(fallback=True)
    s.upstream.behaviour["weak"] = "down"
    r = s.post(CHAT, chat("easy"))
    assert r.status_code == 200
    assert r.headers["x-firewall-route"] == "strong"
    assert r.headers["x-firewall-fallback"] == "weak->strong"
    assert [q["side"] for q in s.upstream.requests] == ["weak", "strong"]
    assert 'firewall_fallbacks_total{failed_route="weak"} 1.0' in s.client.get("/metrics").text


def test_no_fallback_when_disabled(make_server: Any) -> None:
    s: FastServer = make_server(fallback=False)
    s.upstream.behaviour["weak"] = "down"
    assert s.post(CHAT, chat("easy")).status_code == 502
    assert [q["side"] for q in s.upstream.requests] == ["weak"]


def test_fallback_failing_too_is_502(make_server: Any) -> None:
    s: FastServer = make_server(fallback=True)
    s.upstream.behaviour.update(weak="down", strong="500")
    err = assert_openai_error(s.post(CHAT, chat("easy")), 502, "upstream_status")
    assert "fallback" in err["message"]


# --------------------------------------------------------------------------- observability


def test_one_json_log_line_per_request(make_server: Any, caplog: Any) -> None:
    s: FastServer = make_server()
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve.requests"):
        r = s.post(CHAT, chat("easy"))
        s.post(CHAT, chat("easy"), key="bad")
        s.post(CHAT, chat("hard", stream=True))
    lines = [
        json.loads(rec.message) for rec in caplog.records if rec.name == "firewall_routing.serve.requests"
    ]
    assert len(lines) == 3
    ok, denied, streamed = lines
    assert ok["request_id"] == r.headers["x-request-id"]
    assert (ok["route"], ok["decision"], ok["status"], ok["score"]) == ("weak", "weak", 200, 0.9)
    assert ok["threshold"] == 0.5 and ok["router_ms"] >= 0 and ok["upstream_ms"] > 0
    assert (denied["status"], denied["route"]) == (401, None)
    assert (streamed["route"], streamed["stream"], streamed["status"]) == ("strong", True, 200)


def test_metrics_count_routes_statuses_and_fraction(make_server: Any) -> None:
    s: FastServer = make_server()
    for text in ("easy", "hard", "hard", "hard"):
        s.post(CHAT, chat(text))
    s.post(CHAT, chat("easy", model="strong"))  # forced: not in the router fraction
    s.post(CHAT, chat("easy"), key=None)
    text = s.client.get("/metrics").text
    assert 'firewall_requests_total{endpoint="chat",route="strong",status="200"} 4.0' in text
    assert 'firewall_requests_total{endpoint="chat",route="weak",status="200"} 1.0' in text
    assert 'firewall_requests_total{endpoint="chat",route="none",status="401"} 1.0' in text
    assert "firewall_strong_call_fraction 0.75" in text
    assert "firewall_router_latency_seconds_count 4.0" in text
    assert 'firewall_upstream_latency_seconds_count{route="strong"} 4.0' in text


def test_healthz_needs_no_auth(make_server: Any) -> None:
    s: FastServer = make_server()
    body = s.client.get("/healthz").json()
    assert body == {"status": "ok", "backend": "fake", "calibrated": True, "default_model": "firewall@t=0.5"}


def test_scorer_crash_is_openai_shaped_500_and_logged(make_server: Any, caplog: Any) -> None:
    from fastapi.testclient import TestClient

    s: FastServer = make_server()
    client = TestClient(s.client.app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve.requests"):
        r = client.post(CHAT, json=chat("explode"), headers={"authorization": f"Bearer {API_KEY}"})
    assert_openai_error(r, 500, "internal_error")
    line = json.loads(next(m.message for m in caplog.records if m.name.endswith(".requests")))
    assert line["status"] == 500 and "scorer crashed" in line["error"]
    assert s.post(CHAT, chat("easy")).status_code == 200


# --------------------------------------------------------------------------- hardening (issue 12)


def test_deeply_nested_json_is_400_not_500(make_server: Any, caplog: Any) -> None:
    s: FastServer = make_server()
    headers = {"authorization": f"Bearer {API_KEY}"}
    with caplog.at_level(logging.INFO):
        r = s.client.post(CHAT, content=b"[" * 2000, headers=headers)
        err = assert_openai_error(r, 400, "invalid_json")
        assert "nested too deeply" in err["message"]
        # parses (within the parser's recursion limit) but would overflow when re-encoded
        deep: Any = "x"
        for _ in range(600):
            deep = [deep]
        body = {"model": "weak", "messages": [{"role": "user", "content": "hi", "extra": deep}]}
        r = s.client.post(CHAT, content=json.dumps(body).encode(), headers=headers)
        assert_openai_error(r, 400, "invalid_json")
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert s.upstream.requests == []
    ok = {"model": "weak", "messages": [{"role": "user", "content": "hi", "x": [[[[1]]]]}]}
    assert s.post(CHAT, ok).status_code == 200  # ordinary nesting still passes


def test_every_response_has_a_request_id(make_server: Any) -> None:
    from fastapi.testclient import TestClient

    s: FastServer = make_server()
    crash = TestClient(s.client.app, raise_server_exceptions=False)
    responses = [
        s.post(CHAT, chat("easy"), key=None),  # 401
        s.post(CHAT, chat("x" * 5000)),  # 413
        s.post(CHAT, {"model": "firewall"}),  # 400
        s.post(CHAT, chat("easy", model="gpt-4")),  # 404 model
        s.client.get("/v1/nothing"),  # 404 path
        crash.post(CHAT, json=chat("explode"), headers={"authorization": f"Bearer {API_KEY}"}),  # 500
        s.client.get("/healthz"),
        s.post(CHAT, chat("easy")),
    ]
    assert [r.status_code for r in responses] == [401, 413, 400, 404, 404, 500, 200, 200]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)


def test_unexpected_error_outside_the_proxy_has_a_request_id(make_server: Any, monkeypatch: Any) -> None:
    from fastapi.testclient import TestClient

    from firewall_routing.serve import app as app_module

    def broken(*args: Any) -> list[str]:
        raise RuntimeError("bug")

    s: FastServer = make_server()
    monkeypatch.setattr(app_module, "listed_models", broken)
    client = TestClient(s.client.app, raise_server_exceptions=False)
    r = client.get("/v1/models", headers={"authorization": f"Bearer {API_KEY}"})
    assert_openai_error(r, 500, "internal_error")
    assert r.headers.get("x-request-id")


def test_error_log_line_has_the_response_request_id(make_server: Any, caplog: Any) -> None:
    s: FastServer = make_server()
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve.requests"):
        r = s.post(CHAT, chat("easy"), key="bad")
    line = json.loads(next(m.message for m in caplog.records if m.name.endswith(".requests")))
    assert line["status"] == 401 and line["request_id"] == r.headers["x-request-id"]


def test_openapi_needs_auth_and_documents_request_bodies(make_server: Any) -> None:
    s: FastServer = make_server()
    assert_openai_error(s.client.get("/openapi.json"), 401, "invalid_api_key")
    r = s.client.get("/openapi.json", headers={"authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200
    body = r.json()["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"model", "messages"}
    assert "$ref" not in json.dumps(schema)  # self-contained
    for path in ("/docs", "/redoc"):
        assert s.client.get(path).status_code == 404
    open_server: FastServer = make_server(auth_keys=[])
    assert open_server.client.get("/openapi.json").status_code == 200


# --------------------------------------------------------------------------- client disconnects


async def drive(app: Any, body: dict[str, Any], disconnect_after_first_chunk: bool) -> list[dict[str, Any]]:
    """Run one POST through the ASGI app with a client that goes away.

    Streaming: the client disconnects once the first body chunk arrived. Otherwise: it is
    gone before the answer is sent (every receive after the body says disconnect).
    """
    import asyncio

    raw = json.dumps(body).encode()
    sent: list[dict[str, Any]] = []
    first_chunk = asyncio.Event()
    bodies = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        if disconnect_after_first_chunk:
            await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_chunk.set()
            await asyncio.sleep(0.05)  # let the disconnect be noticed mid-stream

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CHAT,
        "raw_path": CHAT.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {API_KEY}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_is_logged_as_499(make_server: Any, caplog: Any, stream: bool) -> None:
    import asyncio

    s: FastServer = make_server()
    s.upstream.behaviour["weak"] = "hang"
    with caplog.at_level(logging.INFO, logger="firewall_routing.serve.requests"):
        start = time.perf_counter()
        asyncio.run(drive(s.client.app, chat("easy", model="weak", stream=stream), stream))
        took = time.perf_counter() - start
    lines = [json.loads(m.message) for m in caplog.records if m.name.endswith(".requests")]
    assert len(lines) == 1
    assert (lines[0]["status"], lines[0]["error"]) == (499, "client disconnected")
    assert took < 10  # the 30 s upstream wait was abandoned, not sat out
    if stream:
        assert s.upstream.streams_closed == 1  # closed at once, not at garbage collection


# --------------------------------------------------------------------------- long messages


def test_healthz_answers_while_a_1mb_message_is_scored(tmp_path: Any) -> None:
    """The real MiniLM token counter on a 1 MB message must not stall the event loop."""
    import asyncio
    import random

    import httpx

    from firewall_routing.routers.random import RandomRouter
    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.routing import build_decider

    from .conftest import FakeUpstream, fast_config

    RandomRouter(seed=1).save(tmp_path / "r")
    cfg = fast_config(tmp_path / "r", max_body_bytes=2_000_000)
    decider = build_decider(cfg.router, None, default_model="firewall@t=0.5")
    app = create_app(cfg, decider=decider, transport=httpx.MockTransport(FakeUpstream().handler))
    rng = random.Random(0)
    words = ["how", "many", "apples", "does", "Janet", "sell", "at", "the", "market", "every", "day"]
    huge = " ".join(rng.choice(words) for _ in range(250_000))[:1_000_000]
    earlier = {"role": "user", "content": "an earlier question"}
    body = {"model": "firewall", "messages": [earlier, {"role": "user", "content": huge}]}
    headers = {"authorization": f"Bearer {API_KEY}"}

    async def run() -> tuple[httpx.Response, float, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                big = asyncio.create_task(client.post(CHAT, json=body, headers=headers))
                start = time.perf_counter()
                await asyncio.sleep(0.1)  # the big request is being parsed / scored
                health = await client.get("/healthz")
                waited = time.perf_counter() - start - 0.1  # a blocked loop delays the sleep too
                return health, waited, await big

    health, waited, big = asyncio.run(run())
    assert health.status_code == 200 and big.status_code == 200
    assert waited < 1.0, f"/healthz waited {waited:.2f} s behind a 1 MB message"
    # the scorer reads a bounded prefix (serve.scoring.MAX_SCORED_CHARS, issue 24)
    expected = RandomRouter(seed=1).score([huge[:MAX_SCORED_CHARS]])[0]
    assert float(big.headers["x-firewall-score"]) == pytest.approx(expected)


# --------------------------------------------------------------------------- scoring off the loop


class SleepyScorer:
    """Takes ``delay`` seconds (blocking, like an encoder pass) on texts containing 'slow'."""

    backend = "fake"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __call__(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        import numpy as np

        if any("slow" in t for t in texts):
            time.sleep(self.delay)
        return np.full(len(texts), 0.9)


def test_slow_scoring_does_not_block_other_requests(tmp_path: Any) -> None:
    """While one prompt is scored for 1.5 s, /healthz, a forced and a scored request answer."""
    import asyncio

    import httpx

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.routing import Decider

    from .conftest import FakeUpstream, fast_config, word_count

    cfg = fast_config(tmp_path)  # scoring_threads 2: the second scored prompt has a thread
    assert cfg.default_model is not None
    decider = Decider(SleepyScorer(1.5), None, cfg.default_model, cfg.context_tokens, word_count)
    app = create_app(cfg, decider=decider, transport=httpx.MockTransport(FakeUpstream().handler))
    headers = {"authorization": f"Bearer {API_KEY}"}

    async def run() -> tuple[list[float], list[int], float, int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                start = time.perf_counter()
                slow = asyncio.create_task(client.post(CHAT, json=chat("slow one"), headers=headers))
                await asyncio.sleep(0.1)  # the slow prompt is in the scorer now

                async def timed(request: Any) -> tuple[float, int]:
                    r = await request
                    return time.perf_counter() - start, r.status_code

                others = await asyncio.gather(
                    timed(client.get("/healthz")),
                    timed(client.post(CHAT, json=chat("quick", model="weak"), headers=headers)),
                    timed(client.post(CHAT, json=chat("quick scored"), headers=headers)),
                )
                r = await slow
                return (
                    [t for t, _ in others],
                    [s for _, s in others],
                    time.perf_counter() - start,
                    r.status_code,
                )

    times, statuses, slow_took, slow_status = asyncio.run(run())
    assert statuses == [200, 200, 200] and slow_status == 200
    assert slow_took >= 1.5
    assert max(times) < 1.0, f"answered after {times} s: blocked behind the 1.5 s scoring call"


# --------------------------------------------------------------------------- hot path pieces


def test_upstream_pool_hands_out_its_clients_in_turn_with_the_limits_split() -> None:
    import asyncio

    from firewall_routing.serve.config import UpstreamConfig
    from firewall_routing.serve.upstream import MAX_CONNECTIONS, MAX_KEEPALIVE, UpstreamPool

    pool = UpstreamPool(UpstreamConfig(base_url="http://u.test/v1", model="m"), shards=4)
    picked = [pool.client() for _ in range(8)]
    assert picked == pool.clients + pool.clients and len(set(map(id, pool.clients))) == 4
    inner = [c._transport._pool for c in pool.clients]  # type: ignore[attr-defined]
    assert sum(p._max_connections for p in inner) == MAX_CONNECTIONS
    assert sum(p._max_keepalive_connections for p in inner) == MAX_KEEPALIVE
    asyncio.run(pool.aclose())
    assert all(c.is_closed for c in pool.clients)


def test_batched_log_handler_writes_off_the_callers_thread_in_order() -> None:
    import io
    import threading

    from firewall_routing.serve.app import BatchedStreamHandler

    class Recording(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.writers: set[str] = set()

        def write(self, s: str) -> int:
            self.writers.add(threading.current_thread().name)
            return super().write(s)

    out = Recording()
    handler = BatchedStreamHandler(out, interval=0.02)
    logger = logging.getLogger("test.batched")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        for i in range(5):
            logger.info("line %d", i)
        assert out.getvalue() == ""  # nothing written by the logging call itself
        deadline = time.monotonic() + 5
        while out.getvalue().count("\n") < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.writers == {"firewall-log"}  # the background writer, not the caller
        logger.info("last")
    finally:
        logger.removeHandler(handler)
        handler.close()  # writes what is still pending
    assert out.getvalue().splitlines() == [f"line {i}" for i in range(5)] + ["last"]


# --------------------------------------------------------------------------- micro-batched scoring


class BatchRecorder:
    """Scores ``len(text) / 1000`` (so each answer names its prompt); the first call blocks
    until released, so the requests behind it queue; 'explode' breaks a call."""

    backend = "fake"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        import numpy as np

        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.release.wait(10)
        if any("explode" in t for t in texts):
            raise RuntimeError("scorer crashed")
        return np.array([len(t) / 1000 for t in texts])


@pytest.mark.parametrize("threads", [1, 2])
def test_concurrent_requests_are_scored_in_batches_each_answer_its_own(tmp_path: Any, threads: int) -> None:
    """30 scored requests wait behind a blocked scoring call: they are decided in batches of
    at most 8 (the configured bound), every response carries the score of its own prompt, and
    the one prompt that breaks the scorer gets a 500 while its batch-mates get 200."""
    import asyncio

    import httpx

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.routing import Decider

    from .conftest import FakeUpstream, fast_config, word_count

    cfg = fast_config(tmp_path, scoring_batch_size=8, scoring_threads=threads)
    assert cfg.default_model is not None
    scorer = BatchRecorder()
    decider = Decider(scorer, None, cfg.default_model, cfg.context_tokens, word_count)
    app = create_app(cfg, decider=decider, transport=httpx.MockTransport(FakeUpstream().handler))
    headers = {"authorization": f"Bearer {API_KEY}"}
    texts = ["x" * (10 + i) for i in range(30)]
    texts[17] = "explode " + "y" * 40

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = asyncio.create_task(client.post(CHAT, json=chat("first"), headers=headers))
                while not scorer.calls:
                    await asyncio.sleep(0.005)
                rest = [asyncio.create_task(client.post(CHAT, json=chat(t), headers=headers)) for t in texts]
                await asyncio.sleep(0.3)  # all queued (with 2 threads, some already scored)
                scorer.release.set()
                return [await first, *await asyncio.gather(*rest)]

    responses = asyncio.run(run())
    assert scorer.calls[0] == ["first"]  # alone and at once: nothing was running
    assert max(len(c) for c in scorer.calls) <= 8
    assert any(len(c) > 1 for c in scorer.calls)  # batched, not one call per request
    for text, r in zip(["first", *texts], responses, strict=True):
        if "explode" in text:
            assert r.status_code == 500
            continue
        assert r.status_code == 200, r.text
        assert float(r.headers["x-firewall-score"]) == pytest.approx(len(text) / 1000)


def test_batch_options_come_from_config_and_command_line(tmp_path: Any) -> None:
    from firewall_routing.errors import InputError
    from firewall_routing.serve.config import with_overrides

    from .conftest import fast_config

    cfg = fast_config(tmp_path)
    assert (cfg.scoring_batch_size, cfg.scoring_batch_window_ms) == (64, 0.0)
    cfg = fast_config(tmp_path, scoring_batch_size=16, scoring_batch_window_ms=2)
    assert (cfg.scoring_batch_size, cfg.scoring_batch_window_ms) == (16, 2.0)
    over = with_overrides(cfg, scoring_batch_size=4, scoring_batch_window_ms=None)
    assert (over.scoring_batch_size, over.scoring_batch_window_ms) == (4, 2.0)
    with pytest.raises(InputError, match="--scoring-batch-window-ms"):
        with_overrides(cfg, scoring_batch_window_ms=500)


def test_inline_scoring_answers_each_request_with_its_own_score(tmp_path: Any) -> None:
    """scoring_inline (the static backend's default): scored on the event loop, batched per
    loop iteration; every concurrent response carries its own prompt's score."""
    import asyncio

    import httpx

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.routing import Decider

    from .conftest import FakeUpstream, fast_config, word_count

    cfg = fast_config(tmp_path, scoring_inline=True)
    assert cfg.default_model is not None
    scorer = BatchRecorder()
    scorer.release.set()
    decider = Decider(scorer, None, cfg.default_model, cfg.context_tokens, word_count)
    app = create_app(cfg, decider=decider, transport=httpx.MockTransport(FakeUpstream().handler))
    assert app.state.firewall.scoring_inline
    headers = {"authorization": f"Bearer {API_KEY}"}
    texts = ["x" * (10 + i) for i in range(20)] + ["explode"]

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return list(
                    await asyncio.gather(*(client.post(CHAT, json=chat(t), headers=headers) for t in texts))
                )

    responses = asyncio.run(run())
    for text, r in zip(texts, responses, strict=True):
        if text == "explode":
            assert r.status_code == 500
        else:
            assert float(r.headers["x-firewall-score"]) == pytest.approx(len(text) / 1000)


def test_scoring_inline_defaults_to_the_static_backend_only(tmp_path: Any) -> None:
    import httpx

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.routing import Decider

    from .conftest import KeywordScorer, fast_config, word_count

    for backend, configured, expected in (
        ("static", None, True),
        ("fake", None, False),
        ("static", False, False),
        ("fake", True, True),
    ):
        scorer = KeywordScorer()
        scorer.backend = backend
        cfg = fast_config(tmp_path, scoring_inline=configured)
        assert cfg.default_model is not None
        decider = Decider(scorer, None, cfg.default_model, cfg.context_tokens, word_count)
        app = create_app(cfg, decider=decider, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
        assert app.state.firewall.scoring_inline is expected


def test_an_upstream_cookie_is_not_replayed_on_later_requests(tmp_path: Any) -> None:
    """httpx's client would keep an upstream's Set-Cookie and send it with every later
    request, whoever the client: the proxy's pools keep no cookies."""
    import httpx
    from fastapi.testclient import TestClient

    from firewall_routing.serve.app import create_app
    from firewall_routing.serve.routing import Decider

    from .conftest import KeywordScorer, completion, fast_config, word_count

    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(
            200, json=completion("weak", "m"), headers={"set-cookie": "session=alice; Path=/"}
        )

    cfg = fast_config(tmp_path)
    assert cfg.default_model is not None
    decider = Decider(KeywordScorer(), None, cfg.default_model, cfg.context_tokens, word_count)
    app = create_app(cfg, decider=decider, transport=httpx.MockTransport(handler))
    with TestClient(app) as client:
        for _ in range(3):
            r = client.post(
                CHAT, json=chat("easy", model="weak"), headers={"authorization": f"Bearer {API_KEY}"}
            )
            assert r.status_code == 200
    assert seen == [None, None, None]
