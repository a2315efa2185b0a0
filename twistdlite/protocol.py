"""Protocols and factories, mirroring ``twisted.internet.protocol``.

A Twisted-style :class:`Protocol` is driven by the event loop through an
asyncio adapter (see ``twistdlite._transport``); its ``transport`` offers
``write``, ``writeSequence``, ``loseConnection``, ``getPeer``, ``getHost`` and
the producer methods.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from twistdlite.error import ConnectionDone
from twistdlite.failure import Failure

__all__ = [
    "BaseProtocol",
    "Protocol",
    "Factory",
    "ServerFactory",
    "ClientFactory",
    "ReconnectingClientFactory",
    "DatagramProtocol",
    "ConnectedDatagramProtocol",
    "ProcessProtocol",
    "FileWrapper",
    "connectionDone",
]

log = logging.getLogger("twistdlite")

#: The reason given to ``connectionLost`` for a clean close.
connectionDone = Failure(ConnectionDone())


class BaseProtocol:
    """The part of a protocol that knows about its transport."""

    connected = 0
    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and call :meth:`connectionMade`."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """Called when the connection is made; override it."""


class Protocol(BaseProtocol):
    """A stream protocol: override ``dataReceived`` and ``connectionLost``."""

    factory: Optional["Factory"] = None

    def logPrefix(self) -> str:
        """The label for this protocol's log lines."""
        return self.__class__.__name__

    def dataReceived(self, data: bytes) -> None:
        """Called with bytes as they arrive; override it."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Called when the connection is closed; ``reason`` is a :class:`Failure`."""


class Factory:
    """Builds protocols for connections."""

    protocol: Any = None
    numPorts = 0
    noisy = True

    @classmethod
    def forProtocol(cls, protocol: Any, *args: Any, **kwargs: Any) -> "Factory":
        """Make a factory of this class whose ``protocol`` is ``protocol``."""
        factory = cls(*args, **kwargs)
        factory.protocol = protocol
        return factory

    def logPrefix(self) -> str:
        """The label for this factory's log lines."""
        return self.__class__.__name__

    def doStart(self) -> None:
        """Called by each port that starts using this factory."""
        if not self.numPorts:
            if self.noisy:
                log.info("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Called by each port that stops using this factory."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                log.info("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Called once, before the first port starts; override it."""

    def stopFactory(self) -> None:
        """Called once, after the last port stops; override it."""

    def buildProtocol(self, addr: Any) -> Optional[Protocol]:
        """Make a protocol for a connection from ``addr``; None refuses it."""
        proto = self.protocol()
        proto.factory = self
        return proto

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("numPorts", None)
        return state

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} object at 0x{id(self):x}>"


class ServerFactory(Factory):
    """A factory for servers."""


class ClientFactory(Factory):
    """A factory for clients, told of connection attempts and losses."""

    def startedConnecting(self, connector: Any) -> None:
        """Called when a connection attempt starts."""

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Called when a connection attempt fails."""

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """Called when an established connection is lost."""


class ReconnectingClientFactory(ClientFactory):
    """A client factory that reconnects after a failed attempt or a lost connection.

    The delay starts at ``initialDelay`` and is multiplied by ``factor`` after
    each attempt, up to ``maxDelay``, with a random spread of ``jitter`` (a
    fraction of the delay). ``maxRetries`` (None: no limit) caps the attempts.
    Call :meth:`resetDelay` once a connection is established (typically in
    ``buildProtocol``) and :meth:`stopTrying` to give up. ``clock`` (default: the
    reactor) schedules the retries.
    """

    maxDelay = 3600.0
    initialDelay = 1.0
    factor = 2.7182818284590451
    jitter = 0.11962656472
    retries = 0
    maxRetries: Optional[int] = None
    continueTrying = True
    connector: Any = None
    clock: Any = None
    _callID: Any = None

    @property
    def delay(self) -> float:
        """The current delay before the next attempt (``initialDelay`` until the first retry)."""
        return self.__dict__.get("_delay", self.initialDelay)

    @delay.setter
    def delay(self, value: float) -> None:
        self.__dict__["_delay"] = value

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Retry after a failed attempt (unless told to stop trying)."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: Any, unused_reason: Failure) -> None:
        """Reconnect after losing the connection (unless told to stop trying)."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: Any = None) -> None:
        """Schedule the next attempt, growing the delay."""
        if not self.continueTrying:
            if self.noisy:
                log.info("Abandoning %s on explicit request", connector or self.connector)
            return
        connector = connector if connector is not None else self.connector
        if connector is None:
            raise ValueError("no connector to retry on")
        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            if self.noisy:
                log.info("Abandoning %s after %d retries.", connector, self.retries - 1)
            return
        self.delay = min(self.delay * self.factor, self.maxDelay)
        if self.jitter:
            import random

            spread = self.delay * self.jitter
            self.delay = max(0.0, random.gauss(self.delay, spread))
        if self.noisy:
            log.info("%s will retry in %d seconds", connector, self.delay)

        def reconnect() -> None:
            self._callID = None
            connector.connect()

        clock = self.clock
        if clock is None:
            from twistdlite import reactor as clock  # type: ignore[no-redef]
        self._callID = clock.callLater(self.delay, reconnect)

    def stopTrying(self) -> None:
        """Give up: cancel the scheduled attempt and stop the one in progress."""
        if self._callID is not None:
            if self._callID.active():
                self._callID.cancel()
            self._callID = None
        self.continueTrying = False
        if self.connector is not None and getattr(self.connector, "state", None) == "connecting":
            try:
                self.connector.stopConnecting()
            except RuntimeError:
                pass

    def resetDelay(self) -> None:
        """Back to the initial delay (call it once connected)."""
        self.delay = self.initialDelay
        self.retries = 0
        self._callID = None
        self.continueTrying = True

    def __getstate__(self) -> dict:
        state = ClientFactory.__getstate__(self)
        for name in ("connector", "_callID", "_delay", "retries", "continueTrying"):
            state.pop(name, None)
        return state


class AbstractDatagramProtocol:
    """The start/stop bookkeeping shared by datagram protocols."""

    transport: Any = None
    numPorts = 0
    noisy = True

    def logPrefix(self) -> str:
        """The label for this protocol's log lines."""
        return self.__class__.__name__

    def doStart(self) -> None:
        """Called by each port that starts using this protocol."""
        if not self.numPorts:
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        """Called by each port that stops using this protocol."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            self.stopProtocol()

    def startProtocol(self) -> None:
        """Called when the protocol starts listening; override it."""

    def stopProtocol(self) -> None:
        """Called when the protocol stops listening; override it."""

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and start the protocol."""
        self.transport = transport
        self.doStart()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Called with each datagram and its sender's address; override it."""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("numPorts", None)
        state.pop("transport", None)
        return state


class DatagramProtocol(AbstractDatagramProtocol):
    """A protocol for UDP and unconnected UNIX datagram sockets."""

    def connectionRefused(self) -> None:
        """Called when a datagram we sent was refused (connected sockets only)."""


class ConnectedDatagramProtocol(AbstractDatagramProtocol):
    """A protocol for connected datagram sockets (UNIX datagram clients)."""

    def datagramReceived(self, datagram: bytes, addr: Any = None) -> None:  # type: ignore[override]
        """Called with each datagram; override it."""

    def connectionFailed(self, failure: Failure) -> None:
        """Called when the connection could not be made."""


class ProcessProtocol(BaseProtocol):
    """The protocol of a child process started with ``reactor.spawnProcess``.

    ``transport`` is the process (``pid``, ``write``, ``closeStdin``,
    ``signalProcess``, ``loseConnection``). Override ``outReceived`` and
    ``errReceived`` for its output, ``processExited`` (it has exited) and
    ``processEnded`` (it has exited and its pipes are closed); both get a
    :class:`Failure` of ``twistdlite.error.ProcessDone`` (exit code 0) or
    ``ProcessTerminated`` (``exitCode``, ``signal``).
    """

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Data from the child's descriptor ``childFD``: 1 goes to outReceived, 2 to errReceived."""
        if childFD == 1:
            self.outReceived(data)
        elif childFD == 2:
            self.errReceived(data)

    def outReceived(self, data: bytes) -> None:
        """Data the child wrote to its stdout; override it."""

    def errReceived(self, data: bytes) -> None:
        """Data the child wrote to its stderr; override it."""

    def childConnectionLost(self, childFD: int) -> None:
        """The pipe to the child's descriptor ``childFD`` closed: calls in/out/errConnectionLost."""
        if childFD == 0:
            self.inConnectionLost()
        elif childFD == 1:
            self.outConnectionLost()
        elif childFD == 2:
            self.errConnectionLost()

    def inConnectionLost(self) -> None:
        """The child's stdin was closed; override it."""

    def outConnectionLost(self) -> None:
        """The child closed its stdout; override it."""

    def errConnectionLost(self) -> None:
        """The child closed its stderr; override it."""

    def processExited(self, reason: Failure) -> None:
        """The child has exited (its pipes may still be open); override it."""

    def processEnded(self, reason: Failure) -> None:
        """The child has exited and every pipe is closed; override it."""


class FileWrapper:
    """A transport that writes to a file object (for protocol tests and file-backed protocols), as Twisted's.

    ``write``/``writeSequence`` go to ``file``; ``loseConnection`` marks it
    ``closed``; a producer registered as not streaming is resumed at once.
    """

    closed = 0
    disconnecting = 0
    producer: Any = None
    streamingProducer = 0

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, data: bytes) -> None:
        """Write ``data`` to the file (an error writing is ignored, as in Twisted)."""
        try:
            self.file.write(data)
        except Exception:
            self.handleException()

    def writeSequence(self, iovec: Any) -> None:
        """Write each of ``iovec``."""
        self.write(b"".join(iovec))

    def handleException(self) -> None:
        """Called when writing fails; ignores the error."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Take ``producer``; a pull producer (``streaming`` false) is asked for data at once."""
        self.producer = producer
        self.streamingProducer = streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def stopConsuming(self) -> None:
        """Forget the producer and close."""
        self.unregisterProducer()
        self.loseConnection()

    def loseConnection(self) -> None:
        """Mark the wrapper closed (the file is left open)."""
        self.closed = 1

    def getPeer(self) -> Any:
        """``("file", "file")``."""
        return ("file", "file")

    getHost = getPeer

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Close."""
        self.loseConnection()
