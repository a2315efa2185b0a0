"""Network and timer services, mirroring ``twisted.application.internet``.

Each server service takes the same arguments as the matching
``reactor.listenX`` call and is built on the same port code
(``twistdlite._ports``, ``twistdlite._datagram``): it binds in
``privilegedStartService`` (so root can bind a low port before privileges are
dropped), serves once started, and ``getHost()`` tells the real bound address
(``getHost().port`` when port 0 was asked for). Each client service takes the
arguments of the matching ``reactor.connectX`` call and connects when started.

:class:`ClientService` keeps a connection up through an endpoint, reconnecting
with capped, jittered exponential back-off (:func:`backoffPolicy`).

Every service pickles without its runtime state (sockets, transports, timers),
so a saved application comes back stopped and starts again from scratch.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from twistdlite._aio import Done
from twistdlite.service import Service, _as_stop_deferred, _stops_plainly, maybe_await

__all__ = [
    "TCPServer",
    "TCPClient",
    "UNIXServer",
    "UNIXClient",
    "SSLServer",
    "SSLClient",
    "UDPServer",
    "UNIXDatagramServer",
    "UNIXDatagramClient",
    "MulticastServer",
    "TimerService",
    "ClientService",
    "StreamServerEndpointService",
    "AdoptedStreamServer",
    "backoffPolicy",
]

log = logging.getLogger("twistdlite")


class _PortService(Service):
    """A service that owns one port object (see ``twistdlite._ports`` / ``twistdlite._datagram``)."""

    _port: Any = None

    def _make_port(self) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = Service.__getstate__(self)
        state.pop("_port", None)
        return state

    def privilegedStartService(self) -> None:
        """Bind the socket with the launching user's rights."""
        if self._port is None:
            self._port = self._make_port()
        self._port.bind()

    def _releasePrivileged(self) -> None:
        """After a failed start: close the bound socket and remove its UNIX socket file (no loop needed)."""
        port, self._port = self._port, None
        if port is not None:
            port.stopListening()

    def startService(self) -> Any:
        """Start serving; returns an awaitable the runner awaits.

        If the start fails, the socket is closed again (and a UNIX socket file removed).
        """
        Service.startService(self)
        if self._port is None:
            self._port = self._make_port()
        return self._start_port(self._port)

    async def _start_port(self, port: Any) -> None:
        try:
            await port.start()
        except BaseException:
            if self._port is port:
                self._releasePrivileged()
            raise

    @_stops_plainly
    def stopService(self) -> Any:
        """Stop listening and close this service's connections; returns a Deferred (also awaitable)."""
        return _as_stop_deferred(self._stopPlainly)

    def _stopPlainly(self) -> Any:
        """:meth:`stopService` without the Deferred: None, or a coroutine (see service.stop_service)."""
        Service.stopService(self)
        port, self._port = self._port, None
        if port is None:
            return None
        return self._stop_port(port)

    @staticmethod
    async def _stop_port(port: Any) -> None:
        stop = getattr(port, "_stopListening", None)  # twistdlite's ports: the same, without a Deferred
        await maybe_await(stop() if stop is not None else port.stopListening())
        await port.loseAllConnections()

    def getHost(self) -> Any:
        """The bound address (``getHost().port`` is the real port when 0 was asked for)."""
        if self._port is None:
            raise RuntimeError(f"{self!r} is not listening")
        return self._port.getHost()

    def _getPort(self) -> Any:
        """The port object (Twisted's private accessor, kept for porting)."""
        return self._port


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


class SSLServer(_PortService):
    """Serve a factory over TLS: ``SSLServer(port, factory, contextFactory, backlog=50, interface='')``.

    ``contextFactory`` is an ``ssl.SSLContext`` or an object with ``getContext()``
    such as ``twistdlite.ssl.DefaultOpenSSLContextFactory`` (which, unlike a bare
    SSLContext, can be saved in a ``.tap``).
    """

    def __init__(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                 interface: str = "") -> None:
        self.port = port
        self.factory = factory
        self.contextFactory = contextFactory
        self.backlog = backlog
        self.interface = interface

    def __getstate__(self) -> dict:
        _refuse_bare_context(self.contextFactory, self)
        return _PortService.__getstate__(self)

    def _make_port(self) -> Any:
        from twistdlite._ports import SSLPort

        return SSLPort(self.port, self.factory, self.contextFactory, self.backlog, self.interface)


def _refuse_bare_context(contextFactory: Any, owner: Any) -> None:
    import ssl

    if isinstance(contextFactory, ssl.SSLContext):
        raise TypeError(f"{type(owner).__name__} holds an ssl.SSLContext, which cannot be saved; "
                        "use twistdlite.ssl.DefaultOpenSSLContextFactory(keyFile, certFile) instead "
                        "(or run with -o)")


class UNIXServer(_PortService):
    """Serve a factory on a UNIX socket: ``UNIXServer(address, factory, backlog=50, mode=0o666, wantPID=False)``.

    A stale socket file at ``address`` is replaced; a live one refuses the
    start. ``mode`` is applied to the file, which is removed on stop.
    """

    def __init__(self, address: Any, factory: Any, backlog: int = 50, mode: int = 0o666,
                 wantPID: bool = False) -> None:
        self.address = address
        self.factory = factory
        self.backlog = backlog
        self.mode = mode
        self.wantPID = wantPID

    def _make_port(self) -> Any:
        from twistdlite._ports import UNIXPort

        return UNIXPort(self.address, self.factory, self.backlog, self.mode, self.wantPID)


class UDPServer(_PortService):
    """Serve a datagram protocol on UDP: ``UDPServer(port, protocol, interface='', maxPacketSize=8192)``."""

    def __init__(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> None:
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize

    def _make_port(self) -> Any:
        from twistdlite._datagram import UDPPort

        return UDPPort(self.port, self.protocol, self.interface, self.maxPacketSize)


class MulticastServer(_PortService):
    """Serve a multicast datagram protocol.

    ``MulticastServer(port, protocol, interface='', maxPacketSize=8192, listenMultiple=False)``.

    The protocol joins groups through its transport (``self.transport.joinGroup(addr)``)
    in ``startProtocol``.
    """

    def __init__(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192,
                 listenMultiple: bool = False) -> None:
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.listenMultiple = listenMultiple

    def _make_port(self) -> Any:
        from twistdlite._datagram import MulticastPort

        return MulticastPort(self.port, self.protocol, self.interface, self.maxPacketSize,
                             self.listenMultiple)


class UNIXDatagramServer(_PortService):
    """Serve a datagram protocol on a UNIX datagram socket.

    ``UNIXDatagramServer(address, protocol, maxPacketSize=8192, mode=0o666)``.
    """

    def __init__(self, address: Any, protocol: Any, maxPacketSize: int = 8192, mode: int = 0o666) -> None:
        self.address = address
        self.protocol = protocol
        self.maxPacketSize = maxPacketSize
        self.mode = mode

    def _make_port(self) -> Any:
        from twistdlite._datagram import UNIXDatagramPort

        return UNIXDatagramPort(self.address, self.protocol, self.maxPacketSize, self.mode)


class UNIXDatagramClient(_PortService):
    """A connected UNIX datagram socket.

    ``UNIXDatagramClient(address, protocol, maxPacketSize=8192, mode=0o666, bindAddress=None)``.

    Connects when started (a refused connection fails the start with a clear
    error); give ``bindAddress`` (a path) to receive replies.
    """

    def __init__(self, address: Any, protocol: Any, maxPacketSize: int = 8192, mode: int = 0o666,
                 bindAddress: Any = None) -> None:
        self.address = address
        self.protocol = protocol
        self.maxPacketSize = maxPacketSize
        self.mode = mode
        self.bindAddress = bindAddress

    def privilegedStartService(self) -> None:
        """Clients connect in ``startService``, not before."""

    def _make_port(self) -> Any:
        from twistdlite._datagram import ConnectedUNIXDatagramPort

        return ConnectedUNIXDatagramPort(self.address, self.protocol, self.maxPacketSize, self.mode,
                                         self.bindAddress)


class StreamServerEndpointService(_PortService):
    """Serve a factory on a server endpoint: ``StreamServerEndpointService(endpoint, factory)``.

    ``endpoint`` is one of ``twistdlite.endpoints``' server endpoints (or what
    ``endpoints.serverFromString`` returns); like the other servers, it binds in
    ``privilegedStartService``.
    """

    def __init__(self, endpoint: Any, factory: Any) -> None:
        if not hasattr(endpoint, "_make_port"):
            raise TypeError(f"{type(endpoint).__name__} is not a twistdlite server endpoint")
        self.endpoint = endpoint
        self.factory = factory

    def _make_port(self) -> Any:
        return self.endpoint._make_port(self.factory)


class AdoptedStreamServer(_PortService):
    """Serve a factory on an inherited listening socket: ``AdoptedStreamServer(fileno, addressFamily, factory)``.

    What ``strports.service('systemd:domain=INET:index=0', factory)`` returns
    (also importable from ``twistdlite.strports``). The socket (systemd socket
    activation passes it as fd 3 onwards) is duplicated when the service binds,
    so the service can stop and start again.
    """

    def __init__(self, fileno: int, addressFamily: int, factory: Any) -> None:
        self.fileno = fileno
        self.addressFamily = addressFamily
        self.factory = factory

    def _make_port(self) -> Any:
        from twistdlite._ports import AdoptedPort

        return AdoptedPort(self.fileno, self.addressFamily, self.factory)


class _ClientService(Service):
    """A service that connects one connector when started and disconnects it when stopped.

    As in Twisted, it does not reconnect by itself: give it a
    ``ReconnectingClientFactory``, or use :class:`ClientService`. On stop, a
    factory with ``stopTrying()`` is told to stop trying first.
    """

    _connection: Any = None

    def _make_connector(self) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = Service.__getstate__(self)
        state.pop("_connection", None)
        return state

    def startService(self) -> None:
        """Start connecting."""
        Service.startService(self)
        self._connection = self._make_connector()
        self._connection.connect()

    def stopService(self) -> Any:
        """Stop connecting or disconnect; returns a Deferred that fires (bounded) once closed."""
        from twistdlite.defer import ensureDeferred

        Service.stopService(self)
        connector, self._connection = self._connection, None
        if connector is None:
            return Done()
        stop_trying = getattr(self.factory, "stopTrying", None)
        if stop_trying is not None:
            stop_trying()
        connector.disconnect()
        if connector.state == "disconnected":
            return Done()
        return ensureDeferred(_wait_disconnected(connector))

    def _getConnection(self) -> Any:
        """The connector (Twisted's private accessor, kept for porting)."""
        return self._connection


async def _wait_disconnected(connector: Any, timeout: float = 5.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while connector.state != "disconnected" and loop.time() < deadline:
        await asyncio.sleep(0.005)
    adapter = getattr(connector, "_adapter", None)
    if connector.state != "disconnected" and adapter is not None:
        adapter.transport.abort()


class TCPClient(_ClientService):
    """Connect a factory over TCP when started: ``TCPClient(host, port, factory, timeout=30, bindAddress=None)``."""

    def __init__(self, host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None) -> None:
        self.host = host
        self.port = port
        self.factory = factory
        self.timeout = timeout
        self.bindAddress = bindAddress

    def _make_connector(self) -> Any:
        from twistdlite._connectors import TCPConnector

        return TCPConnector(self.host, self.port, self.factory, self.timeout, self.bindAddress)


class SSLClient(_ClientService):
    """Connect a factory over TLS when started.

    ``SSLClient(host, port, factory, contextFactory, timeout=30, bindAddress=None)``.
    """

    def __init__(self, host: str, port: int, factory: Any, contextFactory: Any, timeout: float = 30,
                 bindAddress: Any = None) -> None:
        self.host = host
        self.port = port
        self.factory = factory
        self.contextFactory = contextFactory
        self.timeout = timeout
        self.bindAddress = bindAddress

    def __getstate__(self) -> dict:
        _refuse_bare_context(self.contextFactory, self)
        return _ClientService.__getstate__(self)

    def privilegedStartService(self) -> None:
        """Build the TLS context now, while the files it reads (a client key, a CA file) are in reach.

        A context factory keeps its context once built; one restored from a
        ``.tap`` has only file names, and the connection is made after the
        change of user.
        """
        from twistdlite.ssl import client_context

        client_context(self.contextFactory)
        _ClientService.privilegedStartService(self)

    def _make_connector(self) -> Any:
        from twistdlite._connectors import SSLConnector

        return SSLConnector(self.host, self.port, self.factory, self.contextFactory, self.timeout,
                            self.bindAddress)


class UNIXClient(_ClientService):
    """Connect a factory to a UNIX socket when started: ``UNIXClient(address, factory, timeout=30, checkPID=False)``."""

    def __init__(self, address: Any, factory: Any, timeout: float = 30, checkPID: bool = False) -> None:
        self.address = address
        self.factory = factory
        self.timeout = timeout
        self.checkPID = checkPID

    def _make_connector(self) -> Any:
        from twistdlite._connectors import UNIXConnector

        return UNIXConnector(self.address, self.factory, self.timeout, self.checkPID)


class TimerService(Service):
    """Call ``callable(*args, **kwargs)`` every ``step`` seconds, starting at once.

    An exception in the callable (or a failure of the Deferred or awaitable it
    returns) is logged and the timer goes on. Set ``clock`` (an object with
    ``seconds()`` and ``callLater()``, such as ``twistdlite.task.Clock``) to
    drive it from a fake clock in tests. ``stopService`` returns a Deferred
    fired once a call in progress has completed.
    """

    clock: Any = None
    _loop: Any = None
    _finished: Any = None

    def __init__(self, step: float, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.step = step
        self.call = (callable, args, kwargs)

    def __getstate__(self) -> dict:
        state = Service.__getstate__(self)
        state.pop("_loop", None)
        state.pop("_finished", None)
        return state

    def startService(self) -> None:
        """Start calling (the first call happens now)."""
        from twistdlite.task import LoopingCall

        Service.startService(self)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._finished = self._loop.start(self.step, now=True)

    def _tick(self) -> Any:
        func, args, kwargs = self.call
        try:
            result = func(*args, **kwargs)
        except Exception:
            log.exception("Unhandled error in timer call %r", func)
            return None
        if result is None or not hasattr(type(result), "__await__"):
            return None
        from twistdlite.defer import ensureDeferred

        def failed(failure: Any) -> None:
            log.error("Unhandled error in timer call %r", func,
                      exc_info=(failure.type, failure.value, failure.tb))

        return ensureDeferred(result).addErrback(failed)

    def stopService(self) -> Any:
        """Stop calling; returns a Deferred fired (with None) once a call in progress has completed."""
        from twistdlite.defer import succeed

        Service.stopService(self)
        loop, self._loop = self._loop, None
        finished, self._finished = self._finished, None
        if loop is None or not loop.running or finished is None:
            return succeed(None)
        loop.stop()
        return finished.addCallback(lambda _: None)


def __getattr__(name: str) -> Any:
    """:class:`ClientService` and :func:`backoffPolicy`, imported when first asked for (most
    applications never use them, and every start would pay for the module)."""
    if name in ("ClientService", "backoffPolicy"):
        from twistdlite import _clientservice

        value = getattr(_clientservice, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
