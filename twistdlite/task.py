"""Repeating calls and a deterministic clock, mirroring ``twisted.internet.task``.

:class:`LoopingCall` runs a function every ``interval`` seconds on a clock
(the reactor by default). :class:`Clock` is a fake clock for tests: time only
moves when :meth:`Clock.advance` is called.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

__all__ = ["LoopingCall", "Clock"]

log = logging.getLogger("twistdlite")


def _default_clock() -> Any:
    from twistdlite import reactor

    return reactor


class LoopingCall:
    """Call ``f(*a, **kw)`` every ``interval`` seconds; errors are logged and the calls go on.

    The schedule is fixed to the start time (no drift); calls that would have
    run while a slow call was still busy are skipped, not bunched up. When ``f``
    returns an awaitable, the next call waits until it completes.
    """

    def __init__(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.f = f
        self.a = a
        self.kw = kw
        self.clock: Any = None
        self.running = False
        self.interval: Optional[float] = None
        self.call: Any = None
        self._start_time = 0.0
        self._count = 0
        self._busy: Any = None  # the awaitable of a call still in progress

    def start(self, interval: float, now: bool = True) -> None:
        """Start calling every ``interval`` seconds (at once too when ``now``)."""
        if self.running:
            raise RuntimeError("Tried to start an already running LoopingCall.")
        if interval < 0:
            raise ValueError("interval must be >= 0")
        if self.clock is None:
            self.clock = _default_clock()
        self.running = True
        self.interval = interval
        self._start_time = self.clock.seconds()
        self._count = 0
        if now:
            self()
        else:
            self._schedule_next()

    def stop(self) -> Any:
        """Stop; returns the awaitable of a call still in progress, if any."""
        if not self.running:
            raise RuntimeError("Tried to stop a LoopingCall that was not running.")
        self.running = False
        if self.call is not None:
            if self.call.active():
                self.call.cancel()
            self.call = None
        return self._busy

    def __call__(self) -> None:
        self.call = None
        if not self.running:
            return
        try:
            result = self.f(*self.a, **self.kw)
        except Exception:
            log.exception("Unhandled error in looping call %r", self.f)
            result = None
        if result is not None and hasattr(type(result), "__await__"):
            import asyncio

            task = asyncio.ensure_future(result)
            self._busy = task
            task.add_done_callback(self._done)
        else:
            self._schedule_next()

    def _done(self, task: Any) -> None:
        self._busy = None
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("Unhandled error in looping call %r", self.f,
                      exc_info=(type(error), error, error.__traceback__))
        self._schedule_next()

    def _schedule_next(self) -> None:
        if not self.running:
            return
        now = self.clock.seconds()
        interval = self.interval or 0.0
        if interval == 0:
            self.call = self.clock.callLater(0, self)
            return
        # The next slot on the grid after both now and the call just made: a loop
        # may run a call a hair early (within its clock resolution), and that
        # call's own slot must not come round again at once.
        count = max(self._count + 1, int((now - self._start_time) / interval) + 1)
        self._count = count
        self.call = self.clock.callLater(self._start_time + count * interval - now, self)


class _FakeCall:
    """A delayed call on a :class:`Clock`."""

    def __init__(self, clock: "Clock", when: float, func: Callable[..., Any], args: tuple, kw: dict) -> None:
        self.clock = clock
        self.time = when
        self.func = func
        self.args = args
        self.kw = kw
        self.called = False
        self.cancelled = False

    def getTime(self) -> float:
        """When the call runs."""
        return self.time

    def active(self) -> bool:
        """True until it has run or been cancelled."""
        return not (self.called or self.cancelled)

    def _check(self) -> None:
        from twistdlite.reactor import AlreadyCalled, AlreadyCancelled

        if self.cancelled:
            raise AlreadyCancelled(self)
        if self.called:
            raise AlreadyCalled(self)

    def cancel(self) -> None:
        """Unschedule it."""
        self._check()
        self.cancelled = True
        self.clock.calls.remove(self)

    def reset(self, secondsFromNow: float) -> None:
        """Run it ``secondsFromNow`` from now instead."""
        self._check()
        self.time = self.clock.seconds() + secondsFromNow
        self.clock.calls.sort(key=lambda c: c.time)

    def delay(self, secondsLater: float) -> None:
        """Push it later."""
        self._check()
        self.time += secondsLater
        self.clock.calls.sort(key=lambda c: c.time)


class Clock:
    """A fake clock for tests: ``callLater`` schedules, :meth:`advance` moves time and runs what is due."""

    def __init__(self) -> None:
        self.rightNow = 0.0
        self.calls: list[_FakeCall] = []

    def seconds(self) -> float:
        """The current fake time."""
        return self.rightNow

    def callLater(self, delay: float, func: Callable[..., Any], *args: Any, **kw: Any) -> _FakeCall:
        """Schedule ``func`` at now + ``delay``."""
        call = _FakeCall(self, self.rightNow + delay, func, args, kw)
        self.calls.append(call)
        self.calls.sort(key=lambda c: c.time)
        return call

    def getDelayedCalls(self) -> list:
        """The calls still scheduled."""
        return list(self.calls)

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` and run every call that falls due."""
        self.rightNow += amount
        while self.calls and self.calls[0].time <= self.rightNow:
            call = self.calls.pop(0)
            call.called = True
            call.func(*call.args, **call.kw)

    def pump(self, timings: list) -> None:
        """Advance by each amount in ``timings`` in turn."""
        for amount in timings:
            self.advance(amount)
