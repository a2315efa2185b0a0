"""Protocol, Factory and LineReceiver: unit tests on a fake transport, and on a real loopback server."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest

from twistdlite import basic, internet, protocol
from twistdlite.address import IPv4Address
from twistdlite.error import ConnectionDone
from twistdlite.failure import Failure


class FakeTransport:
    """Records what a protocol writes and asks for (a stand-in for Twisted's StringTransport)."""

    disconnecting = False

    def __init__(self) -> None:
        self.written: list = []
        self.paused = 0
        self.stopped = False

    def value(self) -> bytes:
        return b"".join(self.written)

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.written.append(data)

    def writeSequence(self, seq) -> None:
        for data in seq:
            self.write(data)

    def loseConnection(self) -> None:
        self.disconnecting = True

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        self.paused -= 1

    def stopProducing(self) -> None:
        self.stopped = True
        self.loseConnection()

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "192.0.2.1", 4321)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 1234)


class Lines(basic.LineReceiver):
    """Records lines and raw data; a few lines act as commands."""

    def __init__(self) -> None:
        self.events: list = []

    def lineReceived(self, line: bytes) -> None:
        self.events.append(("line", line))
        if line == b"raw":
            self.setRawMode()
        elif line == b"pause":
            self.pauseProducing()
        elif line == b"quit":
            self.transport.loseConnection()
        elif line == b"clear":
            self.events.append(("cleared", self.clearLineBuffer()))

    def rawDataReceived(self, data: bytes) -> None:
        self.events.append(("raw", data))
        if b"|" in data:  # "|" switches back to line mode with the rest
            self.setLineMode(data[data.index(b"|") + 1:])

    def lineLengthExceeded(self, line: bytes) -> None:
        self.events.append(("too long", line))


def connected(proto: protocol.Protocol) -> FakeTransport:
    transport = FakeTransport()
    proto.makeConnection(transport)
    return transport


def feed(proto: protocol.Protocol, *chunks: bytes) -> None:
    for chunk in chunks:
        proto.dataReceived(chunk)


def lines(proto: Lines) -> list:
    return [data for kind, data in proto.events if kind == "line"]


# -- Protocol and Factory ----------------------------------------------------------------------

def test_make_connection_attaches_the_transport_and_calls_connection_made():
    class P(protocol.Protocol):
        made = 0

        def connectionMade(self) -> None:
            self.made += 1
            assert self.transport is not None and self.connected

    proto = P()
    transport = connected(proto)
    assert proto.made == 1 and proto.transport is transport and proto.connected
    proto.dataReceived(b"ignored by default")
    proto.connectionLost(Failure(ConnectionDone()))
    assert protocol.connectionDone.check(ConnectionDone)
    assert proto.logPrefix() == "P"


def test_factory_builds_protocols_that_know_their_factory():
    factory = protocol.ServerFactory.forProtocol(Lines)
    assert isinstance(factory, protocol.ServerFactory)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    assert isinstance(proto, Lines) and proto.factory is factory


def test_factory_start_and_stop_run_once_however_many_ports_use_it():
    calls: list = []

    class F(protocol.Factory):
        noisy = False

        def startFactory(self) -> None:
            calls.append("start")

        def stopFactory(self) -> None:
            calls.append("stop")

    factory = F()
    factory.doStart()
    factory.doStart()
    assert calls == ["start"] and factory.numPorts == 2
    factory.doStop()
    assert calls == ["start"]
    factory.doStop()
    assert calls == ["start", "stop"] and factory.numPorts == 0
    factory.doStop()  # one stop too many is ignored
    assert calls == ["start", "stop"]
    started = protocol.ServerFactory()
    started.noisy = False
    started.doStart()
    assert pickle.loads(pickle.dumps(started)).numPorts == 0  # a running count is not state


def test_client_factory_has_the_connection_callbacks():
    factory = protocol.ClientFactory()
    reason = Failure(ConnectionDone())
    factory.startedConnecting(None)
    factory.clientConnectionFailed(None, reason)
    factory.clientConnectionLost(None, reason)


# -- LineReceiver on a fake transport -------------------------------------------------------------

def test_many_lines_in_one_chunk():
    proto = Lines()
    connected(proto)
    feed(proto, b"".join(b"line %d\r\n" % i for i in range(1000)))
    assert lines(proto) == [b"line %d" % i for i in range(1000)]


def test_a_line_split_across_chunks_even_byte_by_byte():
    proto = Lines()
    connected(proto)
    feed(proto, b"hel", b"lo\r", b"\nwor", b"ld\r\n")
    data = b"split\r\nacross\r\n"
    feed(proto, *[data[i:i + 1] for i in range(len(data))])
    assert lines(proto) == [b"hello", b"world", b"split", b"across"]


def test_empty_lines_and_an_unfinished_line():
    proto = Lines()
    connected(proto)
    feed(proto, b"\r\n\r\nnot yet")
    assert lines(proto) == [b"", b""]
    feed(proto, b" finished\r\n")
    assert lines(proto)[-1] == b"not yet finished"


def test_a_custom_delimiter_and_send_line():
    class Newline(Lines):
        delimiter = b"\n"

    proto = Newline()
    transport = connected(proto)
    feed(proto, b"a\nb\r\n")
    assert lines(proto) == [b"a", b"b\r"]
    proto.sendLine(b"reply")
    assert transport.value() == b"reply\n"
    plain = Lines()
    transport = connected(plain)
    plain.sendLine(b"one")
    plain.sendLine(b"")
    assert transport.value() == b"one\r\n\r\n"


def test_changing_the_delimiter_takes_effect_for_the_next_line():
    class Switch(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line == b"switch":
                self.delimiter = b"\n"

    proto = Switch()
    connected(proto)
    feed(proto, b"switch\r\nx\ny\r\n")
    assert lines(proto) == [b"switch", b"x", b"y\r"]


def test_max_length_calls_line_length_exceeded():
    class Short(Lines):
        MAX_LENGTH = 10

    exact = Short()
    connected(exact)
    feed(exact, b"a" * 10 + b"\r\n")
    assert lines(exact) == [b"a" * 10] and ("too long", b"a" * 10) not in exact.events

    over = Short()
    connected(over)
    feed(over, b"b" * 11 + b"\r\nnext\r\n")
    assert over.events == [("too long", b"b" * 11 + b"\r\nnext\r\n")]  # the line and the rest

    unfinished = Short()
    connected(unfinished)
    feed(unfinished, b"c" * 11)
    assert unfinished.events == []  # 11 bytes could still be 10 plus the first byte of b"\r\n"
    feed(unfinished, b"c")
    assert unfinished.events == [("too long", b"c" * 12)]


def test_a_line_of_max_length_whose_delimiter_is_split_is_not_too_long():
    class Short(Lines):
        MAX_LENGTH = 10

    proto = Short()
    connected(proto)
    feed(proto, b"a" * 10 + b"\r", b"\n")
    assert proto.events == [("line", b"a" * 10)]


def test_line_length_exceeded_drops_the_connection_by_default():
    class Short(basic.LineReceiver):
        MAX_LENGTH = 4

        def lineReceived(self, line: bytes) -> None:
            raise AssertionError("no line should arrive")

    proto = Short()
    transport = connected(proto)
    feed(proto, b"too long\r\n")
    assert transport.disconnecting


def test_raw_mode_mid_buffer_and_back_to_line_mode():
    proto = Lines()
    connected(proto)
    feed(proto, b"one\r\nraw\r\nxyz", b"more")
    assert proto.events == [("line", b"one"), ("line", b"raw"), ("raw", b"xyz"), ("raw", b"more")]
    proto = Lines()
    connected(proto)
    feed(proto, b"raw\r\nabc|line1\r\nline2\r\n")
    assert proto.events == [("line", b"raw"), ("raw", b"abc|line1\r\nline2\r\n"),
                            ("line", b"line1"), ("line", b"line2")]


def test_set_line_mode_with_extra_data_outside_a_callback():
    proto = Lines()
    connected(proto)
    proto.setRawMode()
    feed(proto, b"raw bytes")
    proto.setLineMode(b"x\r\ny\r\n")
    assert proto.events == [("raw", b"raw bytes"), ("line", b"x"), ("line", b"y")]


def test_losing_the_connection_stops_line_delivery():
    proto = Lines()
    connected(proto)
    feed(proto, b"a\r\nquit\r\nb\r\n")
    assert lines(proto) == [b"a", b"quit"]


def test_clear_line_buffer_returns_what_is_left():
    proto = Lines()
    connected(proto)
    feed(proto, b"a\r\nclear\r\nb\r\nc")
    assert proto.events == [("line", b"a"), ("line", b"clear"), ("cleared", b"b\r\nc")]
    assert proto.clearLineBuffer() == b""


def test_pause_holds_lines_until_resume():
    proto = Lines()
    transport = connected(proto)
    feed(proto, b"a\r\npause\r\nb\r\nc\r\n")
    assert lines(proto) == [b"a", b"pause"] and transport.paused == 1
    feed(proto, b"d\r\n")
    assert lines(proto) == [b"a", b"pause"]  # still paused: buffered
    proto.resumeProducing()
    assert lines(proto) == [b"a", b"pause", b"b", b"c", b"d"] and transport.paused == 0
    proto.stopProducing()
    assert transport.stopped


class Reentrant(Lines):
    """Feeds itself more data from inside lineReceived (as a transport may, synchronously)."""

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(line)
        if line == b"nested":
            self.dataReceived(b"inner1\r\ninner2\r\n")


@pytest.mark.parametrize("chunks, expected", [
    # One whole line a chunk (LineReceiver's fast path) behaves as the general path does.
    ([b"a\r\n", b"b\r\n", b"\r\n"], [("line", b"a"), ("line", b"b"), ("line", b"")]),
    ([b"nested\r\n"], [("line", b"nested"), ("line", b"inner1"), ("line", b"inner2")]),
    ([b"nested\r\n", b"after\r\n"],
     [("line", b"nested"), ("line", b"inner1"), ("line", b"inner2"), ("line", b"after")]),
    ([b"pause\r\n", b"held\r\n"], [("line", b"pause")]),
    ([b"raw\r\n", b"bytes\r\n"], [("line", b"raw"), ("raw", b"bytes\r\n")]),
    ([b"par", b"tial\r\n", b"whole\r\n"], [("line", b"partial"), ("line", b"whole")]),
    ([b"x" * 11 + b"\r\n", b"next\r\n"], [("too long", b"x" * 11 + b"\r\n"), ("line", b"next")]),
])
def test_one_line_chunks_behave_as_the_general_path(chunks, expected):
    class Short(Reentrant):
        MAX_LENGTH = 10

    proto = Short()
    connected(proto)
    feed(proto, *chunks)
    assert proto.events == expected


def test_a_paused_one_line_chunk_keeps_what_arrived_meanwhile():
    class PauseNested(Lines):
        def lineReceived(self, line: bytes) -> None:
            super().lineReceived(line)
            if line == b"go":
                self.pauseProducing()
                self.dataReceived(b"later\r\n")

    proto = PauseNested()
    connected(proto)
    feed(proto, b"go\r\n")
    assert lines(proto) == [b"go"]
    proto.resumeProducing()
    assert lines(proto) == [b"go", b"later"]


# -- a real server on 127.0.0.1 ---------------------------------------------------------------------

class Echo(basic.LineReceiver):
    """Echoes lines; misbehaves on command."""

    def connectionMade(self) -> None:
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.sendLine(b"hello %s %s" % (peer.host.encode(), str(host.port).encode()))

    def lineReceived(self, line: bytes) -> None:
        if line == b"boom":
            raise RuntimeError("boom in lineReceived")
        self.transport.writeSequence([b"echo: ", line, self.delimiter])


class Server:
    """A TCPServer on 127.0.0.1, port 0, for the length of an ``async with``."""

    def __init__(self, factory: protocol.Factory) -> None:
        self.service = internet.TCPServer(0, factory, interface="127.0.0.1")

    async def __aenter__(self) -> int:
        self.service.privilegedStartService()
        await self.service.startService()
        return self.service.getHost().port

    async def __aexit__(self, *exc) -> None:
        await self.service.stopService()


async def _client(port: int):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    greeting = await asyncio.wait_for(reader.readline(), 5)
    return reader, writer, greeting


def _run(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def test_a_real_connection_echoes_and_reports_its_addresses():
    async def main() -> None:
        async with Server(protocol.ServerFactory.forProtocol(Echo)) as port:
            reader, writer, greeting = await _client(port)
            assert greeting == b"hello 127.0.0.1 %d\r\n" % port
            writer.write(b"one\r\ntw")
            await writer.drain()
            writer.write(b"o\r\n")
            assert await reader.readline() == b"echo: one\r\n"
            assert await reader.readline() == b"echo: two\r\n"
            writer.close()

    _run(main())


def test_an_exception_in_line_received_drops_only_that_connection(caplog):
    caplog.set_level(logging.ERROR, logger="twistdlite")

    async def main() -> None:
        async with Server(protocol.ServerFactory.forProtocol(Echo)) as port:
            r1, w1, _ = await _client(port)
            r2, w2, _ = await _client(port)
            w1.write(b"boom\r\n")
            assert await asyncio.wait_for(r1.read(), 5) == b""  # dropped
            w2.write(b"still here\r\n")
            assert await r2.readline() == b"echo: still here\r\n"
            r3, w3, greeting = await _client(port)  # the server still accepts
            assert greeting.startswith(b"hello")
            for writer in (w1, w2, w3):
                writer.close()

    _run(main())
    records = [r for r in caplog.records if "dataReceived" in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info and records[0].exc_info[0] is RuntimeError
    assert "boom in lineReceived" in caplog.text and "Traceback" in caplog.text


@pytest.mark.parametrize("where", ["buildProtocol", "connectionMade", "connectionLost"])
def test_exceptions_in_other_callbacks_are_logged_and_the_server_goes_on(caplog, where):
    caplog.set_level(logging.ERROR, logger="twistdlite")

    class Faulty(Echo):
        def connectionMade(self) -> None:
            if where == "connectionMade" and self.factory.count == 1:
                raise RuntimeError("boom in connectionMade")
            super().connectionMade()

        def connectionLost(self, reason=protocol.connectionDone) -> None:
            if where == "connectionLost":
                raise RuntimeError("boom in connectionLost")

    class Factory(protocol.ServerFactory):
        protocol = Faulty
        count = 0

        def buildProtocol(self, addr):
            self.count += 1
            if where == "buildProtocol" and self.count == 1:
                raise RuntimeError("boom in buildProtocol")
            return super().buildProtocol(addr)

    async def main() -> None:
        async with Server(Factory()) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if where == "connectionLost":
                assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"hello")
            else:
                assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped at once
            writer.close()
            reader, writer, greeting = await _client(port)
            assert greeting.startswith(b"hello")
            writer.write(b"x\r\n")
            assert await reader.readline() == b"echo: x\r\n"
            writer.close()
            for _ in range(500):  # until the server has seen the closes
                if f"boom in {where}" in caplog.text:
                    break
                await asyncio.sleep(0.01)

    _run(main())
    assert f"boom in {where}" in caplog.text
    assert any(r.exc_info for r in caplog.records if where in r.getMessage())
