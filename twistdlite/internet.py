"""Network and timer services, mirroring ``twisted.application.internet``.

Each server service takes the same arguments as the matching
``reactor.listenX`` call, binds in ``privilegedStartService`` (so root can bind
a low port before privileges are dropped) and serves once started.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twistdlite.service import Service

__all__ = ["TCPServer", "TimerService"]


class _PortService(Service):
    """A service that owns one listening port object (see ``twistdlite._ports``)."""

    _port: Any = None

    def _make_port(self) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = Service.__getstate__(self)
        state.pop("_port", None)
        return state

    def privilegedStartService(self) -> None:
        """Bind the listening socket with the launching user's rights."""
        if self._port is None:
            self._port = self._make_port()
        self._port.bind()

    def startService(self) -> Any:
        """Start serving; returns an awaitable the runner awaits."""
        Service.startService(self)
        if self._port is None:
            self._port = self._make_port()
        return self._port.start()

    def stopService(self) -> Any:
        """Stop listening and close this service's connections; returns an awaitable."""
        Service.stopService(self)
        port, self._port = self._port, None
        if port is None:
            return None
        return self._stop_port(port)

    @staticmethod
    async def _stop_port(port: Any) -> None:
        await port.stopListening()
        await port.loseAllConnections()

    def getHost(self) -> Any:
        """The bound address (``getHost().port`` is the real port when 0 was asked for)."""
        if self._port is None:
            raise RuntimeError(f"{self!r} is not listening")
        return self._port.getHost()


class TCPServer(_PortService):
    """Serve a factory on a TCP port: ``TCPServer(port, factory, backlog=50, interface='')``."""

    def __init__(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> None:
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.interface = interface

    def _make_port(self) -> Any:
        from twistdlite._ports import TCPPort

        return TCPPort(self.port, self.factory, self.backlog, self.interface)


class TimerService(Service):
    """Call ``callable(*args, **kwargs)`` every ``step`` seconds, starting at once.

    An exception in the callable is logged and the timer goes on. Set
    ``clock`` (an object with ``seconds()`` and ``callLater()``, such as
    ``twistdlite.task.Clock``) to drive it from a fake clock in tests.
    """

    clock: Any = None
    _loop: Any = None

    def __init__(self, step: float, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.step = step
        self.call = (callable, args, kwargs)

    def __getstate__(self) -> dict:
        state = Service.__getstate__(self)
        state.pop("_loop", None)
        return state

    def startService(self) -> None:
        """Start calling (the first call happens now)."""
        from twistdlite.task import LoopingCall

        Service.startService(self)
        func, args, kwargs = self.call
        self._loop = LoopingCall(func, *args, **kwargs)
        self._loop.clock = self.clock
        self._loop.start(self.step, now=True)

    def stopService(self) -> Optional[Any]:
        """Stop calling; returns the awaitable of a call still in progress, if any."""
        Service.stopService(self)
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            return loop.stop()
        return None
