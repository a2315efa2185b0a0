"""Datagram ports on the event loop: UDP, multicast, UNIX datagram (bound and connected).

Shared by ``twistdlite.reactor`` (``listenUDP``, ``listenMulticast``,
``listenUNIXDatagram``, ``connectUNIXDatagram``) and the matching services in
``twistdlite.internet``. A port binds synchronously (:meth:`DatagramPort.bind`),
then serves a Twisted-style datagram protocol on the loop
(:meth:`DatagramPort.start`) through :class:`DatagramAdapter`.

A datagram longer than ``maxPacketSize`` is dropped with a (rate-limited) log
line rather than handed on truncated, and the port goes on serving.

What the protocol logs from its callbacks carries the port's system, as in
twistd: ``EchoUDP (UDP)`` (``(UNIX)`` for a UNIX datagram socket).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from typing import Any, Optional

from twistdlite._aio import Done, when_running
from twistdlite.address import UNIXAddress, from_sockaddr
from twistdlite.error import CannotListenError, ConnectError, MulticastJoinError
from twistdlite.failure import Failure
from twistdlite._loglines import system_context

__all__ = ["DatagramTransport", "DatagramAdapter", "system_of_port", "DatagramPort", "UDPPort",
           "MulticastPort", "UNIXDatagramPort", "ConnectedUNIXDatagramPort"]

log = logging.getLogger("twistdlite")

#: Log at most one "dropped an oversized datagram" line per port this often (seconds).
OVERSIZE_LOG_INTERVAL = 10.0


class DatagramTransport:
    """The transport a datagram protocol sees: ``write(data, addr)`` and the socket options."""

    def __init__(self, transport: asyncio.DatagramTransport, port: "DatagramPort") -> None:
        self.transport = transport
        self.port = port
        # Bound once: write(data, addr=None) is exactly asyncio's sendto(data, addr=None).
        self.write = transport.sendto

    def writeSequence(self, seq: Any, addr: Any = None) -> None:
        """Send the concatenation of ``seq`` as one datagram."""
        self.transport.sendto(b"".join(seq), addr)

    def getHost(self) -> Any:
        """The address this socket is bound to."""
        return self.port.getHost()

    def getPeer(self) -> Any:
        """The connected peer (connected UNIX datagram clients only)."""
        return self.port.getPeer()

    def getHandle(self) -> socket.socket:
        """The socket."""
        return self.port.socket

    def logPrefix(self) -> str:
        """The label of this port's log lines: ``EchoUDP (UDP)``, as in Twisted."""
        return system_of_port(self.port)

    def stopListening(self) -> Any:
        """Close the socket; awaitable until the protocol has been stopped."""
        return self.port.stopListening()

    loseConnection = stopListening

    # -- multicast and broadcast options ------------------------------------
    def _sockopt(self, level: int, option: int, value: Any) -> None:
        self.port.socket.setsockopt(level, option, value)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        """Allow (or forbid) sending to broadcast addresses."""
        self._sockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(bool(enabled)))

    def getBroadcastAllowed(self) -> bool:
        """True when sending to broadcast addresses is allowed."""
        return bool(self.port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    def getOutgoingInterface(self) -> str:
        """The IPv4 address of the interface multicast datagrams go out of."""
        raw = self.port.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
        return socket.inet_ntoa(raw)

    def setOutgoingInterface(self, addr: str) -> Done:
        """Send multicast datagrams out of the interface with IPv4 address ``addr``."""
        self._sockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
        return Done(True)

    def getLoopbackMode(self) -> bool:
        """True when multicast datagrams we send are looped back to us."""
        return bool(self.port.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP))

    def setLoopbackMode(self, mode: bool) -> None:
        """Loop multicast datagrams we send back to local listeners (or not)."""
        self._sockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(bool(mode)))

    def getTTL(self) -> int:
        """The time-to-live of multicast datagrams we send."""
        return self.port.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)

    def setTTL(self, ttl: int) -> None:
        """Set the time-to-live of multicast datagrams we send."""
        self._sockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, int(ttl))

    def _membership(self, option: int, addr: str, interface: str) -> Done:
        try:
            request = socket.inet_aton(addr) + socket.inet_aton(interface or "0.0.0.0")
            self._sockopt(socket.IPPROTO_IP, option, request)
        except OSError as exc:
            what = "join" if option == socket.IP_ADD_MEMBERSHIP else "leave"
            raise MulticastJoinError(exc.errno, f"cannot {what} multicast group {addr}"
                                                f" on {interface or 'any interface'}: {exc.strerror or exc}") from None
        return Done(True)

    def joinGroup(self, addr: str, interface: str = "") -> Done:
        """Join the multicast group ``addr`` (on the interface with address ``interface``)."""
        return self._membership(socket.IP_ADD_MEMBERSHIP, addr, interface)

    def leaveGroup(self, addr: str, interface: str = "") -> Done:
        """Leave the multicast group ``addr``."""
        return self._membership(socket.IP_DROP_MEMBERSHIP, addr, interface)


def system_of_port(port: "DatagramPort") -> str:
    """The system of a datagram port's log lines: ``EchoUDP (UDP)``, as Twisted's ``logPrefix``."""
    return f"{type(port.protocol).__name__} ({port.kind})"


class DatagramAdapter(asyncio.DatagramProtocol):
    """The asyncio datagram protocol driving one Twisted-style datagram protocol.

    While it calls the protocol's code it marks the port as running in
    :data:`twistdlite.logger.system_context` (see :mod:`twistdlite.logger`).
    """

    def __init__(self, port: "DatagramPort") -> None:
        self.port = port
        self.proto = port.protocol
        self.max_size = port.maxPacketSize
        self.transport: Any = None
        self.start_error: Optional[BaseException] = None
        self._dropped = 0
        self._last_drop_log = -OVERSIZE_LOG_INTERVAL
        self.mark = system_context.mark_for(system_of_port(port))
        if port.connected:
            self.datagram_received = self._connected_received  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport
        previous = system_context.enter(self.mark)
        try:
            self.proto.makeConnection(DatagramTransport(transport, self.port))  # type: ignore[arg-type]
        except Exception as exc:
            self.start_error = exc  # DatagramPort.start raises it: the start fails, as in Twisted
        finally:
            system_context.leave(previous)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > self.max_size:
            self._oversized(len(data), addr)
            return
        # system_context.enter/leave inlined: this is the per-datagram path.
        context = system_context
        previous = context.mark
        mark = context.mark = self.mark
        if previous is not None and previous.thread != mark.thread:
            previous = None
        try:
            self.proto.datagramReceived(data, addr)
        except Exception:
            log.exception("Unhandled error in %s.datagramReceived", type(self.proto).__name__)
        finally:
            context.mark = previous

    def _connected_received(self, data: bytes, addr: Any) -> None:
        if len(data) > self.max_size:
            self._oversized(len(data), addr)
            return
        previous = system_context.enter(self.mark)
        try:
            self.proto.datagramReceived(data)
        except Exception:
            log.exception("Unhandled error in %s.datagramReceived", type(self.proto).__name__)
        finally:
            system_context.leave(previous)

    def _oversized(self, size: int, addr: Any) -> None:
        self._dropped += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_drop_log >= OVERSIZE_LOG_INTERVAL:
            more = f" ({self._dropped - 1} more since the last report)" if self._dropped > 1 else ""
            log.warning("Dropped a %d-byte datagram from %s: larger than maxPacketSize %d%s",
                        size, addr or "an unbound peer", self.max_size, more)
            self._last_drop_log = now
            self._dropped = 0

    def error_received(self, exc: Exception) -> None:
        if getattr(exc, "errno", None) == errno.ECONNREFUSED:
            refused = getattr(self.proto, "connectionRefused", None)
            if refused is not None:
                previous = system_context.enter(self.mark)
                try:
                    refused()
                except Exception:
                    log.exception("Unhandled error in %s.connectionRefused", type(self.proto).__name__)
                finally:
                    system_context.leave(previous)
                return
        log.warning("%s: socket error: %s", type(self.proto).__name__, exc)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        previous = system_context.enter(self.mark)
        try:
            self.proto.doStop()
        except Exception:
            log.exception("Unhandled error in %s.stopProtocol", type(self.proto).__name__)
        finally:
            system_context.leave(previous)
            self.port._transport_lost()


class DatagramPort:
    """What every datagram port shares: binding, serving through the adapter, stopping."""

    kind = "UDP"
    connected = False

    def __init__(self, protocol: Any, maxPacketSize: int = 8192) -> None:
        self.protocol = protocol
        self.maxPacketSize = maxPacketSize
        self.socket: Optional[socket.socket] = None
        self.transport: Any = None
        self._address: Any = None
        self._lost: Optional[asyncio.Future] = None
        self._stopped = False

    def _open_socket(self) -> socket.socket:
        raise NotImplementedError

    def bind(self) -> None:
        """Create and bind the socket; :class:`CannotListenError` on failure."""
        if self.socket is not None:
            return
        sock = self._open_socket()
        sock.setblocking(False)
        self.socket = sock
        self._address = sock.getsockname()
        self._stopped = False

    async def start(self) -> None:
        """Serve the protocol on the running loop (binding first if needed)."""
        self.bind()
        if self.transport is not None:
            return
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        transport, adapter = await loop.create_datagram_endpoint(lambda: DatagramAdapter(self), sock=self.socket)
        self.transport = transport
        if adapter.start_error is not None:
            error = adapter.start_error
            await self.stopListening()
            raise error
        if self._stopped:
            transport.close()
            return
        log.info("%s starting on %s", type(self.protocol).__name__, self._where())

    def startListening(self) -> "DatagramPort":
        """Bind now and serve once the loop runs (as ``reactor.listenUDP`` does); returns self."""
        self.bind()
        when_running(self.start, f"listening with {type(self.protocol).__name__}")
        return self

    def _where(self) -> Any:
        return self.getHost().port

    def getHost(self) -> Any:
        """The bound address (its ``port`` is the real one when 0 was asked for)."""
        if self._address is None:
            raise RuntimeError("the port is not bound")
        return from_sockaddr(self.kind, self._address)

    def getPeer(self) -> Any:
        """The connected peer's address; only connected ports have one."""
        raise RuntimeError("this datagram port is not connected")

    def _transport_lost(self) -> None:
        self.transport = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _closed(self) -> None:
        """Called once the socket is closed."""

    def stopListening(self) -> Any:
        """Close the socket; awaitable until ``stopProtocol`` has run."""
        lost = self._stopListening()
        if lost is None:
            return Done()
        from twistdlite._aio import as_deferred

        return as_deferred(lost)

    def _stopListening(self) -> Any:
        """:meth:`stopListening` without the Deferred: None, or the future done once ``stopProtocol`` has run."""
        self._stopped = True
        transport, self.transport = self.transport, None
        sock, self.socket = self.socket, None
        if sock is None and transport is None:
            return None
        where = self._where()
        if transport is not None:
            transport.close()  # closes the socket; connection_lost stops the protocol
            log.info("(%s Port %s Closed)", self.kind, where)
        elif sock is not None:
            sock.close()
        self._closed()
        if transport is not None and self._lost is not None:
            return self._lost
        return None

    loseConnection = stopListening

    async def loseAllConnections(self, timeout: float = 5.0) -> None:
        """Datagram ports have no connections of their own; nothing to do."""

    def __repr__(self) -> str:
        where = self._address if self._address is not None else "unbound"
        return f"<{type(self).__name__} {type(self.protocol).__name__} on {where!r}>"


class UDPPort(DatagramPort):
    """A UDP socket bound to ``(interface, port)``."""

    kind = "UDP"

    def __init__(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> None:
        super().__init__(protocol, maxPacketSize)
        self.port = port
        self.interface = interface

    def _prepare(self, sock: socket.socket) -> None:
        """Set options before binding."""

    def _open_socket(self) -> socket.socket:
        from twistdlite._ports import _listen_error_hint

        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            raise CannotListenError(self.interface, self.port, exc) from None
        try:
            self._prepare(sock)
            sock.bind((self.interface, self.port))
        except (OSError, OverflowError, TypeError) as exc:
            sock.close()
            if not isinstance(exc, OSError):
                exc = OSError(errno.EINVAL, f"invalid port {self.port!r}: {exc}")
            raise CannotListenError(self.interface, self.port, exc,
                                    _listen_error_hint(self.port, exc)) from None
        return sock


class MulticastPort(UDPPort):
    """A UDP socket for multicast: the protocol joins groups through its transport."""

    def __init__(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192,
                 listenMultiple: bool = False) -> None:
        super().__init__(port, protocol, interface, maxPacketSize)
        self.listenMultiple = listenMultiple

    def _prepare(self, sock: socket.socket) -> None:
        if self.listenMultiple:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


class UNIXDatagramPort(DatagramPort):
    """A UNIX datagram socket bound at ``address`` (stale file replaced, removed on stop)."""

    kind = "UNIX"

    def __init__(self, address: Any, protocol: Any, maxPacketSize: int = 8192, mode: int = 0o666) -> None:
        super().__init__(protocol, maxPacketSize)
        self.port = address
        self.mode = mode
        self._identity: Any = None

    def _open_socket(self) -> socket.socket:
        from twistdlite._unixsock import bind_unix

        sock, self._identity = bind_unix(self.port, socket.SOCK_DGRAM, self.mode)
        return sock

    def getHost(self) -> Any:
        """The socket's address (``name`` is the path)."""
        if self._address is None:
            raise RuntimeError("the port is not bound")
        return UNIXAddress(os.fsdecode(self.port))

    def _where(self) -> Any:
        return repr(os.fsdecode(self.port))

    def _closed(self) -> None:
        from twistdlite._unixsock import remove_socket_file

        remove_socket_file(self.port, self._identity)
        self._identity = None


class ConnectedUNIXDatagramPort(DatagramPort):
    """A UNIX datagram socket connected to ``address`` (bound at ``bindAddress`` to get replies)."""

    kind = "UNIX"
    connected = True

    def __init__(self, address: Any, protocol: Any, maxPacketSize: int = 8192, mode: int = 0o666,
                 bindAddress: Any = None) -> None:
        super().__init__(protocol, maxPacketSize)
        self.address = address
        self.mode = mode
        self.bindAddress = bindAddress
        self._identity: Any = None

    def _open_socket(self) -> socket.socket:
        from twistdlite._unixsock import bind_unix

        if self.bindAddress is not None:
            sock, self._identity = bind_unix(self.bindAddress, socket.SOCK_DGRAM, self.mode)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.connect(os.fspath(self.address))
        except OSError as exc:
            sock.close()
            self._closed()
            from twistdlite.error import connect_error_for

            error = connect_error_for(exc)
            error.string = (f"cannot connect to UNIX datagram socket {os.fsdecode(self.address)}: "
                            f"{exc.strerror or exc}")
            raise error from None
        return sock

    def startListening(self) -> "DatagramPort":
        """Connect now (``protocol.connectionFailed`` is called on failure); serve once the loop runs."""
        try:
            self.bind()
        except (OSError, CannotListenError, ConnectError) as exc:
            log.warning("%s", exc)
            failed = getattr(self.protocol, "connectionFailed", None)
            if failed is not None:
                failed(Failure(exc))
            return self
        when_running(self.start, f"connecting {type(self.protocol).__name__}")
        return self

    def getHost(self) -> Any:
        """This end's address (``name`` is None when unbound)."""
        return UNIXAddress(os.fsdecode(self.bindAddress) if self.bindAddress is not None else None)

    def getPeer(self) -> Any:
        """The address this socket is connected to."""
        return UNIXAddress(os.fsdecode(self.address))

    def _where(self) -> Any:
        return repr(os.fsdecode(self.address))

    def _closed(self) -> None:
        from twistdlite._unixsock import remove_socket_file

        if self.bindAddress is not None:
            remove_socket_file(self.bindAddress, self._identity)
        self._identity = None
