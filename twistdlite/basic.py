"""Line- and message-oriented protocols, mirroring ``twisted.protocols.basic``."""

from __future__ import annotations

import struct
from typing import Any, Optional

from twistdlite.protocol import Protocol

__all__ = [
    "LineReceiver",
    "LineOnlyReceiver",
    "NetstringReceiver",
    "NetstringParseError",
    "IntNStringReceiver",
    "Int32StringReceiver",
    "Int16StringReceiver",
    "Int8StringReceiver",
    "StringTooLongError",
    "FileSender",
]


class NetstringParseError(ValueError):
    """The peer sent something that is not a netstring (or one over MAX_LENGTH)."""


class StringTooLongError(AssertionError):
    """A string is too long to be sent with this length prefix."""


class LineReceiver(Protocol):
    """A protocol that receives lines and/or raw data.

    Lines end with ``delimiter`` (``b"\\r\\n"``); ``lineReceived`` is called with
    each line, without its delimiter. A line longer than ``MAX_LENGTH`` calls
    ``lineLengthExceeded``, which by default drops the connection.
    ``setRawMode()`` switches to ``rawDataReceived``; ``setLineMode()`` back.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384
    line_mode = 1
    paused = False
    _buffer = b""
    _pos = 0
    _busyReceiving = False

    def clearLineBuffer(self) -> bytes:
        """Discard and return what has been received but not yet handled."""
        rest = self._buffer[self._pos:]
        self._buffer = b""
        self._pos = 0
        return rest

    def dataReceived(self, data: bytes) -> Any:
        """Split ``data`` into lines (or hand it on raw) and dispatch them."""
        if not self._buffer and not self._busyReceiving and self.line_mode and not self.paused:
            # The common case, a chunk that is exactly one whole line with nothing
            # buffered: no buffer bookkeeping. Anything else takes the general path.
            delimiter = self.delimiter
            end = data.find(delimiter)
            if 0 <= end <= self.MAX_LENGTH and end + len(delimiter) == len(data):
                self._busyReceiving = True
                try:
                    why = self.lineReceived(data[:end])
                finally:
                    self._busyReceiving = False
                if why or not self._buffer or (self.transport is not None and self.transport.disconnecting):
                    return why
                return self.dataReceived(b"")  # what arrived while lineReceived ran
        if self._busyReceiving:
            self._buffer += data
            return None
        self._busyReceiving = True
        try:
            if self._pos:
                self._buffer = self._buffer[self._pos:] + data
                self._pos = 0
            elif self._buffer:
                self._buffer += data
            else:
                self._buffer = data
            while not self.paused:
                if self.line_mode:
                    delimiter = self.delimiter  # lineReceived may change it
                    buf = self._buffer
                    pos = self._pos
                    end = buf.find(delimiter, pos)
                    if end < 0:
                        # A line of MAX_LENGTH may still be waiting for the rest of its delimiter.
                        if len(buf) - pos >= self.MAX_LENGTH + len(delimiter):
                            line = self.clearLineBuffer()
                            return self.lineLengthExceeded(line)
                        break
                    self._pos = end + len(delimiter)
                    if end - pos > self.MAX_LENGTH:
                        line = buf[pos:]
                        self._buffer = b""
                        self._pos = 0
                        return self.lineLengthExceeded(line)
                    why = self.lineReceived(buf[pos:end])
                    if why or (self.transport is not None and self.transport.disconnecting):
                        return why
                else:
                    rest = self.clearLineBuffer()
                    if not rest:
                        break
                    why = self.rawDataReceived(rest)
                    if why:
                        return why
            return None
        finally:
            self._busyReceiving = False
            if self._pos:
                self._buffer = self._buffer[self._pos:]
                self._pos = 0

    def setLineMode(self, extra: bytes = b"") -> Any:
        """Switch to line mode; ``extra`` is handled as if just received."""
        self.line_mode = 1
        if extra:
            return self.dataReceived(extra)
        return None

    def setRawMode(self) -> None:
        """Switch to raw mode: further data goes to ``rawDataReceived``."""
        self.line_mode = 0

    def pauseProducing(self) -> None:
        """Stop handling lines (and reading from the transport)."""
        self.paused = True
        if self.transport is not None:
            self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Handle lines again, starting with any already buffered."""
        self.paused = False
        if self.transport is not None:
            self.transport.resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self) -> None:
        """Stop for good and close the connection."""
        self.paused = True
        if self.transport is not None:
            self.transport.stopProducing()

    def rawDataReceived(self, data: bytes) -> Any:
        """Called with raw data in raw mode; override it."""
        raise NotImplementedError

    def lineReceived(self, line: bytes) -> Any:
        """Called with each line (without its delimiter); override it."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Optional[Any]:
        """Write ``line`` followed by the delimiter."""
        return self.transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """Called with an over-long line; the default drops the connection."""
        return self.transport.loseConnection()


class LineOnlyReceiver(Protocol):
    """A simpler, faster line protocol: lines only, no raw mode, no pausing.

    ``lineReceived`` gets each line without its ``delimiter``; a line (or an
    unterminated tail) longer than ``MAX_LENGTH`` calls ``lineLengthExceeded``,
    which by default drops the connection.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384
    _buffer = b""

    def dataReceived(self, data: bytes) -> Any:
        """Split the data into lines and hand each one to ``lineReceived``."""
        lines = (self._buffer + data).split(self.delimiter)
        self._buffer = lines.pop()
        for line in lines:
            if self.transport is not None and self.transport.disconnecting:
                return None
            if len(line) > self.MAX_LENGTH:
                return self.lineLengthExceeded(line)
            self.lineReceived(line)
        if len(self._buffer) > self.MAX_LENGTH:
            tail, self._buffer = self._buffer, b""
            return self.lineLengthExceeded(tail)
        return None

    def lineReceived(self, line: bytes) -> Any:
        """Called with each line (without its delimiter); override it."""
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Optional[Any]:
        """Write ``line`` followed by the delimiter."""
        return self.transport.writeSequence((line, self.delimiter))

    def lineLengthExceeded(self, line: bytes) -> Any:
        """Called with an over-long line; the default drops the connection."""
        return self.transport.loseConnection()


class NetstringReceiver(Protocol):
    """Receives netstrings (``b"5:hello,"``): ``stringReceived`` gets each payload.

    A malformed netstring, or one announcing more than ``MAX_LENGTH`` bytes,
    drops the connection (``brokenPeer`` is set).
    """

    MAX_LENGTH = 99999
    brokenPeer = 0
    _buffer = b""  # received, not yet parsed from _pos on
    _pos = 0
    _busyReceiving = False
    _need = 0  # bytes from _pos the netstring being read needs in all (0: not known yet)
    _pending: Optional[list] = None  # chunks of that netstring, joined once they are enough
    _pendingSize = 0

    def stringReceived(self, string: bytes) -> None:
        """Called with each payload; override it."""
        raise NotImplementedError

    def sendString(self, string: bytes) -> None:
        """Send ``string`` as a netstring."""
        self.transport.writeSequence((b"%d:" % len(string), string, b","))

    def dataReceived(self, data: bytes) -> None:
        """Parse netstrings out of the data; drop the connection on a malformed one.

        The data is parsed with an offset and each payload sliced out once, and
        the chunks of a long netstring are joined only once it is complete, so
        the work is linear in what arrives however it is split.
        """
        if self.brokenPeer:
            return
        if self._busyReceiving:  # called from stringReceived: parsed when it returns
            self._buffer += data
            return
        if self._need:
            have = len(self._buffer) - self._pos + self._pendingSize + len(data)
            if have < self._need:
                if self._pending is None:
                    self._pending = []
                self._pending.append(data)
                self._pendingSize += len(data)
                return
        if self._pending:
            buffer = b"".join([self._buffer[self._pos:], *self._pending, data])
            self._pending = None
            self._pendingSize = 0
        elif self._pos:
            buffer = self._buffer[self._pos:] + data
        elif self._buffer:
            buffer = self._buffer + data
        else:
            buffer = data
        self._buffer = buffer
        self._pos = 0
        self._need = 0
        self._busyReceiving = True
        try:
            self._parse()
        except NetstringParseError as exc:
            self._handle_parse_error(exc)
        finally:
            self._busyReceiving = False
            if self._pos:
                self._buffer = self._buffer[self._pos:]
                self._pos = 0

    def _parse(self) -> None:
        """Hand on every complete netstring from ``_pos``; note how much the next one needs."""
        while not self.brokenPeer:
            buffer = self._buffer  # stringReceived may have added to it
            pos = self._pos
            if pos >= len(buffer):
                return
            if self.transport is not None and self.transport.disconnecting:
                return
            digits_max = len(str(self.MAX_LENGTH))
            colon = buffer.find(b":", pos, pos + digits_max + 2)
            if colon < 0:
                if len(buffer) - pos > digits_max or not buffer[pos:].isdigit():
                    raise NetstringParseError("bad length prefix")
                return
            digits = buffer[pos:colon]
            if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
                raise NetstringParseError(f"bad length prefix {digits[:20]!r}")
            size = int(digits)
            if size > self.MAX_LENGTH:
                raise NetstringParseError(f"netstring of {size} bytes is over MAX_LENGTH {self.MAX_LENGTH}")
            start = colon + 1
            end = start + size
            if len(buffer) <= end:
                self._need = end + 1 - pos
                return
            if buffer[end] != 0x2C:  # b","
                raise NetstringParseError("missing the trailing comma")
            self._pos = end + 1
            self.stringReceived(buffer[start:end])

    def _handle_parse_error(self, exc: NetstringParseError) -> None:
        import logging

        logging.getLogger("twistdlite").info("Dropping a connection that sent a bad netstring: %s", exc)
        self.brokenPeer = 1
        self._buffer = b""
        self._pos = 0
        self._need = 0
        self._pending = None
        self._pendingSize = 0
        if self.transport is not None:
            self.transport.loseConnection()


class _Recvd:
    """``IntNStringReceiver.recvd``: what has been received and not yet parsed (read it, or set it).

    Read inside ``stringReceived`` it is the data after the string being
    handed on (what protocol switching passes to the next protocol); set
    there (or between calls), parsing goes on from the new value.
    A non-data descriptor: setting it stores ``recvd`` on the instance,
    which ``dataReceived`` takes up as its buffer.
    """

    def __get__(self, instance: Any, owner: Optional[type] = None) -> Any:
        if instance is None:
            return self
        if instance._parsing:
            return instance._buffer[instance._offset:]
        if instance._pending is not None:
            return b"".join(instance._pending)
        return instance._buffer


class IntNStringReceiver(Protocol):
    """Receives strings each prefixed with its length as a big-endian integer.

    Subclasses set ``structFormat`` and ``prefixLength``. ``stringReceived``
    gets each payload; a length over ``MAX_LENGTH`` calls
    ``lengthLimitExceeded``, which by default drops the connection.
    :attr:`recvd` is the data received and not yet parsed, as in Twisted.
    """

    MAX_LENGTH = 99999
    structFormat = "!I"
    prefixLength = 4
    recvd = _Recvd()
    _buffer = b""
    _offset = 0  # while parsing: where the data after the string being handed on starts in _buffer
    _parsing = False
    # A string longer than what has arrived of it: its chunks, joined once it is whole
    # (adding each chunk to one buffer would copy a long string over and over).
    _pending: Optional[list] = None
    _pending_size = 0
    _pending_need = 0

    def stringReceived(self, string: bytes) -> None:
        """Called with each payload; override it."""
        raise NotImplementedError

    def lengthLimitExceeded(self, length: int) -> None:
        """Called with a length over ``MAX_LENGTH``; the default drops the connection."""
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """Parse length-prefixed strings out of the data."""
        if "recvd" in self.__dict__:  # set by the application between calls: parse from it
            buffer = self.__dict__.pop("recvd") + data
            self._pending = None
        elif self._pending is not None:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < self._pending_need:
                return
            buffer = b"".join(self._pending)
            self._pending = None
        else:
            buffer = self._buffer + data if self._buffer else data
        offset = 0
        prefix = self.prefixLength
        fmt = self.structFormat
        end = len(buffer)
        waiting = 0
        self._buffer = buffer
        self._parsing = True
        try:
            while end - offset >= prefix:
                if self.transport is not None and self.transport.disconnecting:
                    self._buffer = b""
                    return
                (length,) = struct.unpack_from(fmt, buffer, offset)
                if length > self.MAX_LENGTH:
                    self._offset = offset
                    self.lengthLimitExceeded(length)
                    self._buffer = buffer[offset:]
                    return
                start = offset + prefix
                if end - start < length:
                    waiting = prefix + length
                    break
                offset = start + length
                self._offset = offset
                self.stringReceived(buffer[start:offset])
                if "recvd" in self.__dict__:  # stringReceived set recvd: parse on from it
                    buffer = self._buffer = self.__dict__.pop("recvd")
                    offset = 0
                    end = len(buffer)
        finally:
            self._parsing = False
        rest = buffer[offset:] if offset else buffer
        if waiting:
            self._buffer = b""
            self._pending, self._pending_size, self._pending_need = [rest], len(rest), waiting
        else:
            self._buffer = rest

    def sendString(self, string: bytes) -> None:
        """Send ``string`` with its length prefix (``StringTooLongError`` if it cannot fit)."""
        if len(string) >= 2 ** (8 * self.prefixLength):
            raise StringTooLongError(
                f"Try to send {len(string)} bytes whereas maximum is {2 ** (8 * self.prefixLength)}"
            )
        self.transport.writeSequence((struct.pack(self.structFormat, len(string)), string))


class Int32StringReceiver(IntNStringReceiver):
    """Strings prefixed with a 4-byte big-endian length."""

    structFormat = "!I"
    prefixLength = 4


class Int16StringReceiver(IntNStringReceiver):
    """Strings prefixed with a 2-byte big-endian length."""

    structFormat = "!H"
    prefixLength = 2


class Int8StringReceiver(IntNStringReceiver):
    """Strings prefixed with a 1-byte length."""

    structFormat = "!B"
    prefixLength = 1


class FileSender:
    """Send a file to a consumer (a transport) as a pull producer, chunk by chunk, as Twisted's.

    ``beginFileTransfer(file, consumer, transform=None)`` registers itself
    with ``consumer`` and returns a Deferred fired with the last byte sent once
    the whole file is written (or failed if the consumer stops it first).
    ``transform``, if given, maps each chunk before it is written.
    """

    CHUNK_SIZE = 2 ** 14
    lastSent = b""
    deferred: Any = None

    def beginFileTransfer(self, file: Any, consumer: Any, transform: Any = None) -> Any:
        """Start sending ``file`` to ``consumer``; returns the Deferred of the transfer."""
        from twistdlite.defer import Deferred

        self.file = file
        self.consumer = consumer
        self.transform = transform
        self.deferred = deferred = Deferred()
        self.consumer.registerProducer(self, False)
        return deferred

    def resumeProducing(self) -> None:
        """Write the next chunk; at the end of the file, unregister and fire the Deferred."""
        chunk = b""
        if self.file:
            chunk = self.file.read(self.CHUNK_SIZE)
        if not chunk:
            self.file = None
            self.consumer.unregisterProducer()
            if self.deferred:
                self.deferred.callback(self.lastSent)
                self.deferred = None
            return
        if self.transform:
            chunk = self.transform(chunk)
        self.consumer.write(chunk)
        self.lastSent = chunk[-1:]

    def pauseProducing(self) -> None:
        """Nothing to do: a pull producer only writes when asked."""

    def stopProducing(self) -> None:
        """The consumer stops the transfer: the Deferred fails."""
        if self.deferred:
            self.deferred.errback(Exception("Consumer asked us to stop producing"))
            self.deferred = None
