"""The bridge between asyncio's protocol/transport pair and Twisted-style protocols.

:class:`StreamAdapter` is the asyncio protocol the event loop drives; it asks
the factory for a Twisted-style protocol when a connection is made and is
that protocol's transport too (one small object per connection). A plain asyncio protocol factory
bypasses all of this (see :func:`protocol_factory_for`).

While it calls the protocol's code it marks the connection as running in
:data:`twistdlite.logger.system_context`, so whatever that code logs carries
the connection's system (``Proto,3,127.0.0.1``), as in twistd.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Optional

from twistdlite.address import from_sockaddr
from twistdlite.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twistdlite.failure import Failure
from twistdlite._loglines import system_context

log = logging.getLogger("twistdlite")


def is_twisted_factory(factory: Any) -> bool:
    """True for a Twisted-style factory (one with ``buildProtocol``)."""
    return hasattr(factory, "buildProtocol")


#: The low 8 bits of :attr:`StreamAdapter.flags` are the low 8 bits of the connection's
#: session number (its place among its port's connections); the rest (``session >> 8``) is
#: kept by a :class:`_Block` shared by 256 connections. The flag bits sit above them. So
#: the flags of an idle connection are 0-255, one of the ints Python caches: no int object
#: per connection (``session << 8 | bits`` cost every connection past the first 32 bytes).
_SESSION_BITS = 8
_SESSION_LOW = (1 << _SESSION_BITS) - 1
_USER_PAUSED = 1 << 8  # the protocol (or a consumer it feeds) called pauseProducing()
_WRITE_PAUSED = 2 << 8  # asyncio's send buffer is over its high-water mark
_ABORTED = 4 << 8  # abortConnection(), or a callback raised
_DISCONNECTING = 8 << 8  # loseConnection() or abortConnection() was called
_PULL = 16 << 8  # the registered producer is a pull producer
_EOF = 32 << 8  # the peer's EOF came while reading was paused: close once the held data is delivered
_DELIVERY = 64 << 8  # the delivery of held data is scheduled
_LOST = 128 << 8  # connection_lost has run
#: While any of these is set, what arrives is held, not delivered.
_HOLD = _USER_PAUSED | _DELIVERY


class _Site:
    """What every connection of one port or connector shares (one per port, not per connection)."""

    __slots__ = ("factory", "kind", "owner", "thread", "block")

    def __init__(self, factory: Any, kind: str, owner: Any, thread: int) -> None:
        self.factory = factory
        self.kind = kind
        self.owner = owner
        #: The thread of the loop the connections run on (the ``thread`` of their log marks).
        self.thread = thread
        #: The :class:`_Block` of the latest connections (None before session 256).
        self.block: Optional[_Block] = None

    def block_for(self, high: int) -> "_Block":
        """The shared :class:`_Block` of the sessions whose ``session >> 8`` is ``high``."""
        block = self.block
        if block is None or block.high != high:
            block = self.block = _Block(high)
        return block


class _NoOwner:
    """The owner of connections nobody tracks."""

    @staticmethod
    def next_session() -> int:
        return 0

    @staticmethod
    def connection_started(adapter: Any) -> None:
        pass

    @staticmethod
    def connection_ended(adapter: Any, reason: Any = None) -> None:
        pass


class _Aux:
    """A connection's rarely used state: a registered producer, data held while paused.

    ``high`` is the connection's ``session >> 8`` (see :data:`_SESSION_BITS`).
    """

    __slots__ = ("producer", "held", "high")

    def __init__(self, high: int = 0) -> None:
        self.producer: Any = None
        self.held: Optional[bytes] = None
        self.high = high


class _Block(_Aux):
    """The ``_aux`` of the idle connections whose ``session >> 8`` is ``high``: shared, never written.

    A connection that needs a producer or held data gets an :class:`_Aux` of its own first.
    """

    __slots__ = ()


def _own_aux(adapter: "StreamAdapter") -> _Aux:
    """The adapter's own :class:`_Aux` (made, keeping its session, when it has none or a shared one)."""
    aux = adapter._aux
    if aux is None:
        aux = adapter._aux = _Aux()
    elif type(aux) is _Block:
        aux = adapter._aux = _Aux(aux.high)
    return aux


def _set_own(adapter: "StreamAdapter", name: str, value: Any) -> None:
    """Set ``name`` (producer, held) of the adapter's own :class:`_Aux`; None where it has none is nothing to do."""
    if value is None and type(adapter._aux) is not _Aux:
        return
    setattr(_own_aux(adapter), name, value)


class StreamAdapter(asyncio.Protocol):
    """The asyncio protocol driving one Twisted-style protocol, and the transport that protocol sees.

    One object with ``__slots__`` per connection, so an idle connection costs
    little more than asyncio's own transport: the factory, the kind and the
    owner are shared through a :class:`_Site`; the log system
    (``Proto,3,127.0.0.1``) is built only when a line is logged; the adapter
    itself is the mark :data:`system_context` holds while protocol code runs.

    As a transport it offers Twisted's ``ITCPTransport`` calls: ``write``,
    ``writeSequence``, ``loseConnection``, ``abortConnection``, ``getPeer``,
    ``getHost``, the producer and consumer calls, ``disconnecting``...
    ``transport`` is the asyncio transport underneath.

    Data that arrives while the protocol is paused (``pauseProducing``) is
    held, reading is stopped, and the data is delivered, in order, after
    ``resumeProducing``: a protocol never sees ``dataReceived`` while it is
    paused, whichever loop runs it and however early it paused.
    """

    __slots__ = ("proto", "transport", "flags", "_aux", "_prev", "_next")

    #: What the connections of one port or connector share. Each port (and connector) gets its
    #: own subclass holding it (see :func:`protocol_factory_for`): a class attribute, so it costs
    #: a connection nothing.
    site: _Site

    def __init__(self) -> None:
        self.proto: Any = None
        self.transport: Any = None
        self.flags = 0
        # The rarely used state, made when first needed (or a _Block, shared, holding the session's high part).
        self._aux: Optional[_Aux] = None
        # The links of the owner's list of connections (see twistdlite._ports.ConnectionList).
        self._prev: Any = None
        self._next: Any = None

    @property
    def producer(self) -> Any:
        """The producer registered with ``registerProducer`` (None: none)."""
        aux = self._aux
        return None if aux is None else aux.producer

    @producer.setter
    def producer(self, producer: Any) -> None:
        _set_own(self, "producer", producer)

    @property
    def held(self) -> Optional[bytes]:
        """What arrived while the protocol was paused, not given to it yet (None: nothing)."""
        aux = self._aux
        return None if aux is None else aux.held

    @held.setter
    def held(self, data: Optional[bytes]) -> None:
        _set_own(self, "held", data)

    @property
    def session(self) -> int:
        """The connection's number among its port's (or connector's) connections, from 0."""
        aux = self._aux
        low = self.flags & _SESSION_LOW
        return low if aux is None else aux.high << _SESSION_BITS | low

    # -- the log mark (see twistdlite.logger.SystemContext) -------------------------------
    @property
    def system(self) -> str:
        """The label of this connection's log lines: ``Proto,3,127.0.0.1`` (built when asked for)."""
        proto = self.proto
        if proto is None:
            return "-"
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        if isinstance(peer, tuple) and peer and peer[0]:
            return f"{type(proto).__name__},{self.session},{peer[0]}"
        return f"{type(proto).__name__},{self.session}"

    @property
    def thread(self) -> int:
        """The thread the connection's callbacks run on."""
        return self.site.thread

    # -- Twisted's transport --------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True until the connection is lost."""
        return not self.flags & _LOST

    @property
    def disconnecting(self) -> bool:
        """True once ``loseConnection`` (or ``abortConnection``) has been called."""
        return bool(self.flags & _DISCONNECTING)

    def write(self, data: bytes) -> None:
        """Send ``data`` (buffered by asyncio while the socket is busy)."""
        self.transport.write(data)

    def writeSequence(self, seq: Any) -> None:
        """Send each bytes object of ``seq`` in order."""
        self.transport.writelines(seq)

    def logPrefix(self) -> str:
        """The label of this connection's log lines."""
        return self.system

    def loseConnection(self) -> None:
        """Close once everything written so far has been sent."""
        self.flags |= _DISCONNECTING
        self.transport.close()

    def abortConnection(self) -> None:
        """Close at once, discarding unsent data."""
        self.flags |= _DISCONNECTING | _ABORTED
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
        return from_sockaddr(self.site.kind, self.transport.get_extra_info("peername"))

    def getHost(self) -> Any:
        """The address of this end."""
        return from_sockaddr(self.site.kind, self.transport.get_extra_info("sockname"))

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
        """Stop reading from the peer (what is already read is held until ``resumeProducing``)."""
        self.flags |= _USER_PAUSED
        if not self.flags & _LOST:
            self.transport.pause_reading()

    def resumeProducing(self) -> None:
        """Deliver what was held, then read from the peer again."""
        flags = self.flags & ~_USER_PAUSED
        self.flags = flags
        if self.held is not None or flags & _EOF:
            if not flags & (_DELIVERY | _LOST):
                self.flags = flags | _DELIVERY
                asyncio.get_running_loop().call_soon(self._deliver_held)
            return
        self._resume_reading()

    def stopProducing(self) -> None:
        """Close the connection."""
        self.loseConnection()

    # Consumer side: a producer writes to this transport.
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` be paused and resumed as the send buffer fills and drains."""
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered."
            )
        self.producer = producer
        if not streaming:
            self.flags |= _PULL
            asyncio.get_running_loop().call_soon(self.pull)
        else:
            self.flags &= ~_PULL
            if self.flags & _WRITE_PAUSED:
                producer.pauseProducing()  # the send buffer is already full

    def unregisterProducer(self) -> None:
        """Forget the registered producer."""
        self.producer = None
        self.flags &= ~_PULL

    # -- asyncio's protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport
        site = self.site
        owner = site.owner
        session = owner.next_session()
        self.flags = session & _SESSION_LOW
        if session > _SESSION_LOW:
            self._aux = site.block_for(session >> _SESSION_BITS)
        addr = from_sockaddr(site.kind, transport.get_extra_info("peername"))
        factory = site.factory
        try:
            proto = factory.buildProtocol(addr)
        except Exception:
            log.exception("Unhandled error in %s.buildProtocol", type(factory).__name__)
            transport.abort()
            return
        if proto is None:
            transport.abort()
            return
        self.proto = proto
        owner.connection_started(self)
        previous = system_context.enter(self)
        try:
            proto.makeConnection(self)
        except Exception:
            self._callback_failed("connectionMade")
            return
        finally:
            system_context.leave(previous)
        if self.flags & _USER_PAUSED:
            # uvloop starts reading once connection_made returns, undoing a pause made in
            # connectionMade: pause again before the loop next polls (what it reads meanwhile is held).
            asyncio.get_running_loop().call_soon(self._keep_paused)

    def _keep_paused(self) -> None:
        if self.flags & _HOLD and not self.flags & _LOST:
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self.flags & _HOLD:
            held = self.held
            self.held = data if held is None else held + data
            self.transport.pause_reading()
            return
        # system_context.enter/leave inlined: this is the per-request path.
        context = system_context
        previous = context.mark
        context.mark = self
        if previous is not None and previous.thread != self.site.thread:
            previous = None
        try:
            self.proto.dataReceived(data)
        except Exception:
            self._callback_failed("dataReceived")
        finally:
            context.mark = previous

    def _deliver_held(self) -> None:
        """Hand the protocol what arrived while it was paused, then read again (or close, after an EOF)."""
        flags = self.flags & ~_DELIVERY
        self.flags = flags
        if flags & (_USER_PAUSED | _LOST):
            return  # paused again (resumeProducing schedules another delivery), or gone
        data, self.held = self.held, None
        if data is not None:
            self.data_received(data)
        flags = self.flags
        if flags & (_HOLD | _LOST) or self.held is not None:
            return
        if flags & _EOF:
            self.flags = flags & ~_EOF
            self.transport.close()  # what returning None from eof_received does
            return
        self._resume_reading()

    def _resume_reading(self) -> None:
        """Read again unless something still wants reading stopped."""
        flags = self.flags
        if flags & (_HOLD | _EOF | _LOST) or self.held is not None:
            return
        if flags & _WRITE_PAUSED and self.producer is None:
            return  # nobody consumes what we send: don't read more than we can answer
        self.transport.resume_reading()

    def eof_received(self) -> Optional[bool]:
        if (self.held is not None or self.flags & _HOLD) and self.transport.get_extra_info("sslcontext") is None:
            self.flags |= _EOF  # the protocol sees the EOF after what it has not been given yet
            return True
        return None  # close our side too, as Twisted does for non-half-close protocols

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        flags = self.flags
        if flags & _LOST:
            return
        self.flags = flags | _LOST
        proto = self.proto
        if exc is not None:
            reason = Failure(ConnectionLost(exc))
        elif flags & _ABORTED:
            reason = Failure(ConnectionAborted("aborted locally"))
        else:
            reason = Failure(ConnectionDone())
        owner = self.site.owner
        if proto is None:
            owner.connection_ended(self, reason)
            return
        producer, self.producer = self.producer, None
        held, self.held = self.held, None
        previous = system_context.enter(self)
        try:
            if held is not None and exc is None and not flags & (_ABORTED | _DISCONNECTING):
                # A clean close after data the protocol was not given yet (a TLS peer's
                # close_notify while paused): the data comes first, as it was sent.
                try:
                    proto.dataReceived(held)
                except Exception:
                    log.exception("Unhandled error in %s.dataReceived", type(proto).__name__,
                                  extra={"system": self.system})
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
        owner.connection_ended(self, reason)

    def pause_writing(self) -> None:
        self.flags |= _WRITE_PAUSED
        producer = self.producer
        if producer is not None:
            if not self.flags & _PULL:
                previous = system_context.enter(self)
                try:
                    producer.pauseProducing()
                finally:
                    system_context.leave(previous)
        elif self.transport is not None:
            # Nobody registered a producer: stop reading from a peer we cannot
            # keep up writing to, so a request/response protocol's memory stays bounded.
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.flags &= ~_WRITE_PAUSED
        producer = self.producer
        if producer is not None:
            if self.flags & _PULL:
                self.pull()
            else:
                previous = system_context.enter(self)
                try:
                    producer.resumeProducing()
                finally:
                    system_context.leave(previous)
        if self.transport is not None:
            self._resume_reading()

    def pull(self) -> None:
        """Ask a pull producer for more data while the send buffer has room."""
        producer = self.producer
        flags = self.flags
        if producer is None or not flags & _PULL or flags & (_WRITE_PAUSED | _LOST):
            return
        previous = system_context.enter(self)
        try:
            producer.resumeProducing()
        finally:
            system_context.leave(previous)
        if self.producer is producer and not self.flags & (_WRITE_PAUSED | _LOST):
            asyncio.get_running_loop().call_soon(self.pull)

    def _callback_failed(self, where: str) -> None:
        proto_name = type(self.proto).__name__ if self.proto is not None else "protocol"
        log.exception("Unhandled error in %s.%s; dropping the connection", proto_name, where,
                      extra={"system": self.system})
        self.flags |= _ABORTED
        if self.transport is not None:
            self.transport.abort()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.system}>"


def protocol_factory_for(factory: Any, kind: str, owner: Any = None) -> Callable[[], asyncio.BaseProtocol]:
    """The zero-argument callable asyncio wants, for a Twisted-style or a plain asyncio factory."""
    if is_twisted_factory(factory):
        site = _Site(factory, kind, owner if owner is not None else _NoOwner, threading.get_ident())
        # The subclass is the zero-argument factory asyncio calls, one per port or connection attempt.
        return type("StreamAdapter", (StreamAdapter,), {"__slots__": (), "site": site})
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

    # The links of the owner's list of connections (see twistdlite._ports.ConnectionList).
    _prev: Any = None
    _next: Any = None

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
