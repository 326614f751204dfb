"""End to end: `firewall-routing serve` in front of SmolLM2-135M (llama.cpp), official client.

Slow: starts llama.cpp servers and the routing server as subprocesses on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from firewall_routing.sampling.local_server import LocalServer

from .conftest import API_KEY, HOST, Proc, free_port, spawn

pytestmark = pytest.mark.slow

Serve = Callable[[str, str], Proc]


@pytest.fixture(scope="session")
def calibrated_router(minilm_router: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test router, calibrated with the CLI (onnx backend) on 300 GSM8K train prompts."""
    root = Path(__file__).resolve().parents[2]
    data = json.loads((root / "data/routerdc/gsm8k-train.json").read_text())
    prompts = tmp_path_factory.mktemp("cal") / "prompts.txt"
    prompts.write_text("\n".join(r["question"].replace("\n", " ") for r in data[200:500]))
    res = subprocess.run(
        [sys.executable, "-m", "firewall_routing.cli", "calibrate", str(minilm_router), str(prompts)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "      30" in res.stdout
    return minilm_router


@pytest.fixture
def serve(calibrated_router: Path, tmp_path: Path) -> Iterator[Serve]:
    """Start `firewall-routing serve --config` with the given weak/strong base URLs."""
    started: list[Proc] = []

    def start(weak_url: str, strong_url: str) -> Proc:
        port = free_port()
        cfg = tmp_path / f"serve-{port}.yaml"
        cfg.write_text(
            f"router: {calibrated_router}\n"
            f"weak: {{base_url: '{weak_url}', model: smollm2-weak, timeout: 60}}\n"
            f"strong: {{base_url: '{strong_url}', model: smollm2-strong, timeout: 60}}\n"
            f"auth_keys: ['{API_KEY}']\n"
            "default_model: firewall@50%\nbackend: onnx\n"
        )
        p = spawn(
            [
                sys.executable,
                "-m",
                "firewall_routing.cli",
                "serve",
                "--config",
                str(cfg),
                "--port",
                str(port),
            ],
            f"http://{HOST}:{port}/healthz",
        )
        p.url = f"http://{HOST}:{port}/v1"
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def client(proxy: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url, api_key=API_KEY, max_retries=0, timeout=120)


QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France? Answer with one word."}
]


def request_lines(proxy: Proc, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The JSON request lines of the proxy's log, once ``expected`` are there (or ``timeout``).

    The server writes them from a background thread every 50 ms, so a line can land just
    after the response did.
    """
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(x) for x in proxy.log.read_text().splitlines() if x.startswith("{")]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_chat_non_streaming_through_router(smollm2: LocalServer, serve: Serve) -> None:
    proxy = serve(smollm2.base_url, smollm2.base_url)
    c = client(proxy)
    for model in ("firewall@0%", "firewall@100%", "firewall"):
        raw = c.chat.completions.with_raw_response.create(
            model=model, messages=QUESTION, max_tokens=16, temperature=0
        )
        answer = raw.parse().choices[0].message.content or ""
        assert "paris" in answer.lower()
        route = raw.headers["x-firewall-route"]
        assert route == {"firewall@0%": "weak", "firewall@100%": "strong"}.get(model, route)
        score, threshold = float(raw.headers["x-firewall-score"]), float(raw.headers["x-firewall-threshold"])
        assert 0.0 <= score <= 1.0
        assert route == ("strong" if score < threshold else "weak")
    lines = request_lines(proxy, 3)
    assert [x["model"] for x in lines] == ["firewall@0%", "firewall@100%", "firewall"]
    assert all(x["status"] == 200 and x["upstream_ms"] > 0 for x in lines)
    assert "HTTP Request:" not in proxy.log.read_text()  # one line per request, no httpx noise


def test_chat_streaming_and_completions_through_router(smollm2: LocalServer, serve: Serve) -> None:
    proxy = serve(smollm2.base_url, smollm2.base_url)
    c = client(proxy)
    stream = c.chat.completions.create(
        model="strong", messages=QUESTION, max_tokens=16, temperature=0, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "paris" in text.lower()
    comp = c.completions.create(model="weak", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert comp.choices[0].text.strip()
    r = httpx.get(proxy.url.removesuffix("/v1") + "/metrics")
    assert 'firewall_requests_total{endpoint="chat",route="strong",status="200"} 1.0' in r.text


def test_upstream_killed_mid_stream(smollm2: LocalServer, spare_smollm2: LocalServer, serve: Serve) -> None:
    proxy = serve(spare_smollm2.base_url, smollm2.base_url)
    c = client(proxy)
    stream = c.chat.completions.create(
        model="weak",
        stream=True,
        max_tokens=400,
        temperature=0,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
    )
    got = []
    start = time.monotonic()
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in stream:
            got.append(chunk)
            if len(got) == 3:
                spare_smollm2.kill()
    assert len(got) >= 3 and time.monotonic() - start < 60
    base = proxy.url.removesuffix("/v1")
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    # the dead weak upstream now answers 502; the strong one still works
    with pytest.raises(openai.APIStatusError) as err:
        c.chat.completions.create(model="weak", messages=QUESTION, max_tokens=4)
    assert err.value.status_code == 502
    ok = c.chat.completions.create(model="strong", messages=QUESTION, max_tokens=8)
    assert ok.choices[0].message.content
