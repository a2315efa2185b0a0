"""``Site`` and ``Request``: serve a resource tree over HTTP/1.1, mirroring ``twisted.web.server``.

    from twistdlite import internet
    from twistdlite.web import server, static
    internet.TCPServer(8080, server.Site(static.File("/srv/www")))

:class:`Site` is a protocol factory for any twistdlite server
(``internet.TCPServer``, ``strports.service``, endpoints). For each request it
walks the resource tree (``resource.getChildForRequest``) and renders what it
finds; a render method returns the body (bytes), or :data:`NOT_DONE_YET` and
calls ``request.write(...)`` and ``request.finish()`` later, or is an
``async def`` whose result is the body. An exception while rendering is logged
with its traceback and answered with 500 (showing the traceback only when
``site.displayTracebacks`` is true).

A response with a ``Content-Length`` is sent as it is; one without is sent
chunked to an HTTP/1.1 client and ends the connection for an HTTP/1.0 one.

Each finished request is logged in the Combined Log Format: on the
``twistdlite.web`` logger, or to the file ``logPath`` when one is given.
The HTTP/1.1 connection itself (parsing, pipelining, limits, timeouts) is
:class:`twistdlite.web._channel.HTTPChannel`.

``request.getSession()`` gives the client's :class:`Session` (in memory, found
by Twisted's ``TWISTED_SESSION`` cookie: see :mod:`twistdlite.web._session`);
``request.URLPath()`` the :class:`twistdlite.urlpath.URLPath` of the resource.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from typing import Any, Optional
from urllib.parse import parse_qs, unquote_to_bytes

import twistdlite
from twistdlite.protocol import ServerFactory
from twistdlite.web import resource as _resource
from twistdlite.web._channel import HTTPChannel
from twistdlite.web._session import Session
from twistdlite.web.http import RESPONSES
from twistdlite.web.http_headers import Headers

__all__ = ["Site", "Request", "Session", "NOT_DONE_YET", "version", "combinedLogFormatter", "date_header"]

log = logging.getLogger("twistdlite.web")

#: Returned by a render method that finishes the request later (``request.finish()``).
NOT_DONE_YET = 1

#: The ``Server`` header's value.
version = b"twistdlite/" + twistdlite.__version__.encode("ascii")

_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: The second they are for; its HTTP date; its log timestamp; the ``version`` and the
#: ``Server`` and ``Date`` lines of a response head, made with both.
_date_cache: list = [0, b"", "", None, b""]
_time = time.time
#: The status line of each code answered so far with its reason phrase from ``RESPONSES``.
_STATUS_LINES: dict = {}


def _refresh_dates(now: int) -> None:
    t = time.gmtime(now)
    _date_cache[0] = now
    _date_cache[1] = ("%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)).encode("ascii")
    _date_cache[2] = "[%02d/%s/%04d:%02d:%02d:%02d +0000]" % (
        t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
    _date_cache[3] = version
    _date_cache[4] = b"Server: " + version + b"\r\nDate: " + _date_cache[1] + b"\r\n"


def date_header() -> bytes:
    """The current time as an HTTP date (``Sun, 06 Dec 2026 03:00:00 GMT``), computed once a second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _refresh_dates(now)
    return _date_cache[1]


def _log_time() -> str:
    now = int(time.time())
    if now != _date_cache[0]:
        _refresh_dates(now)
    return _date_cache[2]


def _escape(value: Any) -> str:
    """``value`` safe inside a quoted log field (control characters, backslashes, quotes escaped)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _multipart_fields(ctype: bytes, body: bytes) -> Optional[dict]:
    """A multipart/form-data body's fields (name -> [value bytes]; a file's content as its value), None if malformed."""
    import email.parser
    import email.policy

    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype + b"\r\n\r\n" + body)
        if not message.is_multipart() or message.defects:
            return None
        fields: dict = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                continue
            value = part.get_payload(decode=True)
            fields.setdefault(str(name).encode("utf-8"), []).append(value if value is not None else b"")
        return fields
    except (ValueError, TypeError, LookupError):
        return None


def combinedLogFormatter(timestamp: str, request: Any) -> str:
    """``request`` as a line of the Combined Log Format (as Twisted's ``combinedLogFormatter``)."""
    channel = request.channel
    if channel is not None:
        ip = channel._client or channel._client_text()
    else:
        ip = _escape(getattr(request.getClientAddress(), "host", None) or "-")
    method = request.method
    if method:
        # (the parser accepts only known methods and HTTP/x.y versions: nothing there to escape)
        uri = request.uri
        text = uri.decode("latin-1") if uri else "-"
        if not text.isprintable() or '"' in text or "\\" in text:
            text = _escape(text)
        line = "%s %s %s" % (method.decode("ascii"), text, request.clientproto.decode("ascii") or "-")
    else:
        line = "-"
    headers = request.requestHeaders
    fields = headers._fields if headers is not None else _NO_FIELDS
    referer = fields.get(b"referer")
    agent = fields.get(b"user-agent")
    return '"%s" - - %s "%s" %s %s "%s" "%s"' % (
        ip, timestamp, line, request.code, request.sentLength or "-",
        "-" if referer is None else _escape(referer[1][0]), "-" if agent is None else _escape(agent[1][0]))


_NO_FIELDS: dict = {}


def _finish_waiter(loop: Any) -> Any:
    """A Deferred when ``twistdlite.defer`` exists, else an asyncio future."""
    try:
        from twistdlite.defer import Deferred
    except ImportError:
        return loop.create_future()
    return Deferred()


def _fire(waiter: Any, error: Optional[BaseException]) -> None:
    if isinstance(waiter, asyncio.Future):
        if waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
            waiter.exception()  # nobody has to look: no "exception was never retrieved" noise
        return
    if error is None:
        waiter.callback(None)
    else:
        from twistdlite.failure import Failure

        waiter.errback(Failure(error))


class Request:
    """One HTTP request and its response (Twisted's ``twisted.web.server.Request``).

    Read: ``method``, ``uri``, ``path``, ``args``, ``content`` (a file of the
    body), ``prepath``/``postpath``, ``clientproto``, ``requestHeaders``,
    ``getHeader``, ``getClientAddress``, ``isSecure``. Answer:
    ``setResponseCode``, ``setHeader``, ``responseHeaders``, ``write``,
    ``finish``, ``redirect``; ``notifyFinish()`` tells when the response is
    done (or the connection lost first).
    """

    method: bytes = b""
    uri: bytes = b""
    path: bytes = b""
    clientproto: bytes = b""
    content: Any = None
    site: Any = None
    sitepath: Any = None
    code = 200
    code_message: Optional[bytes] = None
    startedWriting = 0
    finished = 0
    sentLength = 0
    producer: Any = None
    _disconnected = False
    _persistent = True
    _chunked = False
    _no_body = False
    _waiters: Any = None
    _cookies: Optional[dict] = None

    def __init__(self, channel: Any, queued: Any = None) -> None:
        self.channel = channel
        self.transport = channel.transport if channel is not None else None
        self.requestHeaders: Any = None
        self.responseHeaders = Headers()
        self.args: dict = {}
        self.prepath: list = []
        self.postpath: list = []

    # -- set up by the channel --------------------------------------------------------------------
    def _receive(self, method: bytes, uri: bytes, version: bytes, headers: Headers, keep_alive: bool) -> None:
        self.method = method
        self.uri = uri
        self.clientproto = version
        self.requestHeaders = headers
        self._persistent = keep_alive
        self.content = io.BytesIO()
        target = uri
        if target[:1] != b"/" and b"://" in target[:16]:  # absolute form: http://host/path
            target = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
        path, question, query = target.partition(b"?")
        self.path = path
        if question:
            self.args = parse_qs(query, keep_blank_values=True)
        segments = path[1:].split(b"/") if path[:1] == b"/" else [path]  # ("*", or CONNECT's host:port)
        # (bytes.find rather than `in` on this path: `in` first tries its operand as an int, and the
        # TypeError it builds and drops costs more than the search)
        if path.find(b"%") >= 0:
            segments = [unquote_to_bytes(s) for s in segments]
        self.postpath = segments

    def _process(self) -> None:
        """Find the resource for this request and render it (called by the channel in its turn)."""
        site = self.channel.site
        self.site = site
        try:
            path = self.path
            if path.find(b"\0") >= 0 or (path.find(b"%") >= 0 and any(b"\0" in s for s in self.postpath)):
                body = _resource.ErrorPage(400, "Bad Request", "The path holds a NUL character.").render(self)
            elif self.method == b"POST" and not self._form_args():
                body = _resource.ErrorPage(400, "Bad Request", "The multipart form cannot be read.").render(self)
            else:
                body = site.getResourceFor(self).render(self)
        except _resource.UnsupportedMethod as exc:
            self._unsupported(exc)
            return
        except Exception:
            self.processingFailed(sys.exc_info())
            return
        self._rendered(body)

    def _form_args(self) -> bool:
        """Add a POSTed form's fields to ``args``; False for a multipart form that cannot be read."""
        if self.method != b"POST" or self.requestHeaders is None:
            return True
        ctype = self.requestHeaders._first(b"content-type")
        if ctype is None:
            return True
        kind = ctype.lower()
        if kind.startswith(b"application/x-www-form-urlencoded"):
            body = self.content.read()
            self.content.seek(0)
            # A key in both the query and the form takes the form's values, as Twisted's args.update does.
            self.args.update(parse_qs(body, keep_blank_values=True))
        elif kind.startswith(b"multipart/form-data"):
            body = self.content.read()
            self.content.seek(0)
            fields = _multipart_fields(ctype, body)
            if fields is None:
                return False
            self.args.update(fields)
        return True

    def _unsupported(self, exc: Any) -> None:
        allowed = exc.allowedMethods
        self.setResponseCode(405)
        self.setHeader(b"allow", b", ".join(allowed))
        page = _resource.ErrorPage(405, "Method Not Allowed",
                                   "Your browser approached me (at %s) with the method %r. I only allow %s."
                                   % (self.uri.decode("latin-1"), self.method.decode("latin-1"),
                                      ", ".join(m.decode("ascii") for m in allowed) or "nothing"))
        self._rendered(page.render(self))

    def _rendered(self, body: Any) -> None:
        if body is NOT_DONE_YET:
            return
        if isinstance(body, bytes):
            if self.finished or self._disconnected:
                return
            if not self.startedWriting and (body or self.method != b"HEAD") and self.code not in (204, 304):
                # (a HEAD rendered as b"" keeps the Content-Length its resource set)
                self.responseHeaders._fields[b"content-length"] = [b"Content-Length", [b"%d" % len(body)]]
            self.write(body)
            self.finish()
            return
        if asyncio.iscoroutine(body) or isinstance(body, asyncio.Future):
            future = asyncio.ensure_future(body)
            future.add_done_callback(self._async_rendered)
            return
        if hasattr(body, "addCallbacks"):  # a Deferred
            body.addCallbacks(self._rendered, lambda failure: self.processingFailed(
                (failure.type, failure.value, failure.getTracebackObject())))
            return
        try:
            raise TypeError(f"render returned {type(body).__name__} ({body!r:.80}), not bytes or NOT_DONE_YET")
        except TypeError:
            self.processingFailed(sys.exc_info())

    def _async_rendered(self, future: Any) -> None:
        if future.cancelled():
            if not self.finished and not self._disconnected:
                self.processingFailed((asyncio.CancelledError, asyncio.CancelledError(), None))
            return
        exc = future.exception()
        if exc is not None:
            if isinstance(exc, _resource.UnsupportedMethod):
                self._unsupported(exc)
            else:
                self.processingFailed((type(exc), exc, exc.__traceback__))
            return
        result = future.result()
        if result is None:
            if not self.finished and not self._disconnected:
                self.finish()
            return
        self._rendered(result)

    def processingFailed(self, reason: Any) -> None:
        """Log an exception raised while rendering and answer 500 (the traceback shown only if the site says so).

        ``reason`` is an ``exc_info`` triple (or a Failure-like object with ``type``/``value``/``tb``).
        """
        if not isinstance(reason, tuple):
            reason = (getattr(reason, "type", type(reason)), getattr(reason, "value", reason),
                      getattr(reason, "tb", None))
        log.error("Error rendering %s %s", self.method.decode("latin-1"), _escape(self.uri), exc_info=reason)
        if self._disconnected or self.finished:
            return
        if self.startedWriting:
            # The head is gone already: cutting the connection is the only way left to say it failed.
            self._persistent = False
            self.finished = 1
            self.channel._close(abort=True)
            return
        self.code, self.code_message = 500, None
        self.responseHeaders = Headers()
        detail = "An error occurred while rendering the request; it was logged."
        if self.site is not None and self.site.displayTracebacks:
            import traceback

            detail = "".join(traceback.format_exception(*reason))
        page = _resource.ErrorPage(500, "Internal Server Error", detail)
        page.template = page.template.replace("<p>%(detail)s</p>", "<pre>%(detail)s</pre>")
        self._rendered(page.render(self))

    # -- reading the request ----------------------------------------------------------------------
    def getHeader(self, key: Any) -> Any:
        """The last value of request header ``key`` (``str`` for a ``str`` key), or None."""
        values = self.requestHeaders.getRawHeaders(key) if self.requestHeaders is not None else None
        return values[-1] if values else None

    def getAllHeaders(self) -> dict:
        """Every request header: lower-case name (bytes) -> its last value."""
        return {name.lower(): values[-1] for name, values in self.requestHeaders.getAllRawHeaders()}

    def getClientAddress(self) -> Any:
        """The client's address (an ``IPv4Address``/``IPv6Address``/``UNIXAddress``)."""
        channel = self.channel
        if channel is not None:
            return channel.getPeer()
        return self.transport.getPeer() if self.transport is not None else None

    def getClientIP(self) -> Optional[str]:
        """The client's IP address as a string (Twisted's older name)."""
        return getattr(self.getClientAddress(), "host", None)

    def getHost(self) -> Any:
        """The server's address this request came in on."""
        channel = self.channel
        if channel is not None:
            return channel.getHost()
        return self.transport.getHost()

    def isSecure(self) -> bool:
        """True when the request came over TLS."""
        transport = self.transport
        return bool(transport is not None and transport.get_extra_info("sslcontext") is not None)

    def getRequestHostname(self) -> bytes:
        """The host name the client asked for (``Host`` header without a port), else the server's address."""
        host = self.requestHeaders._first(b"host") if self.requestHeaders is not None else None
        if host:
            if host.startswith(b"["):
                return host.partition(b"]")[0] + b"]"
            return host.rpartition(b":")[0] if b":" in host else host
        return str(getattr(self.getHost(), "host", "")).encode("ascii")

    def prePathURL(self) -> bytes:
        """The absolute URL of the resource found so far (scheme, host and ``prepath``)."""
        return self._prePathURL(self.prepath)

    def _prePathURL(self, prepath: list) -> bytes:
        scheme = b"https" if self.isSecure() else b"http"
        host = self.requestHeaders._first(b"host") or self.getRequestHostname()
        from urllib.parse import quote_from_bytes

        path = b"/".join(quote_from_bytes(s, safe="").encode("ascii") for s in prepath)
        return scheme + b"://" + host + b"/" + path

    def URLPath(self) -> Any:
        """The :class:`twistdlite.urlpath.URLPath` of :meth:`prePathURL`, to make links from (``.child(b"x")``)."""
        from twistdlite.urlpath import URLPath

        return URLPath.fromRequest(self)

    def rememberRootURL(self) -> None:
        """Remember the URL of the resource above the current one (for :meth:`getRootURL`)."""
        self.appRootURL = self._prePathURL(self.prepath[:-1])

    def getRootURL(self) -> Optional[bytes]:
        """The URL :meth:`rememberRootURL` remembered (None before)."""
        return self.__dict__.get("appRootURL")

    def childLink(self, name: bytes) -> bytes:
        """A relative link to ``name`` under the resource being rendered."""
        postpath = len(self.postpath)
        if postpath > 1:
            return b"../" * (postpath - 1) + name
        if postpath == 1 or not (self.prepath and self.prepath[-1]):
            return name
        return self.prepath[-1] + b"/" + name

    def sibLink(self, name: bytes) -> bytes:
        """A relative link to ``name`` beside the resource being rendered."""
        return b"../" * len(self.postpath) + name

    _secureSession: Any = None
    _insecureSession: Any = None

    @property
    def session(self) -> Any:
        """The session :meth:`getSession` found or made for this request (of its security), else None."""
        return self._secureSession if self.isSecure() else self._insecureSession

    def getSession(self, sessionInterface: Any = None, forceNotSecure: bool = False) -> Any:
        """The client's session (made, and its cookie set, when the request names none alive), touched.

        Over HTTPS the session is a secure one (its cookie ``Secure``) unless
        ``forceNotSecure``. With ``sessionInterface``, that component of the
        session (``session.getComponent(sessionInterface)``).
        """
        from twistdlite.web._session import cookie_name

        secure = self.isSecure() and not forceNotSecure
        attribute = "_secureSession" if secure else "_insecureSession"
        site = self.site
        session = getattr(self, attribute)
        if session is not None and site.sessions.get(session.uid) is not session:
            session = None  # expired meanwhile
        if session is None:
            name = cookie_name(secure, self.sitepath)
            uid = self.getCookie(name)
            if uid:
                session = site.sessions.pop(uid, None)
                if session is not None:
                    site.sessions[uid] = session  # (last in the dict: the most recently used)
            if session is None:
                session = site.makeSession()
                self.addCookie(name, session.uid, path=b"/", secure=secure, httpOnly=True)
            setattr(self, attribute, session)
        session.touch()
        if sessionInterface is not None:
            return session.getComponent(sessionInterface)
        return session

    @property
    def received_cookies(self) -> dict:
        """The cookies sent with the request (name -> value, bytes), read from its Cookie headers."""
        cookies = self._cookies
        if cookies is None:
            cookies = {}
            if self.requestHeaders is None:
                return cookies
            for header in self.requestHeaders.getRawHeaders(b"cookie", []):
                for part in header.split(b";"):
                    name, eq, value = part.strip().partition(b"=")
                    if eq:
                        cookies[name] = value
            self._cookies = cookies
        return cookies

    @received_cookies.setter
    def received_cookies(self, cookies: dict) -> None:
        self._cookies = cookies

    def getCookie(self, key: bytes) -> Optional[bytes]:
        """The value of cookie ``key`` sent with the request, or None."""
        return self.received_cookies.get(key)

    def _basic_credentials(self) -> tuple:
        header = self.getHeader(b"authorization") if self.requestHeaders is not None else None
        if header:
            scheme, _, data = header.strip().partition(b" ")
            if scheme.lower() == b"basic":
                import base64
                import binascii

                try:
                    user, colon, password = base64.b64decode(data.strip(), validate=True).partition(b":")
                except (binascii.Error, ValueError):
                    return b"", b""
                if colon:
                    return user, password
        return b"", b""

    def getUser(self) -> bytes:
        """The user name of the request's HTTP Basic ``Authorization`` (b"" without one)."""
        return self._basic_credentials()[0]

    def getPassword(self) -> bytes:
        """The password of the request's HTTP Basic ``Authorization`` (b"" without one)."""
        return self._basic_credentials()[1]

    # -- answering --------------------------------------------------------------------------------
    def setResponseCode(self, code: int, message: Optional[bytes] = None) -> None:
        """Set the status code (and, optionally, its reason phrase)."""
        if not isinstance(code, int):
            raise TypeError(f"the response code must be an int, not {type(code).__name__}")
        self.code = code
        self.code_message = message.encode("latin-1") if isinstance(message, str) else message

    def setHeader(self, name: Any, value: Any) -> None:
        """Set response header ``name`` to ``value`` (replacing what was set)."""
        self.responseHeaders._set(name, value)

    def addCookie(self, k: Any, v: Any, expires: Any = None, domain: Any = None, path: Any = None,
                  max_age: Any = None, comment: Any = None, secure: Any = None, httpOnly: bool = False,
                  sameSite: Any = None) -> None:
        """Add a ``Set-Cookie`` header."""
        def b(x: Any) -> bytes:
            return x if isinstance(x, bytes) else str(x).encode("utf-8")

        parts = [b(k) + b"=" + b(v)]
        for label, value in ((b"Expires", expires), (b"Domain", domain), (b"Path", path),
                             (b"Max-Age", max_age), (b"Comment", comment), (b"SameSite", sameSite)):
            if value is not None:
                parts.append(label + b"=" + b(value))
        if secure:
            parts.append(b"Secure")
        if httpOnly:
            parts.append(b"HttpOnly")
        self.responseHeaders.addRawHeader(b"Set-Cookie", b"; ".join(parts))

    def redirect(self, url: Any) -> None:
        """Answer 302 Found with ``Location: url``."""
        self.setResponseCode(302)
        self.setHeader(b"location", url)

    def setLastModified(self, when: float) -> Optional[int]:
        """Set ``Last-Modified``; answer 304 (and return ``http.CACHED``) if the client's copy is as new."""
        from email.utils import formatdate, parsedate_to_datetime

        when = int(when)
        self.setHeader(b"last-modified", formatdate(when, usegmt=True))
        since = self.getHeader(b"if-modified-since")
        if since:
            try:
                if int(parsedate_to_datetime(since.decode("latin-1").split(";")[0]).timestamp()) >= when:
                    self.setResponseCode(304)
                    return CACHED
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
        return None

    def setETag(self, etag: bytes) -> Optional[int]:
        """Set ``ETag``; answer 304 (and return ``http.CACHED``) if the client's ``If-None-Match`` has it."""
        if etag:
            self.setHeader(b"etag", etag)
            match = self.getHeader(b"if-none-match")
            if match and (match.strip() == b"*" or etag in [t.strip() for t in match.split(b",")]):
                self.setResponseCode(304)
                return CACHED
        return None

    def _head(self) -> bytes:
        code = self.code
        if self.code_message is None:
            status = _STATUS_LINES.get(code)
            if status is None:
                status = b"HTTP/1.1 %d %s\r\n" % (code, RESPONSES.get(code, b"Unknown Status"))
                if len(_STATUS_LINES) < 1000:
                    _STATUS_LINES[code] = status
        else:
            status = b"HTTP/1.1 %d %s\r\n" % (code, self.code_message)
        fields = self.responseHeaders._fields
        lines = [status]
        if self.method == b"HEAD" or code in (204, 304) or 100 <= code < 200:
            self._no_body = True
        elif b"content-length" not in fields:
            if self.clientproto == b"HTTP/1.1":
                self._chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self._persistent = False
        if not self._persistent:
            lines.append(b"Connection: close\r\n")
        elif self.clientproto == b"HTTP/1.0":
            lines.append(b"Connection: keep-alive\r\n")
        if b"content-type" not in fields and code != 204 and code != 304:
            lines.append(b"Content-Type: text/html\r\n")
        now = int(_time())
        if now != _date_cache[0] or _date_cache[3] is not version:
            _refresh_dates(now)
        lines.append(_date_cache[4])
        for name, values in fields.values():
            for value in values:
                lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def write(self, data: bytes) -> None:
        """Send ``data`` as (more of) the body; the status line and headers go first."""
        if self.finished:
            raise RuntimeError("Request.write called on a request after Request.finish was called.")
        if data.__class__ is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
            # (checked before the head goes out, so a render that writes a str still gets its 500 page)
            raise TypeError(f"Request.write takes bytes, not {type(data).__name__}")
        if self._disconnected:
            return
        transport = self.channel.transport
        if not self.startedWriting:
            self.startedWriting = 1
            head = self._head()
            if self._no_body or not data:
                transport.write(head)
                return
            self.sentLength += len(data)
            if self._chunked:
                transport.writeSequence((head, b"%x\r\n" % len(data), data, b"\r\n"))
            elif len(data) < 65536:
                transport.write(head + data)
            else:
                transport.write(head)
                transport.write(data)
            return
        if self._no_body or not data:
            return
        self.sentLength += len(data)
        if self._chunked:
            transport.writeSequence((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            transport.write(data)

    def writeSequence(self, pieces: Any) -> None:
        """Write each of ``pieces``."""
        for piece in pieces:
            self.write(piece)

    def finish(self) -> None:
        """End the response; the connection goes on to the next request (or closes)."""
        if self.finished:
            raise RuntimeError("Request.finish called on a request after its response was finished.")
        if self._disconnected:
            log.debug("Request.finish called on a request whose connection was lost: %r", self)
            return
        if not self.startedWriting:
            if (b"content-length" not in self.responseHeaders._fields and self.method != b"HEAD"
                    and self.code not in (204, 304)):
                self.responseHeaders.setRawHeaders(b"Content-Length", [b"0"])
            self.write(b"")
        if self._chunked:
            self.channel.transport.write(b"0\r\n\r\n")
        self.finished = 1
        if self.producer is not None:
            self.unregisterProducer()
        if self._waiters is not None:
            waiters, self._waiters = self._waiters, None
            for waiter in waiters:
                _fire(waiter, None)
        self.channel._request_done(self)

    def notifyFinish(self) -> Any:
        """A Deferred (an asyncio future before ``twistdlite.defer`` exists) fired when the response is done.

        It fails with ``ConnectionLost`` when the connection is lost before.
        """
        waiter = _finish_waiter(asyncio.get_event_loop())
        if self.finished:
            _fire(waiter, None)
        elif self._disconnected:
            from twistdlite.error import ConnectionLost

            _fire(waiter, ConnectionLost("the connection was lost before the response was finished"))
        else:
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
        return waiter

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` write the body, paused and resumed as the client reads."""
        self.producer = producer
        self.channel._register_response_producer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Forget the producer registered."""
        if self.producer is not None and self.channel._producer is self.producer:
            self.channel._unregister_response_producer()
        self.producer = None

    def _connectionLost(self, reason: Any) -> None:
        if self.finished or self._disconnected:
            return
        self._disconnected = True
        self._persistent = False
        if self.startedWriting:
            self.channel.site.log(self)  # what was sent of a response cut short
        waiters, self._waiters = self._waiters, None
        if waiters:
            from twistdlite.error import ConnectionLost

            value = getattr(reason, "value", None)
            error = value if isinstance(value, Exception) else ConnectionLost("the connection was lost")
            for waiter in waiters:
                _fire(waiter, error)

    def __repr__(self) -> str:
        return "<%s at 0x%x method=%s uri=%s clientproto=%s>" % (
            type(self).__name__, id(self), _escape(self.method), _escape(self.uri), _escape(self.clientproto))


#: Returned by ``setLastModified``/``setETag`` when the client's copy is current (304).
CACHED = 2


class Site(ServerFactory):
    """The protocol factory serving ``resource`` over HTTP: ``Site(resource, logPath=None, timeout=60)``.

    Limits and timeouts (attributes; keyword arguments of the same names):
    ``maxHeadSize`` (16 KiB: request line and headers), ``maxHeaders`` (100),
    ``maxBodySize`` (10 MiB), ``headTimeout`` (30 s to send a request's head,
    and the most a body may pause), ``timeout`` (60 s idle between requests),
    ``writeTimeout`` (60 s without being able to send any of a response),
    ``maxSessions`` (100,000 sessions alive at once: see :meth:`makeSession`).
    None means no limit.
    """

    protocol = HTTPChannel
    requestFactory = Request
    #: What :meth:`makeSession` makes: ``sessionFactory(site, uid)`` (``twistdlite.web.server.Session``).
    sessionFactory = Session
    #: Sessions made so far (by :meth:`makeSession`).
    counter = 0
    #: The most sessions alive at once; making one more expires the least recently used (None: no limit).
    maxSessions: Optional[int] = 100000
    _sessions_full_logged = -1e9
    displayTracebacks = False
    noisy = True
    #: The HTTP parser: "httptools", "h11", or None for the best installed (httptools).
    parser: Optional[str] = None
    maxHeadSize = 16 * 1024
    maxHeaders = 100
    maxBodySize: Optional[int] = 10 * 1024 * 1024
    headTimeout: Optional[float] = 30.0
    writeTimeout: Optional[float] = 60.0
    _logFile: Any = None

    def __init__(self, resource: Any, requestFactory: Any = None, logPath: Optional[str] = None,
                 timeout: Optional[float] = 60.0, logFormatter: Any = None, reactor: Any = None,
                 **limits: Any) -> None:
        self.resource = resource
        if requestFactory is not None:
            self.requestFactory = requestFactory
        self.reactor = reactor  # (None: the running reactor; a task.Clock in tests) for the sessions' timers
        self.sessions: dict = {}
        self.logPath = logPath
        self.timeout = timeout
        self._logFormatter = logFormatter or combinedLogFormatter
        for name, value in limits.items():
            if name not in ("maxHeadSize", "maxHeaders", "maxBodySize", "headTimeout", "writeTimeout",
                            "displayTracebacks", "parser", "maxSessions"):
                raise TypeError(f"Site() got an unexpected keyword argument {name!r}")
            setattr(self, name, value)
        if self.maxBodySize is None:
            self.maxBodySize = sys.maxsize
        if self.maxHeadSize is None:
            self.maxHeadSize = sys.maxsize
        if self.maxHeaders is None:
            self.maxHeaders = sys.maxsize

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} serving {self.resource!r}>"

    def __getstate__(self) -> dict:
        state = ServerFactory.__getstate__(self)
        state.pop("_logFile", None)
        state.pop("_flushing", None)
        state["sessions"] = {}  # (sessions live in memory only: a restarted site has none)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("sessions", {})
        self.__dict__.setdefault("reactor", None)

    def _mkuid(self) -> bytes:
        """A new session's unique, unguessable id: 64 hexadecimal digits."""
        import binascii
        import os

        self.counter += 1
        return binascii.hexlify(os.urandom(32))

    def makeSession(self) -> Any:
        """A new session (``sessionFactory(self, uid)``), remembered in ``sessions``, its expiry timer started."""
        sessions = self.sessions
        limit = self.maxSessions
        if limit is not None and len(sessions) >= limit:
            self._sessions_full(len(sessions) - limit + 1)
        uid = self._mkuid()
        session = sessions[uid] = self.sessionFactory(self, uid)
        session.startCheckingExpiration()
        return session

    def _sessions_full(self, count: int) -> None:
        """Expire the ``count`` least recently used sessions, to make room (logged at most once a minute)."""
        sessions = self.sessions
        now = time.monotonic()
        if now - self._sessions_full_logged >= 60:
            self._sessions_full_logged = now
            log.warning("%d sessions alive, the most Site.maxSessions allows: expiring the least recently used "
                        "to make room for new ones", len(sessions))
        for _ in range(count):
            if not sessions:
                break
            uid, oldest = next(iter(sessions.items()))
            oldest.expire()
            if sessions.get(uid) is oldest:  # (an expire() that forgot to leave)
                del sessions[uid]

    def getSession(self, uid: bytes) -> Any:
        """The live session ``uid`` (KeyError when there is none)."""
        return self.sessions[uid]

    def buildProtocol(self, addr: Any) -> HTTPChannel:
        """A channel for one connection."""
        channel = self.protocol()
        channel.factory = self
        channel.site = self
        return channel

    def getResourceFor(self, request: Request) -> Any:
        """Walk ``request.postpath`` from the root resource to the one that renders it."""
        request.site = self
        request.sitepath = request.prepath[:]
        return _resource.getChildForRequest(self.resource, request)

    def startFactory(self) -> None:
        """Open the access log file, if there is one."""
        if self.logPath:
            self._logFile = open(self.logPath, "a", encoding="utf-8", buffering=65536)
            self._flushing = None

    def stopFactory(self) -> None:
        """Close the access log file."""
        handle, self._logFile = self._logFile, None
        flushing, self._flushing = getattr(self, "_flushing", None), None
        if flushing is not None:
            flushing.cancel()
        if handle is not None:
            handle.close()

    def log(self, request: Request) -> None:
        """Write ``request``'s access line (to ``logPath``, within a second; else the ``twistdlite.web`` logger)."""
        now = int(_time())
        if now != _date_cache[0]:
            _refresh_dates(now)
        line = self._logFormatter(_date_cache[2], request)
        handle = self._logFile
        if handle is not None:
            handle.write(line + "\n")
            if self._flushing is None:
                self._flushing = asyncio.get_event_loop().call_later(1.0, self._flush)
        else:
            log.info("%s", line)

    def _flush(self) -> None:
        self._flushing = None
        handle = self._logFile
        if handle is not None:
            try:
                handle.flush()
            except OSError as exc:
                log.error("Cannot write the access log %s: %s", self.logPath, exc)

    def log_error(self, channel: Any, error: Any, length: int) -> None:
        """The access line of a request refused before it was rendered (400, 413, 431...)."""
        request = self.requestFactory(channel)
        request.method = error.method or b""
        request.uri = error.uri or b""
        request.clientproto = error.version or b""
        request.requestHeaders = error.headers
        request.code = error.code
        request.sentLength = length
        self.log(request)
