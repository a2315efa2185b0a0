"""The reactor's loop, as the lowest layer: which loop is installed, and the calls waiting for one.

``twistdlite.reactor`` builds Twisted's reactor calls on this module, and the
modules below the reactor (the ports, connectors and helpers of ``_aio``) use
it directly, so their imports point one way: down to here, never back up to
``twistdlite.reactor``. Calls made before a loop exists (at ``.tac`` load
time) wait in :data:`pending_calls` and :data:`when_running` until
:func:`install`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Optional

from twistdlite.error import ReactorNotRunning

__all__ = ["current_loop", "get_loop", "call_when_running", "call_logged", "install", "uninstall",
           "stop_hook", "pending_calls", "when_running"]

log = logging.getLogger("twistdlite")

#: The loop the launcher installed (None until then, and in tests that run their own).
installed: Any = None
#: Delayed calls made before there was a loop (objects with a ``_schedule()`` method).
pending_calls: list = []
#: ``(func, args, kw)`` to call once a loop is installed.
when_running: list = []
_stop_hook: Optional[Callable[[], None]] = None


def current_loop() -> Any:
    """The installed loop, else the running one (a test's ``asyncio.run``), else None."""
    if installed is not None:
        return installed
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:  # no loop can be running: don't import asyncio just to ask
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def get_loop() -> Any:
    """The event loop twistdlite runs on (the installed one, else the running one); ReactorNotRunning if none."""
    loop = current_loop()
    if loop is None:
        raise ReactorNotRunning("no event loop is installed or running")
    return loop


def call_logged(func: Callable[..., Any], args: tuple, kw: dict) -> None:
    """Call ``func(*args, **kw)``, logging what it raises."""
    try:
        func(*args, **kw)
    except Exception:
        log.exception("Unhandled error in %r", func)


def call_when_running(func: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """Run ``func(*args, **kw)`` once the loop runs (soon, if it already does)."""
    loop = current_loop()
    if loop is not None:  # installed but not yet running: call_soon waits for it to run
        loop.call_soon(call_logged, func, args, kw)
    else:
        when_running.append((func, args, kw))


def stop_hook() -> Optional[Callable[[], None]]:
    """What ``reactor.stop()`` calls under the launcher (None: stop the loop itself)."""
    return _stop_hook


def install(loop: Any, stop_hook: Optional[Callable[[], None]] = None) -> None:
    """Make ``loop`` the reactor's loop; schedule queued calls (used by the runner)."""
    global installed, _stop_hook
    installed = loop
    _stop_hook = stop_hook
    pending, pending_calls[:] = list(pending_calls), []
    for call in pending:
        call._schedule()
    running, when_running[:] = list(when_running), []
    for func, args, kw in running:
        loop.call_soon(call_logged, func, args, kw)


def uninstall() -> None:
    """Forget the installed loop (used by the runner and by tests)."""
    global installed, _stop_hook
    installed = None
    _stop_hook = None
