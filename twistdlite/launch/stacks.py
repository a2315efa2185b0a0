"""Where the code is: stack dumps (SIGUSR2) and the service an unfinished start or stop waits on.

:func:`dump_stacks` formats the stacks of every thread and every asyncio
task. :func:`service_in_frame` and :func:`service_in_task` name the service
whose ``startService``/``stopService`` a hung start or stop is stuck in, so the
log can say which one hung. Both only read public structure (frames,
coroutines, the service tree); they never change anything.
"""

from __future__ import annotations

import io
import sys
import threading
import traceback
from types import FrameType
from typing import Any, Optional

#: The MultiService helpers that await one child at a time.
_CHILD_LOOPS = ("_start_rest", "_stop_rest")


def dump_stacks(loop: Any = None) -> str:
    """The stacks of all threads and of all tasks on ``loop`` (the running loop if None)."""
    out = io.StringIO()
    frames = sys._current_frames()
    for thread in threading.enumerate():
        kind = ", daemon" if thread.daemon else ""
        out.write(f"Thread {thread.name} (ident {thread.ident}{kind}), most recent call last:\n")
        frame = frames.get(thread.ident) if thread.ident is not None else None
        if frame is not None:
            out.write("".join(traceback.format_stack(frame)))
    import asyncio

    try:
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:
        tasks = set()
    out.write(f"{len(tasks)} asyncio task(s):\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        task.print_stack(file=out)
    return out.getvalue()


def is_service(obj: Any) -> bool:
    """True for an object shaped like an IService."""
    return all(callable(getattr(obj, name, None)) for name in ("startService", "stopService"))


def service_in_frame(frame: Optional[FrameType]) -> Optional[Any]:
    """The innermost service whose method is running in ``frame`` or its callers."""
    while frame is not None:
        found = _service_of(frame)
        if found is not None:
            return found
        frame = frame.f_back
    return None


def service_in_task(task: Any) -> Optional[Any]:
    """The innermost service whose coroutine ``task`` (a task or coroutine) is awaiting."""
    found = None
    awaited = task
    for _ in range(1000):  # a chain of awaits is never this long; a cycle must not hang us
        coro = awaited.get_coro() if hasattr(awaited, "get_coro") else awaited
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        found = _service_of(frame) or found
        awaited = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if awaited is None:
            break
    return found


def service_in_tasks(task: Any) -> Optional[Any]:
    """The service ``task`` is waiting on, else one any other pending task is waiting on.

    A stop or start returned as a Deferred (``ensureDeferred`` of a coroutine)
    runs in a task of its own, which the awaiting task's chain does not reach.
    """
    found = service_in_task(task)
    if found is not None:
        return found
    import asyncio

    for other in asyncio.all_tasks():
        if other is not task and not other.done():
            found = service_in_task(other)
            if found is not None:
                return found
    return None


def _service_of(frame: FrameType) -> Optional[Any]:
    owner = frame.f_locals.get("self")
    if not is_service(owner):
        return None
    if frame.f_code.co_name in _CHILD_LOOPS:
        child = _child_being_awaited(frame.f_locals)
        if child is not None:
            return child
    return owner


def _child_being_awaited(local: dict) -> Optional[Any]:
    """In a MultiService's start/stop loop, the child it is waiting on."""
    children = local.get("children")
    if not isinstance(children, list):
        return None
    if "child" in local and is_service(local["child"]):
        return local["child"]
    for name in ("started", "index"):
        position = local.get(name)
        if isinstance(position, int) and 0 <= position < len(children):
            return children[position]
    return None


def describe(service: Any) -> str:
    """A service as the log names it: its repr and its place in the tree."""
    names = []
    node = service
    while node is not None and len(names) < 100:
        names.append(getattr(node, "name", None) or type(node).__name__)
        node = getattr(node, "parent", None)
    path = "/".join(reversed(names))
    return f"{service!r} (at {path})" if len(names) > 1 else repr(service)
