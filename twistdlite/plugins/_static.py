"""The ``web`` plugin's server: the stdlib's ``SimpleHTTPRequestHandler`` on a twistdlite protocol.

:class:`HTTPChannel` buffers one request's head (the request line and the
headers) and hands it to :class:`RequestHandler`, a
``SimpleHTTPRequestHandler`` reading from an in-memory ``rfile`` and writing
to the connection through a small ``wfile``. The handler parses the request
and writes the status line, the headers and any error page; a file's (or a
directory listing's) body is then sent by :class:`BodyProducer`, a pull
producer registered on the transport, one chunk at a time while the send
buffer has room, so a large file is never read into memory and a slow client
slows the reading down. HTTP/1.0: the connection closes after each response.

Every response is logged in the Combined Log Format, as ``twistd web`` logs it:
``"127.0.0.1" - - [22/Nov/2026:10:15:30 +0000] "GET / HTTP/1.1" 200 1234 "-" "curl/8.5.0"``.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import logging
import time
from typing import Any, Optional

import twistdlite
from twistdlite.protocol import Protocol, ServerFactory

__all__ = ["StaticSite", "HTTPChannel", "RequestHandler", "BodyProducer"]

log = logging.getLogger("twistdlite.web")

_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(when: Optional[float] = None) -> str:
    """``[22/Nov/2026:10:15:30 +0000]``: the Combined Log Format's time, in UTC."""
    t = time.gmtime(when)
    return "[%02d/%s/%04d:%02d:%02d:%02d +0000]" % (t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour,
                                                     t.tm_min, t.tm_sec)


def _escape(text: str) -> str:
    """``text`` safe inside a quoted log field: control characters, backslashes and quotes escaped."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


class _Output:
    """The handler's ``wfile``: writes go straight to the transport; bytes after the headers are counted."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.body_started = False
        self.body_bytes = 0

    def write(self, data: bytes) -> int:
        """Send ``data``."""
        data = bytes(data)
        self.transport.write(data)
        if self.body_started:
            self.body_bytes += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: every write went to the transport already."""


class RequestHandler(http.server.SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` answering one request read from memory.

    It is not run by ``socketserver``: :meth:`respond` answers the request whose
    head is ``request``. A GET's body is not copied here but left in
    :attr:`body` (an open file, or the listing of a directory) for the
    channel to stream.
    """

    server_version = f"twistdlite/{twistdlite.__version__}"
    #: A request that cannot be parsed gets an HTTP/1.0 error response, not HTTP/0.9's bare body.
    default_request_version = "HTTP/1.0"

    def __init__(self, request: bytes, client_address: tuple, directory: str, wfile: _Output) -> None:
        # Deliberately not BaseRequestHandler.__init__, which would run socketserver's request cycle.
        self.rfile = io.BytesIO(request)
        self.wfile = wfile  # type: ignore[assignment]
        self.client_address = client_address
        self.directory = directory
        self.server = None  # type: ignore[assignment]
        self.request = None
        self.requestline = ""
        self.command = ""
        self.request_version = ""
        self.headers = None  # type: ignore[assignment]
        self.close_connection = True
        #: What a GET left to send: an open binary file object, or None.
        self.body: Any = None
        #: The status code sent (None until a response is sent).
        self.code: Optional[int] = None

    def respond(self) -> None:
        """Parse the request and send the response's head (and an error page's body)."""
        self.handle_one_request()

    def fail(self, code: int, message: Optional[str] = None) -> None:
        """Answer with an error when the request could not even be read (too large a head)."""
        self.send_error(code, message)

    def version_string(self) -> str:
        """The ``Server`` header: twistdlite's name and version."""
        return self.server_version

    def do_GET(self) -> None:
        """Send the head of the response; leave the body in :attr:`body` to be streamed."""
        self.body = self.send_head()

    def end_headers(self) -> None:
        """End the head; what is written after it is the body (counted for the log)."""
        super().end_headers()
        self.wfile.body_started = True  # type: ignore[attr-defined]

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Remember the status; the channel logs the request once the response is sent."""
        try:
            self.code = int(code)
        except (TypeError, ValueError):
            self.code = None

    def log_error(self, format: str, *args: Any) -> None:
        """The stdlib's error notes ("code 404, message File not found"): the access line says it already."""
        log.debug(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        """Anything else the stdlib logs goes to the ``twistdlite.web`` logger, not to stderr."""
        log.debug(format, *args)

    def access_line(self, sent: int) -> str:
        """This request in the Combined Log Format, ``sent`` being the body's length."""
        headers = self.headers
        referrer = headers.get("Referer", "-") if headers is not None else "-"
        agent = headers.get("User-Agent", "-") if headers is not None else "-"
        return '"%s" - - %s "%s" %s %s "%s" "%s"' % (
            _escape(str(self.client_address[0])), _clf_time(), _escape(self.requestline),
            self.code if self.code is not None else "-", sent or "-", _escape(referrer), _escape(agent))


class BodyProducer:
    """A pull producer sending a response body from a file object, one chunk per call."""

    chunkSize = 65536

    def __init__(self, channel: "HTTPChannel", source: Any) -> None:
        self.channel = channel
        self.source = source

    def resumeProducing(self) -> None:
        """Send the next chunk, or finish the response at the end of the file."""
        source = self.source
        if source is None:
            return
        try:
            data = source.read(self.chunkSize)
        except OSError as exc:
            log.error("Error reading %s: %s", getattr(source, "name", "the response body"), exc)
            self._close()
            self.channel.transport.unregisterProducer()
            self.channel.abort()
            return
        if data:
            self.channel.sent += len(data)
            self.channel.transport.write(data)
            return
        self._close()
        self.channel.transport.unregisterProducer()
        self.channel.finish()

    def pauseProducing(self) -> None:
        """Nothing to do: a pull producer is only asked for more when there is room."""

    def stopProducing(self) -> None:
        """The connection was lost: close the file."""
        self._close()

    def _close(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            source.close()


class HTTPChannel(Protocol):
    """One connection: read a request's head, answer it, close."""

    #: The largest request head accepted (431 beyond it).
    maxHeadSize = 65536
    #: How long to keep reading (and discarding) what a client still sends after its response,
    #: when the request was not read to its end, so closing does not reset the connection
    #: before the client has read the response.
    lingerTime = 2.0

    handler: Optional[RequestHandler] = None
    output: Optional[_Output] = None
    sent = 0
    _received: Any = b""
    _answered = False
    _unread = False
    _logged = False
    _timer: Any = None

    def connectionMade(self) -> None:
        """Wait for the request, for at most the factory's ``timeOut`` seconds."""
        self._received = bytearray()
        timeout = getattr(self.factory, "timeOut", None)
        if timeout:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        """Buffer the request's head; answer once it is complete (a body, if any, is ignored)."""
        if self._answered:
            return
        start = max(0, len(self._received) - 3)
        self._received += data
        end = self._received.find(b"\r\n\r\n", start)
        size = 4
        if end < 0:
            end, size = self._received.find(b"\n\n", start), 2
        if end < 0:
            if len(self._received) > self.maxHeadSize:
                self._answer(b"", too_large=True)
            return
        self._unread = len(self._received) > end + size  # a body, or a pipelined request: ignored
        self._answer(bytes(self._received[:end + size]))

    def _answer(self, head: bytes, too_large: bool = False) -> None:
        self._answered = True
        self._unread = self._unread or too_large
        self._received = b""
        self._cancel_timer()
        peer = self.transport.getPeer()
        client = (getattr(peer, "host", None) or getattr(peer, "name", None) or "-", getattr(peer, "port", 0))
        self.output = _Output(self.transport)
        handler = self.handler = RequestHandler(head, client, self.factory.path, self.output)
        if too_large:
            handler.fail(431, "Request header fields too large")
        else:
            handler.respond()
        headers = handler.headers
        if headers is not None and (headers.get("Content-Length", "0").strip() not in ("", "0")
                                    or headers.get("Transfer-Encoding")):
            self._unread = True  # a request body, which is not read
        body, handler.body = handler.body, None
        if body is None:
            self.finish()
        else:
            self.transport.registerProducer(BodyProducer(self, body), False)

    def finish(self) -> None:
        """The response is sent: log it and close the connection.

        If the client may still be sending (a request body, too large a head), only
        our side is closed at first, and what arrives is discarded until the client
        closes too or ``lingerTime`` has passed: closing a socket with unread input
        resets the connection, and the client could lose the response.
        """
        self._log()
        raw = getattr(self.transport, "transport", None)
        if self._unread and raw is not None and raw.can_write_eof():
            self.transport.loseWriteConnection()
            self._timer = asyncio.get_running_loop().call_later(self.lingerTime, self.transport.loseConnection)
        else:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Give up on the response (the file could not be read)."""
        self._log()
        self.transport.abortConnection()

    def _log(self) -> None:
        if self._logged or self.handler is None or self.handler.code is None:
            return
        self._logged = True
        sent = self.sent + (self.output.body_bytes if self.output is not None else 0)
        log.info("%s", self.handler.access_line(sent))

    def _timed_out(self) -> None:
        self._timer = None
        log.info("Timing out client: %s", self.transport.getPeer())
        self.transport.loseConnection()

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def connectionLost(self, reason: Any = None) -> None:
        """Log a response cut short (with what was sent of it)."""
        self._cancel_timer()
        self._log()


class StaticSite(ServerFactory):
    """Serves the files under ``path`` over HTTP: ``StaticSite(path, timeOut=60)``.

    ``timeOut`` (seconds, None for none) bounds the wait for a request's head.
    """

    protocol = HTTPChannel

    def __init__(self, path: str, timeOut: Optional[float] = 60.0) -> None:
        self.path = path
        self.timeOut = timeOut

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} serving {self.path!r}>"
