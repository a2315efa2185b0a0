"""The reactor: Twisted's ``reactor`` calls over the running asyncio event loop.

``from twistdlite import reactor`` gives this module; ``reactor.callLater``,
``reactor.callWhenRunning``, ``reactor.stop`` and ``reactor.running`` work as in
Twisted. Calls made before the launcher has created the loop (for example at
``.tac`` load time) are queued and scheduled when the loop is installed.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Optional

from twistdlite.error import ReactorNotRunning

__all__ = [
    "DelayedCall",
    "AlreadyCalled",
    "AlreadyCancelled",
    "callLater",
    "callWhenRunning",
    "callFromThread",
    "stop",
    "seconds",
    "getLoop",
    "install",
    "uninstall",
    "REACTORS",
]

log = logging.getLogger("twistdlite")

#: The reactors ``-r`` accepts: name -> one-line description.
REACTORS = {
    "asyncio": "asyncio's default event loop (the standard library)",
    "uvloop": "uvloop, a fast event loop on libuv (pip install 'twistdlite[uvloop]')",
}

_loop: Any = None
_pending_calls: list["DelayedCall"] = []
_when_running: list[tuple[Callable[..., Any], tuple, dict]] = []
_stop_hook: Optional[Callable[[], None]] = None


class AlreadyCalled(ValueError):
    """The delayed call has already run."""


class AlreadyCancelled(ValueError):
    """The delayed call has already been cancelled."""


def _current_loop() -> Any:
    """The installed loop, else the running one (a test's ``asyncio.run``), else None."""
    if _loop is not None:
        return _loop
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:  # no loop can be running: don't import asyncio just to ask
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _now() -> float:
    loop = _current_loop()
    return loop.time() if loop is not None else time.monotonic()


class DelayedCall:
    """A call scheduled with :func:`callLater`: ``cancel``, ``active``, ``getTime``, ``reset``, ``delay``."""

    def __init__(self, when: float, func: Callable[..., Any], args: tuple, kw: dict) -> None:
        self.time = when
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False
        self._handle: Any = None

    def getTime(self) -> float:
        """When the call will run, on the loop's clock (``reactor.seconds()``)."""
        return self.time

    def active(self) -> bool:
        """True until the call has run or been cancelled."""
        return not (self.called or self.cancelled)

    def _check(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled(self)
        if self.called:
            raise AlreadyCalled(self)

    def cancel(self) -> None:
        """Unschedule the call."""
        self._check()
        self.cancelled = True
        self._unschedule()

    def reset(self, secondsFromNow: float) -> None:
        """Run the call ``secondsFromNow`` seconds from now instead."""
        self._check()
        self._unschedule()
        self.time = _now() + secondsFromNow
        self._schedule()

    def delay(self, secondsLater: float) -> None:
        """Push the call ``secondsLater`` seconds later."""
        self._check()
        self._unschedule()
        self.time += secondsLater
        self._schedule()

    def _unschedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        elif self in _pending_calls:
            _pending_calls.remove(self)

    def _schedule(self) -> None:
        loop = _current_loop()
        if loop is None:
            _pending_calls.append(self)
        else:
            self._handle = loop.call_at(self.time, self._run)

    def _run(self) -> None:
        self._handle = None
        self.called = True
        try:
            self.func(*self.args, **self.kw)
        except Exception:
            log.exception("Unhandled error in delayed call %r", self.func)

    def __repr__(self) -> str:
        state = "called" if self.called else "cancelled" if self.cancelled else "pending"
        return f"<DelayedCall {self.func!r} at {self.time:.3f} {state}>"


def callLater(delay: float, func: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
    """Run ``func(*args, **kw)`` in ``delay`` seconds; returns a :class:`DelayedCall`."""
    call = DelayedCall(_now() + delay, func, args, kw)
    call._schedule()
    return call


def callWhenRunning(func: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """Run ``func(*args, **kw)`` once the loop runs (soon, if it already does)."""
    loop = _current_loop()
    if loop is not None:  # installed but not yet running: call_soon waits for it to run
        loop.call_soon(_call_logged, func, args, kw)
    else:
        _when_running.append((func, args, kw))


def callFromThread(func: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """Run ``func(*args, **kw)`` in the loop's thread, from any thread."""
    getLoop().call_soon_threadsafe(_call_logged, func, args, kw)


def _call_logged(func: Callable[..., Any], args: tuple, kw: dict) -> None:
    try:
        func(*args, **kw)
    except Exception:
        log.exception("Unhandled error in %r", func)


def seconds() -> float:
    """The loop's clock, in seconds (monotonic)."""
    return _now()


def getLoop() -> Any:
    """The event loop twistdlite runs on (the installed one, else the running one)."""
    if _loop is not None:
        return _loop
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise ReactorNotRunning("no event loop is installed or running") from None


def stop() -> None:
    """Stop the application gracefully, as SIGTERM would."""
    if _stop_hook is not None:
        _stop_hook()
        return
    loop = _current_loop()
    if loop is None or not loop.is_running():
        raise ReactorNotRunning("Can't stop reactor that isn't running.")
    loop.stop()


def install(loop: Any, stop_hook: Optional[Callable[[], None]] = None) -> None:
    """Make ``loop`` the reactor's loop; schedule queued calls (used by the runner)."""
    global _loop, _stop_hook
    _loop = loop
    _stop_hook = stop_hook
    pending, _pending_calls[:] = list(_pending_calls), []
    for call in pending:
        call._schedule()
    running, _when_running[:] = list(_when_running), []
    for func, args, kw in running:
        loop.call_soon(_call_logged, func, args, kw)


def uninstall() -> None:
    """Forget the installed loop (used by the runner and by tests)."""
    global _loop, _stop_hook
    _loop = None
    _stop_hook = None


def __getattr__(name: str) -> Any:
    if name == "running":
        loop = _current_loop()
        return loop is not None and loop.is_running()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
