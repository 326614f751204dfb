"""Talking to the weak/strong upstreams: send, classify failures, pass SSE streams through.

Failure policy, because clients must always get an OpenAI-shaped answer:

* before the upstream answered — connection refused/reset → 502, timeout → 504, upstream
  5xx → 502 (these are what fallback retries on the other side);
* upstream 4xx (bad parameters for that model) → passed through unchanged, it is the
  client's to fix;
* after a stream started — the HTTP status is already 200, so the failure is sent as a final
  SSE event ``data: {"error": {...}}`` (which the official client raises as ``APIError``)
  and the stream ends. Only whole SSE events are forwarded, so that error event never lands
  in the middle of a half-written one.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncGenerator
from http.cookiejar import CookieJar
from typing import Any

import httpx

from firewall_routing.upstreams import UpstreamConfig
from firewall_routing.upstreams import UpstreamError as UpstreamError

log = logging.getLogger("firewall_routing.serve")
_EVENT_ENDS = (b"\n\n", b"\r\n\r\n")


POOL_SHARDS = 8  # pooled clients per upstream, used in turn (see UpstreamPool)
MAX_CONNECTIONS = 256  # per upstream, over all shards
MAX_KEEPALIVE = 64


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing: the proxy must not remember an upstream's
    ``Set-Cookie`` and send it on every later client's request (httpx's client jar would),
    and an empty jar keeps httpx's per-request cookie merging on its cheap path."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Any) -> None:
        return None


def make_client(
    cfg: UpstreamConfig, transport: httpx.AsyncBaseTransport | None = None, shards: int = 1
) -> httpx.AsyncClient:
    """A pooled client (one of ``shards`` for the upstream); ``timeout`` bounds connect and each read.

    Idle connections are dropped after ``keepalive_expiry`` (default 2 s), below the 5 s
    after which uvicorn and llama.cpp close them: reusing one the server is closing would
    fail the request with a ReadError.
    """
    if cfg.provider == "litellm":  # same client surface, LiteLLM behind it (optional extra)
        from firewall_routing.serve.litellm_upstream import make_litellm_client

        return make_litellm_client(cfg)
    assert cfg.base_url is not None  # required for provider 'openai'
    headers = {"content-type": "application/json"}
    if cfg.api_key is not None:
        headers["authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS // shards,
        max_keepalive_connections=max(1, MAX_KEEPALIVE // shards),
        keepalive_expiry=cfg.keepalive_expiry,
    )
    return httpx.AsyncClient(
        base_url=cfg.base_url,
        headers=headers,
        transport=transport,
        timeout=httpx.Timeout(cfg.timeout),
        limits=limits,
        cookies=NoCookies(),
    )


class UpstreamPool:
    """``POOL_SHARDS`` pooled clients for one upstream, handed out in turn.

    Why not one client: httpcore's pool walks all its connections on every request and every
    response (expiry checks poll each idle socket), so its cost per request grows with the
    number of open connections. At 64 concurrent requests that bookkeeping was the largest
    single cost of a proxied request in the profile (docs/serving.md, "Where the CPU goes");
    eight pools of ~8 connections each do an eighth of it. Connection limits are split
    between the shards, so the totals stay 256 connections and 64 idle ones per upstream.
    """

    def __init__(
        self,
        cfg: UpstreamConfig,
        transport: httpx.AsyncBaseTransport | None = None,
        shards: int = POOL_SHARDS,
    ) -> None:
        if cfg.provider == "litellm":  # LiteLLM keeps its own pools; sharding buys nothing
            shards = 1
        self.clients = [make_client(cfg, transport, shards) for _ in range(shards)]
        self._turn = itertools.cycle(self.clients)
        self._urls: dict[str, httpx.URL | str] = {}

    def url(self, path: str) -> httpx.URL | str:
        """``path`` joined to the upstream's base URL once, not per request (httpx parses
        and merges a relative URL on every ``build_request``); relative without a base URL."""
        if (url := self._urls.get(path)) is None:
            base = self.clients[0].base_url
            url = path if base.is_relative_url else httpx.URL(str(base).rstrip("/") + "/" + path.lstrip("/"))
            self._urls[path] = url
        return url

    def client(self) -> httpx.AsyncClient:
        return next(self._turn)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def classify(exc: httpx.HTTPError, name: str) -> UpstreamError:
    """Map an httpx error to 504 (timeout) or 502 (anything else on the wire)."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError(504, "timeout", f"{name} upstream timed out ({type(exc).__name__})")
    return UpstreamError(
        502, "unavailable", f"{name} upstream failed: {type(exc).__name__}: {exc}".rstrip(": ")
    )


async def open_response(
    client: httpx.AsyncClient, path: str | httpx.URL, payload: dict[str, object], name: str
) -> httpx.Response:
    """Send the request, return once headers arrived (body unread); 5xx → UpstreamError."""
    request = client.build_request("POST", path, content=json.dumps(payload).encode())
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as e:
        raise classify(e, name) from e
    if response.status_code >= 500:
        # The body goes to the server log only: an upstream's error text (stack traces,
        # internal hosts, its own request ids) is not the client's to read.
        detail = await _read_quietly(response)
        log.warning("%s upstream returned HTTP %d: %r", name, response.status_code, detail[:200])
        raise UpstreamError(502, "status", f"{name} upstream returned HTTP {response.status_code}")
    return response


async def _read_quietly(response: httpx.Response) -> str:
    try:
        return (await response.aread()).decode("utf-8", "replace")
    except httpx.HTTPError:
        return ""
    finally:
        await response.aclose()


async def read_body(response: httpx.Response, name: str) -> bytes:
    """The whole body of a non-streaming answer (errors mapped like ``open_response``)."""
    try:
        return await response.aread()
    except httpx.HTTPError as e:
        raise classify(e, name) from e
    finally:
        await response.aclose()


def split_events(buffer: bytes) -> tuple[bytes, bytes]:
    """(complete SSE events, incomplete rest) of a byte buffer."""
    cut = max(buffer.rfind(end) + len(end) if end in buffer else 0 for end in _EVENT_ENDS)
    return buffer[:cut], buffer[cut:]


def error_event(err: UpstreamError) -> bytes:
    return b"data: " + json.dumps(err.body()).encode() + b"\n\n"


async def relay_events(response: httpx.Response, name: str) -> AsyncGenerator[bytes, None]:
    """Yield whole SSE events; on a mid-stream failure raise UpstreamError (after the rest)."""
    pending = b""
    try:
        async for chunk in response.aiter_bytes():
            complete, pending = split_events(pending + chunk)
            if complete:
                yield complete
    except httpx.HTTPError as e:
        err = classify(e, name)
        raise UpstreamError(err.status, f"midstream_{err.kind}", f"{err.message} (mid-stream)") from e
    finally:
        await response.aclose()
    if pending.strip():
        yield pending
