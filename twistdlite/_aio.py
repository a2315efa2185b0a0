"""Small asyncio helpers shared by the port and connector code."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Generator, Optional

from twistdlite import _loopstate

log = logging.getLogger("twistdlite")


def Done(result: Any = None) -> Any:
    """A Deferred already fired with ``result`` (``await Done(x)`` gives ``x`` at once).

    Returned by calls whose work is done synchronously but whose Twisted
    counterpart returns a Deferred, so ``port.stopListening().addCallback(f)``,
    ``port.stopListening()`` and ``await port.stopListening()`` all work, with
    or without a running loop.
    """
    from twistdlite.defer import succeed

    return succeed(result)


def as_deferred(awaitable: Any) -> Any:
    """A Deferred (also awaitable) for an asyncio Future, a :class:`LateFuture`, a coroutine or a Deferred."""
    from twistdlite.defer import Deferred, ensureDeferred

    if isinstance(awaitable, Deferred):
        return awaitable
    if isinstance(awaitable, LateFuture) or asyncio.isfuture(awaitable):
        return Deferred.fromFuture(awaitable)
    return ensureDeferred(awaitable)


def _reactor_loop() -> Any:
    """The reactor's loop (installed or running), or None before there is one."""
    return _loopstate.current_loop()


def reactor_future() -> Any:
    """A Future on the reactor's loop: an ``asyncio.Future`` when the loop exists, else a :class:`LateFuture`."""
    loop = _reactor_loop()
    if loop is not None:
        return loop.create_future()
    return LateFuture()


class LateFuture:
    """A Future made before the reactor's loop exists (as Twisted returns a Deferred at any time).

    Until the loop is installed it keeps its outcome and its done callbacks
    itself; from then on it is an ``asyncio.Future`` on that loop underneath.
    It is awaitable and has the Future methods (``done``, ``result``,
    ``exception``, ``cancel``, ``cancelled``, ``add_done_callback``,
    ``set_result``, ``set_exception``); done callbacks are called with it,
    on the loop, as asyncio calls them.
    """

    def __init__(self) -> None:
        self._future: Optional[asyncio.Future] = None
        self._state = "pending"  # or "result", "exception", "cancelled"
        self._value: Any = None
        self._callbacks: list = []
        _loopstate.call_when_running(self._bind)

    def _bind(self) -> Optional[asyncio.Future]:
        """The underlying Future, made (with what happened so far) once the loop exists."""
        if self._future is None:
            loop = _reactor_loop()
            if loop is None:
                return None
            future = loop.create_future()
            for callback in self._callbacks:
                future.add_done_callback(self._relay(callback))
            self._callbacks = []
            if self._state == "result":
                future.set_result(self._value)
            elif self._state == "exception":
                future.set_exception(self._value)
            elif self._state == "cancelled":
                future.cancel()
            self._value = None
            self._future = future
        return self._future

    def _relay(self, callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda _future: callback(self)

    def done(self) -> bool:
        """True once there is a result or an exception, or it was cancelled."""
        future = self._bind()
        return future.done() if future is not None else self._state != "pending"

    def cancelled(self) -> bool:
        """True if it was cancelled."""
        future = self._bind()
        return future.cancelled() if future is not None else self._state == "cancelled"

    def result(self) -> Any:
        """The result (raises the exception, ``CancelledError``, or ``InvalidStateError`` if not done)."""
        future = self._bind()
        if future is not None:
            return future.result()
        if self._state == "result":
            return self._value
        if self._state == "exception":
            raise self._value
        if self._state == "cancelled":
            raise asyncio.CancelledError()
        raise asyncio.InvalidStateError("Result is not ready.")

    def exception(self) -> Optional[BaseException]:
        """The exception, or None (``CancelledError``/``InvalidStateError`` as for a Future)."""
        future = self._bind()
        if future is not None:
            return future.exception()
        if self._state == "cancelled":
            raise asyncio.CancelledError()
        if self._state == "pending":
            raise asyncio.InvalidStateError("Exception is not set.")
        return self._value if self._state == "exception" else None

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        """Call ``fn(self)`` on the loop once done."""
        future = self._bind()
        if future is not None:
            future.add_done_callback(self._relay(fn))
        else:
            self._callbacks.append(fn)

    def _settle(self, state: str, value: Any = None) -> None:
        if self._state != "pending":
            raise asyncio.InvalidStateError(f"{self._state}: {self!r}")
        self._state = state
        self._value = value

    def set_result(self, result: Any) -> None:
        """Complete with ``result``."""
        future = self._bind()
        if future is not None:
            future.set_result(result)
        else:
            self._settle("result", result)

    def set_exception(self, exception: BaseException) -> None:
        """Fail with ``exception``."""
        future = self._bind()
        if future is not None:
            future.set_exception(exception)
        else:
            self._settle("exception", exception)

    def cancel(self, msg: Any = None) -> bool:
        """Cancel it; False if it was already done."""
        future = self._bind()
        if future is not None:
            return future.cancel(msg)
        if self._state != "pending":
            return False
        self._state = "cancelled"
        return True

    def __await__(self) -> Generator[Any, None, Any]:
        future = self._bind()
        if future is None:
            raise RuntimeError("a LateFuture can only be awaited on a running loop")
        return (yield from future.__await__())

    def __repr__(self) -> str:
        if self._future is not None:
            return f"<LateFuture {self._future!r}>"
        return f"<LateFuture {self._state} (no loop yet)>"


def when_running(start: Callable[[], Awaitable[Any]], what: str) -> None:
    """Run the coroutine ``start()`` on the running loop now, or once the reactor's loop runs.

    An exception it raises is logged (there is nobody to hand it to).
    """

    def launch(loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(start())
        task.add_done_callback(lambda t: _log_failure(t, what))

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _loopstate.call_when_running(lambda: launch(_loopstate.get_loop()))
        return
    launch(loop)


def _log_failure(task: "asyncio.Task[Any]", what: str) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("%s failed: %s", what, error, exc_info=(type(error), error, error.__traceback__))
