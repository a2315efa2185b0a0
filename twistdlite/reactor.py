"""The reactor: Twisted's ``reactor`` calls over the running asyncio event loop.

``from twistdlite import reactor`` gives this module; ``reactor.callLater``,
``reactor.callWhenRunning``, ``reactor.stop`` and ``reactor.running`` work as in
Twisted. Calls made before the launcher has created the loop (for example at
``.tac`` load time) are queued and scheduled when the loop is installed.
"""

from __future__ import annotations

import logging
import time
from types import MappingProxyType
from typing import Any, Callable, Optional

from twistdlite import _loopstate
from twistdlite._loopstate import call_logged as _call_logged
from twistdlite._loopstate import call_when_running as callWhenRunning
from twistdlite._loopstate import current_loop as _current_loop
from twistdlite._loopstate import get_loop as getLoop
from twistdlite._loopstate import install, uninstall
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
    "listenTCP",
    "connectTCP",
    "listenSSL",
    "connectSSL",
    "listenUNIX",
    "connectUNIX",
    "listenUDP",
    "listenMulticast",
    "listenUNIXDatagram",
    "connectUNIXDatagram",
    "callInThread",
    "getThreadPool",
    "suggestThreadPoolSize",
    "addSystemEventTrigger",
    "removeSystemEventTrigger",
    "fireSystemEvent",
    "spawnProcess",
    "run",
    "launcher_runs_loop",
]

log = logging.getLogger("twistdlite")

#: The reactors ``-r`` accepts: name -> one-line description.
REACTORS = {
    "asyncio": "asyncio's default event loop (the standard library)",
    "uvloop": "uvloop, a fast event loop on libuv (pip install 'twistdlite[uvloop]')",
}

#: The calls waiting for a loop (kept in _loopstate, the layer below; the same lists).
_pending_calls: list = _loopstate.pending_calls
_when_running: list = _loopstate.when_running
_thread_pool: Any = None
_launcher = False  # True once the launcher owns the loop: reactor.run() in a .tac is then a no-op


class AlreadyCalled(ValueError):
    """The delayed call has already run."""


class AlreadyCancelled(ValueError):
    """The delayed call has already been cancelled."""


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


def callFromThread(func: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """Run ``func(*args, **kw)`` in the loop's thread, from any thread."""
    getLoop().call_soon_threadsafe(_call_logged, func, args, kw)


def getThreadPool() -> Any:
    """The reactor's thread pool (a :class:`twistdlite.threadpool.ThreadPool`, 10 threads at most by default).

    Started on first use; stopped during shutdown (the calls still running are
    not waited for: a daemon's stop is bounded by ``--shutdown-timeout``).
    """
    global _thread_pool
    if _thread_pool is None:
        from twistdlite._events import addSystemEventTrigger as add_trigger
        from twistdlite.threadpool import ThreadPool

        _thread_pool = ThreadPool(0, 10, "reactor")
        _thread_pool.start()
        add_trigger("during", "shutdown", _stop_thread_pool)
    return _thread_pool


def _stop_thread_pool() -> None:
    global _thread_pool
    pool, _thread_pool = _thread_pool, None
    if pool is not None:
        pool.stop()


def suggestThreadPoolSize(size: int) -> None:
    """Let the reactor's thread pool grow to ``size`` threads."""
    getThreadPool().adjustPoolsize(maxthreads=size)


def callInThread(func: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """Run ``func(*args, **kw)`` in the reactor's thread pool (an exception it raises is logged)."""
    getThreadPool().callInThread(func, *args, **kw)


def addSystemEventTrigger(phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Call ``callable(*args, **kw)`` in ``phase`` ('before', 'during', 'after') of ``eventType`` ('startup', 'shutdown').

    A 'before' trigger returning a Deferred (or any awaitable) is waited for
    before the next phase: under the launcher, 'before shutdown' triggers are
    waited for with ``stopService``, within ``--shutdown-timeout``. Returns an
    ID for :func:`removeSystemEventTrigger`.
    """
    from twistdlite import _events

    return _events.addSystemEventTrigger(phase, eventType, callable, *args, **kw)


def removeSystemEventTrigger(triggerID: Any) -> None:
    """Remove a trigger :func:`addSystemEventTrigger` added (``ValueError`` if it has run or was removed)."""
    from twistdlite import _events

    _events.removeSystemEventTrigger(triggerID)


def fireSystemEvent(eventType: str) -> None:
    """Run the triggers of ``eventType`` now (the launcher fires 'startup' and 'shutdown' itself)."""
    from twistdlite import _events

    _events.fireSystemEvent(eventType)


_NO_ENVIRONMENT: Any = MappingProxyType({})  # spawnProcess's env when not given: an empty environment


def spawnProcess(processProtocol: Any, executable: Any, args: Any = (), env: Optional[Any] = _NO_ENVIRONMENT,
                 path: Any = None, uid: Optional[int] = None, gid: Optional[int] = None, usePTY: bool = False,
                 childFDs: Optional[dict] = None) -> Any:
    """Run ``executable`` with ``args`` (``args[0]`` is the program's name) connected to ``processProtocol``.

    Returns the process transport (``pid``, ``write``, ``closeStdin``,
    ``signalProcess``, ``loseConnection``). ``env`` is the whole environment
    (not given: an empty one; None: this process's ``os.environ``, as Twisted
    documents for POSIX); ``path`` the working directory; ``uid``/``gid`` the
    user to run as (with that user's groups, as Twisted's). A program that cannot be started
    (missing, not executable) is reported to ``processEnded`` as a
    ``ProcessTerminated`` failure, never raised into the caller's service.
    ``usePTY`` is not supported (``NotImplementedError``). See ``twistdlite.process``.
    """
    from twistdlite.process import spawn

    return spawn(processProtocol, executable, args, None if env is None else dict(env), path, uid, gid, usePTY,
                 childFDs)


def launcher_runs_loop() -> None:
    """Say that the launcher owns the loop (used by the runner): ``reactor.run()`` becomes a logged no-op."""
    global _launcher
    _launcher = True


def run(installSignalHandlers: bool = True) -> None:
    """Under twistdlite the launcher runs the reactor: a ``.tac`` calling ``reactor.run()`` gets a warning and nothing else.

    Outside the launcher (a plain script), run the loop until ``reactor.stop()``,
    firing the 'startup' and 'shutdown' system events.
    """
    if _launcher:
        log.warning("reactor.run() ignored: twistdlite runs the reactor itself "
                    "(remove the call from the .tac, as twistd would have you do)")
        return
    loop = _current_loop()
    if loop is not None and loop.is_running():
        from twistdlite.error import ReactorAlreadyRunning

        raise ReactorAlreadyRunning("the reactor is already running")
    _run_standalone()


def _run_standalone() -> None:
    import asyncio

    from twistdlite import _events

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stopping = asyncio.Event()

    def request_stop() -> None:
        loop.call_soon_threadsafe(stopping.set)

    async def main() -> None:
        _events.fireSystemEvent("startup")
        await stopping.wait()
        await _events.wait_for(_events.run_phase("shutdown", "before"))
        _events.run_phase("shutdown", "during")
        _events.run_phase("shutdown", "after")

    install(loop, stop_hook=request_stop)
    try:
        loop.run_until_complete(main())
    finally:
        uninstall()
        asyncio.set_event_loop(None)
        loop.close()


def seconds() -> float:
    """The loop's clock, in seconds (monotonic)."""
    return _now()


def stop() -> None:
    """Stop the application gracefully, as SIGTERM would."""
    hook = _loopstate.stop_hook()
    if hook is not None:
        hook()
        return
    loop = _current_loop()
    if loop is None or not loop.is_running():
        raise ReactorNotRunning("Can't stop reactor that isn't running.")
    loop.stop()


# -- listening and connecting (the ports and connectors are shared with twistdlite.internet) ----
#
# Each listenX binds at once (raising twistdlite.error.CannotListenError on failure) and
# serves once the loop runs; it returns the port: stopListening() (awaitable), getHost().
# Each connectX starts connecting and returns the connector: disconnect(), getDestination().


def listenTCP(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
    """Serve ``factory`` on TCP ``port`` (0 picks a free one; ``getHost().port`` tells which)."""
    from twistdlite._ports import TCPPort

    return TCPPort(port, factory, backlog, interface).startListening()


def connectTCP(host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None) -> Any:
    """Connect ``factory`` (a ClientFactory) to ``host:port``; returns the connector."""
    from twistdlite._connectors import TCPConnector

    connector = TCPConnector(host, port, factory, timeout, bindAddress)
    connector.connect()
    return connector


def listenSSL(port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = "") -> Any:
    """Serve ``factory`` over TLS on ``port``; ``contextFactory`` is an ``ssl.SSLContext`` or has getContext()."""
    from twistdlite._ports import SSLPort

    return SSLPort(port, factory, contextFactory, backlog, interface).startListening()


def connectSSL(host: str, port: int, factory: Any, contextFactory: Any, timeout: float = 30,
               bindAddress: Any = None) -> Any:
    """Connect ``factory`` to ``host:port`` over TLS; returns the connector."""
    from twistdlite._connectors import SSLConnector

    connector = SSLConnector(host, port, factory, contextFactory, timeout, bindAddress)
    connector.connect()
    return connector


def listenUNIX(address: Any, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: bool = False) -> Any:
    """Serve ``factory`` on the UNIX socket ``address`` (a stale socket file is replaced)."""
    from twistdlite._ports import UNIXPort

    return UNIXPort(address, factory, backlog, mode, wantPID).startListening()


def connectUNIX(address: Any, factory: Any, timeout: float = 30, checkPID: bool = False) -> Any:
    """Connect ``factory`` to the UNIX socket ``address``; returns the connector."""
    from twistdlite._connectors import UNIXConnector

    connector = UNIXConnector(address, factory, timeout, checkPID)
    connector.connect()
    return connector


def listenUDP(port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> Any:
    """Serve the datagram ``protocol`` on UDP ``port``; returns the port."""
    from twistdlite._datagram import UDPPort

    return UDPPort(port, protocol, interface, maxPacketSize).startListening()


def listenMulticast(port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192,
                    listenMultiple: bool = False) -> Any:
    """Serve ``protocol`` on a multicast-capable UDP ``port`` (it joins groups via its transport)."""
    from twistdlite._datagram import MulticastPort

    return MulticastPort(port, protocol, interface, maxPacketSize, listenMultiple).startListening()


def listenUNIXDatagram(address: Any, protocol: Any, maxPacketSize: int = 8192, mode: int = 0o666) -> Any:
    """Serve the datagram ``protocol`` on the UNIX datagram socket ``address``."""
    from twistdlite._datagram import UNIXDatagramPort

    return UNIXDatagramPort(address, protocol, maxPacketSize, mode).startListening()


def connectUNIXDatagram(address: Any, protocol: Any, maxPacketSize: int = 8192, mode: int = 0o666,
                        bindAddress: Any = None) -> Any:
    """Connect the ``ConnectedDatagramProtocol`` to the UNIX datagram socket ``address``.

    Give ``bindAddress`` (a path) to receive replies. A failure to connect is
    reported to ``protocol.connectionFailed``.
    """
    from twistdlite._datagram import ConnectedUNIXDatagramPort

    return ConnectedUNIXDatagramPort(address, protocol, maxPacketSize, mode, bindAddress).startListening()


def __getattr__(name: str) -> Any:
    if name == "running":
        loop = _current_loop()
        return loop is not None and loop.is_running()
    # Where the installed loop and the stop hook were kept before they moved down to _loopstate
    # (read by test helpers that save and restore the reactor's state).
    if name == "_loop":
        return _loopstate.installed
    if name == "_stop_hook":
        return _loopstate.stop_hook()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
