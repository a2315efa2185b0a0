"""h11 behind the interface of httptools' ``HttpRequestParser``: the pure-Python fallback parser.

:class:`twistdlite.web._channel.HTTPChannel` is written against httptools'
callback parser (``on_message_begin``, ``on_url``, ``on_header``,
``on_headers_complete``, ``on_body``, ``on_message_complete``). Where
httptools is not installed (no wheel for the platform, PyPy...), this adapter
drives h11 the same way. h11 parses a whole head before it reports it, so a
head's size is bounded by h11's ``max_incomplete_event_size`` (the site's
``maxHeadSize``), answered with 431. Each request gets a fresh h11 connection
(the channel, not h11, writes the responses), fed what was left after the
previous one. It costs about 40 µs more per request than httptools.
"""

from __future__ import annotations

from typing import Any

import h11

__all__ = ["HttpRequestParser", "HttpParserError", "HttpParserCallbackError", "HttpParserUpgrade"]


class HttpParserError(Exception):
    """A malformed request (``status``: what to answer)."""

    status = 400


class HttpParserCallbackError(HttpParserError):
    """A callback raised; the exception it raised is this one's ``__context__``."""


class HttpParserUpgrade(HttpParserError):
    """The request asked to switch protocols: nothing after it is HTTP."""


class HttpRequestParser:
    """Feed bytes, get the callbacks of ``protocol`` called as requests are parsed."""

    def __init__(self, protocol: Any, max_head: int = 16384) -> None:
        self._protocol = protocol
        self._max_head = max_head
        self._conn = self._new()
        self._method = b""
        self._version = "1.1"
        self._keep_alive = True
        self._upgrade = False

    def _new(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head)

    def get_method(self) -> bytes:
        """The current request's method."""
        return self._method

    def get_http_version(self) -> str:
        """The current request's HTTP version: ``"1.1"``."""
        return self._version

    def should_keep_alive(self) -> bool:
        """Whether the connection may carry another request after this one."""
        return self._keep_alive

    def pending(self) -> bool:
        """True when part of a request has arrived that h11 has not reported yet."""
        return bool(self._conn.trailing_data[0])

    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self._protocol, name)(*args)
        except Exception:
            raise HttpParserCallbackError(f"the {name} callback failed")  # (its __context__ is the cause)

    def feed_data(self, data: bytes) -> None:
        """Parse ``data``; the callbacks run as events complete."""
        conn = self._conn
        conn.receive_data(bytes(data))
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                error = HttpParserError(str(exc) or "malformed request")
                if exc.error_status_hint == 431:
                    error.status = 431
                raise error from None
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return
            if isinstance(event, h11.Request):
                self._request(event)
            elif isinstance(event, h11.Data):
                self._call("on_body", bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._call("on_message_complete")
                if self._upgrade:
                    raise HttpParserUpgrade("the client asked to switch protocols")
                rest = bytes(conn.trailing_data[0])
                conn = self._conn = self._new()
                if rest:
                    conn.receive_data(rest)
            elif event is h11.PAUSED:
                return

    def _request(self, event: Any) -> None:
        self._method = bytes(event.method)
        self._version = event.http_version.decode("ascii")
        tokens = set()
        upgrade = False
        self._call("on_message_begin")
        self._call("on_url", bytes(event.target))
        for name, value in event.headers.raw_items():
            lower = name.lower()
            if lower == b"connection":
                tokens.update(token.strip().lower() for token in value.split(b","))
            elif lower == b"upgrade":
                upgrade = True
            self._call("on_header", bytes(name), bytes(value))
        if self._version == "1.1":
            self._keep_alive = b"close" not in tokens
        else:
            self._keep_alive = b"keep-alive" in tokens
        self._upgrade = upgrade and b"upgrade" in tokens or self._method == b"CONNECT"
        self._call("on_headers_complete")
