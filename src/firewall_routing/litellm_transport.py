"""``provider: litellm`` upstreams (serve and the judge scorer): any LiteLLM model name behind the same client surface.

The proxy talks to every upstream through an ``httpx.AsyncClient``; for a LiteLLM upstream
that client's transport is :class:`LiteLLMTransport`, which answers each request by calling
``litellm.acompletion`` / ``litellm.atext_completion`` and returns an OpenAI-shaped response
(JSON, or SSE events when streaming). So the request path, fallback, metrics and the error
policy of :mod:`firewall_routing.serve.upstream` apply unchanged:

* connection failures are raised as ``httpx.ConnectError`` (→ 502 ``upstream_unavailable``),
  timeouts as ``httpx.ReadTimeout`` (→ 504 ``upstream_timeout``), provider 5xx answers are
  returned as 5xx responses (→ 502 ``upstream_status``), provider 4xx answers are passed
  through with their status and an OpenAI-shaped error body;
* a failure while streaming is raised as ``httpx.ReadError``, which the proxy turns into
  its final SSE error event.

Keys: only the upstream's own resolved key (``api_key_env`` / ``FIREWALL_ROUTING_<SIDE>_API_KEY``,
see :mod:`firewall_routing.upstreams`) is passed; without one LiteLLM reads its provider's
variable (``ANTHROPIC_API_KEY``, ...). Nothing of the client's request headers reaches the
provider: the client's ``Authorization`` is this proxy's own API key.

LiteLLM is an optional extra, imported on first use; :func:`require_litellm` turns its
absence into one clear line when the config is loaded. LiteLLM would fetch its model-cost
map from the internet at import: :func:`_litellm` sets ``LITELLM_LOCAL_MODEL_COST_MAP`` and
``LITELLM_OFFLINE_MODE`` first (unless the operator set them), so it uses its bundled copy.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from firewall_routing.errors import InputError
from firewall_routing.upstreams import UpstreamConfig

EXTRA_HINT = "pip install 'firewall-routing[litellm]'"
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}
_SSE = {"content-type": "text/event-stream"}
_JSON = {"content-type": "application/json"}


def require_litellm(field: str) -> None:
    """One line, at config load, when a ``provider: litellm`` upstream lacks the extra."""
    if importlib.util.find_spec("litellm") is None:
        raise InputError(f"provider 'litellm' needs LiteLLM: {EXTRA_HINT}", field=field)


def _litellm() -> Any:
    """The ``litellm`` module, imported lazily with its network fetches turned off."""
    for var, value in OFFLINE_ENV.items():
        os.environ.setdefault(var, value)
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True  # else every error prints a "Give Feedback" banner to stdout
    return litellm


def call_options(cfg: UpstreamConfig, body: dict[str, Any]) -> dict[str, Any]:
    """The client's parameters with our model, key, base URL and timeout; LiteLLM's own
    retries are off (the proxy's fallback, or the Python caller, decides what happens on
    failure). Shared by the proxy and the Python ``Controller``."""
    options = {k: v for k, v in body.items() if k != "model"}
    options.update(model=cfg.model, timeout=cfg.timeout, max_retries=0, num_retries=0, drop_params=True)
    if cfg.base_url is not None:
        options["api_base"] = cfg.base_url
    if cfg.api_key is not None:
        options["api_key"] = cfg.api_key.get_secret_value()
    return options


def litellm_module() -> Any:
    """The ``litellm`` module, imported with its network fetches turned off (public name)."""
    return _litellm()


def make_litellm_client(cfg: UpstreamConfig) -> httpx.AsyncClient:
    """An AsyncClient whose requests LiteLLM answers (the URL is never dialled)."""
    return httpx.AsyncClient(base_url="http://litellm.invalid/v1", transport=LiteLLMTransport(cfg))


class LiteLLMTransport(httpx.AsyncBaseTransport):
    """Answers ``POST …/chat/completions`` and ``…/completions`` through LiteLLM."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        self.cfg = cfg
        self.litellm = _litellm()

    def call_options(self, body: dict[str, Any]) -> dict[str, Any]:
        return call_options(self.cfg, body)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread())
        chat = request.url.path.endswith("/chat/completions")
        call = self.litellm.acompletion if chat else self.litellm.atext_completion
        try:
            result = await call(**self.call_options(body))
        except Exception as e:
            return self._failure(e, request)
        if body.get("stream"):
            return httpx.Response(200, headers=_SSE, stream=_EventStream(result, self, request))
        return httpx.Response(200, headers=_JSON, content=result.model_dump_json().encode())

    def _failure(self, e: Exception, request: httpx.Request) -> httpx.Response:
        """A provider's answer as a response; wire failures raised as the httpx errors the
        OpenAI-compatible path would see."""
        self.raise_wire_error(e, request)
        status = getattr(e, "status_code", None)
        if not isinstance(status, int) or not 400 <= status < 600:
            status = 502
        error = {"message": str(getattr(e, "message", e)), "type": type(e).__name__, "code": None}
        return httpx.Response(status, headers=_JSON, content=json.dumps({"error": error}).encode())

    def raise_wire_error(self, e: Exception, request: httpx.Request) -> None:
        """Raise the httpx error of a timeout or a connection failure anywhere in ``e``'s
        chain: LiteLLM reports a refused connection as a 500 ``InternalServerError`` whose
        cause is the client's ``APIConnectionError``, which must stay a 502 "unavailable"."""
        import openai  # a LiteLLM dependency

        chain = list(_causes(e))
        timeouts = (
            self.litellm.exceptions.Timeout,
            openai.APITimeoutError,
            httpx.TimeoutException,
            TimeoutError,
        )
        if any(isinstance(x, timeouts) for x in chain):
            raise httpx.ReadTimeout(str(e), request=request) from e
        wire = (openai.APIConnectionError, httpx.TransportError, ConnectionError)
        if any(isinstance(x, wire) for x in chain):
            raise httpx.ConnectError(str(e), request=request) from e


def _causes(e: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """``e`` and the exceptions it was raised from or while handling (cycle-safe)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack and len(seen) < limit:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack += [x.__cause__, x.__context__]


class _EventStream(httpx.AsyncByteStream):
    """LiteLLM's chunks as SSE events; ``aclose`` (client gone) closes the provider stream."""

    def __init__(self, chunks: Any, transport: LiteLLMTransport, request: httpx.Request) -> None:
        self.chunks = chunks
        self.transport = transport
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.chunks:
                yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
        except Exception as e:
            self.transport.raise_wire_error(e, self.request)
            raise httpx.ReadError(f"{type(e).__name__}: {e}", request=self.request) from e
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        close = getattr(self.chunks, "aclose", None)
        if close is not None:
            await close()
