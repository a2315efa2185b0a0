"""Deferreds, as in ``twisted.internet.defer``, on asyncio.

A :class:`Deferred` is a promise of a result that callbacks are chained onto::

    d = Deferred()
    d.addCallback(parse).addErrback(report)
    d.callback(data)          # runs parse(data), then report(failure) if parse raised

The semantics are Twisted's ("Deferred Reference"):

* Each callback gets the result of the one before it. A callback that raises
  (or returns a :class:`~twistdlite.failure.Failure`) switches the chain to
  its errbacks; an errback that returns a value switches it back.
* A callback returning a Deferred pauses the chain until that one fires; its
  result then goes on down the outer chain. Chains are run by a loop, not by
  recursion, so a chain of any length works.
* :meth:`Deferred.cancel` calls the canceller given at creation; if that does
  not fire the Deferred, it fails with :class:`CancelledError`.
* A Deferred fired twice raises :class:`AlreadyCalledError` (naming where it
  was created and first fired when :func:`setDebugging` is on).
* A Deferred garbage-collected while its chain ends in a failure logs
  "Unhandled error in Deferred" with the traceback, once.

Deferreds are synchronous: nothing here needs an event loop until something
waits for time or a future. ``await d`` works in any coroutine on an asyncio
(or uvloop) loop, and :func:`ensureDeferred` turns a coroutine into a
Deferred: on a running loop it runs as an asyncio task; with no loop running
it is stepped by the Deferreds it awaits, as Twisted does.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import types
import warnings
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Generator, Iterable, List, Optional, Tuple,
                    TypeVar, Union)

from twistdlite.failure import Failure

if TYPE_CHECKING:  # asyncio is imported only when a loop is in play (start-up cost)
    import asyncio

__all__ = [
    "AlreadyCalledError", "AlreadyTryingToLockError", "CancelledError", "Deferred", "DeferredList",
    "DeferredLock", "DeferredQueue", "DeferredSemaphore", "FailureGroup", "FirstError", "NotACoroutineError",
    "QueueOverflow", "QueueUnderflow", "TimeoutError", "ensureDeferred", "execute", "fail", "gatherResults",
    "getDebugging", "inlineCallbacks", "logError", "maybeDeferred", "passthru", "race", "returnValue",
    "setDebugging", "succeed", "timeout", "SUCCESS", "FAILURE",
]

log = logging.getLogger("twistdlite.defer")

_T = TypeVar("_T")

SUCCESS = True
FAILURE = False

_debugging = False  # setDebugging's switch


def _running_loop() -> Any:
    """The asyncio loop running in this thread, or None (asyncio not even imported: None)."""
    aio = sys.modules.get("asyncio")
    return aio._get_running_loop() if aio is not None else None


def _isfuture(obj: Any) -> bool:
    """An asyncio Future (or a Future-like, as ``asyncio.isfuture`` tells them)."""
    return getattr(type(obj), "_asyncio_future_blocking", _NOT_FUTURE) is not _NOT_FUTURE and \
        obj._asyncio_future_blocking is not None


_NOT_FUTURE = object()


def _iscoroutine(obj: Any) -> bool:
    return isinstance(obj, (types.CoroutineType, types.GeneratorType))


# -- errors ---------------------------------------------------------------------

class AlreadyCalledError(Exception):
    """A Deferred was fired (``callback``/``errback``) a second time."""


class CancelledError(Exception):
    """A Deferred was cancelled (and its canceller did not fire it otherwise)."""


class TimeoutError(Exception):
    """A Deferred given :meth:`Deferred.addTimeout` did not fire in time."""


class NotACoroutineError(TypeError):
    """:func:`ensureDeferred` or :meth:`Deferred.fromCoroutine` was given something that is not a coroutine."""


class AlreadyTryingToLockError(Exception):
    """Raised by a filesystem lock already trying to lock (kept for Twisted's name)."""


class QueueOverflow(Exception):
    """:meth:`DeferredQueue.put` on a queue holding ``size`` items already."""


class QueueUnderflow(Exception):
    """:meth:`DeferredQueue.get` on a queue with ``backlog`` gets already waiting."""


class FirstError(Exception):
    """The first failure in a :class:`DeferredList` with ``fireOnOneErrback`` (or :func:`gatherResults`).

    ``subFailure`` is that failure, ``index`` the position of its Deferred in the list.
    """

    def __init__(self, failure: Failure, index: int) -> None:
        super().__init__(failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.value!r}]"

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure}]"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return tuple(self.args) == other
        if isinstance(other, FirstError):
            return self.subFailure == other.subFailure and self.index == other.index
        return False

    __hash__ = Exception.__hash__


class FailureGroup(Exception):
    """Every Deferred given to :func:`race` failed; ``failures`` holds their failures in order."""

    def __init__(self, failures: List[Failure]) -> None:
        super().__init__(failures)
        self.failures = failures


# -- debugging --------------------------------------------------------------------

def setDebugging(on: bool) -> None:
    """Record where each Deferred is created and first fired (slow: for debugging only).

    With it on, :class:`AlreadyCalledError` and the unhandled-error log name both places.
    """
    global _debugging
    _debugging = bool(on)


def getDebugging() -> bool:
    """Whether :func:`setDebugging` is on."""
    return _debugging


def _format_stack(skip: int) -> List[str]:
    import traceback

    return traceback.format_stack(sys._getframe(skip + 1))


def _stack_lines(prefix: str, stack: List[str]) -> List[str]:
    lines = []
    for entry in stack:
        for line in entry.rstrip("\n").split("\n"):
            lines.append(f" {prefix}:{line.rstrip()}")
    return lines


class _DebugInfo:
    """What a Deferred knows for debugging; logs its failure, if still unhandled, when collected."""

    __slots__ = ("failResult", "creator", "invoker")

    def __init__(self) -> None:
        self.failResult: Optional[Failure] = None
        self.creator: Optional[List[str]] = None
        self.invoker: Optional[List[str]] = None

    def describe(self) -> str:
        """The creation and first-invocation stacks, as lines starting `` C:`` and `` I:``."""
        lines = []
        if self.creator is not None:
            lines.append(" C: Deferred was created:")
            lines.extend(_stack_lines("C", self.creator))
        if self.invoker is not None:
            lines.append(" I: First Invoker was:")
            lines.extend(_stack_lines("I", self.invoker))
        return "\n".join(lines)

    def __del__(self) -> None:
        failure = self.failResult
        if failure is None:
            return
        self.failResult = None
        debug = self.describe()
        try:
            # As twistd logs it: the line saying so, then the failure (with where the
            # Deferred came from when debugging).
            from twistdlite import log as legacy

            legacy.msg("Unhandled error in Deferred:", isError=True)
            legacy.err(failure, f"(debug: {debug})" if debug else None)
        except Exception:  # pragma: no cover - logging at interpreter shutdown
            pass


# -- Deferred ---------------------------------------------------------------------

def passthru(arg: _T) -> _T:
    """Return ``arg``: the callback or errback that does nothing."""
    return arg


class _Continue:
    """Marks the callback that hands a chained Deferred's result on to the Deferred waiting for it."""

    __slots__ = ()


_CONTINUE = _Continue()
_NO_RESULT = object()


_OWN_FILES = (__file__.rstrip("c"), sys.modules[Failure.__module__].__file__.rstrip("c"))


def _strip_own_frame(exc: BaseException) -> None:
    """Drop our own frames (the one that caught it, and how it was passed on) from the start of
    ``exc``'s traceback, so it begins where the user's code is."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    exc.__traceback__ = tb


def _settle(d: "Deferred", outcome: Any) -> None:
    if isinstance(outcome, Failure):
        d.errback(outcome)
    else:
        d.callback(outcome)


class _DeferredType(type):
    """Makes ``Deferred.debug = True`` (the class-wide switch) mean :func:`setDebugging`."""

    @property
    def debug(cls) -> bool:
        return _debugging

    @debug.setter
    def debug(cls, value: bool) -> None:
        setDebugging(value)


class Deferred(metaclass=_DeferredType):
    """A result that is not there yet, with a chain of callbacks and errbacks to run on it.

    ``canceller``, when given, is called with the Deferred by :meth:`cancel`.
    """

    # __dict__: code written for Twisted may hang its own attributes on a Deferred (made on first use).
    __slots__ = ("_callbacks", "called", "paused", "result", "debug", "_canceller", "_suppressAlreadyCalled",
                 "_runningCallbacks", "_chainedTo", "_debugInfo", "__weakref__", "__dict__")

    __class_getitem__ = classmethod(types.GenericAlias)  # Deferred[int] in annotations, as Twisted

    def __init__(self, canceller: Optional[Callable[["Deferred"], None]] = None) -> None:
        self._callbacks: List[tuple] = []
        self.called = False
        self.paused = 0
        self._canceller = canceller
        self._suppressAlreadyCalled = False
        self._runningCallbacks = False
        self._chainedTo: Optional[Deferred] = None
        self._debugInfo: Optional[_DebugInfo] = None
        #: Record where it was created and first fired (set from :func:`setDebugging`).
        self.debug = _debugging
        if _debugging:
            info = self._debugInfo = _DebugInfo()
            info.creator = _format_stack(1)

    @property
    def callbacks(self) -> List[tuple]:
        """The pending callbacks (deprecated, as in Twisted: an implementation detail)."""
        warnings.warn("Deferred.callbacks is deprecated: it is an implementation detail",
                      DeprecationWarning, stacklevel=2)
        return self._callbacks

    # -- adding callbacks ------------------------------------------------------

    def addCallbacks(
        self,
        callback: Callable[..., Any],
        errback: Optional[Callable[..., Any]] = None,
        callbackArgs: tuple = (),
        callbackKeywords: Optional[dict] = None,
        errbackArgs: tuple = (),
        errbackKeywords: Optional[dict] = None,
    ) -> "Deferred":
        """Add a callback and an errback at the same place in the chain; returns this Deferred."""
        if errback is None:
            errback = passthru
        if not callable(callback) or not callable(errback):
            raise TypeError("addCallbacks needs callables")
        self._callbacks.append((callback, tuple(callbackArgs or ()), callbackKeywords or None,
                                errback, tuple(errbackArgs or ()), errbackKeywords or None))
        if self.called:
            self._runCallbacks()
        return self

    def addCallback(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> "Deferred":
        """Call ``callback(result, *args, **kw)`` when the chain reaches it with a result."""
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        self._callbacks.append((callback, args, kw or None, passthru, (), None))
        if self.called:
            self._runCallbacks()
        return self

    def addErrback(self, errback: Callable[..., Any], *args: Any, **kw: Any) -> "Deferred":
        """Call ``errback(failure, *args, **kw)`` when the chain reaches it with a failure."""
        if not callable(errback):
            raise TypeError(f"{errback!r} is not callable")
        self._callbacks.append((passthru, (), None, errback, args, kw or None))
        if self.called:
            self._runCallbacks()
        return self

    def addBoth(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> "Deferred":
        """Call ``callback`` with whatever reaches it, a result or a failure."""
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        kw = kw or None
        self._callbacks.append((callback, args, kw, callback, args, kw))
        if self.called:
            self._runCallbacks()
        return self

    def addTimeout(self, timeout: float, clock: Any,
                   onTimeoutCancel: Optional[Callable[[Any, float], Any]] = None) -> "Deferred":
        """Cancel this Deferred if it has not fired within ``timeout`` seconds of ``clock``.

        ``clock`` has ``callLater`` (the reactor, a :class:`twistdlite.task.Clock`). A Deferred
        cancelled this way fails with :class:`TimeoutError` instead of :class:`CancelledError`,
        or gets what ``onTimeoutCancel(result, timeout)`` returns. Returns this Deferred.
        """
        timed_out = [False]

        def time_out() -> None:
            timed_out[0] = True
            self.cancel()

        delayed_call = clock.callLater(timeout, time_out)

        def convert(result: Any) -> Any:
            if timed_out[0]:
                return (onTimeoutCancel or _cancelledToTimedOutError)(result, timeout)
            return result

        def cancel_timeout(result: Any) -> Any:
            if delayed_call.active():
                delayed_call.cancel()
            return result

        self.addBoth(convert)
        self.addBoth(cancel_timeout)
        return self

    def chainDeferred(self, d: "Deferred") -> "Deferred":
        """Fire ``d`` with this Deferred's result (it is not changed, as a returned Deferred would)."""
        d._chainedTo = self
        return self.addCallbacks(d.callback, d.errback)

    # -- firing ------------------------------------------------------------------

    def callback(self, result: Any = None) -> None:
        """Fire with ``result``: run the callbacks."""
        if isinstance(result, Deferred):
            raise AssertionError("a Deferred cannot be fired with another Deferred; chain it instead")
        self._start(result)

    def errback(self, fail: Union[Failure, BaseException, None] = None) -> None:
        """Fire with a failure (an exception, a :class:`Failure`, or the exception being handled)."""
        if fail is None:
            fail = Failure(captureVars=self.debug)
        elif not isinstance(fail, Failure):
            fail = Failure(fail)
        self._start(fail)

    def _start(self, result: Any) -> None:
        if self.called:
            if self._suppressAlreadyCalled:
                self._suppressAlreadyCalled = False
                return
            if self.debug:
                info = self._debugInfo
                raise AlreadyCalledError("\n" + (info.describe() if info is not None else ""))
            raise AlreadyCalledError()
        if self.debug:
            if self._debugInfo is None:
                self._debugInfo = _DebugInfo()
            self._debugInfo.invoker = _format_stack(2)
        self.called = True
        self.result = result
        self._canceller = None  # no longer needed: do not keep it (and what it refers to) alive
        self._runCallbacks()

    def pause(self) -> None:
        """Stop running callbacks until :meth:`unpause` (calls nest)."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one :meth:`pause`; run the callbacks if no pause is left and there is a result."""
        self.paused -= 1
        if self.paused:
            return
        if self.called:
            self._runCallbacks()

    def cancel(self) -> None:
        """Cancel: call the canceller; if it did not fire this Deferred, fail it with :class:`CancelledError`.

        Without a canceller, a later ``callback``/``errback`` (the work finishing after all) is
        ignored once. A Deferred waiting on another cancels that one instead.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                canceller(self)
            else:
                self._suppressAlreadyCalled = True
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            self.result.cancel()

    # -- running the chain -------------------------------------------------------------

    def _runCallbacks(self) -> None:
        """Run callbacks down this chain and every chain waiting on it, without recursion."""
        if self._runningCallbacks:
            return  # a callback added from inside a callback: the running loop will get to it
        chain: List[Deferred] = [self]
        while chain:
            current = chain[-1]
            if current.paused:
                return
            finished = True
            current._chainedTo = None
            callbacks = current._callbacks
            index = 0  # callbacks run so far: removed in one go when this chain stops
            current._runningCallbacks = True
            try:
                while index < len(callbacks):  # callbacks may add callbacks: len is read each time
                    item = callbacks[index]
                    index += 1
                    if item[0] is _CONTINUE:
                        # The Deferred waiting on this one takes its result and goes on.
                        waiting = item[1]
                        waiting.result = current.result
                        current.result = None
                        if current._debugInfo is not None:
                            current._debugInfo.failResult = None
                        waiting.paused -= 1
                        chain.append(waiting)
                        finished = False
                        break
                    result = current.result
                    if isinstance(result, Failure):
                        function, args, kw = item[3], item[4], item[5]
                    else:
                        function, args, kw = item[0], item[1], item[2]
                    if function is passthru:
                        continue
                    try:
                        if kw is None:
                            result = current.result = function(result, *args)
                        else:
                            result = current.result = function(result, *args, **kw)
                        if result is current:
                            _warn_circular(function)
                    except BaseException as e:
                        _strip_own_frame(e)
                        result = current.result = Failure(e, captureVars=current.debug)
                    if isinstance(result, Deferred):
                        inner = getattr(result, "result", _NO_RESULT)
                        if inner is _NO_RESULT or isinstance(inner, Deferred) or result.paused:
                            # Wait for it: pause, and have it hand its result to us when it fires.
                            current.paused += 1
                            current._chainedTo = result
                            result._callbacks.append((_CONTINUE, current, None, _CONTINUE, current, None))
                            break
                        # It has fired already: take its result now.
                        result.result = None
                        if result._debugInfo is not None:
                            result._debugInfo.failResult = None
                        current.result = inner
            finally:
                del callbacks[:index]
                current._runningCallbacks = False
            if finished:
                result = current.result
                if isinstance(result, Failure):
                    result.cleanFailure()
                    if current._debugInfo is None:
                        current._debugInfo = _DebugInfo()
                    current._debugInfo.failResult = result
                elif current._debugInfo is not None:
                    current._debugInfo.failResult = None
                chain.pop()

    # -- asyncio -------------------------------------------------------------------

    def __await__(self) -> Generator[Any, Any, Any]:
        """``await d``: its result, or its failure's exception raised (which counts as handled)."""
        if self.called and not self.paused:
            result = self.result
            if not isinstance(result, Deferred):
                if isinstance(result, Failure):
                    if self._debugInfo is not None:
                        self._debugInfo.failResult = None
                    result.raiseException()
                return result
        loop = _running_loop()
        if loop is None:
            # Stepped by ensureDeferred's own driver (no loop): it resumes us when this fires.
            return (yield self)
        return (yield from self.asFuture(loop).__await__())

    __iter__ = __await__

    def asFuture(self, loop: asyncio.AbstractEventLoop) -> "asyncio.Future[Any]":
        """A Future on ``loop`` with this Deferred's outcome; cancelling the Future cancels the Deferred.

        This Deferred's result is None afterwards (the Future has it).
        """
        future = loop.create_future()

        def check_cancel(f: "asyncio.Future[Any]") -> None:
            if f.cancelled():
                self.cancel()

        def settle(result: Any) -> None:
            if future.done():
                return None
            if isinstance(result, Failure):
                future.set_exception(result.value.with_traceback(result.tb))
            else:
                future.set_result(result)
            return None

        future.add_done_callback(check_cancel)
        self.addBoth(settle)
        return future

    @classmethod
    def fromFuture(cls, future: "asyncio.Future[Any]") -> "Deferred":
        """A Deferred with the Future's outcome; cancelling it cancels the Future.

        A cancelled Future (either way) fails the Deferred with an error that is both an
        ``asyncio.CancelledError`` (as Twisted's fromFuture gives) and this module's
        :class:`CancelledError` (as a cancelled Deferred gives), so either check matches.
        Cancelling the Deferred fails it at once.
        """
        def cancel(d: Deferred) -> None:
            if future.cancel():
                d.errback(Failure(_future_cancelled()))

        d = cls(cancel)

        def adapt(f: "asyncio.Future[Any]") -> None:
            if d.called:
                return  # cancelled already
            if f.cancelled():
                d.errback(Failure(_future_cancelled()))
                return
            try:
                result = f.result()
            except BaseException as e:
                d.errback(Failure(e))
            else:
                d.callback(result)

        future.add_done_callback(adapt)
        return d

    @classmethod
    def fromCoroutine(cls, coro: Union[Coroutine[Any, Any, Any], Generator[Any, Any, Any]]) -> "Deferred":
        """Run the coroutine; a Deferred with its outcome (see :func:`ensureDeferred`)."""
        if not _iscoroutine(coro):
            raise NotACoroutineError(f"{coro!r} is not a coroutine")
        loop = _running_loop()
        if loop is None:
            return _drive(_CoroutineDriver(coro).step)
        return _run_as_task(loop, coro)

    # -- display -------------------------------------------------------------------

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._chainedTo is not None:
            return f"<{name} at 0x{id(self):x} waiting on Deferred at 0x{id(self._chainedTo):x}>"
        if self.called:
            return f"<{name} at 0x{id(self):x} current result: {self.result!r}>"
        return f"<{name} at 0x{id(self):x}>"

    __str__ = __repr__


_FutureCancelledError: Optional[type] = None


def _future_cancelled() -> BaseException:
    """A cancellation error that is both asyncio's ``CancelledError`` and :class:`CancelledError`."""
    global _FutureCancelledError
    if _FutureCancelledError is None:
        import asyncio

        class FutureCancelledError(CancelledError, asyncio.CancelledError):
            """A Future behind a Deferred was cancelled (an ``asyncio.CancelledError`` too)."""

        FutureCancelledError.__module__ = __name__
        _FutureCancelledError = FutureCancelledError
    return _FutureCancelledError()


def _warn_circular(function: Callable[..., Any]) -> None:
    """Warn (at the callback's own line) that it returned the Deferred it was added to.

    As in Twisted, the Deferred then waits on itself: its chain stops there.
    """
    code = getattr(function, "__code__", None)
    warnings.warn_explicit(
        "Callback returned the Deferred it was attached to; this breaks the callback chain "
        "(it waits on itself for ever)", DeprecationWarning,
        filename=code.co_filename if code else "<unknown>", lineno=code.co_firstlineno if code else 0)


def _cancelledToTimedOutError(value: Any, timeout: float) -> Any:
    """Turn a :class:`CancelledError` failure into :class:`TimeoutError` (what addTimeout does by default)."""
    if isinstance(value, Failure):
        value.trap(CancelledError)
        raise TimeoutError(timeout, "Deferred")
    return value


# -- making Deferreds ----------------------------------------------------------

def succeed(result: Any) -> Deferred:
    """A Deferred that has already fired with ``result``."""
    d = Deferred()
    d.called = True
    d.result = result
    return d


def fail(result: Union[Failure, BaseException, None] = None) -> Deferred:
    """A Deferred that has already failed with ``result`` (default: the exception being handled)."""
    d = Deferred()
    d.errback(result)
    return d


def execute(callable: Callable[..., Any], *args: Any, **kw: Any) -> Deferred:
    """Call ``callable(*args, **kw)`` now; a fired Deferred with its result or its exception."""
    try:
        result = callable(*args, **kw)
    except BaseException as e:
        _strip_own_frame(e)
        return fail(Failure(e))
    return succeed(result)


def maybeDeferred(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred:
    """Call ``f(*args, **kw)`` and give a Deferred for whatever it does.

    A Deferred it returns is returned as is; a coroutine is run (:func:`ensureDeferred`);
    a :class:`Failure` or an exception it raises becomes a failed Deferred; any other
    value a fired one.
    """
    try:
        result = f(*args, **kw)
    except BaseException as e:
        _strip_own_frame(e)
        return fail(Failure(e))
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if isinstance(result, types.CoroutineType):
        return Deferred.fromCoroutine(result)
    return succeed(result)


def logError(err: Failure) -> Failure:
    """Log ``err`` with its traceback (an errback for the end of a chain); returns it."""
    from twistdlite import log as legacy

    legacy.err(err)
    return err


def timeout(deferred: Deferred) -> None:
    """Fail ``deferred`` with :class:`TimeoutError` (deprecated, as in Twisted: use :meth:`Deferred.addTimeout`)."""
    warnings.warn("twistdlite.defer.timeout is deprecated: use Deferred.addTimeout", DeprecationWarning, stacklevel=2)
    deferred.errback(Failure(TimeoutError("Callback timed out")))


# -- coroutines --------------------------------------------------------------------

def ensureDeferred(coro: Union[Deferred, Awaitable[Any]]) -> Deferred:
    """A Deferred for a coroutine (run now) or a Future; a Deferred is returned as is.

    On a running asyncio loop the coroutine runs as an asyncio task (so everything asyncio
    offers works in it; on Python 3.12+ the task starts at once, eagerly). With no loop
    running it is stepped by the Deferreds it awaits, synchronously, as Twisted does.
    Cancelling the Deferred cancels what the coroutine is waiting on.
    """
    if isinstance(coro, Deferred):
        return coro
    if _iscoroutine(coro):
        return Deferred.fromCoroutine(coro)
    if _isfuture(coro):
        return Deferred.fromFuture(coro)  # type: ignore[arg-type]
    raise NotACoroutineError(f"{coro!r} is not a coroutine or a Deferred")


class _Cancelled(Exception):
    """Marks the cancellation of a Deferred whose outcome the code it runs decides."""


def _cancellable(status: "_Status", action: Optional[Callable[[], Any]], cls: Optional[type] = None) -> Deferred:
    """A Deferred (of ``cls``) whose outcome something else decides, by firing ``status.deferred``.

    Cancelling it calls ``action()`` (to cancel what the work waits on) and then waits, unfired,
    for that outcome (as Twisted's inlineCallbacks does), instead of failing at once.
    """
    status.action = action
    status.deferred = outer = (cls or Deferred)(status.cancel)
    return outer


def _drive(step: Callable[[Any, "_Status"], None]) -> Deferred:
    """The Deferred of a coroutine or generator that ``step`` runs until it waits or ends.

    Cancelling it cancels what the code waits on, and the Deferred fires with whatever
    the code does then (as Twisted's inlineCallbacks).
    """
    status = _Status()
    outer = _cancellable(status, None)
    step(None, status)
    return outer


class _Status:
    """What a driven coroutine, generator, task or future waits on, and the Deferred its outcome fires.

    No closures: once its Deferred has fired (dropping its canceller), nothing is left in a
    reference cycle, so the Deferred is freed as soon as nobody holds it.
    """

    __slots__ = ("deferred", "waitingOn", "action")

    def __init__(self) -> None:
        self.deferred: Deferred = None  # type: ignore[assignment]
        self.waitingOn: Any = None
        self.action: Optional[Callable[[], Any]] = None  # None: cancel_awaited (no self-reference)

    def cancel(self, d: Deferred) -> None:
        """The canceller: fail ``d`` with a marker whose handler, put first, makes it wait instead."""
        d._callbacks.insert(0, (passthru, (), None, self.handle_cancel, (), None))
        d.errback(Failure(_Cancelled()))

    def handle_cancel(self, failure: Failure) -> Deferred:
        """Swap in a fresh Deferred for the outcome, call the action, and have the chain wait on it."""
        failure.trap(_Cancelled)
        fresh = self.deferred = Deferred(self.cancel)
        (self.action or self.cancel_awaited)()
        return fresh

    def cancel_awaited(self) -> None:
        """Cancel what the code waits on (a Deferred or an asyncio future), if anything."""
        awaited = self.waitingOn
        if awaited is not None:
            awaited.cancel()


def _wait_on(driver: Any, d: "Deferred", status: "_Status") -> tuple:
    """Have ``driver`` go on with ``d``'s result: ``(False, result)`` when ``d`` fired at once,
    ``(True, None)`` when the driver is suspended until ``d`` fires (then ``driver.step`` resumes it)."""
    waiting = [True, None]

    def resume(r: Any) -> None:
        if waiting[0]:
            waiting[0] = False
            waiting[1] = r
            return None
        status.waitingOn = None
        driver.step(r, status)
        return None

    d.addBoth(resume)
    if waiting[0]:
        waiting[0] = False
        status.waitingOn = d
        return True, None
    return False, waiting[1]


class _CoroutineDriver:
    """Steps a coroutine with no loop running: resumed by each Deferred it awaits as that fires."""

    __slots__ = ("coro", "context")

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.context = contextvars.copy_context()  # each step runs in it, as Twisted does

    def step(self, result: Any, status: _Status) -> None:
        coro = self.coro
        run = self.context.run
        while True:
            try:
                if isinstance(result, Failure):
                    yielded = run(result.throwExceptionIntoGenerator, coro)
                else:
                    yielded = run(coro.send, result)
            except StopIteration as e:
                outcome: Any = e.value
            except BaseException as e:
                _strip_own_frame(e)
                outcome = Failure(e)
            else:
                outcome = _NO_RESULT
            if outcome is not _NO_RESULT:
                # Fired outside the except block, so an error in what runs next does not
                # show this StopIteration as its context.
                _settle(status.deferred, outcome)
                return
            if isinstance(yielded, Deferred):
                suspended, result = _wait_on(self, yielded, status)
                if suspended:
                    return
            elif getattr(yielded, "_asyncio_future_blocking", None) is not None:
                # An asyncio Future (the loop started since): resume when it is done.
                yielded._asyncio_future_blocking = False
                status.waitingOn = yielded

                def resume_future(_f: Any) -> None:
                    status.waitingOn = None
                    self.step(None, status)

                yielded.add_done_callback(resume_future)
                return
            elif yielded is None:
                result = None  # a bare yield (asyncio.sleep(0)): go on
            else:
                result = Failure(RuntimeError(f"a coroutine run by ensureDeferred yielded {yielded!r}; "
                                              "it can await Deferreds, or anything on a running loop"))


def _run_as_task(loop: asyncio.AbstractEventLoop, coro: Any) -> Deferred:
    """Run ``coro`` as an asyncio task on ``loop``; a Deferred with its outcome."""
    import asyncio

    if sys.version_info >= (3, 12):
        task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    else:
        task = loop.create_task(coro)
    status = _Status()
    outer = _cancellable(status, task.cancel)

    def done(t: "asyncio.Task[Any]") -> None:
        d = status.deferred
        if t.cancelled():
            d.errback(Failure(CancelledError()))
            return
        exc = t.exception()
        if exc is not None:
            d.errback(Failure(exc))
        else:
            d.callback(t.result())

    if task.done():
        done(task)
    else:
        task.add_done_callback(done)
    return outer


# -- inlineCallbacks ---------------------------------------------------------------

class _DefGen_Return(BaseException):
    """Carries :func:`returnValue`'s value out of an inlineCallbacks generator."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


def returnValue(val: Any) -> None:
    """Return ``val`` from an :func:`inlineCallbacks` generator (deprecated, as in Twisted: a plain
    ``return val`` does the same)."""
    warnings.warn("twistdlite.defer.returnValue is deprecated: use a return statement",
                  DeprecationWarning, stacklevel=2)
    raise _DefGen_Return(val)


def _as_deferred(yielded: Any) -> Any:
    if isinstance(yielded, Deferred):
        return yielded
    if isinstance(yielded, types.CoroutineType) or _isfuture(yielded):
        return ensureDeferred(yielded)
    return yielded


class _GeneratorDriver:
    """Steps an inlineCallbacks generator: each Deferred it yields resumes it when fired."""

    __slots__ = ("gen", "context")

    def __init__(self, gen: Generator[Any, Any, Any]) -> None:
        self.gen = gen
        self.context = contextvars.copy_context()  # each step runs in it, as Twisted does

    def step(self, result: Any, status: _Status) -> None:
        gen = self.gen
        run = self.context.run
        while True:
            try:
                if isinstance(result, Failure):
                    yielded = run(result.throwExceptionIntoGenerator, gen)
                else:
                    yielded = run(gen.send, result)
            except StopIteration as e:
                outcome: Any = e.value
            except _DefGen_Return as e:
                outcome = e.value
                _warn_non_local_return(e, gen)
            except BaseException as e:
                _strip_own_frame(e)
                outcome = Failure(e)
            else:
                outcome = _NO_RESULT
            if outcome is not _NO_RESULT:
                # Fired outside the except block, so an error in what runs next does not
                # show this StopIteration (or returnValue's exception) as its context.
                _settle(status.deferred, outcome)
                return
            if not isinstance(yielded, Deferred):
                yielded = _as_deferred(yielded)
                if not isinstance(yielded, Deferred):
                    result = yielded
                    continue
            if yielded.called and not yielded.paused and not yielded._callbacks:
                # Fired already: take its result at once (as a callback returning None would).
                result = yielded.result
                if not isinstance(result, Deferred):
                    yielded.result = None
                    if yielded._debugInfo is not None:
                        yielded._debugInfo.failResult = None
                    continue
            suspended, result = _wait_on(self, yielded, status)
            if suspended:
                return


def _warn_non_local_return(exc: BaseException, gen: Generator[Any, Any, Any]) -> None:
    """Warn when returnValue was called by a function the generator called, not by the generator:
    it made the generator return from inside that function (as Twisted warns)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if len(frames) < 2 or frames[-1].f_code is not returnValue.__code__:
        return
    caller = frames[-2]
    if caller.f_code is gen.gi_code:
        return
    warnings.warn_explicit(
        f"returnValue() was called in {caller.f_code.co_name!r}, which made the inlineCallbacks generator "
        f"{gen.gi_code.co_name!r} return: call it (or use return) only in the decorated generator itself",
        DeprecationWarning, filename=caller.f_code.co_filename, lineno=caller.f_lineno)


def inlineCallbacks(f: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Deferred]:
    """Decorate a generator function so it reads top to bottom: each ``yield d`` gives ``d``'s
    result (or raises its failure's exception) once ``d`` fires.

    The decorated function returns a Deferred that fires with the generator's ``return``
    value (or :func:`returnValue`'s), or fails with the exception it raises. Cancelling
    that Deferred cancels the Deferred the generator is waiting on.
    """

    @functools.wraps(f)
    def unwindGenerator(*args: Any, **kw: Any) -> Deferred:
        try:
            gen = f(*args, **kw)
        except _DefGen_Return:
            raise TypeError(f"inlineCallbacks requires {f!r} to produce a generator; instead "
                            "it caught returnValue being used in a non-generator")
        if not isinstance(gen, types.GeneratorType):
            raise TypeError(f"inlineCallbacks requires {f!r} to produce a generator; "
                            f"instead got {gen!r}")
        return _drive(_GeneratorDriver(gen).step)

    return unwindGenerator


# -- many Deferreds ----------------------------------------------------------------

class DeferredList(Deferred):
    """Fires when every Deferred in a list has, with ``[(success, result), ...]`` in list order.

    ``fireOnOneCallback``: fire with ``(result, index)`` at the first success.
    ``fireOnOneErrback``: fail with :class:`FirstError` at the first failure.
    ``consumeErrors``: the failures stop at the list (not logged as unhandled by the
    Deferreds they came from). Cancelling it cancels every Deferred still pending.
    """

    __slots__ = ("_deferredList", "resultList", "fireOnOneCallback", "fireOnOneErrback",
                 "consumeErrors", "finishedCount")

    def __init__(self, deferredList: Iterable[Deferred], fireOnOneCallback: bool = False,
                 fireOnOneErrback: bool = False, consumeErrors: bool = False) -> None:
        self._deferredList = list(deferredList)
        self.resultList: List[Any] = [None] * len(self._deferredList)
        super().__init__()
        if not self._deferredList and not fireOnOneCallback:
            self.callback([])
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        self.finishedCount = 0
        for index, deferred in enumerate(self._deferredList):
            deferred.addCallbacks(self._cbDeferred, self._cbDeferred,
                                  callbackArgs=(index, SUCCESS), errbackArgs=(index, FAILURE))

    def _cbDeferred(self, result: Any, index: int, succeeded: bool) -> Any:
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded == SUCCESS and self.fireOnOneCallback:
                self.callback((result, index))
            elif succeeded == FAILURE and self.fireOnOneErrback:
                self.errback(Failure(FirstError(result, index)))
            elif self.finishedCount == len(self.resultList):
                self.callback(self.resultList)
        if succeeded == FAILURE and self.consumeErrors:
            return None
        return result

    def cancel(self) -> None:
        """Cancel every Deferred of the list that has not fired (an error doing so is logged)."""
        if not self.called:
            for deferred in self._deferredList:
                try:
                    deferred.cancel()
                except BaseException:
                    log.exception("Exception raised from user supplied canceller")


def _parseDeferredListResult(resultList: List[Tuple[bool, Any]], fireOnOneErrback: bool = False) -> List[Any]:
    return [result for (success, result) in resultList]


def gatherResults(deferredList: Iterable[Deferred], consumeErrors: bool = False) -> Deferred:
    """A Deferred firing with the list of results, in order; fails with :class:`FirstError`
    at the first failure (``consumeErrors``: as for :class:`DeferredList`)."""
    d = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    d.addCallback(_parseDeferredListResult)
    return d


def race(ds: Iterable[Deferred]) -> Deferred:
    """Fires with ``(index, result)`` of the first Deferred to succeed, cancelling the others;
    fails with :class:`FailureGroup` when every one fails."""
    ds = list(ds)
    state = {"winner": None, "failures": [None] * len(ds), "count": 0}

    def cancel(_d: Deferred) -> None:
        for d in ds:
            d.cancel()

    outer = Deferred(cancel)

    def succeeded(result: Any, index: int) -> None:
        if state["winner"] is None:
            state["winner"] = index
            outer.callback((index, result))
            for i, d in enumerate(ds):
                if i != index:
                    d.cancel()
        return None

    def failed(failure: Failure, index: int) -> None:
        state["failures"][index] = failure
        state["count"] += 1
        if state["winner"] is None and state["count"] == len(ds):
            outer.errback(FailureGroup(state["failures"]))
        return None

    state["count"] = 0
    for index, d in enumerate(ds):
        d.addCallbacks(succeeded, failed, callbackArgs=(index,), errbackArgs=(index,))
    if not ds:
        outer.errback(FailureGroup([]))
    return outer


# -- concurrency primitives -----------------------------------------------------------

class _ConcurrencyPrimitive:
    """What locks and semaphores share: :meth:`run`, and ``async with``."""

    def __init__(self) -> None:
        self.waiting: List[Deferred] = []

    def _releaseAndReturn(self, r: Any) -> Any:
        self.release()
        return r

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        """Acquire, call ``f(*args, **kwargs)``, release when what it returns is done; its outcome."""
        def execute(_ignored: Any) -> Deferred:
            d = maybeDeferred(f, *args, **kwargs)
            d.addBoth(self._releaseAndReturn)
            return d

        return self.acquire().addCallback(execute)  # type: ignore[attr-defined]

    def __aenter__(self) -> Deferred:
        """``async with lock:`` acquires it."""
        return self.acquire()  # type: ignore[attr-defined]

    def __aexit__(self, exc_type: Any, exc_value: Any, tb: Any) -> Deferred:
        self.release()  # type: ignore[attr-defined]
        return succeed(False)


class DeferredLock(_ConcurrencyPrimitive):
    """A lock for Deferred code: :meth:`acquire` returns a Deferred firing with the lock when it is yours."""

    def __init__(self) -> None:
        super().__init__()
        self.locked = False

    def _cancelAcquire(self, d: Deferred) -> None:
        self.waiting.remove(d)

    def acquire(self) -> Deferred:
        """A Deferred that fires (with this lock) once the lock is held; cancelling it stops waiting."""
        d = Deferred(canceller=self._cancelAcquire)
        if self.locked:
            self.waiting.append(d)
        else:
            self.locked = True
            d.callback(self)
        return d

    def release(self) -> None:
        """Release the lock, handing it to the next waiter if there is one."""
        if not self.locked:
            raise RuntimeError("Tried to release an unlocked lock")
        self.locked = False
        if self.waiting:
            self.locked = True
            self.waiting.pop(0).callback(self)


class DeferredSemaphore(_ConcurrencyPrimitive):
    """A semaphore for Deferred code: at most ``tokens`` holders at a time."""

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError("DeferredSemaphore requires tokens >= 1")
        super().__init__()
        self.tokens = tokens
        self.limit = tokens

    def _cancelAcquire(self, d: Deferred) -> None:
        self.waiting.remove(d)

    def acquire(self) -> Deferred:
        """A Deferred that fires (with this semaphore) once a token is held; cancelling it stops waiting."""
        d = Deferred(canceller=self._cancelAcquire)
        if self.tokens <= 0:
            self.waiting.append(d)
        else:
            self.tokens -= 1
            d.callback(self)
        return d

    def release(self) -> None:
        """Give a token back, handing it to the next waiter if there is one."""
        if self.tokens >= self.limit:
            raise RuntimeError("Someone released me too many times: too many tokens!")
        self.tokens += 1
        if self.waiting:
            self.tokens -= 1
            self.waiting.pop(0).callback(self)


class DeferredQueue:
    """A queue whose :meth:`get` returns a Deferred firing with the next item.

    ``size``: most items held (a :meth:`put` beyond raises :class:`QueueOverflow`);
    ``backlog``: most gets waiting (a :meth:`get` beyond raises :class:`QueueUnderflow`).
    """

    def __init__(self, size: Optional[int] = None, backlog: Optional[int] = None) -> None:
        self.waiting: List[Deferred] = []
        self.pending: List[Any] = []
        self.size = size
        self.backlog = backlog

    def _cancelGet(self, d: Deferred) -> None:
        self.waiting.remove(d)

    def put(self, obj: Any) -> None:
        """Hand ``obj`` to the oldest waiting get, or keep it."""
        if self.waiting:
            self.waiting.pop(0).callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow()

    def get(self) -> Deferred:
        """A Deferred firing with the next item (at once if one is held); cancelling it stops waiting."""
        if self.pending:
            return succeed(self.pending.pop(0))
        if self.backlog is None or len(self.waiting) < self.backlog:
            d = Deferred(canceller=self._cancelGet)
            self.waiting.append(d)
            return d
        raise QueueUnderflow()
