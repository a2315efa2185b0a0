"""Small asyncio helpers shared by the port and connector code."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Generator

log = logging.getLogger("twistdlite")


class Done:
    """An awaitable that is already complete (``await Done(x)`` gives ``x`` at once).

    Returned by calls whose work is done synchronously but whose Twisted
    counterpart returns a Deferred, so both ``port.stopListening()`` and
    ``await port.stopListening()`` work, with or without a running loop.
    """

    __slots__ = ("result",)

    def __init__(self, result: Any = None) -> None:
        self.result = result

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result
        yield  # pragma: no cover - makes this a generator


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
        from twistdlite import reactor

        reactor.callWhenRunning(lambda: launch(reactor.getLoop()))
        return
    launch(loop)


def _log_failure(task: "asyncio.Task[Any]", what: str) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("%s failed: %s", what, error, exc_info=(type(error), error, error.__traceback__))
