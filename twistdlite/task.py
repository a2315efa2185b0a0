"""Repeating calls, delayed calls and a deterministic clock, mirroring ``twisted.internet.task``.

:class:`LoopingCall` runs a function every ``interval`` seconds on a clock
(the reactor by default); :func:`deferLater` is a Deferred of a call made
later. :class:`Clock` is a fake clock for tests: time only moves when
:meth:`Clock.advance` is called.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

__all__ = ["LoopingCall", "Clock", "deferLater"]

def _default_clock() -> Any:
    from twistdlite import reactor

    return reactor


class LoopingCall:
    """Call ``f(*a, **kw)`` every ``interval`` seconds, as Twisted's ``LoopingCall``.

    :meth:`start` returns a Deferred (also awaitable) that fires with the
    LoopingCall itself when :meth:`stop` is called, or fails, stopping the
    loop, when ``f`` raises (``lc.start(5).addErrback(report)``). When ``f``
    returns a Deferred or any awaitable, the next call waits until it
    completes (a failure stops the loop the same way). The schedule is fixed to
    the start time (no drift); calls that would have run while a slow call was
    still busy are skipped, not bunched up. A LoopingCall on the default
    clock pickles (in a ``.tap``) stopped, without its timer.
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
        self._deferred: Any = None  # what start() returned, until the loop ends

    def __getstate__(self) -> dict:
        """Pickled stopped: no timer, no call in progress; the default clock (the reactor) is not kept."""
        state = self.__dict__.copy()
        state.update(running=False, call=None, _busy=None, _deferred=None)
        if state.get("clock") is _default_clock():
            state["clock"] = None
        return state

    def start(self, interval: float, now: bool = True) -> Any:
        """Start calling every ``interval`` seconds (at once too when ``now``); returns the Deferred of the loop's end."""
        from twistdlite.defer import Deferred

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
        deferred = self._deferred = Deferred()
        if now:
            self()
        else:
            self._schedule_next()
        return deferred

    def stop(self) -> Any:
        """Stop; the Deferred :meth:`start` returned fires (once a call in progress completes).

        Returns the awaitable of a call still in progress, if any.
        """
        if not self.running:
            raise RuntimeError("Tried to stop a LoopingCall that was not running.")
        self.running = False
        if self.call is not None:
            if self.call.active():
                self.call.cancel()
            self.call = None
        if self._busy is None:
            self._finish(None)
        return self._busy

    def reset(self) -> None:
        """Restart the schedule from now (the next call is ``interval`` from now)."""
        if not self.running:
            raise RuntimeError("Tried to reset a LoopingCall that was not running.")
        if self.call is not None and self.call.active():
            self.call.cancel()
        self._start_time = self.clock.seconds()
        self._count = 0
        self._schedule_next()

    def _finish(self, failure: Any) -> None:
        deferred, self._deferred = self._deferred, None
        if deferred is None:
            return
        if failure is None:
            deferred.callback(self)
        else:
            deferred.errback(failure)

    def _failed(self, failure: Any) -> None:
        self.running = False
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self._finish(failure)

    def __call__(self) -> None:
        self.call = None
        if not self.running:
            return
        try:
            result = self.f(*self.a, **self.kw)
        except Exception:
            from twistdlite.failure import Failure

            self._failed(Failure())
            return
        if result is not None and hasattr(type(result), "__await__"):
            from twistdlite.defer import Deferred, ensureDeferred

            busy = result if isinstance(result, Deferred) else ensureDeferred(result)
            self._busy = busy
            busy.addBoth(self._done)
        else:
            self._schedule_next()

    def _done(self, result: Any) -> None:
        from twistdlite.failure import Failure

        self._busy = None
        if isinstance(result, Failure):
            self._failed(result)
        elif self.running:
            self._schedule_next()
        else:
            self._finish(None)  # stopped while the call was in progress
        return None

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

    def __repr__(self) -> str:
        name = getattr(self.f, "__qualname__", None) or repr(self.f)
        return f"LoopingCall<{self.interval!r}>({name}, *{self.a!r}, **{self.kw!r})"


def deferLater(clock: Any, delay: float, callable: Optional[Callable[..., Any]] = None, *args: Any,
               **kw: Any) -> Any:
    """A Deferred fired, ``delay`` seconds from now on ``clock``, with ``callable(*args, **kw)`` (or None).

    Cancelling it before then cancels the call and fails it with ``CancelledError``.
    """
    from twistdlite.defer import Deferred, maybeDeferred

    def cancel(deferred: Any) -> None:
        if delayed.active():
            delayed.cancel()

    deferred = Deferred(cancel)

    def fire() -> None:
        if callable is None:
            deferred.callback(None)
        else:
            maybeDeferred(callable, *args, **kw).chainDeferred(deferred)

    delayed = clock.callLater(delay, fire)
    return deferred


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
