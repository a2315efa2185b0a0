"""Listening ports on the event loop, shared by ``twistdlite.reactor`` and ``twistdlite.internet``.

A port binds its socket synchronously (:meth:`TCPPort.bind`, so a service can
bind in ``privilegedStartService`` with the launching user's rights), then
serves on the loop (:meth:`TCPPort.start`). ``stopListening()`` closes the
listening socket; ``loseAllConnections()`` closes the connections it accepted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Optional

from twistdlite._transport import is_twisted_factory, protocol_factory_for
from twistdlite.address import from_sockaddr
from twistdlite.error import CannotListenError

log = logging.getLogger("twistdlite")


def _factory_name(factory: Any) -> str:
    if is_twisted_factory(factory):
        return type(factory).__name__
    return getattr(factory, "__name__", type(factory).__name__)


class TCPPort:
    """A listening TCP port for a Twisted-style or plain asyncio factory."""

    kind = "TCP"

    def __init__(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> None:
        self.port = port
        self.factory = factory
        self.backlog = backlog
        self.interface = interface
        self.socket: Optional[socket.socket] = None
        self.server: Any = None
        self.connections: set = set()
        self._sessions = 0
        self._factory_started = False

    # -- the connection bookkeeping StreamAdapter calls --------------------
    def next_session(self) -> int:
        """The number of the next accepted connection (for log prefixes)."""
        number = self._sessions
        self._sessions += 1
        return number

    def connection_started(self, adapter: Any) -> None:
        """Remember an accepted connection."""
        self.connections.add(adapter)

    def connection_ended(self, adapter: Any) -> None:
        """Forget a closed connection."""
        self.connections.discard(adapter)

    # -- binding and serving ------------------------------------------------
    def bind(self) -> None:
        """Create, bind and listen on the socket; :class:`CannotListenError` on failure."""
        if self.socket is not None:
            return
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.interface, self.port))
            sock.listen(self.backlog)
        except OSError as exc:
            sock.close()
            raise CannotListenError(self.interface, self.port, exc) from None
        sock.setblocking(False)
        self.socket = sock

    async def start(self) -> None:
        """Serve on the running loop (binding first if needed)."""
        self.bind()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            protocol_factory_for(self.factory, self.kind, self),
            sock=self.socket,
            backlog=self.backlog,
        )
        if is_twisted_factory(self.factory):
            self.factory.doStart()
            self._factory_started = True
        log.info("%s starting on %s", _factory_name(self.factory), self.getHost().port)

    def startListening(self) -> "TCPPort":
        """Bind now and start serving on the loop (as ``reactor.listenTCP`` does)."""
        from twistdlite.reactor import getLoop

        self.bind()
        getLoop().create_task(self.start())
        return self

    def getHost(self) -> Any:
        """The bound address (its ``port`` is the real one when 0 was asked for)."""
        if self.socket is None:
            raise RuntimeError("the port is not bound")
        return from_sockaddr(self.kind, self.socket.getsockname())

    async def stopListening(self) -> None:
        """Stop accepting connections and close the listening socket."""
        server, self.server = self.server, None
        sock, self.socket = self.socket, None
        if sock is not None:
            number = sock.getsockname()[1]
            if server is not None:
                server.close()  # closes the socket too
                log.info("(%s Port %s Closed)", self.kind, number)
            else:
                sock.close()
        if self._factory_started:
            self._factory_started = False
            self.factory.doStop()

    loseConnection = stopListening

    async def loseAllConnections(self, timeout: float = 5.0) -> None:
        """Close every accepted connection and wait (bounded) until they are gone."""
        adapters = list(self.connections)
        if not adapters:
            return
        for adapter in adapters:
            transport = getattr(adapter, "transport", None)
            if transport is not None:
                transport.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for adapter in list(self.connections):
            transport = getattr(adapter, "transport", None)
            if transport is not None:
                transport.abort()
