"""uvicorn's HTTP layer with a limit on request heads (request line + headers).

Neither uvicorn nor httptools bounds the head of a request: httptools collects a header
value in memory however long it is, and the app (and so the bearer-key check) sees the
request only when the head is complete. 20 unauthenticated connections sending 25 MB
headers took the server from 155 MB to 700 MB RSS (issue 24). This protocol counts the
bytes of each head as they arrive and, past ``MAX_HEADER_BYTES``, answers ``431`` in
OpenAI's error shape and closes the connection — before auth, before any allocation of
that size. (nginx's default is 4 x 8 KiB header buffers; OpenAI clients send < 2 KiB.)

Without httptools, uvicorn's h11 layer is used with ``h11_max_incomplete_event_size``
(the same bound, but uvicorn answers that one with a plain-text 400).
"""

from __future__ import annotations

import json
from typing import Any

MAX_HEADER_BYTES = 64 * 1024
SHUTDOWN_GRACE = 0.25  # seconds an idle-looking connection keeps reading at shutdown
HEAD_GRACE = 5.0  # seconds a half-received request head may take to finish at shutdown

_BODY = json.dumps(
    {
        "error": {
            "message": f"request headers exceed {MAX_HEADER_BYTES} bytes",
            "type": "invalid_request_error",
            "code": "request_header_fields_too_large",
            "param": None,
        }
    }
).encode()
_TIMEOUT_BODY = json.dumps(
    {
        "error": {
            "message": "request headers not received in time",
            "type": "invalid_request_error",
            "code": "request_timeout",
            "param": None,
        }
    }
).encode()
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TIMEOUT_BODY
)
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


def http_options() -> dict[str, Any]:
    """uvicorn options that bound request heads with whichever HTTP layer is installed."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
    return {"http": LimitedHttpToolsProtocol}


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools missing: http_options picks h11
    HttpToolsProtocol = object  # type: ignore[misc,assignment]


class LimitedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """``HttpToolsProtocol`` that refuses a request head over ``max_head_bytes`` with a 431.

    Bytes count from the end of one message to the end of the next one's headers; a chunk
    that holds the end of a head and the start of a body is split, so a large body sent
    with a small head in one read is not mistaken for a large head.
    """

    max_head_bytes = MAX_HEADER_BYTES

    def connection_made(self, transport: Any) -> None:
        self._in_head, self._head_bytes, self._draining = True, 0, False
        self._head_timer: Any = None
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        """A request head must arrive within ``timeout_keep_alive`` (the config's
        ``keep_alive_timeout``) of the connection opening or of its first byte: uvicorn
        has no read timeout, so a client that sends nothing, or a byte now and then, held
        its connection forever."""
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # still answering the previous request: not idle
            return
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:  # a request was started: say why it ends
                self.transport.write(TIMED_OUT)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answer it, then close

    def shutdown(self) -> None:
        """Graceful shutdown without dropping a request that is already on its way.

        uvicorn closes at once every connection that has no request in progress, which
        includes one whose request bytes are in the socket but not read yet, or half read:
        that client saw the connection drop without an answer (issue 24, SIGTERM). Here a
        connection that looks idle gets ``SHUTDOWN_GRACE`` seconds for bytes already sent
        to arrive, one in the middle of a request head up to ``HEAD_GRACE``; a request that
        starts meanwhile is answered with ``connection: close``.
        """
        if self.cycle is not None and not self.cycle.response_complete:
            super().shutdown()
            return
        self._draining = True
        self.loop.call_later(SHUTDOWN_GRACE, self._close_if_idle, SHUTDOWN_GRACE)

    def _close_if_idle(self, waited: float) -> None:
        """Close unless a request is being answered (closed after it, keep_alive off) or
        its head is still arriving (for at most ``HEAD_GRACE`` s: a client that never
        finishes one must not hold the shutdown)."""
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        if self._in_head and self._head_bytes > 0 and waited < HEAD_GRACE:
            self.loop.call_later(SHUTDOWN_GRACE, self._close_if_idle, waited + SHUTDOWN_GRACE)
            return
        self.transport.close()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # uvicorn's keep-alive timer covers the idle wait

    def data_received(self, data: bytes) -> None:
        while data:
            if self.parser is None or self.transport.is_closing():
                return
            if not self._in_head:
                super().data_received(data)
                return
            self._arm_head_timer()  # (no-op while armed)
            room = self.max_head_bytes - self._head_bytes
            part, data = data[:room], data[room:]
            self._head_bytes += len(part)
            if part:
                super().data_received(part)
            if self._in_head and self._head_bytes >= self.max_head_bytes and data:
                self.refuse()
                return
            if self._in_head and self._head_bytes >= self.max_head_bytes and not data:
                return  # exactly at the limit: the next byte decides

    def refuse(self) -> None:
        self.logger.warning("request headers over %d bytes: answered 431", self.max_head_bytes)
        self.transport.write(TOO_LARGE)
        self.transport.close()
