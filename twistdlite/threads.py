"""Running blocking code in threads, mirroring ``twisted.internet.threads``.

``deferToThread(f, *args)`` runs ``f`` in the reactor's thread pool and
returns a Deferred (also awaitable) of its result; ``blockingCallFromThread``
does the reverse, from a worker thread into the loop's.
"""

from __future__ import annotations

import queue
from typing import Any, Callable

__all__ = ["deferToThread", "deferToThreadPool", "callMultipleInThread", "blockingCallFromThread"]


def deferToThreadPool(reactor: Any, threadpool: Any, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``f(*args, **kwargs)`` in ``threadpool``; returns a Deferred fired, in the loop's thread, with the outcome."""
    from twistdlite.defer import Deferred

    d = Deferred()

    def on_result(success: bool, result: Any) -> None:
        if success:
            reactor.callFromThread(d.callback, result)
        else:
            reactor.callFromThread(d.errback, result)

    threadpool.callInThreadWithCallback(on_result, f, *args, **kwargs)
    return d


def deferToThread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``f(*args, **kwargs)`` in the reactor's thread pool; returns a Deferred of its result (or failure)."""
    from twistdlite import reactor

    return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)


def _run_multiple(calls: list) -> None:
    for func, args, kwargs in calls:
        func(*args, **kwargs)


def callMultipleInThread(tupleList: list) -> None:
    """Run each ``(f, args, kwargs)`` of ``tupleList`` in turn, in one pool thread."""
    from twistdlite import reactor

    reactor.callInThread(_run_multiple, list(tupleList))


def blockingCallFromThread(reactor: Any, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """From a worker thread: run ``f(*a, **kw)`` in the loop's thread and wait for its result.

    When ``f`` returns a Deferred (or any awaitable), waits for it to fire. An
    exception is raised in the calling thread. Calling it from the loop's own
    thread would wait forever, so that raises ``RuntimeError`` instead.
    """
    import asyncio

    loop = reactor.getLoop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("blockingCallFromThread called from the reactor's own thread (it would wait forever)")
    outcome: queue.SimpleQueue = queue.SimpleQueue()

    def finished(future: Any) -> None:
        if future.cancelled():
            outcome.put((False, asyncio.CancelledError()))
        elif future.exception() is not None:
            outcome.put((False, future.exception()))
        else:
            outcome.put((True, future.result()))

    def call() -> None:
        try:
            result = f(*a, **kw)
        except BaseException as exc:
            outcome.put((False, exc))
            return
        if result is not None and hasattr(type(result), "__await__"):
            asyncio.ensure_future(result).add_done_callback(finished)
        else:
            outcome.put((True, result))

    loop.call_soon_threadsafe(call)
    success, value = outcome.get()
    if success:
        return value
    raise getattr(value, "value", value)
