"""Outgoing stream connections on the event loop: TCP, TLS and UNIX connectors.

Shared by ``twistdlite.reactor`` (``connectTCP``, ``connectSSL``,
``connectUNIX``), the client services of ``twistdlite.internet`` and the client
endpoints of ``twistdlite.endpoints``. A connector is Twisted's ``IConnector``:
``connect()``, ``disconnect()``, ``stopConnecting()``, ``getDestination()``
and ``state`` (``"disconnected"``, ``"connecting"`` or ``"connected"``). It
tells a ``ClientFactory`` ``startedConnecting``, ``clientConnectionFailed`` and
``clientConnectionLost``, so ``ReconnectingClientFactory`` works as in Twisted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Optional

from twistdlite import _loopstate
from twistdlite._transport import is_twisted_factory, protocol_factory_for
from twistdlite.address import IPv4Address, IPv6Address, UNIXAddress
from twistdlite.error import ConnectError, NoProtocol, UserError, connect_error_for
from twistdlite.failure import Failure

__all__ = ["Connector", "TCPConnector", "SSLConnector", "UNIXConnector"]

log = logging.getLogger("twistdlite")


class Connector:
    """One destination a factory connects to, perhaps several times (Twisted's ``IConnector``)."""

    kind = "TCP"
    #: Set (to an asyncio Future) by an endpoint's ``connect()``: the attempt's outcome goes
    #: there (the protocol, or the ConnectError) instead of to the factory's client callbacks.
    outcome: Any = None

    def __init__(self, factory: Any, timeout: Optional[float] = 30) -> None:
        self.factory = factory
        self.timeout = timeout
        self.state = "disconnected"
        self.transport: Any = None
        self._adapter: Any = None
        self._task: Optional[asyncio.Task] = None
        self._factory_started = False
        self._sessions = 0
        self._twisted = is_twisted_factory(factory)

    # -- Twisted's IConnector ---------------------------------------------------
    def connect(self) -> None:
        """Start connecting (now if the loop runs, else once it does)."""
        if self.state != "disconnected":
            raise RuntimeError(f"can't connect in state {self.state!r}")
        self.state = "connecting"
        if self._twisted:
            if not self._factory_started:
                self.factory.doStart()
                self._factory_started = True
            if self.outcome is None:
                self.factory.startedConnecting(self)
        if self.state != "connecting":  # startedConnecting called stopConnecting()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _loopstate.call_when_running(self._begin)
            return
        self._task = loop.create_task(self._attempt())

    def _begin(self) -> None:
        if self.state == "connecting" and self._task is None:
            self._task = _loopstate.get_loop().create_task(self._attempt())

    def stopConnecting(self) -> None:
        """Abandon the connection attempt in progress (``clientConnectionFailed`` with UserError)."""
        if self.state != "connecting":
            raise RuntimeError("we're not trying to connect")
        task, self._task = self._task, None
        self._failed(UserError())
        if task is not None:
            task.cancel()

    def disconnect(self) -> None:
        """Stop connecting, or close the connection (once what was written has been sent)."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self._adapter is not None:
            self._adapter.transport.close()

    def getDestination(self) -> Any:
        """The address this connector connects to."""
        raise NotImplementedError

    def getHost(self) -> Any:
        """This end's address while connected (``RuntimeError`` otherwise)."""
        adapter = self._adapter
        if self.state != "connected" or adapter is None:
            raise RuntimeError(f"{self!r} is not connected")
        from twistdlite.address import from_sockaddr

        return from_sockaddr(self.kind, adapter.transport.get_extra_info("sockname"))

    # -- the attempt ----------------------------------------------------------------
    async def _open(self, protocol_factory: Any) -> Any:
        """Open the connection with asyncio; returns (transport, protocol)."""
        raise NotImplementedError

    async def _attempt(self) -> None:
        try:
            coro = self._open(protocol_factory_for(self.factory, self.kind, self))
            if self.timeout is not None and self.timeout > 0:
                await asyncio.wait_for(coro, self.timeout)
            else:
                await coro
        except asyncio.CancelledError:
            return  # stopConnecting() has already reported the failure
        except Exception as exc:
            if self.state == "connecting":
                self._task = None
                self._failed(connect_error_for(exc))
        else:
            self._task = None

    # -- what StreamAdapter calls ----------------------------------------------------
    def next_session(self) -> int:
        """The number of the next connection (for log prefixes)."""
        number = self._sessions
        self._sessions += 1
        return number

    def connection_started(self, adapter: Any) -> None:
        """The protocol is built and connected."""
        if self.state != "connecting":  # stopConnecting() raced with the connection
            adapter.transport.abort()
            return
        self.state = "connected"
        self._adapter = adapter
        proto = getattr(adapter, "proto", None)
        self.transport = getattr(proto, "transport", None) or adapter.transport
        self._connected(adapter)

    def connection_ended(self, adapter: Any, reason: Any) -> None:
        """The connection closed (or never got a protocol)."""
        if adapter is self._adapter:
            self._adapter = None
            self.transport = None
            self.state = "disconnected"
            self._lost(reason)
        elif self.state == "connecting":
            self._task = None
            self._failed(NoProtocol(string="the factory built no protocol"))

    # -- reporting: to the factory, or to ``outcome`` for an endpoint's connect() ---------
    def _connected(self, adapter: Any) -> None:
        outcome = self.outcome
        if outcome is not None and not outcome.done():
            proto = getattr(adapter, "proto", None)
            outcome.set_result(proto if proto is not None else getattr(adapter, "inner", adapter))

    def _failed(self, error: ConnectError) -> None:
        self.state = "disconnected"
        if self.outcome is not None:
            if not self.outcome.done():
                self.outcome.set_exception(error)
        elif self._twisted:
            try:
                self.factory.clientConnectionFailed(self, Failure(error))
            except Exception:
                log.exception("Unhandled error in %s.clientConnectionFailed", type(self.factory).__name__)
        else:
            log.warning("Connection to %s failed: %s", self.getDestination(), error)
        self._maybe_stop_factory()

    def _lost(self, reason: Any) -> None:
        if self._twisted and self.outcome is None:
            try:
                self.factory.clientConnectionLost(self, reason)
            except Exception:
                log.exception("Unhandled error in %s.clientConnectionLost", type(self.factory).__name__)
        self._maybe_stop_factory()

    def _maybe_stop_factory(self) -> None:
        if self.state == "disconnected" and self._factory_started:
            self._factory_started = False
            self.factory.doStop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} to {self.getDestination()} {self.state}>"


def _ip_address(kind: str, host: str, port: int) -> Any:
    if ":" in host:
        return IPv6Address(kind, host, port)
    return IPv4Address(kind, host, port)


class TCPConnector(Connector):
    """Connects to ``(host, port)`` over TCP (``bindAddress``: the local ``(host, port)``)."""

    def __init__(self, host: str, port: int, factory: Any, timeout: Optional[float] = 30,
                 bindAddress: Any = None) -> None:
        super().__init__(factory, timeout)
        self.host = host
        self.port = port
        self.bindAddress = bindAddress

    async def _open(self, protocol_factory: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.create_connection(protocol_factory, self.host, self.port,
                                            local_addr=self.bindAddress, **self._options())

    def _options(self) -> dict:
        return {}

    def getDestination(self) -> Any:
        """``IPv4Address('TCP', host, port)`` (IPv6Address for an IPv6 literal)."""
        return _ip_address("TCP", self.host, self.port)


class SSLConnector(TCPConnector):
    """Connects to ``(host, port)`` over TLS with ``contextFactory`` (an SSLContext or getContext())."""

    def __init__(self, host: str, port: int, factory: Any, contextFactory: Any, timeout: Optional[float] = 30,
                 bindAddress: Any = None) -> None:
        super().__init__(host, port, factory, timeout, bindAddress)
        self.contextFactory = contextFactory

    def _options(self) -> dict:
        from twistdlite.ssl import client_context

        context = client_context(self.contextFactory)
        hostname = getattr(self.contextFactory, "hostname", None) or self.host
        return {"ssl": context, "server_hostname": hostname}


class UNIXConnector(Connector):
    """Connects to the UNIX socket at ``address`` (``checkPID``: refuse unless ``<address>.lock`` is held)."""

    kind = "UNIX"

    def __init__(self, address: Any, factory: Any, timeout: Optional[float] = 30, checkPID: bool = False) -> None:
        super().__init__(factory, timeout)
        self.address = address
        self.checkPID = checkPID

    async def _open(self, protocol_factory: Any) -> Any:
        if self.checkPID:
            from twistdlite._unixsock import PidLock

            if not PidLock.is_held(self.address):
                raise ConnectError(string=f"no live process holds {os.fsdecode(self.address)}.lock")
        import socket

        loop = asyncio.get_running_loop()
        # Connect the socket ourselves: uvloop's create_unix_connection(path) refuses
        # abstract-namespace addresses.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, os.fspath(self.address))
            return await loop.create_unix_connection(protocol_factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    def getDestination(self) -> Any:
        """``UNIXAddress(address)``."""
        return UNIXAddress(os.fsdecode(self.address))
