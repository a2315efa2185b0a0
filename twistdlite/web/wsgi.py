"""``WSGIResource``: serve a WSGI application (PEP 3333), mirroring ``twisted.web.wsgi``.

    resource = wsgi.WSGIResource(reactor, threadpool, application)

The application runs in ``threadpool`` (any object with Twisted's
``callInThread(f, *args, **kwargs)``: ``reactor.getThreadPool()``, or a
``twistdlite.threadpool.ThreadPool`` of its own run by
:class:`ThreadPoolService`), never on the event loop. The request's body is read in full before the
application is called (``wsgi.input``). Each chunk the application yields (or
passes to ``write``) is sent from the loop as the client reads: the
application's thread waits while the client is not keeping up, and stops
iterating when the connection is lost. An exception from the application is
logged with its traceback and answered with 500 (or, when the response had
started, the connection is closed).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any, Callable, Optional

from twistdlite.web import resource

__all__ = ["WSGIResource", "ThreadPoolService"]

log = logging.getLogger("twistdlite.web")

#: How long an application's thread waits for a client that stopped reading before giving up.
WRITE_WAIT = 300.0


def _service_base() -> Any:
    from twistdlite.service import Service

    return Service


class ThreadPoolService(_service_base()):  # type: ignore[misc]
    """A service running a thread pool (``twistdlite.threadpool.ThreadPool``): started and stopped with it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def startService(self) -> None:
        """Start the pool's threads (on demand, up to its maximum)."""
        super().startService()
        self.pool.start()

    def stopService(self) -> None:
        """Take no more work; what runs is not waited for (the daemon's stop is bounded)."""
        super().stopService()
        self.pool.stop()


class _ErrorStream:
    """``wsgi.errors``: what the application writes goes to the ``twistdlite.web`` logger, line by line."""

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            log.error("%s", line)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            log.error("%s", self._partial)
            self._partial = ""


class _Response:
    """One request's response, written from the application's thread, sent from the loop."""

    def __init__(self, loop: Any, request: Any) -> None:
        self.loop = loop
        self.request = request
        self.status: Optional[str] = None
        self.headers: list = []
        self.started = False  # (in the thread) the head was handed to the loop
        self.stopped = False  # the connection was lost
        self.paused = False  # the client is not keeping up: the application's thread waits
        self._resumed: Optional[threading.Event] = None  # made only when paused

    # producer interface, called on the loop by the channel
    def pauseProducing(self) -> None:
        """The client is not keeping up: the application's thread waits at its next chunk."""
        self._resumed = threading.Event()
        self.paused = True

    def resumeProducing(self) -> None:
        """The client caught up: the application's thread goes on."""
        self.paused = False
        resumed = self._resumed
        if resumed is not None:
            resumed.set()

    def stopProducing(self) -> None:
        """The connection was lost: the application's thread stops at its next chunk."""
        self.stopped = True
        self.resumeProducing()

    # -- in the application's thread -----------------------------------------------------------
    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called a second time without exc_info")
        if not isinstance(status, str):
            raise TypeError(f"status must be str, not {type(status).__name__}")
        code, _, _ = status.partition(" ")
        if len(code) != 3 or not code.isdigit():
            raise ValueError(f"status {status!r} does not start with a 3-digit code")
        if not isinstance(headers, list):
            raise TypeError(f"headers must be a list, not {type(headers).__name__}")
        for item in headers:
            if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str)
                    or not isinstance(item[1], str)):
                raise TypeError(f"each header must be a (str, str) tuple, not {item!r}")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The application's ``write`` (and each chunk it yields): sent as the client reads."""
        if not isinstance(data, bytes):
            raise TypeError(f"a WSGI application must produce bytes, not {type(data).__name__}")
        if self.stopped:
            raise ConnectionError("the client went away")
        self._hand_over(data, False)

    def _hand_over(self, data: bytes, last: bool) -> None:
        if self.status is None:
            raise RuntimeError("the application produced a body before calling start_response")
        head = None
        if not self.started:
            self.started = True
            head = (self.status, self.headers)
        if not data and not last and head is None:
            return
        self.loop.call_soon_threadsafe(self._deliver, head, data, last)
        if not last and self.paused:
            resumed = self._resumed
            if resumed is not None and not resumed.wait(WRITE_WAIT):
                self.stopped = True
        if self.stopped:
            raise ConnectionError("the client went away")

    def finish(self, chunks: list) -> None:
        """Hand over the last chunks and the end in one go (the common case of a list response)."""
        data = b"".join(chunks)
        self._hand_over(data, True)

    def fail(self, exc_info: tuple) -> None:
        """Report the application's exception to the loop (500, or a cut connection once started)."""
        self.loop.call_soon_threadsafe(self._failed, exc_info, self.started)

    # -- on the loop ---------------------------------------------------------------------------
    def _deliver(self, head: Any, data: bytes, last: bool) -> None:
        try:
            self._send(head, data, last)
        except Exception:
            self._failed(sys.exc_info(), True)

    def _send(self, head: Any, data: bytes, last: bool) -> None:
        request = self.request
        if request._disconnected or request.finished:
            return
        if head is not None:
            status, headers = head
            code, _, message = status.partition(" ")
            request.setResponseCode(int(code), message.encode("latin-1"))
            for name, value in headers:
                try:
                    request.responseHeaders.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
                except ValueError as exc:
                    self._failed((ValueError, exc, None), False)
                    return
            if last and not request.responseHeaders.hasHeader(b"content-length"):
                # the whole body is here: say its length rather than chunking it
                request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(data)])
            request.registerProducer(self, True)
        if data:
            request.write(data)
        if last:
            request.unregisterProducer()
            request.finish()

    def _failed(self, exc_info: tuple, started: bool) -> None:
        request = self.request
        if request.producer is self:
            request.unregisterProducer()
        if request._disconnected or request.finished:
            return
        request.processingFailed(exc_info)


class WSGIResource(resource.Resource):
    """Serve ``application`` (a WSGI callable) in ``threadpool``: ``WSGIResource(reactor, threadpool, app)``."""

    isLeaf = True

    def __init__(self, reactor: Any, threadpool: Any, application: Callable) -> None:
        super().__init__()
        if not callable(getattr(threadpool, "callInThread", None)):
            raise TypeError(f"threadpool must have a callInThread method, not {type(threadpool).__name__}")
        if not callable(application):
            raise TypeError(f"the WSGI application must be callable, not {type(application).__name__}")
        self._reactor = reactor
        self._threadpool = threadpool
        self._application = application

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_reactor"] = None  # the reactor is the running loop's, found again when rendering
        return state

    def render(self, request: Any) -> int:
        """Run the application for ``request`` in the thread pool; the response follows from there."""
        from twistdlite.web.server import NOT_DONE_YET

        environ = self._environ(request)
        response = _Response(asyncio.get_event_loop(), request)
        self._threadpool.callInThread(self._run, environ, response)
        return NOT_DONE_YET

    def getChildWithDefault(self, name: bytes, request: Any) -> resource.Resource:
        """Every path below is the application's: put the segment back (a leaf)."""
        request.postpath.insert(0, request.prepath.pop())
        return self

    def _environ(self, request: Any) -> dict:
        prepath = request.prepath
        postpath = request.postpath
        script = b"/" + b"/".join(prepath) if prepath else b""
        path_info = b"/" + b"/".join(postpath) if postpath else b""
        query = request.uri.partition(b"?")[2]
        host = request.getHost()
        peer = request.getClientAddress()
        environ = {
            "REQUEST_METHOD": request.method.decode("latin-1"),
            "SCRIPT_NAME": script.decode("latin-1"),
            "PATH_INFO": path_info.decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": request.getRequestHostname().decode("latin-1"),
            "SERVER_PORT": str(getattr(host, "port", "")),
            "SERVER_PROTOCOL": request.clientproto.decode("latin-1"),
            "REMOTE_ADDR": str(getattr(peer, "host", "")),
            "REMOTE_PORT": str(getattr(peer, "port", "")),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if request.isSecure() else "http",
            "wsgi.input": request.content,
            "wsgi.input_terminated": True,
            "wsgi.errors": _ErrorStream(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, values in request.requestHeaders.getAllRawHeaders():
            lower = name.lower()
            if lower == b"content-type":
                environ["CONTENT_TYPE"] = values[-1].decode("latin-1")
            elif lower == b"content-length":
                environ["CONTENT_LENGTH"] = values[-1].decode("latin-1")
            elif b"_" in name:
                continue  # X_Forwarded_For must not pass for X-Forwarded-For
            else:
                key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
                environ[key] = ",".join(v.decode("latin-1") for v in values)
        return environ

    def _run(self, environ: dict, response: _Response) -> None:
        """In a pool thread: call the application and hand its output to the loop."""
        result = None
        try:
            result = self._application(environ, response.start_response)
            if isinstance(result, (list, tuple)):
                for chunk in result:
                    if not isinstance(chunk, bytes):
                        raise TypeError(f"a WSGI application must produce bytes, not {type(chunk).__name__}")
                response.finish(list(result))
            else:
                for chunk in result:
                    response.write(chunk)
                response.finish([])
        except ConnectionError:
            if not response.stopped:
                response.fail(sys.exc_info())
        except Exception:
            exc_info = sys.exc_info()
            response.fail(exc_info)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("Error closing the response of WSGI application %r", self._application)
