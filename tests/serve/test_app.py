"""The routing proxy against a fake upstream: status codes, routing, headers, logs, metrics."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest

from firewall_routing.serve.routing import LISTED_PERCENTS

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
