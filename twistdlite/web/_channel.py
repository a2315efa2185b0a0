"""One HTTP/1.1 connection: parse requests with httptools (or h11), answer them in order, enforce the limits.

:class:`HTTPChannel` is the protocol a :class:`~twistdlite.web.server.Site`
builds for each connection. It feeds what arrives to httptools' parser (llhttp,
the parser of Node.js; where httptools is not installed, to h11 through
:mod:`twistdlite.web._h11parser`) and turns its callbacks into
:class:`~twistdlite.web.server.Request` objects:

* **Persistent connections and pipelining**: requests are answered one at a
  time, in the order they came; a request that arrives while another is being
  answered waits in a queue, and reading stops while one waits, so a client
  pipelining faster than it reads costs at most one read's worth of memory.
* **Bodies**: ``Content-Length`` or chunked, read in full before the request
  is rendered (into memory, spilling to a temporary file past 1 MiB);
  ``Expect: 100-continue`` is answered once the request's turn comes and its
  declared size is allowed.
* **Limits** (the :class:`Site`'s attributes): the request line and headers
  together (``maxHeadSize``, 16 KiB) and their count (``maxHeaders``, 100) ->
  431; the body (``maxBodySize``) -> 413; a malformed request -> 400. An error
  response closes the connection once the requests before it are answered.
* **Timeouts**: a head not complete ``headTimeout`` seconds after it began (or
  after the connection was made): closed (slowloris); a kept-alive connection
  idle for ``timeout`` seconds: closed; no progress receiving a body for
  ``headTimeout``: closed; a response that could not be sent further for
  ``writeTimeout`` seconds (the client stopped reading, as nginx's
  ``send_timeout``): the connection is aborted, releasing the socket and
  whatever file was being sent.

The channel registers itself with the transport as a streaming producer, so
it learns when the send buffer fills and drains; it passes that on to the
response's producer (``Request.registerProducer``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import deque
from typing import Any, Optional

_PARSERS: dict = {}
try:
    import httptools as _httptools
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    _PARSERS["httptools"] = _httptools
try:
    from twistdlite.web import _h11parser
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:
    _PARSERS["h11"] = _h11parser
if not _PARSERS:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError("twistdlite.web needs an HTTP parser, httptools or h11: "
                              "pip install 'twistdlite[web]'", name="httptools")
#: The parser used when the site names none: httptools (C, ~40 µs a request faster) where installed, else h11.
DEFAULT_PARSER = "httptools" if "httptools" in _PARSERS else "h11"
HttpParserUpgrade = tuple(module.HttpParserUpgrade for module in _PARSERS.values())
HttpParserCallbackError = tuple(module.HttpParserCallbackError for module in _PARSERS.values())
HttpParserError = tuple(module.HttpParserError for module in _PARSERS.values())


def make_parser(protocol: Any, name: Optional[str] = None, max_head: int = 16384) -> Any:
    """A request parser (``"httptools"`` or ``"h11"``; None: the best installed) calling ``protocol``."""
    module = _PARSERS.get(name or DEFAULT_PARSER)
    if module is None:
        raise ValueError(f"no HTTP parser {name!r} installed (installed: {', '.join(_PARSERS)})")
    if module is _PARSERS.get("h11"):
        return module.HttpRequestParser(protocol, max_head)
    return module.HttpRequestParser(protocol)


from twistdlite.protocol import Protocol
from twistdlite.web.http import RESPONSES
from twistdlite.web.http_headers import Headers

__all__ = ["HTTPChannel"]

log = logging.getLogger("twistdlite.web")

#: A request body larger than this is kept in a temporary file, not in memory.
SPILL_SIZE = 1 << 20
#: After an error response, what the client still sends is read and discarded for up to this long
#: and this many bytes (so closing does not reset the connection before the client reads the response).
LINGER_TIME = 2.0
LINGER_BYTES = 1 << 20


#: The clock of the deadlines: the event loop's (asyncio's and uvloop's loop.time() are CLOCK_MONOTONIC).
_now = time.monotonic

_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}


class _Reject(Exception):
    """Raised inside a parser callback: answer with ``code`` and close."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _Error:
    """A queued error response (its turn comes after the requests received before it)."""

    __slots__ = ("code", "detail", "method", "uri", "version", "headers")

    def __init__(self, code: int, detail: str, method: Optional[bytes], uri: Optional[bytes],
                 version: Optional[bytes], headers: Optional[Headers]) -> None:
        self.code = code
        self.detail = detail
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers


class HTTPChannel(Protocol):
    """The protocol of one HTTP connection (built by :class:`~twistdlite.web.server.Site`)."""

    site: Any = None
    _parser: Any = None
    _timer: Any = None
    _timer_when = 0.0
    _read_deadline: Optional[float] = None
    _read_kind: Optional[str] = None
    _write_deadline: Optional[float] = None
    _active: Any = None
    _incoming: Any = None
    _running = False
    _closing = False
    _lost = False
    _in_head = False
    _head_bytes = 0
    _write_paused = False
    _producer: Any = None
    _streaming = True
    _continue_pending = False
    _lingering: Optional[int] = None
    _pending: Any = None

    def connectionMade(self) -> None:
        """Start parsing; the head of the first request must arrive within ``headTimeout``."""
        site = self.site
        self._loop = asyncio.get_event_loop()
        self._queue: deque = deque()
        self._pauses: set = set()
        self._max_head = site.maxHeadSize
        self._max_headers = site.maxHeaders
        self._max_body = site.maxBodySize
        self._parser = make_parser(self, site.parser, site.maxHeadSize)
        self._pending = getattr(self._parser, "pending", None)
        self.transport.registerProducer(self, True)
        self._arm_read("head", site.headTimeout)

    # -- what arrives -----------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        """Feed ``data`` to the parser; queue and answer the requests it completes."""
        parser = self._parser
        if parser is None:
            # An error response is on its way, or the connection is closing: the rest is discarded,
            # up to a bound (read so the client sees the response rather than a reset).
            if self._lingering is not None:
                self._lingering -= len(data)
                if self._lingering < 0:
                    self._close(abort=True)
            return
        self._boundary = False
        try:
            parser.feed_data(data)
        except HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, _Reject):
                self._reject(reason.code, reason.detail)
            else:
                log.error("Error handling a request from %s", self._peer_text(),
                          exc_info=(type(reason), reason, reason.__traceback__) if reason else None)
                self._reject(500, "internal error")
            return
        except HttpParserUpgrade:
            # The request asking to switch protocols is answered as plain HTTP; nothing after it is read.
            self._parser = None
            self._closing_after_queue()
        except HttpParserError as exc:
            if "header bytes" in str(exc):  # http-parser's own head limit (80 KiB; Debian 12's httptools 0.1.1)
                self._reject(431, "request head too large")
            else:
                self._reject(getattr(exc, "status", 400), " ".join(str(exc).split()) or "malformed request")
            return
        if self._in_head:
            # Bound what an unfinished head may hold before httptools has handed any of it over.
            if self._boundary:
                self._head_bytes = 0
            else:
                self._head_bytes += len(data)
                if self._head_bytes > self._max_head:
                    self._reject(431, "request head too large")
                    return
        self._run_queue()

    # httptools' callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._boundary = True
        self._url = b""
        self._headers = Headers()
        self._header_count = 0
        self._head_size = 0
        self._head_bytes = 0
        # (a head still unfinished when this read is parsed gets its deadline in _run_queue: most come
        # whole in one read, and need none)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_head:
            raise _Reject(431, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._max_headers:
            raise _Reject(431, "too many header fields")
        self._head_size += len(name) + len(value) + 4
        self._headers._add(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._boundary = True
        parser = self._parser
        method = parser.get_method()
        url = self._url
        version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            raise _Reject(400, f"unsupported HTTP version {parser.get_http_version()}")
        headers = self._headers
        if len(url) + len(method) + self._head_size + 12 > self._max_head:
            raise _Reject(431, "request head too large")
        if url.find(b"\0") >= 0:  # (find: see Request._receive)
            raise _Reject(400, "NUL in the request target")
        fields = headers._fields
        body = b"content-length" in fields or b"transfer-encoding" in fields
        if body or b"expect" in fields:
            self._check_body(fields, version)
        request = self.site.requestFactory(self)
        request._receive(method, url, version, headers, parser.should_keep_alive())
        self._incoming = request
        if body:
            self._body_size = 0
            self._arm_read("body", self.site.headTimeout)
            if self._continue_pending and self._active is None and not self._queue:
                self._send_continue()
        else:
            self._continue_pending = False
            self._read_kind = self._read_deadline = None

    def _check_body(self, fields: dict, version: bytes) -> None:
        """Refuse a request whose body is too large or ambiguous, or whose expectation is not met."""
        entry = fields.get(b"content-length")
        length = entry[1][0] if entry is not None else None
        if length is not None and b"transfer-encoding" in fields:
            raise _Reject(400, "both Content-Length and Transfer-Encoding")  # (a request smuggling attempt)
        if length is not None and int(length) > self._max_body:
            raise _Reject(413, f"the body is larger than {self._max_body} bytes")
        entry = fields.get(b"expect")
        if entry is not None:
            expect = entry[1][0]
            if expect.lower() != b"100-continue":
                raise _Reject(417, "unsupported expectation")
            if version == b"HTTP/1.1":
                self._continue_pending = True

    def on_body(self, data: bytes) -> None:
        size = self._body_size = self._body_size + len(data)
        if size > self._max_body:
            raise _Reject(413, f"the body is larger than {self._max_body} bytes")
        request = self._incoming
        content = request.content
        if size > SPILL_SIZE and isinstance(content, io.BytesIO):
            import tempfile

            spilled = tempfile.TemporaryFile()
            spilled.write(content.getbuffer())
            request.content = content = spilled
        content.write(data)
        self._read_deadline = _now() + self.site.headTimeout

    def on_message_complete(self) -> None:
        self._boundary = True
        request, self._incoming = self._incoming, None
        if request is None:
            return
        self._continue_pending = False
        request.content.seek(0)
        self._queue.append(request)
        if self._read_kind == "body":
            self._disarm_read()

    # -- answering, in order ----------------------------------------------------------------------
    def _run_queue(self) -> None:
        if self._running or self._lost:
            return
        self._running = True
        try:
            queue = self._queue
            while self._active is None and queue:
                item = queue.popleft()
                if isinstance(item, _Error):
                    queue.clear()
                    self._send_error(item)
                    return
                self._active = item
                item._process()
        finally:
            self._running = False
        if self._lost or self._closing:
            return
        if self._queue:
            self._pause("queue")
            return
        if self._pauses:
            self._resume("queue")
        if self._active is None:
            if self._continue_pending and self._incoming is not None:
                self._send_continue()
            elif self._in_head or (self._pending is not None and self._parser_pending()):
                if self._read_kind != "head":  # (from the start of the head: more bytes do not extend it)
                    self._arm_read("head", self.site.headTimeout)
            elif self._incoming is None:
                self._arm_read("idle", self.site.timeout)

    def _parser_pending(self) -> bool:
        """True when the parser holds part of a request it has not reported yet (h11 reports whole heads)."""
        pending = getattr(self._parser, "pending", None)
        return bool(pending is not None and pending())

    def _request_done(self, request: Any) -> None:
        """Called by ``Request.finish``: log it, then answer the next request or close."""
        if self._active is request:
            self._active = None
        self.site.log(request)
        if self._lost:
            return
        if not request._persistent:
            self._closing = True
            self._parser = None
            self._queue.clear()
            self._unregister_response_producer()
            self._disarm_read()
            self._close()
            return
        if not self._running:
            self._run_queue()

    def _send_continue(self) -> None:
        self._continue_pending = False
        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _closing_after_queue(self) -> None:
        """Close the connection after the last request received so far is answered."""
        last = self._incoming
        if last is None:
            last = self._queue[-1] if self._queue else self._active
        if last is not None and not isinstance(last, _Error):
            last._persistent = False

    def _reject(self, code: int, detail: str) -> None:
        """Stop parsing; answer ``code`` once the requests received before are answered, then close."""
        self._parser = None
        self._disarm_read()
        incoming, self._incoming = self._incoming, None
        if incoming is not None:
            error = _Error(code, detail, incoming.method, incoming.uri, incoming.clientproto,
                           incoming.requestHeaders)
        elif self._in_head and getattr(self, "_url", b""):
            error = _Error(code, detail, None, self._url[:200], None, self._headers)
        else:
            error = _Error(code, detail, None, None, None, None)
        self._in_head = False
        self._queue.append(error)
        self._pause("error")
        self._run_queue()

    def _send_error(self, error: _Error) -> None:
        """Write an error response with ``Connection: close``, log it, and close."""
        self._closing = True
        code = error.code
        phrase = RESPONSES.get(code, b"Error")
        body = (b"<html><head><title>%d %s</title></head><body><h1>%s</h1></body></html>\n"
                % (code, phrase, phrase))
        from twistdlite.web.server import date_header

        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\nDate: %s\r\n\r\n%s"
                             % (code, phrase, len(body), date_header(), body))
        log.info("Bad request from %s: %d %s", self._peer_text(), code, error.detail)
        self.site.log_error(self, error, len(body))
        self._linger()

    def _linger(self) -> None:
        """Half-close after the response; read and discard what the client still sends, for a while."""
        inner = getattr(self.transport, "transport", None)
        if inner is None or not inner.can_write_eof():
            self._close()
            return
        self.transport.loseWriteConnection()
        self._lingering = LINGER_BYTES
        self._pauses.clear()
        self.transport.resumeProducing()
        self._arm_read("linger", LINGER_TIME)

    # -- reading: paused while a request waits, while the send buffer is full, after an error ----
    def _pause(self, reason: str) -> None:
        if not self._pauses:
            self.transport.pauseProducing()
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        pauses = self._pauses
        if reason in pauses:
            pauses.discard(reason)
            if not pauses and not self._lost:
                self.transport.resumeProducing()

    # -- the transport's producer interface: the send buffer filled or drained --------------------
    def pauseProducing(self) -> None:
        """The send buffer is full: pause the response's producer and start the write timeout."""
        self._write_paused = True
        timeout = self.site.writeTimeout
        if timeout is not None:
            self._write_deadline = _now() + timeout
            self._schedule(self._write_deadline)
        self._pause("write")
        producer = self._producer
        if producer is not None and self._streaming:
            producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The send buffer drained: the write timeout stops; the response's producer goes on."""
        self._write_paused = False
        self._write_deadline = None
        self._resume("write")
        producer = self._producer
        if producer is not None:
            if self._streaming:
                self._in_resume = True
                try:
                    producer.resumeProducing()
                finally:
                    self._in_resume = False
            else:
                self._loop.call_soon(self._pull)

    _in_resume = False

    def _close(self, abort: bool = False) -> None:
        """Close (``abort``: at once, dropping what is unsent).

        Inside the transport's resume-writing callback the close waits for the next turn of the loop:
        asyncio's selector transport would otherwise report the lost connection twice (its
        ``_write_ready`` calls ``_call_connection_lost`` itself once the buffer is empty, after a
        close made during the callback has scheduled one).
        """
        if self._in_resume:
            self._loop.call_soon(self._close, abort)
            return
        if self._lost:
            return
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def stopProducing(self) -> None:
        """The connection is going away: stop the response's producer."""
        self._unregister_response_producer(stop=True)

    # -- a response's producer (Request.registerProducer) ------------------------------------------
    def _register_response_producer(self, producer: Any, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"Cannot register producer {producer!r}, because producer "
                               f"{self._producer!r} was never unregistered.")
        self._producer = producer
        self._streaming = bool(streaming)
        if self._lost:
            self._unregister_response_producer(stop=True)
        elif not streaming:
            self._loop.call_soon(self._pull)
        elif self._write_paused:
            producer.pauseProducing()

    def _unregister_response_producer(self, stop: bool = False) -> None:
        producer, self._producer = self._producer, None
        if stop and producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("Error stopping the producer of a response")

    def _pull(self) -> None:
        producer = self._producer
        if producer is None or self._streaming or self._write_paused or self._lost:
            return
        producer.resumeProducing()
        if self._producer is producer and not self._write_paused:
            self._loop.call_soon(self._pull)

    # -- timeouts ---------------------------------------------------------------------------------
    def _arm_read(self, kind: str, timeout: Optional[float]) -> None:
        if timeout is None:
            self._disarm_read()
            return
        self._read_kind = kind
        self._read_deadline = when = _now() + timeout
        if self._timer is None or self._timer_when > when:
            self._schedule(when)

    def _disarm_read(self) -> None:
        self._read_kind = None
        self._read_deadline = None

    def _schedule(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if self._timer_when <= when:
                return  # it fires first, and looks again then
            timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._lost:
            return
        now = _now()
        write, read = self._write_deadline, self._read_deadline
        if write is not None and now >= write:
            log.info("Timing out client that stopped reading its response: %s", self._peer_text())
            self._closing = True
            self._parser = None
            self._close(abort=True)
            return
        if read is not None and now >= read:
            kind = self._read_kind
            self._disarm_read()
            if kind == "linger":
                self._close(abort=True)
                return
            if kind == "idle":
                log.debug("Closing idle connection: %s", self._peer_text())
            else:
                log.info("Timing out client: %s (no complete request %s in time)", self._peer_text(),
                         "head" if kind == "head" else "body")
            self._closing = True
            self._parser = None
            self._close()
            return
        pending = [when for when in (write, read) if when is not None]
        if pending:
            self._schedule(min(pending))

    # -- the end ----------------------------------------------------------------------------------
    def connectionLost(self, reason: Any = None) -> None:
        """Tell the requests still open that their connection is gone; stop everything."""
        if self._lost:
            return
        self._lost = True
        self._parser = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._unregister_response_producer(stop=True)
        active, self._active = self._active, None
        waiting = [item for item in self._queue if not isinstance(item, _Error)]
        self._queue.clear()
        if self._incoming is not None:
            waiting.append(self._incoming)
            self._incoming = None
        for request in ([active] if active is not None else []) + waiting:
            try:
                request._connectionLost(reason)
            except Exception:
                log.exception("Error telling a request its connection was lost")

    _peer: Any = None

    def getPeer(self) -> Any:
        """The client's address (asked of the transport once per connection)."""
        peer = self._peer
        if peer is None:
            peer = self._peer = self.transport.getPeer()
        return peer

    _client: Optional[str] = None
    _host: Any = None

    def getHost(self) -> Any:
        """The server's address of this connection (asked of the transport once)."""
        host = self._host
        if host is None:
            host = self._host = self.transport.getHost()
        return host

    def _client_text(self) -> str:
        """The client's host as the access log shows it (worked out once per connection)."""
        text = self._client
        if text is None:
            from twistdlite.web.server import _escape

            text = self._client = _escape(getattr(self.getPeer(), "host", None) or "-")
        return text

    def _peer_text(self) -> str:
        try:
            peer = self.transport.getPeer()
        except Exception:
            return "?"
        host = getattr(peer, "host", None)
        return f"{host}:{peer.port}" if host is not None and hasattr(peer, "port") else str(peer)
