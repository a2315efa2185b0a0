"""``--health ENDPOINT``: HTTP ``GET /livez`` and ``GET /readyz`` for Kubernetes-style probes.

``/livez`` is 200 while the process answering and every event loop it
watches respond (a worker whose loop missed its heartbeats makes it 503);
``/readyz`` is 200 once every service (in every worker) has started, until a
shutdown begins. Each answer is one line of JSON with the reason::

    HTTP/1.0 200 OK
    Content-Type: application/json

    {"status": "ready", "reason": "2 of 2 workers serving"}

A tiny HTTP/1.0 responder on the event loop: two fixed ``GET`` paths (404
for any other, 405 for another method, 400 for a malformed request), at most
:data:`MAX_REQUEST` bytes of request head and :data:`REQUEST_TIMEOUT` seconds
to send it, one request per connection. It is not part of the application
(never saved in a ``.tap``); it binds with the launching user's rights, as the
application's ports do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Optional, Tuple

#: The longest request head read before answering 400.
MAX_REQUEST = 2048
#: Seconds a client has to send its request head.
REQUEST_TIMEOUT = 5.0

Verdict = Tuple[bool, str]


class HealthState:
    """What the probes answer: ``live()`` and ``ready()`` return (ok, reason)."""

    def __init__(self, live: Callable[[], Verdict], ready: Callable[[], Verdict]) -> None:
        self.live = live
        self.ready = ready


def answer(request: bytes, state: HealthState) -> bytes:
    """The whole HTTP/1.0 response to a request head."""
    line = request.split(b"\n", 1)[0].strip()
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _response(400, {"status": "error", "reason": "malformed request line"})
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target not in (b"/livez", b"/readyz"):
        return _response(404, {"status": "error", "reason": "the paths are /livez and /readyz"})
    if method not in (b"GET", b"HEAD"):
        return _response(405, {"status": "error", "reason": "only GET"})
    if target == b"/livez":
        ok, reason = state.live()
        body = {"status": "live" if ok else "not live", "reason": reason}
    else:
        ok, reason = state.ready()
        body = {"status": "ready" if ok else "not ready", "reason": reason}
    return _response(200 if ok else 503, body, head_only=method == b"HEAD")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


def _response(code: int, body: dict, head_only: bool = False) -> bytes:
    payload = (json.dumps(body) + "\n").encode()
    head = (f"HTTP/1.0 {code} {_REASONS[code]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode() + (b"" if head_only else payload)


class HealthProtocol(asyncio.Protocol):
    """One probe connection: read the request head (bounded in size and time), answer, close."""

    def __init__(self, state: HealthState) -> None:
        self.state = state
        self.data = b""
        self.transport: Optional[asyncio.Transport] = None
        self.timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: Any) -> None:
        """Start the request timer."""
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT, transport.abort)

    def data_received(self, data: bytes) -> None:
        """Answer once the head is complete (or too long)."""
        if self.transport is None or self.transport.is_closing():
            return
        self.data += data
        complete = b"\r\n\r\n" in self.data or b"\n\n" in self.data
        if len(self.data) > MAX_REQUEST:
            self._reply(_response(400, {"status": "error", "reason": "request too long"}))
        elif complete:
            self._reply(answer(self.data, self.state))

    def eof_received(self) -> bool:
        """A client that half-closes after its request line still gets an answer."""
        if self.data and self.transport is not None and not self.transport.is_closing():
            self._reply(answer(self.data, self.state))
        return False

    def _reply(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        self.transport.close()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Stop the timer."""
        if self.timer is not None:
            self.timer.cancel()


def make_service(description: str, state: HealthState) -> Any:
    """The service answering the probes at ``description`` (bind it with ``privilegedStartService``)."""
    from twistdlite import strports

    def factory() -> HealthProtocol:
        return HealthProtocol(state)

    factory.__name__ = "HealthProbe"
    return strports.service(description, factory)


class ProbedReadiness:
    """Wraps the run's readiness: the single process's ``/readyz`` follows what it reports.

    Everything else (the launching command's pipe, systemd's notify) is the
    wrapped object's; unknown attributes are looked up there.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.is_ready = False
        self.failure: Optional[str] = None
        self.is_stopping = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ready(self) -> None:
        """Every service has started."""
        self.is_ready = True
        self.inner.ready()

    def failed(self, message: str) -> None:
        """The start failed."""
        self.failure = message
        self.inner.failed(message)

    def stopping(self) -> None:
        """A shutdown has begun."""
        self.is_stopping = True
        stopping = getattr(self.inner, "stopping", None)
        if stopping is not None:
            stopping()

    def close(self) -> None:
        """Nothing more will be reported."""
        self.inner.close()

    def state(self) -> HealthState:
        """The probes' answers for a single process."""
        def live() -> Verdict:
            return True, "the event loop responds"

        def ready() -> Verdict:
            if self.is_stopping:
                return False, "shutting down"
            if self.failure is not None:
                return False, f"start failed: {self.failure}"
            if not self.is_ready:
                return False, "starting"
            return True, "every service has started"

        return HealthState(live, ready)


def listen_single(description: str, readiness: Any) -> Tuple[ProbedReadiness, Any]:
    """Bind the probe endpoint now (before the privilege drop); it serves once the loop runs.

    Returns the readiness to use instead of ``readiness`` and the listening port
    (``stopListening()`` it when the run ends).
    """
    from twistdlite import strports

    probed = ProbedReadiness(readiness)
    state = probed.state()

    def factory() -> HealthProtocol:
        return HealthProtocol(state)

    factory.__name__ = "HealthProbe"
    try:
        port = strports.listen(description, factory)
    except Exception as exc:
        from twistdlite.launch.errors import StartError

        raise StartError(f"--health {description}: {exc}") from None
    return probed, port
