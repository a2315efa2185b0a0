"""Helpers for the twistdlite.web tests: an HTTP channel over a fake transport, and a response parser."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from twistdlite.address import IPv4Address


class WebTransport:
    """A transport recording what an HTTPChannel writes; closing it reports connectionLost on the next turn."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.aborted = False
        self.paused = False
        self.producer: Any = None
        self.proto: Any = None
        self.transport = self  # the "inner" asyncio transport the channel asks about half-closing

    def can_write_eof(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.data += data

    def writeSequence(self, pieces) -> None:
        for piece in pieces:
            self.write(piece)

    def _lost(self) -> None:
        if self.proto is not None:
            proto, self.proto = self.proto, None
            if self.producer is not None:
                self.producer.stopProducing()
            proto.connectionLost(None)

    def loseConnection(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_event_loop().call_soon(self._lost)

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()

    def loseWriteConnection(self) -> None:
        self.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "192.0.2.7", 50000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def take(self) -> bytes:
        data = bytes(self.data)
        self.data.clear()
        return data


def connect(site: Any) -> tuple:
    """(channel, transport): a channel the site built, connected to a :class:`WebTransport`."""
    channel = site.buildProtocol(None)
    transport = WebTransport()
    transport.proto = channel
    channel.makeConnection(transport)
    return channel, transport


async def settle(turns: int = 5) -> None:
    """Let callbacks scheduled on the loop run."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def exchange(site: Any, data: bytes, turns: int = 5, timeout: float = 10.0) -> bytes:
    """Feed ``data`` to a new connection of ``site``; what it answered once it answered (and a few turns more)."""
    channel, transport = connect(site)
    channel.dataReceived(data)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not transport.data and not transport.closed and loop.time() < deadline:
        await asyncio.sleep(0.001)
    await settle(turns)
    return transport.take()


class Response:
    """One parsed response."""

    def __init__(self, status: int, reason: str, headers: dict, body: bytes, raw_head: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> last value (str)
        self.body = body
        self.raw_head = raw_head

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:60]!r}>"


def parse_responses(data: bytes, head_only: tuple = ()) -> list:
    """The responses in ``data`` (Content-Length, chunked, or to the end); indexes in ``head_only`` have no body."""
    responses = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"incomplete head: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, code, reason = (status_line.split(" ", 2) + [""])[:3]
        assert version == "HTTP/1.1", status_line
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(code)
        if len(responses) in head_only or code in (204, 304) or 100 <= code < 200:
            body = b""
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body, rest = rest[:length], rest[length:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            body, rest = rest, b""
        responses.append(Response(code, reason, headers, body, head))
    return responses


def one(data: bytes, head_only: bool = False) -> Response:
    """The single response in ``data``."""
    responses = parse_responses(data, (0,) if head_only else ())
    assert len(responses) == 1, responses
    return responses[0]


def get(path: bytes, *headers: bytes, method: bytes = b"GET", version: bytes = b"HTTP/1.1",
        body: Optional[bytes] = None) -> bytes:
    """A request's bytes."""
    lines = [method + b" " + path + b" " + version] + list(headers)
    if version == b"HTTP/1.1" and not any(h.lower().startswith(b"host:") for h in headers):
        lines.append(b"Host: test")  # (HTTP/1.1 requires it; h11 insists)
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
