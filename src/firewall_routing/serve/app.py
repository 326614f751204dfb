"""The OpenAI-compatible routing proxy (FastAPI).

Per request: check the bearer key, read the body within the size limit, validate the few
fields routing needs (everything else passes through untouched), resolve the model name to
an operating point, score the conversation in a worker thread, batched with the other
requests waiting to be scored (the event loop keeps streaming other responses meanwhile), forward to the chosen upstream with its model name,
and make the decision visible: ``x-firewall-*`` headers, one JSON log line, Prometheus.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Annotated, Any, TextIO

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from firewall_routing.serve.config import ServeConfig
from firewall_routing.serve.prometheus import CONTENT_TYPE, ServeMetrics
from firewall_routing.serve.routing import (
    MODEL_PATTERN,
    Decider,
    Decision,
    OperatingPoint,
    Route,
    UnknownModel,
    build_decider,
    listed_models,
    shown_name,
)
from firewall_routing.serve.scoring import MicroBatcher, completion_prompt_text
from firewall_routing.serve.upstream import (
    UpstreamError,
    UpstreamPool,
    error_event,
    open_response,
    read_body,
    relay_events,
)

log = logging.getLogger("firewall_routing.serve")
request_log = logging.getLogger("firewall_routing.serve.requests")
CONFIG_ENV = "FIREWALL_ROUTING_SERVE_CONFIG"  # the config file each `serve --workers` process loads
OVERRIDES_ENV = "FIREWALL_ROUTING_SERVE_OVERRIDES"  # and the command-line overrides (JSON)
bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

PATHS = {"chat": "/chat/completions", "completions": "/completions"}


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered in OpenAI's shape ``{"error": {message, type, code, param}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = (
            status,
            message,
            code,
            type_,
            param,
        )

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }
        return JSONResponse(body, status_code=self.status)


def upstream_api_error(e: UpstreamError) -> ApiError:
    body = e.body()["error"]
    return ApiError(e.status, body["message"], body["code"], body["type"])


# --------------------------------------------------------------------------- requests


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


# Documented, not validated here: an unknown model is a 404 (model_not_found), not a 400.
MODEL_DOC = Field(
    json_schema_extra={"pattern": MODEL_PATTERN},
    description="Operating point: firewall, firewall@<0-100>%, firewall@t=<threshold>, weak or strong.",
)


# Strict: "yes" or 1 was coerced to True here but forwarded upstream as sent (issue 24).
STREAM_DOC = Field(default=False, strict=True)


class ChatRequest(BaseModel):
    """Only what routing reads; all other fields are forwarded as sent."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_DOC
    messages: list[Message] = Field(min_length=1)
    stream: bool = STREAM_DOC


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = MODEL_DOC
    prompt: str | list[str]
    stream: bool = STREAM_DOC


def validation_error(e: ValidationError) -> ApiError:
    err = e.errors()[0]
    param = ".".join(str(x) for x in err["loc"]) or None
    if err["type"] == "missing":
        return ApiError(400, f"'{param}' is required", "missing_required_parameter", param=param)
    return ApiError(400, f"'{param}': {err['msg']}", "invalid_value", param=param)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing (413) more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body exceeds {limit} bytes", "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds {limit} bytes", "request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw, parse_constant=no_constant, parse_float=finite_float)
    except RecursionError:  # the parser recurses per level: `[` x 2000 overflows it
        raise ApiError(400, TOO_DEEP, "invalid_json") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an int past Python's digit limit
        raise ApiError(400, f"request body is not valid JSON: {str(e)[:200]}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_json")
    if json_depth(body) > MAX_JSON_DEPTH:  # parsed, but re-encoding it upstream would overflow
        raise ApiError(400, TOO_DEEP, "invalid_json")
    if b"\\u" in raw and (where := lone_surrogate(body)) is not None:
        raise ApiError(
            400,
            f"request body is not valid JSON: a lone surrogate escape in {where} (not Unicode text)",
            "invalid_json",
        )
    return body


def no_constant(name: str) -> float:
    """``NaN``/``Infinity`` are not JSON: Python accepts them, and would send them upstream."""
    raise ValueError(f"{name} is not a JSON number")


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: re-encoding it upstream would write Infinity
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def lone_surrogate(value: Any) -> str | None:
    """Where a string (key or value) holds a lone surrogate (``"\\ud800"``), if anywhere.

    JSON's ``\\u`` escapes can spell half a surrogate pair, which is no character: the
    tokenizer and any UTF-8 encoder fail on it. Only run when the raw body has an escape.
    """
    stack: list[tuple[Any, str]] = [(value, "body")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return where
        elif isinstance(item, dict):
            for k, v in item.items():
                name = ascii(k)[1:-1][:40]  # printable whatever the key holds
                stack.append((k, f"a key of {where}"))
                stack.append((v, name if where == "body" else f"{where}.{name}"))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None  # (paths can grow with depth, but depth is capped at MAX_JSON_DEPTH)


MAX_JSON_DEPTH = 64  # OpenAI requests (tool schemas included) nest far less
TOO_DEEP = f"request body is nested too deeply (more than {MAX_JSON_DEPTH} levels)"


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk would overflow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


# --------------------------------------------------------------------------- state


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class RequestIdMiddleware:
    """Give every HTTP response an ``x-request-id`` (errors included), the one in the log.

    Pure ASGI (not ``BaseHTTPMiddleware``, which would buffer streams): the id is put in the
    scope's state for the handlers and added to the response start message.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """A declared body over ``max_body_bytes`` is a 413 before anything else runs (auth too).

    Bodies without a ``content-length`` (chunked) are counted while the handler reads them
    (``read_json_object``), which happens only after the key was checked.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    error = ApiError(413, f"request body exceeds {self.limit} bytes", "request_too_large")
                    response = error.response()
                    response.headers["connection"] = "close"  # the body is not read
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def request_id_of(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else new_request_id()


@dataclass
class RequestRecord:
    """Everything the one JSON log line per request says; emitted exactly once."""

    endpoint: str
    request_id: str = field(default_factory=new_request_id)
    model: str | None = None
    operating_point: str | None = None
    decision: str | None = None
    route: str | None = None
    score: float | None = None
    threshold: float | None = None
    stream: bool = False
    status: int = 0
    fallback_from: str | None = None
    error: str | None = None
    router_ms: float | None = None
    upstream_ms: float | None = None
    total_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)
    upstream_started: float | None = field(default=None, repr=False)
    done: bool = field(default=False, repr=False)

    def line(self) -> str:
        # Plain attribute reads: dataclasses.asdict deep-copies every field, per request.
        data = {name: getattr(self, name) for name in LOG_FIELDS}
        data["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        return json.dumps(data, separators=(",", ":"))


LOG_FIELDS = tuple(f.name for f in fields(RequestRecord) if f.repr)


class ServerState:
    """What request handlers share: config, decider, upstream clients, metrics, workers."""

    def __init__(
        self, config: ServeConfig, decider: Decider, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.config = config
        self.decider = decider
        self.metrics = ServeMetrics()
        self.keys = [k.encode() for k in config.auth_secrets()]
        self.transport = transport
        self.clients: dict[str, UpstreamPool] = {}
        self.scoring = ThreadPoolExecutor(1)
        self.batcher = self._batcher()

    def _batcher(self) -> MicroBatcher[tuple[Any, OperatingPoint], Decision]:
        return MicroBatcher(
            self.decider.decide_many,
            self.scoring,
            max_batch=self.config.scoring_batch_size,
            window_s=self.config.scoring_batch_window_ms / 1000.0,
            max_inflight=self.config.scoring_threads,
            inline=self.scoring_inline,
        )

    @property
    def scoring_inline(self) -> bool:
        """On the event loop: as configured, else for the static backend only."""
        if self.config.scoring_inline is not None:
            return self.config.scoring_inline
        return self.decider.scorer.backend == "static"

    def open(self) -> None:
        """Create the pooled clients and scoring workers inside the serving event loop."""
        self.scoring.shutdown(wait=False)  # a second lifespan (tests) must not leak workers
        self.clients = {
            "weak": UpstreamPool(self.config.weak, self.transport),
            "strong": UpstreamPool(self.config.strong, self.transport),
        }
        self.scoring = ThreadPoolExecutor(self.config.scoring_threads, "firewall-score")
        self.batcher = self._batcher()

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.scoring.shutdown(wait=False, cancel_futures=True)

    def upstream_model(self, route: str) -> str:
        return self.config.weak.model if route == "weak" else self.config.strong.model

    def finish(self, rec: RequestRecord, status: int) -> None:
        """Log + count a request once (streams finish when their last byte is sent)."""
        if rec.done:
            return
        rec.done, rec.status = True, status
        rec.total_ms = round((time.perf_counter() - rec.started) * 1000.0, 3)
        if rec.upstream_started is not None:
            upstream_s = time.perf_counter() - rec.upstream_started
            rec.upstream_ms = round(upstream_s * 1000.0, 3)
            self.metrics.upstream_latency.labels(route=rec.route or "none").observe(upstream_s)
        self.metrics.requests.labels(
            endpoint=rec.endpoint, route=rec.route or "none", status=str(status)
        ).inc()
        request_log.info(rec.line())


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header ('' if none), as FastAPI's
    ``HTTPBearer`` reads it, without its dependency machinery on the request path."""
    if not authorization:
        return ""
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() == "bearer" else ""


def check_auth(state: ServerState, creds: HTTPAuthorizationCredentials | str | None) -> None:
    """Bearer auth: any configured key matches (constant-time); no keys = open server."""
    if not state.keys:
        return
    given = creds if isinstance(creds, str) else (creds.credentials if creds is not None else "")
    given_bytes = given.encode()
    if not any(secrets.compare_digest(given_bytes, k) for k in state.keys):
        raise ApiError(401, "invalid or missing API key (Authorization: Bearer <key>)", "invalid_api_key")


def state_of(request: Request) -> ServerState:
    st: ServerState = request.app.state.firewall
    return st


# --------------------------------------------------------------------------- routing


def parse_request(body: dict[str, Any], endpoint: str) -> tuple[str, bool, Any]:
    """(model, stream, routed payload) — chat messages or a completion prompt text."""
    try:
        if endpoint == "chat":
            chat = ChatRequest.model_validate(body)
            # The validated body's own message dicts: scoring reads role/content from them,
            # so dumping the models back to dicts would only copy them.
            return chat.model, chat.stream, body["messages"]
        comp = CompletionRequest.model_validate(body)
        return comp.model, comp.stream, completion_prompt_text(comp.prompt)
    except ValidationError as e:
        raise validation_error(e) from None


def resolve(decider: Decider, model: str) -> OperatingPoint:
    try:
        return decider.resolve(model)
    except UnknownModel as e:
        raise ApiError(404, str(e), "model_not_found", param="model") from None


async def decide(state: ServerState, op: OperatingPoint, routed: Any) -> Decision:
    """Decide off the loop, micro-batched: neither token counting nor the encoder blocks it.

    Scored requests that wait together are decided in one ``Decider.decide_many`` call (one
    batched encoder + head pass) in a scoring thread; see ``MicroBatcher``.
    """
    if op.kind in ("weak", "strong"):
        return state.decider.decide("", op)
    try:
        return await state.batcher.submit((routed, op))
    except ValueError:  # text_of: no user turn with text
        raise ApiError(
            400,
            "messages must contain a user message with text content",
            "invalid_value",
            param="messages",
        ) from None


def decision_headers(request_id: str, decision: Decision) -> dict[str, str]:
    """The ``x-firewall-*`` headers of a decision, checked before the upstream is called.

    A value the HTTP layer refuses (a newline, say) would otherwise fail only when the
    answer is sent — after the upstream has been called and billed, with no answer for the
    client and, for streams, an upstream connection left checked out of the pool.
    """
    headers = {
        "x-firewall-route": decision.route,
        "x-firewall-operating-point": decision.operating_point,
        "x-request-id": request_id,
    }
    if decision.score is not None and decision.threshold is not None:
        headers["x-firewall-score"] = f"{decision.score:.6f}"
        headers["x-firewall-threshold"] = repr(decision.threshold)
    for name, value in headers.items():
        if not valid_header_value(value):
            raise RuntimeError(f"response header {name} would be invalid: {value[:80]!r}")
    return headers


# What both of uvicorn's HTTP layers accept (h11 and httptools): latin-1, no control
# characters but tab, no surrounding whitespace.
_HEADER_VALUE = re.compile(r"(?:[!-~\x80-\xff](?:[ \t!-~\x80-\xff]*[!-~\x80-\xff])?)?")


def valid_header_value(value: str) -> bool:
    return _HEADER_VALUE.fullmatch(value) is not None


def answered_headers(headers: dict[str, str], rec: RequestRecord) -> dict[str, str]:
    """The decision headers updated with the side that answered (fallback included)."""
    out = {**headers, "x-firewall-route": rec.route or headers["x-firewall-route"]}
    if rec.fallback_from is not None:
        out["x-firewall-fallback"] = f"{rec.fallback_from}->{rec.route}"
    return out


def other(route: str) -> Route:
    return "strong" if route == "weak" else "weak"


async def open_upstream(
    state: ServerState, rec: RequestRecord, path: str, body: dict[str, Any], route: Route
) -> httpx.Response:
    """Open the chosen upstream; on failure, optionally fall back to the other one."""
    rec.route, rec.upstream_started = route, time.perf_counter()
    try:
        pool = state.clients[route]
        return await open_response(
            pool.client(), pool.url(path), {**body, "model": state.upstream_model(route)}, route
        )
    except UpstreamError as e:
        state.metrics.upstream_errors.labels(route=route, kind=e.kind).inc()
        if not state.config.fallback:
            raise
        first = e
    second = other(route)
    state.metrics.fallbacks.labels(failed_route=route).inc()
    log.warning("request %s: %s; falling back to %s", rec.request_id, first, second)
    rec.fallback_from, rec.route, rec.error = route, second, str(first)
    try:
        pool = state.clients[second]
        return await open_response(
            pool.client(), pool.url(path), {**body, "model": state.upstream_model(second)}, second
        )
    except UpstreamError as e:
        state.metrics.upstream_errors.labels(route=second, kind=e.kind).inc()
        raise UpstreamError(e.status, e.kind, f"{first}; fallback: {e}") from e


CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never sent
DISCONNECTED = "client disconnected"


async def stream_out(
    state: ServerState, rec: RequestRecord, response: httpx.Response
) -> AsyncIterator[bytes]:
    """Relay SSE events; a mid-stream upstream failure becomes a final error event.

    If the generator is closed or cancelled before the end (the client went away), the
    request is logged as 499 and the upstream stream is closed at once.
    """
    completed = False
    try:
        async with aclosing(relay_events(response, rec.route or "upstream")) as events:
            async for chunk in events:
                yield chunk
        completed = True
    except UpstreamError as e:
        state.metrics.upstream_errors.labels(route=rec.route or "none", kind=e.kind).inc()
        rec.error = str(e)
        log.warning("request %s: %s", rec.request_id, e)
        completed = True
        yield error_event(e)
    finally:
        if not completed:
            rec.error = rec.error or DISCONNECTED
        state.finish(rec, response.status_code if completed else CLIENT_CLOSED)


class RelayResponse(StreamingResponse):
    """A StreamingResponse that always closes its generator and the upstream response.

    Starlette stops iterating when the client goes away (cancellation, or ``OSError`` from
    ``send``) but leaves the generator suspended until garbage collection; closing it here
    runs ``stream_out``'s ``finally`` now. If sending failed before the first chunk, the
    generator never started and closing it runs nothing: the upstream response is closed
    here too (it goes back to the pool — leaking it exhausted the pool after ~256 requests,
    issue 24) and the request is logged. A disconnect is the client's doing, not an error.
    """

    def __init__(
        self,
        state: ServerState,
        rec: RequestRecord,
        upstream: httpx.Response,
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        super().__init__(
            stream_out(state, rec, upstream), upstream.status_code, headers=headers, media_type=media_type
        )
        self.state, self.rec, self.upstream = state, rec, upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body_iterator
        try:
            await super().__call__(scope, receive, send)
        except (ClientDisconnect, OSError):
            pass
        finally:
            try:
                if hasattr(body, "aclose"):
                    await body.aclose()
            finally:
                await self.upstream.aclose()
                if not self.rec.done:
                    self.rec.error = self.rec.error or DISCONNECTED
                    self.state.finish(self.rec, CLIENT_CLOSED)


async def answer(
    state: ServerState,
    rec: RequestRecord,
    request: Request,
    upstream: httpx.Response,
    headers: dict[str, str],
    stream: bool,
) -> Response:
    """The client's response for an opened upstream response, which is always released:
    handed to a RelayResponse (which closes it), or read and closed here."""
    media = upstream.headers.get("content-type", "application/json")
    if stream and media.startswith("text/event-stream"):
        return RelayResponse(state, rec, upstream, headers, media)
    try:
        content = await read_body(upstream, rec.route or "upstream")  # closes it
    except UpstreamError as e:
        raise upstream_api_error(e) from None
    finally:
        await upstream.aclose()  # also when cancelled before read_body ran
    if await request.is_disconnected():  # nobody will read the answer
        rec.error = DISCONNECTED
        state.finish(rec, CLIENT_CLOSED)
    else:
        state.finish(rec, upstream.status_code)
    return Response(content, upstream.status_code, headers=headers, media_type=media)


async def proxy(request: Request, endpoint: str) -> Response:
    state = state_of(request)
    rec = RequestRecord(endpoint=endpoint, request_id=request_id_of(request))
    try:
        check_auth(state, bearer_token(request.headers.get("authorization")))
        body = await read_json_object(request, state.config.max_body_bytes)
        model, stream, routed = parse_request(body, endpoint)
        rec.model, rec.stream = shown_name(model), stream  # a 1 MB name is no 2 MB log line
        op = resolve(state.decider, model)
        decision = await decide(state, op, routed)
        state.metrics.record_decision(decision.route, decision.forced, decision.router_ms / 1000.0)
        rec.operating_point, rec.decision = decision.operating_point, decision.route
        rec.score, rec.threshold = decision.score, decision.threshold
        rec.router_ms = round(decision.router_ms, 3)
        headers = decision_headers(rec.request_id, decision)
        try:
            upstream = await open_upstream(state, rec, PATHS[endpoint], body, decision.route)
        except UpstreamError as e:
            raise upstream_api_error(e) from None
        return await answer(state, rec, request, upstream, answered_headers(headers, rec), stream)
    except ApiError as e:
        rec.error = rec.error or e.message
        state.finish(rec, e.status)
        raise
    except Exception as e:  # a bug or a scorer failure: one log line, one traceback, a 500
        rec.error = f"{type(e).__name__}: {e}"
        state.finish(rec, 500)
        log.exception("request %s: internal error", rec.request_id)
        raise ApiError(500, "internal server error", "internal_error", "server_error") from None


# --------------------------------------------------------------------------- app


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined, to embed in an OpenAPI operation.

    (Handlers read the raw body themselves — size limit, OpenAI-shaped errors — so FastAPI
    cannot derive these schemas; they document the API and drive the schemathesis fuzz.)
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    content = {"application/json": {"schema": inline_schema(model)}}
    return {"requestBody": {"required": True, "content": content}, "security": [{"HTTPBearer": []}]}


def add_routes(app: FastAPI) -> None:
    # The bearer key is read in `proxy` (no `Depends`: dependency solving per request cost
    # more than the check); the schema still names the scheme `/v1/models` declares.
    @app.post("/v1/chat/completions", openapi_extra=body_doc(ChatRequest))
    async def chat_completions(request: Request) -> Response:
        return await proxy(request, "chat")

    @app.post("/v1/completions", openapi_extra=body_doc(CompletionRequest))
    async def completions(request: Request) -> Response:
        return await proxy(request, "completions")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request, creds: Credentials) -> dict[str, Any]:
        """The schema, behind the same bearer auth as the API (it lists every endpoint)."""
        check_auth(state_of(request), creds)
        return app.openapi()

    @app.get("/v1/models")
    async def models(request: Request, creds: Credentials) -> dict[str, Any]:
        state = state_of(request)
        check_auth(state, creds)
        names = listed_models(state.decider.default.name, state.decider.calibration is not None)
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "firewall-routing"} for n in names
            ],
        }

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        state = state_of(request)
        return {
            "status": "ok",
            "backend": state.decider.scorer.backend,
            "calibrated": state.decider.calibration is not None,
            "default_model": state.decider.default.name,
        }

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(state_of(request).metrics.render(), media_type=CONTENT_TYPE)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return ApiError(exc.status_code, str(exc.detail), code).response()

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Runs outside RequestIdMiddleware (Starlette's outermost layer): add the id here.
        rid = request_id_of(request)
        log.exception("request %s: internal error", rid)
        response = ApiError(500, "internal server error", "internal_error", "server_error").response()
        response.headers["x-request-id"] = rid
        return response


class BatchedStreamHandler(logging.Handler):
    """Formats on the caller's thread, writes from a background thread every ``interval`` s.

    The request handler only appends the formatted line to a deque; the write to stderr (a
    system call that blocks when the reader of a pipe is slow) happens off the event loop,
    many lines per call. Unlike ``QueueHandler`` + ``QueueListener``, no thread is woken
    per line: that wake-up and the GIL hand-off it causes cost more than the write itself.

    ``close`` writes what is pending but leaves the writer running: uvicorn's logging set-up
    (``dictConfig``) closes every existing handler yet leaves it attached, and a stopped
    writer would then drop every later line. The writer is a daemon thread; pending lines
    are written at exit (``configure_logging`` registers that).
    """

    def __init__(self, stream: TextIO, interval: float = 0.05) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.lines: deque[str] = deque()
        self._write_lock = threading.Lock()  # one drain at a time: lines stay in order
        self._thread = threading.Thread(target=self._run, name="firewall-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.handleError(record)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.drain()

    def drain(self) -> None:
        with self._write_lock:
            lines = []
            while self.lines:
                lines.append(self.lines.popleft())
            if lines:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()

    def flush(self) -> None:
        self.drain()

    def close(self) -> None:
        self.drain()
        super().close()


def configure_logging() -> None:
    """Log lines (one JSON line per request) to stderr, written off the event loop."""
    handler = BatchedStreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    atexit.register(handler.drain)  # logging's own exit hook may no longer know the handler
    # httpx logs every upstream call at INFO: keep it to one JSON line per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def app_from_env() -> FastAPI:
    """The app of one ``serve --workers N`` process: config from ``$FIREWALL_ROUTING_SERVE_CONFIG``.

    uvicorn starts each worker as a fresh process, so the router, scorer and logging are
    set up again in every one (the parent already validated all of it once).
    """
    from firewall_routing.serve.config import load_config, with_overrides

    configure_logging()
    overrides = json.loads(os.environ.get(OVERRIDES_ENV) or "{}")
    app = create_app(with_overrides(load_config(os.environ[CONFIG_ENV]), **overrides))
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move everything loaded at start-up (router, encoder, libraries) out of the GC's reach.

    The cyclic collector's oldest generation walks every tracked object: with the router,
    tokenizer and FastAPI loaded, one such collection took ~0.14 s of the event loop's CPU
    (every request waiting behind it; ``profile_serve.py``). Objects that live as long as
    the server need no collecting; ``gc.freeze`` leaves only what requests allocate.
    Called by ``serve`` once the app is built (not by ``create_app``: a test process builds
    many apps, and frozen garbage is never freed).
    """
    gc.collect()
    gc.freeze()


def create_app(
    config: ServeConfig,
    *,
    decider: Decider | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app; ``decider``/``transport`` let tests inject a scorer or fake upstream."""
    if decider is None:
        decider = build_decider(
            config.router,
            config.calibration,
            backend=config.backend,
            default_model=config.default_model,
            context_tokens=config.context_tokens,
            threads=config.encoder_threads,
        )
    state = ServerState(config, decider, transport)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.open()
        if not state.keys:
            log.warning("no auth_keys configured: the server accepts unauthenticated requests")
        yield
        await state.close()
        # Every request has been answered and logged: write the lines still queued now. A
        # worker then dies of its re-raised SIGTERM, which runs no atexit hook (one line
        # per answer was lost with --workers 2, issue 24).
        for handler in logging.getLogger().handlers:
            handler.flush()

    app = FastAPI(
        title="firewall-routing", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.firewall = state
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)  # outermost: the 413 carries an id too
    add_routes(app)
    add_error_handlers(app)
    return app
