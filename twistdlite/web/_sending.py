"""Streaming a body from a file to a request, a chunk at a time while the client reads.

:class:`ChunkSender` is the push producer that :class:`twistdlite.web.static.File`
registers for a body too large to write at once (one range of a file) and that
:mod:`twistdlite.web._byteranges` uses for the parts of a
``multipart/byteranges`` answer: it writes up to :data:`BUDGET` chunks per
turn of the loop (a fast client does not monopolise it), stops while the
transport's buffer is full (``pauseProducing``) and goes on when it drains.
A subclass says what the next chunk is (:meth:`ChunkSender.next_chunk`) and
how its file is released (:meth:`ChunkSender.release`).

A body the file can no longer give (a read error, or a file truncated while
it is sent) cannot meet the ``Content-Length`` already announced: the error or
the short send is logged and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

log = logging.getLogger("twistdlite.web")

#: Bytes read from the file per chunk.
CHUNK_SIZE = 65536
#: Chunks written per turn of the loop.
BUDGET = 16


class ShortSend(Exception):
    """The file ended before the body announced: the message says where."""


class ChunkSender:
    """A push producer writing a request's body chunk by chunk (subclass it: ``next_chunk``, ``release``)."""

    def __init__(self, request: Any, name: str) -> None:
        self.request = request
        self.name = name
        self.paused = False
        self.sending = True
        self._scheduled: Optional[asyncio.Handle] = None

    def next_chunk(self) -> Optional[bytes]:
        """The next bytes of the body, or None once it is all sent; may raise OSError or :class:`ShortSend`."""
        raise NotImplementedError

    def release(self) -> None:
        """Close the file (called once, when the body is done or the sending stops)."""

    def start(self) -> None:
        """Register with the request and send what the send buffer takes."""
        self.request.registerProducer(self, True)
        self._send()

    def _send(self) -> None:
        self._scheduled = None
        budget = BUDGET
        request = self.request
        while not self.paused and self.sending:
            try:
                data = self.next_chunk()
            except OSError as exc:
                log.error("Error reading %s while sending it: %s; closing the connection", self.name, exc)
                self._cut_short()
                return
            except ShortSend as exc:
                log.warning("Short send: %s; closing the connection", exc)
                self._cut_short()
                return
            if data is None:
                self._close()
                request.unregisterProducer()
                request.finish()
                return
            request.write(data)
            budget -= 1
            if budget == 0:
                if not self.paused and self.sending:
                    self._scheduled = asyncio.get_event_loop().call_soon(self._send)
                return

    def _cut_short(self) -> None:
        self._close()
        request = self.request
        request.unregisterProducer()
        if not request._disconnected:
            request._persistent = False
            request.channel._close(abort=True)

    def pauseProducing(self) -> None:
        """The client is not keeping up: stop reading the file."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The client caught up: go on."""
        self.paused = False
        if self._scheduled is None and self.sending:
            self._send()

    def stopProducing(self) -> None:
        """The connection was lost: close the file."""
        self._close()

    def _close(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self.sending:
            self.sending = False
            self.release()
