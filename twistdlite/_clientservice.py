"""``ClientService``: keep one connection up through an endpoint, reconnecting with back-off.

Exported by ``twistdlite.internet``. The service connects when started; when
an attempt fails or the connection is lost it waits ``retryPolicy(n)`` seconds
(``n`` counts the failures since the last success) and tries again, logging
each failure, until stopped. :meth:`ClientService.whenConnected` returns a
Deferred (also awaitable) of the connected protocol.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from twistdlite._aio import Done
from twistdlite.service import Service

__all__ = ["ClientService", "backoffPolicy"]

log = logging.getLogger("twistdlite")


class _Backoff:
    """The policy :func:`backoffPolicy` returns (a class, so a ``.tap`` can hold it)."""

    def __init__(self, initialDelay: float, maxDelay: float, factor: float,
                 jitter: Optional[Callable[[], float]]) -> None:
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.factor = factor
        self.jitter = jitter

    def __call__(self, attempt: int) -> float:
        exponent = max(0, min(int(attempt), 512))
        try:
            delay = self.initialDelay * self.factor ** exponent
        except OverflowError:
            delay = self.maxDelay
        if self.jitter is None:
            import random

            noise = random.random()
        else:
            noise = self.jitter()
        return min(delay, self.maxDelay) + noise

    def __repr__(self) -> str:
        return (f"backoffPolicy(initialDelay={self.initialDelay!r}, maxDelay={self.maxDelay!r}, "
                f"factor={self.factor!r})")


def backoffPolicy(initialDelay: float = 1.0, maxDelay: float = 60.0, factor: float = 1.5,
                  jitter: Optional[Callable[[], float]] = None) -> Callable[[int], float]:
    """A retry policy for :class:`ClientService`: attempt number -> seconds to wait.

    The delay grows as ``initialDelay * factor ** attempt``, is capped at
    ``maxDelay``, then ``jitter()`` is added (``random.random()``, 0 to 1 s, by
    default) so that many clients do not reconnect in lockstep.
    """
    return _Backoff(initialDelay, maxDelay, factor, jitter)


class ClientService(Service):
    """Connect ``factory`` through ``endpoint`` and stay connected: ``ClientService(endpoint, factory, retryPolicy=None)``.

    ``endpoint`` has ``connect(factory)`` returning an awaitable of the
    protocol (see ``twistdlite.endpoints``); ``retryPolicy`` maps the number of
    failures since the last success to a delay (default: :func:`backoffPolicy`);
    ``clock`` (default: the reactor) schedules the retries;
    ``prepareConnection(protocol)``, if given, runs (and is awaited) before the
    connection counts as made.

    To learn of the loss of a connection, the service wraps the protocol's
    ``connectionLost`` (``connection_lost`` for a plain asyncio protocol).
    """

    _proto: Any = None
    _attempt: Any = None
    _pending: Any = None
    _retry: Any = None
    _failures = 0
    _stopped = False
    _waiters: Optional[list] = None
    _stop_waiters: Optional[list] = None
    _last_error: Optional[BaseException] = None

    def __init__(self, endpoint: Any, factory: Any, retryPolicy: Optional[Callable[[int], float]] = None,
                 clock: Any = None, prepareConnection: Optional[Callable[[Any], Any]] = None) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.retryPolicy = retryPolicy
        self.clock = clock
        self.prepareConnection = prepareConnection

    def __getstate__(self) -> dict:
        state = Service.__getstate__(self)
        for name in ("_proto", "_attempt", "_pending", "_retry", "_failures", "_stopped", "_waiters",
                     "_stop_waiters", "_last_error"):
            state.pop(name, None)
        return state

    # -- the service ------------------------------------------------------------
    def privilegedStartService(self) -> None:
        """Build a TLS endpoint's context now, while the files it reads are in reach (before ``-u``)."""
        context_factory = getattr(self.endpoint, "sslContextFactory", None)
        if context_factory is not None:
            from twistdlite.ssl import client_context

            client_context(context_factory)
        Service.privilegedStartService(self)

    def startService(self) -> None:
        """Start connecting (the first attempt is made at once)."""
        if self.running:
            return
        Service.startService(self)
        self._stopped = False
        self._failures = 0
        if hasattr(self.factory, "doStart"):
            self.factory.doStart()
        self._connect()

    def stopService(self) -> Any:
        """Stop retrying and close the connection; returns an awaitable that waits (bounded) for the close."""
        was_running = self.running
        Service.stopService(self)
        self._stopped = True
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.cancel()
        self._fail_waiters(None)
        proto = self._proto or self._pending
        self._pending = None
        transport = getattr(proto, "transport", None)
        if transport is None:
            self._stop_factory(was_running)
            return Done()
        close = getattr(transport, "loseConnection", None) or transport.close
        close()
        from twistdlite.defer import ensureDeferred

        return ensureDeferred(self._wait_lost(proto, transport, was_running))

    def _stop_factory(self, was_running: bool) -> None:
        if was_running and hasattr(self.factory, "doStop"):
            self.factory.doStop()

    async def _wait_lost(self, proto: Any, transport: Any, was_running: bool, timeout: float = 5.0) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while self._proto is proto and loop.time() < deadline:
                await asyncio.sleep(0.005)
            if self._proto is proto:
                abort = getattr(transport, "abortConnection", None) or transport.abort
                abort()
                self._proto = None
        finally:
            self._stop_factory(was_running)

    def whenConnected(self, failAfterFailures: Optional[int] = None) -> Any:
        """A Deferred (also awaitable) of the connected protocol; callable at any time.

        It fires at once when connected. With ``failAfterFailures=N`` it
        fails with the last connection error after N more failed attempts; it
        fails with ``CancelledError`` when the service stops. It may be asked
        for before the event loop exists (in a ``.tac``).
        """
        from twistdlite.defer import Deferred

        waiter = Deferred()
        if self._proto is not None:
            waiter.callback(self._proto)
        elif self._stopped:
            waiter.cancel()
        else:
            if self._waiters is None:
                self._waiters = []
            self._waiters.append([waiter, failAfterFailures])
        return waiter

    # -- the connection cycle --------------------------------------------------------
    def _clock(self) -> Any:
        if self.clock is not None:
            return self.clock
        from twistdlite import reactor

        return reactor

    def _policy(self) -> Callable[[int], float]:
        return self.retryPolicy if self.retryPolicy is not None else backoffPolicy()

    def _connect(self) -> None:
        self._retry = None
        if not self.running:
            return
        from twistdlite._aio import _reactor_loop

        if _reactor_loop() is None:  # started before the loop exists: connect once it runs
            from twistdlite import reactor

            reactor.callWhenRunning(self._connect_once_running)
            return
        import asyncio

        try:
            attempt = asyncio.ensure_future(self.endpoint.connect(_watching(self.factory, self)))
        except Exception as exc:
            self._attempt_failed(exc)
            return
        self._attempt = attempt
        attempt.add_done_callback(self._attempt_done)

    def _connect_once_running(self) -> None:
        if self._attempt is None and self._retry is None and self._proto is None:
            self._connect()

    def _attempt_done(self, attempt: Any) -> None:
        if attempt is not self._attempt:
            return  # stopped meanwhile
        self._attempt = None
        if attempt.cancelled():
            self._attempt_failed(RuntimeError("the connection attempt was cancelled"))
            return
        error = attempt.exception()
        if error is not None:
            self._attempt_failed(error)
            return
        proto = attempt.result()
        if self.prepareConnection is None:
            self._connected(proto)
            return
        self._pending = proto
        try:
            result = self.prepareConnection(proto)
        except Exception as exc:
            self._prepare_failed(proto, exc)
            return
        if result is None or not hasattr(type(result), "__await__"):
            self._pending = None
            self._connected(proto)
            return
        import asyncio

        preparing = asyncio.ensure_future(result)
        self._attempt = preparing
        preparing.add_done_callback(lambda done: self._prepared(done, proto))

    def _prepared(self, done: Any, proto: Any) -> None:
        if done is not self._attempt or proto is not self._pending:
            return
        self._attempt = None
        self._pending = None
        if done.cancelled() or done.exception() is not None:
            self._prepare_failed(proto, done.exception() if not done.cancelled() else RuntimeError("cancelled"))
            return
        self._connected(proto)

    def _prepare_failed(self, proto: Any, error: BaseException) -> None:
        log.error("prepareConnection failed for %s: %s", self.endpoint, error,
                  exc_info=(type(error), error, error.__traceback__))
        self._pending = None
        transport = getattr(proto, "transport", None)
        if transport is not None:
            (getattr(transport, "abortConnection", None) or transport.abort)()
        self._attempt_failed(error)

    def _connected(self, proto: Any) -> None:
        self._proto = proto
        self._failures = 0
        self._last_error = None
        log.info("Connected to %s", self.endpoint)
        waiters, self._waiters = self._waiters or [], None
        for waiter, _ in waiters:
            if not waiter.called:
                waiter.callback(proto)

    def _attempt_failed(self, error: BaseException) -> None:
        if not self.running:
            return
        self._failures += 1
        self._last_error = error
        self._fail_waiters(error)
        delay = self._policy()(self._failures)
        log.info("Connecting to %s failed (%s); retry %d in %.2f s", self.endpoint,
                 _describe(error), self._failures, delay)
        self._retry = self._clock().callLater(delay, self._connect)

    def _lost(self, proto: Any, reason: Any) -> None:
        if proto is self._pending:
            self._pending = None
            attempt, self._attempt = self._attempt, None
            if attempt is not None:
                attempt.cancel()
            self._attempt_failed(RuntimeError("the connection was lost while being prepared"))
            return
        if proto is not self._proto:
            return
        self._proto = None
        if not self.running:
            return
        self._failures += 1
        delay = self._policy()(self._failures)
        log.info("Lost the connection to %s (%s); reconnecting in %.2f s", self.endpoint,
                 _describe(reason), delay)
        self._retry = self._clock().callLater(delay, self._connect)

    def _fail_waiters(self, error: Optional[BaseException]) -> None:
        """Cancel every waiter (``error`` None: stopping), or fail those whose failure budget is spent."""
        if not self._waiters:
            return
        keep = []
        for entry in self._waiters:
            waiter, remaining = entry
            if waiter.called:
                continue
            if error is None:
                waiter.cancel()  # fails with CancelledError
                continue
            if remaining is not None:
                remaining -= 1
                if remaining <= 0:
                    from twistdlite.failure import Failure

                    waiter.errback(error if isinstance(error, Failure) else Failure(error))
                    continue
                entry[1] = remaining
            keep.append(entry)
        self._waiters = keep


def _describe(error: Any) -> str:
    value = getattr(error, "value", error)  # a Failure or an exception
    text = str(value).rstrip(".")
    return text if text else type(value).__name__


class _WatchingFactory:
    """Builds the user's protocols and reports each one's connection loss to the service."""

    def __init__(self, factory: Any, service: ClientService) -> None:
        self.factory = factory
        self.service = service

    def buildProtocol(self, addr: Any) -> Any:
        proto = self.factory.buildProtocol(addr)
        if proto is not None:
            _watch(proto, "connectionLost", self.service)
        return proto

    def doStart(self) -> None:
        """The service starts the user's factory once for its whole run, not per attempt."""

    def doStop(self) -> None:
        """See :meth:`doStart`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.factory, name)


def _watching(factory: Any, service: ClientService) -> Any:
    """The factory to hand the endpoint: Twisted-style wrapper, or a plain callable for asyncio protocols."""
    if hasattr(factory, "buildProtocol"):
        return _WatchingFactory(factory, service)

    def build() -> Any:
        proto = factory()
        _watch(proto, "connection_lost", service)
        return proto

    build.__name__ = getattr(factory, "__name__", "protocol_factory")
    return build


def _watch(proto: Any, method: str, service: ClientService) -> None:
    original = getattr(proto, method)

    def lost(reason: Any = None) -> Any:
        try:
            return original(reason)
        finally:
            service._lost(proto, reason)

    setattr(proto, method, lost)
