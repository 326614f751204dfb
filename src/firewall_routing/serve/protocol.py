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
        self._in_head, self._head_bytes = True, 0
        super().connection_made(transport)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def data_received(self, data: bytes) -> None:
        while data:
            if self.parser is None or self.transport.is_closing():
                return
            if not self._in_head:
                super().data_received(data)
                return
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
