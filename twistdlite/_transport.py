"""The bridge between asyncio's protocol/transport pair and Twisted-style protocols.

:class:`StreamAdapter` is the asyncio protocol the event loop drives; it asks
the factory for a Twisted-style protocol when a connection is made and gives
that protocol a :class:`StreamTransport`. A plain asyncio protocol factory
bypasses all of this (see :func:`protocol_factory_for`).

While it calls the protocol's code it marks the connection as running in
:data:`twistdlite.logger.system_context`, so whatever that code logs carries
the connection's system (``Proto,3,127.0.0.1``), as in twistd.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

from twistdlite.address import from_sockaddr
from twistdlite.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twistdlite.failure import Failure
from twistdlite.logger import system_context

log = logging.getLogger("twistdlite")


def is_twisted_factory(factory: Any) -> bool:
    """True for a Twisted-style factory (one with ``buildProtocol``)."""
    return hasattr(factory, "buildProtocol")


class StreamTransport:
    """The Twisted-style transport handed to a protocol (wraps an asyncio transport)."""

    disconnecting = False
    connected = True

    def __init__(self, transport: asyncio.Transport, adapter: "StreamAdapter", system: str) -> None:
        self.transport = transport
        self._adapter = adapter
        self.system = system
        # Bound once, so a write costs exactly what asyncio's write costs.
        self.write = transport.write
        self.writeSequence = transport.writelines

    def logPrefix(self) -> str:
        """The label of this connection's log lines."""
        return self.system

    def loseConnection(self) -> None:
        """Close once everything written so far has been sent."""
        self.disconnecting = True
        self.transport.close()

    def abortConnection(self) -> None:
        """Close at once, discarding unsent data."""
        self.disconnecting = True
        self._adapter.aborted = True
        self.transport.abort()

    def loseWriteConnection(self) -> None:
        """Half-close: send EOF once everything written so far has been sent."""
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def getPeerCertificate(self) -> Any:
        """The peer's TLS certificate as a dict (``ssl.SSLSocket.getpeercert``), None if none."""
        return self.transport.get_extra_info("peercert")

    def getWriteBufferSize(self) -> int:
        """Bytes written but not yet sent (asyncio's ``get_write_buffer_size``)."""
        return self.transport.get_write_buffer_size()

    def getPeer(self) -> Any:
        """The address of the other end."""
        return from_sockaddr(self._adapter.kind, self.transport.get_extra_info("peername"))

    def getHost(self) -> Any:
        """The address of this end."""
        return from_sockaddr(self._adapter.kind, self.transport.get_extra_info("sockname"))

    def getHandle(self) -> Any:
        """The underlying socket object."""
        return self.transport.get_extra_info("socket")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """asyncio's ``get_extra_info``, for code that wants it."""
        return self.transport.get_extra_info(name, default)

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Turn Nagle's algorithm off (True) or on."""
        import socket

        self.getHandle().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(enabled)))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive on or off."""
        import socket

        self.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(enabled)))

    # Producer side: this transport produces the bytes it reads.
    def pauseProducing(self) -> None:
        """Stop reading from the peer."""
        self._adapter.user_paused = True
        self.transport.pause_reading()

    def resumeProducing(self) -> None:
        """Start reading from the peer again."""
        self._adapter.user_paused = False
        if not self._adapter.write_paused:
            self.transport.resume_reading()

    def stopProducing(self) -> None:
        """Close the connection."""
        self.loseConnection()

    # Consumer side: a producer writes to this transport.
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` be paused and resumed as the send buffer fills and drains."""
        if self._adapter.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self._adapter.producer!r} was never unregistered."
            )
        self._adapter.producer = producer
        self._adapter.streaming = streaming
        if not streaming:
            asyncio.get_running_loop().call_soon(self._adapter.pull)
        elif self._adapter.write_paused:
            producer.pauseProducing()  # the send buffer is already full

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""
        self._adapter.producer = None


class StreamAdapter(asyncio.Protocol):
    """The asyncio protocol driving one Twisted-style protocol instance."""

    producer: Any = None
    streaming = True
    proto: Any = None
    transport: Any = None
    user_paused = False
    write_paused = False
    aborted = False
    system = "-"
    #: ``(system, thread ident)``: what :data:`system_context` holds while protocol code runs
    #: (a thread ident of None, before the connection is made, marks nothing).
    mark: tuple = ("-", None)

    def __init__(self, factory: Any, kind: str = "TCP", owner: Any = None) -> None:
        self.factory = factory
        self.kind = kind
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport
        owner = self.owner
        sessionno = owner.next_session() if owner is not None else 0
        peer = transport.get_extra_info("peername")
        addr = from_sockaddr(self.kind, peer)
        try:
            proto = self.factory.buildProtocol(addr)
        except Exception:
            log.exception("Unhandled error in %s.buildProtocol", type(self.factory).__name__)
            transport.abort()
            return
        if proto is None:
            transport.abort()
            return
        host = getattr(addr, "host", None)
        system = f"{type(proto).__name__},{sessionno}" + (f",{host}" if host else "")
        self.system = system
        self.mark = system_context.mark_for(system)
        self.proto = proto
        if owner is not None:
            owner.connection_started(self)
        previous = system_context.enter(self.mark)
        try:
            proto.makeConnection(StreamTransport(transport, self, system))
        except Exception:
            self._callback_failed("connectionMade")
            return
        finally:
            system_context.leave(previous)
        if self.user_paused:
            # uvloop starts reading once connection_made returns, undoing a pause made in
            # connectionMade: pause again before the loop next polls.
            asyncio.get_running_loop().call_soon(self._keep_paused)

    def _keep_paused(self) -> None:
        if self.user_paused and self.proto is not None:
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        # system_context.enter/leave inlined: this is the per-request path.
        context = system_context
        previous = context.mark
        mark = context.mark = self.mark
        if previous is not None and previous[1] != mark[1]:
            previous = None
        try:
            self.proto.dataReceived(data)
        except Exception:
            self._callback_failed("dataReceived")
        finally:
            context.mark = previous

    def eof_received(self) -> Optional[bool]:
        return None  # close our side too, as Twisted does for non-half-close protocols

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        proto = self.proto
        if exc is not None:
            reason = Failure(ConnectionLost(exc))
        elif self.aborted:
            reason = Failure(ConnectionAborted("aborted locally"))
        else:
            reason = Failure(ConnectionDone())
        if proto is None:
            if self.owner is not None:
                self.owner.connection_ended(self, reason)
            return
        self.proto = None
        producer = self.producer
        self.producer = None
        previous = system_context.enter(self.mark)
        try:
            if producer is not None:
                try:
                    producer.stopProducing()
                except Exception:
                    log.exception("Error stopping producer", extra={"system": self.system})
            proto.connected = 0
            try:
                proto.connectionLost(reason)
            except Exception:
                log.exception("Unhandled error in %s.connectionLost", type(proto).__name__,
                              extra={"system": self.system})
        finally:
            system_context.leave(previous)
        if self.owner is not None:
            self.owner.connection_ended(self, reason)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.producer is not None:
            if self.streaming:
                previous = system_context.enter(self.mark)
                try:
                    self.producer.pauseProducing()
                finally:
                    system_context.leave(previous)
        elif self.transport is not None:
            # Nobody registered a producer: stop reading from a peer we cannot
            # keep up writing to, so a request/response protocol's memory stays bounded.
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.producer is not None:
            if self.streaming:
                previous = system_context.enter(self.mark)
                try:
                    self.producer.resumeProducing()
                finally:
                    system_context.leave(previous)
            else:
                self.pull()
        elif self.transport is not None and not self.user_paused:
            self.transport.resume_reading()

    def pull(self) -> None:
        """Ask a pull producer for more data while the send buffer has room."""
        producer = self.producer
        if producer is None or self.streaming or self.write_paused or self.proto is None:
            return
        previous = system_context.enter(self.mark)
        try:
            producer.resumeProducing()
        finally:
            system_context.leave(previous)
        if self.producer is producer and not self.write_paused:
            asyncio.get_running_loop().call_soon(self.pull)

    def _callback_failed(self, where: str) -> None:
        proto_name = type(self.proto).__name__ if self.proto is not None else "protocol"
        log.exception("Unhandled error in %s.%s; dropping the connection", proto_name, where,
                      extra={"system": getattr(self, "system", proto_name)})
        self.aborted = True
        if self.transport is not None:
            self.transport.abort()


def protocol_factory_for(factory: Any, kind: str, owner: Any = None) -> Callable[[], asyncio.BaseProtocol]:
    """The zero-argument callable asyncio wants, for a Twisted-style or a plain asyncio factory."""
    if is_twisted_factory(factory):
        return lambda: StreamAdapter(factory, kind, owner)
    if owner is None:
        return factory

    def build() -> asyncio.BaseProtocol:
        inner = factory()
        if isinstance(inner, asyncio.BufferedProtocol):
            return inner  # asyncio drives buffered protocols differently; not tracked
        return _TrackedNative(inner, owner)

    return build


class _TrackedNative(asyncio.Protocol):
    """Wraps a plain asyncio protocol so its port can close it at shutdown."""

    def __init__(self, inner: asyncio.BaseProtocol, owner: Any) -> None:
        self.inner = inner
        self.owner = owner
        self.transport: Any = None
        for name in ("data_received", "eof_received", "pause_writing", "resume_writing"):
            method = getattr(inner, name, None)
            if method is not None:
                setattr(self, name, method)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport
        self.owner.connection_started(self)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        try:
            self.inner.connection_lost(exc)
        finally:
            self.owner.connection_ended(self, None if exc is None else Failure(ConnectionLost(exc)))
