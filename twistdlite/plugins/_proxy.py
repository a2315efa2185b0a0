"""The ``portforward`` plugin's forwarder, with the names of Twisted's ``twisted.protocols.portforward``.

A :class:`ProxyServer` is the connection a client made to us. It stops reading
from the client and connects a :class:`ProxyClient` to the destination; what
the client sent meanwhile is kept (up to :data:`PENDING_LIMIT` bytes, reading
from the client stays paused beyond that) and sent on first once the
destination answers. From then on each side writes what it receives to the other and is
registered as the other's (streaming) producer: when one side's send buffer
fills, reading from the other side pauses until it drains, so a slow reader on
either end bounds the memory used. When either connection closes, the other is
closed too, once what was written to it has been sent.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from twistdlite.protocol import ClientFactory, Protocol, ServerFactory

__all__ = ["Proxy", "ProxyClient", "ProxyClientFactory", "ProxyServer", "ProxyFactory"]

log = logging.getLogger("twistdlite.portforward")

#: What a :class:`ProxyServer` keeps of what its client sent before the destination answered
#: (bytes): reading from the client is paused while this much is waiting.
PENDING_LIMIT = 64 * 1024


class Proxy(Protocol):
    """One side of a forwarded connection: what it receives goes to its :attr:`peer`."""

    peer: Optional["Proxy"] = None

    def setPeer(self, peer: "Proxy") -> None:
        """Join this side to ``peer``."""
        self.peer = peer

    def dataReceived(self, data: bytes) -> None:
        """Forward ``data`` to the other side."""
        if self.peer is not None:
            self.peer.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        """Close the other side too (after what was written to it is sent)."""
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer = None
            peer.transport.loseConnection()


class ProxyClient(Proxy):
    """The connection to the destination."""

    def connectionMade(self) -> None:
        """Join the client's connection, with back-pressure both ways, and let it flow."""
        server = self.factory.server
        if not server.connected or server.transport.disconnecting:
            self.transport.loseConnection()  # the client left while we were connecting
            return
        self.setPeer(server)
        server.setPeer(self)
        server.flushPending()
        # Each transport pauses the other's reading while its own send buffer is full.
        self.transport.registerProducer(server.transport, True)
        server.transport.registerProducer(self.transport, True)
        server.transport.resumeProducing()


class ProxyClientFactory(ClientFactory):
    """Makes the :class:`ProxyClient` of one :class:`ProxyServer`."""

    protocol = ProxyClient
    noisy = False

    def __init__(self, server: "ProxyServer") -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> Protocol:
        """The destination side of the server's connection."""
        proto = ProxyClient()
        proto.factory = self
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        """The destination could not be reached: close the client's connection."""
        self.server.connector = None
        if self.server.connected:
            log.info("Cannot forward to %s: %s", connector.getDestination(), reason.getErrorMessage())
            self.server.transport.loseConnection()

    def clientConnectionLost(self, connector: Any, reason: Any) -> None:
        """Nothing to do: the client's side is closed by :meth:`Proxy.connectionLost`."""
        self.server.connector = None


class ProxyServer(Proxy):
    """The connection a client made to us."""

    connector: Any = None
    #: What the client sent before the destination answered (None: nothing).
    pending: Optional[bytearray] = None

    def dataReceived(self, data: bytes) -> None:
        """Forward ``data``, or keep it (bounded) until the destination answers."""
        if self.peer is not None:
            self.peer.transport.write(data)
            return
        if self.pending is None:
            self.pending = bytearray()
        self.pending += data
        if len(self.pending) >= PENDING_LIMIT:
            self.transport.pauseProducing()  # resumed once the destination answers

    def flushPending(self) -> None:
        """Send the destination what the client sent before it answered."""
        pending, self.pending = self.pending, None
        if pending and self.peer is not None:
            self.peer.transport.write(bytes(pending))

    def connectionMade(self) -> None:
        """Stop reading until the destination answers, and connect to it."""
        from twistdlite import reactor

        self.transport.pauseProducing()
        self.connector = reactor.connectTCP(self.factory.host, self.factory.port, ProxyClientFactory(self))

    def connectionLost(self, reason: Any = None) -> None:
        """Close the destination's side, or stop connecting to it."""
        connector, self.connector = self.connector, None
        self.pending = None
        if self.peer is None and connector is not None and connector.state == "connecting":
            connector.stopConnecting()
        Proxy.connectionLost(self, reason)


class ProxyFactory(ServerFactory):
    """Forwards each connection to ``host:port``: ``ProxyFactory(host, port)``."""

    protocol = ProxyServer

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} to {self.host}:{self.port}>"
