"""Line- and message-oriented protocols, mirroring ``twisted.protocols.basic``."""

from __future__ import annotations

from typing import Any, Optional

from twistdlite.protocol import Protocol

__all__ = ["LineReceiver"]


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
