"""System event triggers, as ``reactor.addSystemEventTrigger`` keeps them (exported by ``twistdlite.reactor``).

An event type (``"startup"``, ``"shutdown"``, or any name) has three phases,
``before``, ``during`` and ``after``, run in that order; each trigger runs once,
in the order added. A ``before`` trigger may return a Deferred (or any
awaitable): the ``during`` phase waits until all of them have fired. Under the
launcher, ``startup`` fires once every service has started, and ``shutdown``
fires around ``stopService`` (the ``before`` triggers are called just before
it and waited for with it, within ``--shutdown-timeout``; ``during`` and
``after`` follow, before the ``.tap`` is saved).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

__all__ = ["addSystemEventTrigger", "removeSystemEventTrigger", "fireSystemEvent", "run_phase",
           "describe"]

log = logging.getLogger("twistdlite")

PHASES = ("before", "during", "after")


class Trigger:
    """One registered trigger: ``callable(*args, **kwargs)`` for ``phase`` of ``eventType``."""

    __slots__ = ("eventType", "phase", "callable", "args", "kwargs")

    def __init__(self, eventType: str, phase: str, callable: Callable[..., Any], args: tuple,
                 kwargs: dict) -> None:
        self.eventType = eventType
        self.phase = phase
        self.callable = callable
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"the {self.phase!r} {self.eventType!r} trigger {describe(self.callable)}"


#: eventType -> phase -> triggers not yet run
_triggers: dict[str, dict[str, list]] = {}


def describe(func: Any) -> str:
    """A callable's dotted name (``myapp.Flusher.flush``), for log lines."""
    target = getattr(func, "__func__", func)
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(type(target), "__qualname__", repr(target))
    return f"{module}.{name}" if module else str(name)


def addSystemEventTrigger(phase: str, eventType: str, callable: Callable[..., Any], *args: Any,
                          **kwargs: Any) -> Trigger:
    """Run ``callable(*args, **kwargs)`` in ``phase`` of ``eventType``; returns an ID for :func:`removeSystemEventTrigger`."""
    if phase not in PHASES:
        raise KeyError(f"invalid phase {phase!r} (one of: {', '.join(PHASES)})")
    if not callable_(callable):
        raise TypeError(f"{callable!r} is not callable")
    trigger = Trigger(eventType, phase, callable, args, kwargs)
    _triggers.setdefault(eventType, {}).setdefault(phase, []).append(trigger)
    return trigger


def callable_(value: Any) -> bool:
    """``callable`` (the builtin is shadowed by Twisted's parameter name above)."""
    return hasattr(value, "__call__")


def removeSystemEventTrigger(triggerID: Any) -> None:
    """Remove a trigger before it runs (``ValueError`` for an ID that is not, or no longer, registered)."""
    if not isinstance(triggerID, Trigger):
        raise ValueError(f"invalid trigger ID {triggerID!r}")
    pending = _triggers.get(triggerID.eventType, {}).get(triggerID.phase, [])
    if triggerID not in pending:
        raise ValueError(f"{triggerID!r} is not registered (already run or removed)")
    pending.remove(triggerID)


def run_phase(eventType: str, phase: str) -> list:
    """Run (and forget) the triggers of one phase; returns ``[(trigger, awaitable)]`` of those that returned one.

    A trigger that raises is logged and the others still run. Triggers added
    meanwhile to the same phase run too.
    """
    pending = []
    queue = _triggers.get(eventType, {}).get(phase, [])
    while queue:
        trigger = queue.pop(0)
        try:
            result = trigger.callable(*trigger.args, **trigger.kwargs)
        except Exception:
            log.exception("Error in %r", trigger)
            continue
        if result is not None and hasattr(type(result), "__await__"):
            pending.append((trigger, result))
    return pending


def log_failures(pending: list) -> None:
    """Log the failure of each awaitable ``run_phase`` returned that is done and failed."""
    for trigger, awaitable in pending:
        error = _failure_of(awaitable)
        if error is not None:
            log.error("Error in %r", trigger, exc_info=(type(error), error, error.__traceback__))


def unfired(pending: list) -> list:
    """The triggers whose awaitable has not fired yet."""
    return [trigger for trigger, awaitable in pending if not _done(awaitable)]


def _done(awaitable: Any) -> bool:
    done = getattr(awaitable, "done", None)
    if callable_(done):
        return bool(done())
    called = getattr(awaitable, "called", None)
    return bool(called)


def _failure_of(awaitable: Any) -> Optional[BaseException]:
    if not _done(awaitable):
        return None
    exception = getattr(awaitable, "exception", None)
    try:
        if callable_(exception) and not getattr(awaitable, "cancelled", lambda: False)():
            return exception()
    except Exception:
        return None
    return None


async def wait_for(pending: list) -> None:
    """Wait until every awaitable of ``pending`` has fired (failures are logged, not raised)."""
    import asyncio

    futures = [asyncio.ensure_future(awaitable) for _, awaitable in pending]
    for index, future in enumerate(futures):
        pending[index] = (pending[index][0], future)
    if futures:
        await asyncio.wait(futures)
    log_failures(pending)


async def wait_with(result: Any, pending: list) -> Any:
    """Await ``result`` (a stop's awaitable, or None) and, with it, the triggers' awaitables in ``pending``.

    Returns what ``result`` gives (raising its error) once both are done; the
    triggers' failures are logged.
    """
    import asyncio

    futures = [asyncio.ensure_future(awaitable) for _, awaitable in pending]
    pending[:] = [(trigger, future) for (trigger, _), future in zip(pending, futures)]
    try:
        if result is not None and hasattr(type(result), "__await__"):
            return await result
        return result
    finally:
        if futures:
            await asyncio.wait(futures)
            log_failures(pending)


def log_unfired(pending: list, timeout: float) -> None:
    """Name each trigger of ``pending`` that has not fired after ``timeout`` seconds."""
    for trigger in unfired(pending):
        log.error("%s never fired (waited %g s)", str(trigger)[:1].upper() + str(trigger)[1:], timeout)


async def fire_bounded(eventType: str, timeout: float) -> None:
    """Fire ``eventType`` as the launcher does: the 'before' awaitables waited for at most ``timeout`` s."""
    import asyncio

    pending = run_phase(eventType, "before")
    if pending:
        waiting = asyncio.ensure_future(wait_with(None, pending))
        done, _ = await asyncio.wait({waiting}, timeout=timeout)
        if not done:
            log_unfired(pending, timeout)
            waiting.cancel()
    run_phase(eventType, "during")
    run_phase(eventType, "after")


def fireSystemEvent(eventType: str) -> None:
    """Fire ``eventType`` now: ``before`` triggers, then (once their awaitables have fired) ``during`` and ``after``."""
    pending = run_phase(eventType, "before")

    def rest() -> None:
        run_phase(eventType, "during")
        run_phase(eventType, "after")

    if not pending:
        rest()
        return
    from twistdlite._aio import when_running

    async def wait_then_rest() -> None:
        await wait_for(pending)
        rest()

    when_running(wait_then_rest, f"firing the {eventType!r} event")
