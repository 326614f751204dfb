"""``provider: litellm`` upstreams, through LiteLLM's ``openai/`` route to a local server.

A small OpenAI-compatible server runs on 127.0.0.1 in a thread; the weak side reaches it
through LiteLLM, the strong side through the OpenAI-compatible path, so every answer and
every failure can be compared side by side.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.testclient import TestClient

from firewall_routing.calibration import calibrate
from firewall_routing.errors import InputError
from firewall_routing.processes import free_port
from firewall_routing.serve.app import create_app
from firewall_routing.serve.config import config_from_mapping
from firewall_routing.serve.routing import Decider, default_model_for

from .conftest import API_KEY, KeywordScorer, word_count

if TYPE_CHECKING:
    import httpx2  # what Starlette's test client speaks

if importlib.util.find_spec("litellm") is None:  # not importorskip: a plain import fetches a cost map
    pytest.skip("needs the [litellm] extra", allow_module_level=True)

KEY_VAR = "FR_TEST_LITELLM_KEY"
PROVIDER_KEY = "sk-provider-key"
TIMEOUT = 2.0


def _chunk(model: str, delta: dict[str, str], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n"


def fake_openai_app(seen: list[dict[str, Any]]) -> FastAPI:
    """Answers by the user's text: 'e500', 'e400', 'slow', 'midstream' misbehave."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        seen.append({"path": "chat", "body": body, "auth": request.headers.get("authorization")})
        text, model = body["messages"][-1]["content"], body["model"]
        if "e500" in text:
            return JSONResponse({"error": {"message": "boom"}}, 500)
        if "e400" in text:
            return JSONResponse({"error": {"message": "bad param", "type": "invalid_request_error"}}, 400)
        if "slow" in text:
            await asyncio.sleep(3 * TIMEOUT)
        if body.get("stream"):
            return StreamingResponse(_events(model, "midstream" in text), media_type="text/event-stream")
        message = {"role": "assistant", "content": f"answer from {model}"}
        return JSONResponse(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
            }
        )

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        seen.append({"path": "completions", "body": body, "auth": request.headers.get("authorization")})
        choice = {"index": 0, "text": f"text from {body['model']}", "finish_reason": "stop", "logprobs": None}
        return JSONResponse(
            {
                "id": "t1",
                "object": "text_completion",
                "created": 0,
                "model": body["model"],
                "choices": [choice],
            }
        )

    return app


async def _events(model: str, die: bool) -> AsyncIterator[str]:
    yield _chunk(model, {"role": "assistant", "content": "hello"})
    yield _chunk(model, {"content": " from"})
    if die:
        raise RuntimeError("the connection dies mid-stream")
    yield _chunk(model, {"content": " fake"})
    yield _chunk(model, {}, finish="stop")
    yield "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    import uvicorn

    seen: list[dict[str, Any]] = []
    port = free_port()
    config = uvicorn.Config(fake_openai_app(seen), host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "fake server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def proxy(
    fake_server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """The routing app: weak = LiteLLM ``openai/small``, strong = OpenAI-compatible ``big``."""
    opened: list[TestClient] = []

    def build(url: str | None = None) -> TestClient:
        base = url or fake_server[0]
        data = {
            "router": str(tmp_path),
            "weak": {
                "provider": "litellm",
                "model": "openai/small",
                "base_url": base,
                "api_key_env": KEY_VAR,
                "timeout": TIMEOUT,
            },
            "strong": {"base_url": base, "model": "big", "timeout": TIMEOUT},
            "auth_keys": [API_KEY],
            "default_model": "firewall@t=0.5",
        }
        cfg = config_from_mapping(data, env={KEY_VAR: PROVIDER_KEY})
        decider = Decider(
            KeywordScorer(),
            calibrate(np.linspace(0, 1, 101)),
            default_model_for(cfg.default_model, True),
            256,
            word_count,
        )
        client = TestClient(create_app(cfg, decider=decider))
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for c in opened:
        c.__exit__(None, None, None)


def post(client: TestClient, side: str, text: str, **extra: Any) -> httpx2.Response:
    body = {"model": side, "messages": [{"role": "user", "content": text}], **extra}
    return client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {API_KEY}"})


def sse(response: httpx2.Response) -> list[Any]:
    out: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_chat_through_litellm_with_the_key_from_the_environment_only(
    proxy: Callable[..., TestClient], fake_server: tuple[str, list[dict[str, Any]]]
) -> None:
    seen = fake_server[1]
    seen.clear()
    r = post(proxy(), "weak", "what is 2+2", max_tokens=5)
    assert r.status_code == 200, r.text
    assert r.headers["x-firewall-route"] == "weak"
    assert r.json()["choices"][0]["message"]["content"] == "answer from small"
    (request,) = seen
    assert request["body"]["model"] == "small" and request["body"]["max_tokens"] == 5
    assert request["auth"] == f"Bearer {PROVIDER_KEY}"  # never the client's own key (API_KEY)


def test_stream_through_litellm_ends_like_an_openai_stream(proxy: Callable[..., TestClient]) -> None:
    r = post(proxy(), "weak", "tell me", stream=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert text == "hello from fake"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_text_completion_through_litellm(
    proxy: Callable[..., TestClient], fake_server: tuple[str, list[dict[str, Any]]]
) -> None:
    body = {"model": "weak", "prompt": "2+2=", "max_tokens": 3}
    r = proxy().post("/v1/completions", json=body, headers={"authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == "text from small"
    assert fake_server[1][-1]["path"] == "completions"


@pytest.mark.parametrize(
    ("text", "status", "code"), [("e500", 502, "upstream_status"), ("slow", 504, "upstream_timeout")]
)
def test_upstream_failures_map_to_the_same_errors_as_the_openai_path(
    proxy: Callable[..., TestClient], text: str, status: int, code: str
) -> None:
    client = proxy()
    via_litellm, direct = post(client, "weak", text), post(client, "strong", text)
    assert (via_litellm.status_code, via_litellm.json()["error"]["code"]) == (status, code)
    assert (direct.status_code, direct.json()["error"]["code"]) == (status, code)


def test_provider_4xx_is_passed_through_like_the_openai_path(proxy: Callable[..., TestClient]) -> None:
    client = proxy()
    via_litellm, direct = post(client, "weak", "e400"), post(client, "strong", "e400")
    assert via_litellm.status_code == direct.status_code == 400
    assert "bad param" in via_litellm.json()["error"]["message"]


def test_unreachable_provider_is_502_unavailable_on_both_paths(proxy: Callable[..., TestClient]) -> None:
    client = proxy(f"http://127.0.0.1:{free_port()}/v1")
    for side in ("weak", "strong"):
        r = post(client, side, "hi")
        assert (r.status_code, r.json()["error"]["code"]) == (502, "upstream_unavailable"), side


def test_midstream_failure_ends_the_stream_with_an_error_event_on_both_paths(
    proxy: Callable[..., TestClient],
) -> None:
    client = proxy()
    for side in ("weak", "strong"):
        events = sse(post(client, side, "midstream", stream=True))
        assert events[-1]["error"]["code"] == "upstream_midstream_unavailable", (side, events)


def test_missing_extra_is_one_clear_line_at_config_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "litellm" else real(name, *a)
    )
    data = {
        "router": str(tmp_path),
        "weak": {"base_url": "http://127.0.0.1:1/v1", "model": "w"},
        "strong": {"provider": "litellm", "model": "anthropic/claude-x"},
        "default_model": "firewall@t=0.5",
    }
    with pytest.raises(InputError, match=r"pip install 'firewall-routing\[litellm\]'") as e:
        config_from_mapping(data, env={})
    assert e.value.field == "strong.provider" and "\n" not in str(e.value)


OFFLINE_PROBE = """
import asyncio, json, sys

outside = []

def hook(event, args):
    if event == "socket.getaddrinfo":
        host = str(args[0])
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = str(args[1][0])
    else:
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        outside.append(host)

sys.addaudithook(hook)
if sys.argv[2] == "plain":
    import litellm
    print(json.dumps({"outside": outside}))
    raise SystemExit(0)

from firewall_routing.serve.upstream import make_client, open_response, read_body
from firewall_routing.upstreams import UpstreamConfig

async def main():
    cfg = UpstreamConfig(provider="litellm", model="openai/small", base_url=sys.argv[1], api_key="sk-x")
    async with make_client(cfg) as client:
        r = await open_response(client, "/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "weak")
        return r.status_code, json.loads(await read_body(r, "weak"))["choices"][0]["message"]["content"]

status, content = asyncio.run(main())
print(json.dumps({"outside": outside, "status": status, "content": content}))
"""


def _probe(url: str, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, url, mode], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_no_network_access_outside_localhost(fake_server: tuple[str, list[dict[str, Any]]]) -> None:
    """Importing LiteLLM through our module and answering a request dials 127.0.0.1 only;
    a plain ``import litellm`` (the probe's control) looks up its cost map on the internet."""
    ours = _probe(fake_server[0], "ours")
    assert (ours["status"], ours["content"]) == (200, "answer from small")
    assert ours["outside"] == []


@pytest.mark.slow
def test_plain_litellm_import_would_reach_out(fake_server: tuple[str, list[dict[str, Any]]]) -> None:
    """The control for the probe above (slow: LiteLLM retries its fetch with back-off)."""
    assert _probe(fake_server[0], "plain")["outside"]


# --------------------------------------------------------------------------- the Python Controller


def _controller(fake_server: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> Any:
    """weak = LiteLLM ``openai/small``, strong = OpenAI-compatible ``big`` (issue 25: the
    Controller refused ``provider: litellm``)."""
    from firewall_routing.serve.controller import Controller

    monkeypatch.setenv(KEY_VAR, PROVIDER_KEY)
    base = fake_server[0]
    decider = Decider(KeywordScorer(), calibrate(np.linspace(0, 1, 101)), "firewall@t=0.5", 256, word_count)
    return Controller(
        router="unused",
        weak={"provider": "litellm", "model": "openai/small", "base_url": base, "api_key_env": KEY_VAR},
        strong={"base_url": base, "model": "big", "timeout": TIMEOUT},
        decider=decider,
    )


def test_controller_calls_a_litellm_upstream_and_returns_openai_objects(
    fake_server: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from openai.types import Completion
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    ctl = _controller(fake_server, monkeypatch)
    seen = fake_server[1]
    seen.clear()
    msgs = [{"role": "user", "content": "an easy one: what is 2+2"}]
    assert ctl.route(msgs, "firewall@t=0.5").route == "weak"
    reply = ctl.chat.completions.create(model="firewall@t=0.5", messages=msgs, max_tokens=5)
    assert isinstance(reply, ChatCompletion)
    assert reply.choices[0].message.content == "answer from small"
    (request,) = seen
    assert request["body"]["model"] == "small" and request["body"]["max_tokens"] == 5
    assert request["auth"] == f"Bearer {PROVIDER_KEY}"
    chunks = list(ctl.chat.completions.create(model="weak", messages=msgs, stream=True))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello from fake"
    text = ctl.completions.create(model="weak", prompt="say hi")
    assert isinstance(text, Completion) and text.choices[0].text == "text from small"
    strong = ctl.chat.completions.create(model="strong", messages=msgs)
    assert strong.choices[0].message.content == "answer from big"  # the OpenAI-compatible side


def test_controller_litellm_failures_are_openai_errors(
    fake_server: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    ctl = _controller(fake_server, monkeypatch)
    with pytest.raises(openai.APIError):
        ctl.chat.completions.create(model="weak", messages=[{"role": "user", "content": "e500"}])
    with pytest.raises(openai.BadRequestError):
        ctl.chat.completions.create(model="weak", messages=[{"role": "user", "content": "e400"}])


def test_controller_without_the_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from firewall_routing.serve.controller import Controller

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "litellm" else real(name, *a)
    )
    decider = Decider(KeywordScorer(), calibrate(np.linspace(0, 1, 101)), "firewall@t=0.5", 256, word_count)
    with pytest.raises(InputError, match=r"weak\.provider.*pip install"):
        Controller(
            router="unused",
            weak={"provider": "litellm", "model": "ollama/x"},
            strong={"base_url": "http://127.0.0.1:1/v1", "model": "big"},
            decider=decider,
        )
