"""TCP in process, on asyncio and uvloop: ports, connectors and services share one code path;
faults (port in use, privileged port, callbacks that raise, peers that vanish) and back-pressure."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import subprocess

import pytest

from netsupport import loop_param, run, until
from twistdlite import basic, internet, protocol, reactor
from twistdlite._connectors import TCPConnector
from twistdlite._ports import TCPPort
from twistdlite.error import CannotListenError, ConnectionAborted, ConnectionDone, ConnectionRefusedError


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        if b"boom" in data:
            raise RuntimeError("the protocol blew up")
        self.transport.write(data)


def echo_factory():
    return protocol.Factory.forProtocol(Echo)


async def roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    return data


@loop_param()
def test_listen_tcp_and_tcp_server_share_the_port_code(loop):
    async def main():
        port = reactor.listenTCP(0, echo_factory(), interface="127.0.0.1")
        assert type(port) is TCPPort
        number = port.getHost().port
        assert number > 0
        await until(lambda: port.server is not None)
        assert await roundtrip(number) == b"ping"
        await port.stopListening()
        with pytest.raises(OSError):
            await roundtrip(number)

        service = internet.TCPServer(0, echo_factory(), interface="127.0.0.1")
        service.privilegedStartService()  # binds: the real port is known before start
        assert type(service._port) is TCPPort
        number = service.getHost().port
        assert number > 0 and service._port.getHost().port == number
        await service.startService()
        assert service.running
        assert await roundtrip(number, b"x" * 100000) == b"x" * 100000
        await service.stopService()
        with pytest.raises(RuntimeError):
            service.getHost()
        with pytest.raises(OSError):
            await roundtrip(number)

    run(main(), loop)


def test_port_in_use_is_a_clear_cannot_listen_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    number = holder.getsockname()[1]
    try:
        service = internet.TCPServer(number, echo_factory(), interface="127.0.0.1")
        with pytest.raises(CannotListenError) as info:
            service.privilegedStartService()
        message = str(info.value)
        assert message.startswith(f"Couldn't listen on 127.0.0.1:{number}: Address already in use")
        assert "\n" not in message
        assert info.value.errno == errno.EADDRINUSE
        with pytest.raises(CannotListenError):
            reactor.listenTCP(number, echo_factory(), interface="127.0.0.1")
    finally:
        holder.close()


def test_privileged_port_error_explains_itself(monkeypatch):
    def refuse(self, address):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with pytest.raises(CannotListenError) as info:
        TCPPort(80, echo_factory(), interface="127.0.0.1").bind()
    assert str(info.value) == ("Couldn't listen on 127.0.0.1:80: Permission denied "
                               "(ports below 1024 need root: start as root and drop privileges with -u/--uid).")


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 1024


def test_privileged_port_as_nobody_fails_with_one_line_and_exit_1(tmp_path):
    if _unprivileged_port_start() <= 80:
        pytest.skip("this kernel lets anyone bind port 80")
    helpers = pytest.importorskip("daemon_helpers")  # the daemon tests' "run as nobody" helpers
    NOBODY, _user_kwargs, nobody_dir = helpers.NOBODY, helpers._user_kwargs, helpers.nobody_dir
    unprivileged_python = helpers.unprivileged_python
    launch_env = getattr(helpers, "launch_env", None) or getattr(helpers, "test_env")

    python, why = unprivileged_python()
    if python is None:
        pytest.skip(why)
    work = nobody_dir()
    try:
        tac = work / "low.tac"
        tac.write_text("from twistdlite import internet, protocol, service\n"
                       "application = service.Application('low')\n"
                       "internet.TCPServer(80, protocol.Factory(), interface='127.0.0.1')"
                       ".setServiceParent(application)\n")
        os.chmod(tac, 0o644)
        done = subprocess.run([python, "-m", "twistdlite", "-noy", str(tac), "--pidfile", ""], cwd=work,
                              env=launch_env(python), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, **_user_kwargs(NOBODY))
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == ("twistdlite: error: Couldn't listen on 127.0.0.1:80: Permission denied "
                         "(ports below 1024 need root: start as root and drop privileges with -u/--uid).")
    assert "Traceback" not in done.stderr


@loop_param()
def test_a_callback_that_raises_drops_that_connection_and_the_server_keeps_serving(loop, caplog):
    async def main():
        port = reactor.listenTCP(0, echo_factory(), interface="127.0.0.1")
        await until(lambda: port.server is not None)
        number = port.getHost().port
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        writer.write(b"boom")
        assert await reader.read() == b""  # dropped
        writer.close()
        assert await roundtrip(number, b"still here") == b"still here"
        await until(lambda: not port.connections)
        await port.stopListening()

    with caplog.at_level(logging.ERROR, logger="twistdlite"):
        run(main(), loop)
    failures = [r for r in caplog.records if "Unhandled error in Echo.dataReceived" in r.getMessage()]
    assert failures and failures[0].exc_info and "the protocol blew up" in str(failures[0].exc_info[1])


class Recording(basic.LineReceiver):
    MAX_LENGTH = 100

    def connectionMade(self):
        self.factory.protos.append(self)
        self.lines = []
        self.reason = None

    def lineReceived(self, line):
        self.lines.append(line)
        self.sendLine(line.upper())

    def connectionLost(self, reason=protocol.connectionDone):
        self.reason = reason


class RecordingFactory(protocol.ServerFactory):
    protocol = Recording

    def __init__(self):
        self.protos = []


@loop_param()
def test_peer_disconnecting_mid_line_and_a_line_over_max_length(loop):
    async def main():
        factory = RecordingFactory()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        await until(lambda: port.server is not None)
        number = port.getHost().port

        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        writer.write(b"first\r\nhalf a li")
        assert await reader.readexactly(7) == b"FIRST\r\n"
        writer.close()  # goes away mid-line
        await until(lambda: factory.protos[0].reason is not None)
        assert factory.protos[0].lines == [b"first"]
        assert factory.protos[0].reason.check(ConnectionDone)

        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        writer.write(b"ok\r\n" + b"x" * 500)  # no delimiter, far over MAX_LENGTH
        assert await reader.read() == b"OK\r\n"  # answered, then dropped
        writer.close()
        await until(lambda: factory.protos[1].reason is not None)
        assert factory.protos[1].lines == [b"ok"]

        reader, writer = await asyncio.open_connection("127.0.0.1", number)  # still serving
        writer.write(b"again\r\n")
        assert await reader.readexactly(7) == b"AGAIN\r\n"
        writer.close()
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


def _server_buffer(port) -> int:
    return max((adapter.transport.get_write_buffer_size() for adapter in port.connections), default=0)


@loop_param()
def test_fast_writer_to_slow_reader_keeps_server_memory_bounded(loop):
    """An echo server whose client never reads stops reading too: its send buffer stays small."""

    async def main():
        port = reactor.listenTCP(0, echo_factory(), interface="127.0.0.1")
        await until(lambda: port.server is not None)
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.setblocking(False)
        chunk = b"y" * 65536
        sent = 0
        biggest = 0
        stalled = 0
        try:
            for _ in range(4000):  # bounded: at most 256 MiB offered
                try:
                    sent += client.send(chunk)
                    stalled = 0
                except BlockingIOError:
                    stalled += 1
                    if stalled > 200:  # the server has stopped reading from us
                        break
                await asyncio.sleep(0)
                biggest = max(biggest, _server_buffer(port))
            assert stalled > 200, f"the server never stopped reading ({sent} bytes accepted)"
            # asyncio's high-water mark is 64 KiB; one read of up to 256 KiB may be echoed past it.
            assert biggest <= 1024 * 1024, f"the server buffered {biggest} bytes"
            assert sent < 64 * 1024 * 1024
            # Now read everything back: the server resumes and echoes it all, in order.
            client.setblocking(True)
            client.settimeout(10)
            received = 0
            while received < sent:
                data = await asyncio.get_running_loop().run_in_executor(None, client.recv, 1 << 20)
                assert data, "connection closed early"
                assert data == b"y" * len(data)
                received += len(data)
            assert received == sent
        finally:
            client.close()
            await port.stopListening()
            await port.loseAllConnections()

    run(main(), loop, timeout=60)


class Pausing(protocol.Protocol):
    def connectionMade(self):
        self.factory.proto = self
        self.received = b""
        self.transport.pauseProducing()

    def dataReceived(self, data):
        self.received += data


@loop_param()
def test_pause_and_resume_producing_stop_and_restart_reading(loop):
    async def main():
        factory = protocol.Factory.forProtocol(Pausing)
        factory.proto = None
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        await until(lambda: port.server is not None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port.getHost().port)
        writer.write(b"held back")
        await writer.drain()
        await until(lambda: factory.proto is not None)
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert factory.proto.received == b""
        factory.proto.transport.resumeProducing()
        await until(lambda: factory.proto.received == b"held back")
        writer.close()
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


class PausedAtOnce(protocol.Protocol):
    """Pauses in connectionMade; records what it is given and whether it was paused then."""

    def connectionMade(self):
        self.factory.proto = self
        self.paused = True
        self.received = b""
        self.while_paused = b""
        self.events = []
        self.transport.pauseProducing()

    def dataReceived(self, data):
        if self.paused:
            self.while_paused += data
        self.received += data
        self.events.append("data")

    def connectionLost(self, reason):
        self.events.append(reason.type.__name__)

    def resume(self):
        self.paused = False
        self.transport.resumeProducing()


async def _paused_server():
    """A port serving PausedAtOnce, bound (listening) but not yet accepting; (factory, port)."""
    factory = protocol.Factory.forProtocol(PausedAtOnce)
    factory.proto = None
    port = TCPPort(0, factory, interface="127.0.0.1")
    port.bind()
    return factory, port


async def _some_loop_turns(count=20):
    for _ in range(count):
        await asyncio.sleep(0.005)


@loop_param()
def test_data_that_arrives_while_paused_is_held_and_given_in_order_after_resume(loop):
    """Sent before the server even accepts (so a loop reads it at once): never seen while paused."""

    async def main():
        factory, port = await _paused_server()
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        try:
            client.sendall(b"first;")  # waits in the kernel until the connection is accepted
            await port.start()
            await until(lambda: factory.proto is not None, what="the connection")
            proto = factory.proto
            await _some_loop_turns()
            assert proto.received == b""
            proto.resume()
            await until(lambda: proto.received == b"first;", what="the held data")
            client.sendall(b"second;")
            await until(lambda: proto.received == b"first;second;", what="the data after resuming")
            proto.paused = True
            proto.transport.pauseProducing()
            client.sendall(b"third;")
            client.shutdown(socket.SHUT_WR)  # and an EOF: it must come after the data
            await _some_loop_turns()
            assert proto.received == b"first;second;" and proto.events == ["data", "data"]
            proto.resume()
            await until(lambda: "ConnectionDone" in proto.events, what="the end of the connection")
            assert proto.received == b"first;second;third;"
            assert proto.events == ["data", "data", "data", "ConnectionDone"]
            assert proto.while_paused == b""
        finally:
            client.close()
            await port.stopListening()
            await port.loseAllConnections()

    run(main(), loop)


@loop_param()
def test_a_paused_connection_really_stops_reading(loop):
    """Paused from connectionMade: the kernel buffers fill and the peer's writes block, then all arrives."""

    async def main():
        factory, port = await _paused_server()
        client = socket.create_connection(("127.0.0.1", port.getHost().port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        client.setblocking(False)
        try:
            client.send(b"x")  # already there when the connection is accepted
            await port.start()
            await until(lambda: factory.proto is not None, what="the connection")
            proto = factory.proto
            sent, stalled, chunk = 1, 0, b"y" * 65536
            while stalled < 100 and sent < 64 * 1024 * 1024:
                try:
                    sent += client.send(chunk)
                    stalled = 0
                except BlockingIOError:
                    stalled += 1
                    await asyncio.sleep(0.001)
            assert stalled >= 100, f"the server kept reading while paused ({sent} bytes accepted)"
            held = getattr(proto.transport, "held", None)
            assert held is None or len(held) <= 1024 * 1024, f"the transport read {len(held)} bytes while paused"
            assert proto.received == b""
            proto.resume()
            await until(lambda: len(proto.received) == sent, timeout=20, what="everything sent")
            assert proto.received == b"x" + b"y" * (sent - 1)
            assert proto.while_paused == b""
        finally:
            client.close()
            await port.stopListening()
            await port.loseAllConnections()

    run(main(), loop, timeout=60)


class Source:
    """A streaming producer writing 64 KiB chunks as fast as it is allowed to."""

    def __init__(self, transport, total):
        self.transport = transport
        self.left = total
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.stopped = False
        self.max_buffer = 0

    def pump(self):
        if self.paused or self.stopped:
            return
        if self.left <= 0:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        size = min(65536, self.left)
        self.transport.write(b"z" * size)
        self.left -= size
        self.max_buffer = max(self.max_buffer, self.transport.getWriteBufferSize())
        asyncio.get_running_loop().call_soon(self.pump)

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        self.resumes += 1
        self.paused = False
        self.pump()

    def stopProducing(self):
        self.stopped = True


class Sender(protocol.Protocol):
    def connectionMade(self):
        self.factory.source = Source(self.transport, self.factory.total)
        self.transport.registerProducer(self.factory.source, True)
        self.factory.source.pump()


class PullSender(protocol.Protocol):
    """A pull producer: one chunk per resumeProducing."""

    def connectionMade(self):
        self.left = self.factory.total
        self.calls = 0
        self.max_buffer = 0
        self.factory.sender = self
        self.transport.registerProducer(self, False)

    def resumeProducing(self):
        self.calls += 1
        self.max_buffer = max(self.max_buffer, self.transport.getWriteBufferSize())
        if self.left <= 0:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        size = min(65536, self.left)
        self.transport.write(b"p" * size)
        self.left -= size

    def stopProducing(self):
        pass


@loop_param()
@pytest.mark.parametrize("streaming", [True, False])
def test_registered_producers_follow_the_send_buffer(loop, streaming):
    total = 8 * 1024 * 1024

    async def main():
        factory = protocol.Factory.forProtocol(Sender if streaming else PullSender)
        factory.total = total
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        await until(lambda: port.server is not None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port.getHost().port, limit=1 << 16)
        writer.transport.set_write_buffer_limits(high=0)
        await asyncio.sleep(0.05)  # the client does not read yet: the server must hold back
        if streaming:
            source = factory.source
            await until(lambda: source.pauses > 0, what="the producer to be paused")
            assert source.left > 0
        else:
            # A pull producer is asked for more only while the send buffer has room: with the
            # client not reading, the calls stop, well short of the total.
            sender = factory.sender
            await until(lambda: sender.calls > 0, what="the producer to be asked")
            calls = sender.calls
            for _ in range(10):
                await asyncio.sleep(0.005)
                if sender.calls == calls:
                    break
                calls = sender.calls
            assert sender.calls == calls, "the pull producer is still being asked while the buffer is full"
            assert sender.left > 0 and sender.max_buffer <= 1024 * 1024, (sender.left, sender.max_buffer)
        got = 0
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            got += len(data)
        assert got == total
        if streaming:
            assert source.resumes > 0 and source.max_buffer <= 1024 * 1024
        else:
            assert factory.sender.calls >= total // 65536 and factory.sender.max_buffer <= 1024 * 1024
        writer.close()
        await port.stopListening()

    run(main(), loop, timeout=60)


class ClientRecorder(protocol.ClientFactory):
    protocol = Echo

    def __init__(self):
        self.events = []
        self.done = asyncio.get_running_loop().create_future()

    def startedConnecting(self, connector):
        self.events.append("started")

    def buildProtocol(self, addr):
        self.events.append(("build", addr.port))
        return protocol.ClientFactory.buildProtocol(self, addr)

    def clientConnectionFailed(self, connector, reason):
        self.events.append(("failed", reason.type))
        self.done.set_result(reason)

    def clientConnectionLost(self, connector, reason):
        self.events.append(("lost", reason.type))
        self.done.set_result(reason)


@loop_param()
def test_connect_tcp_reports_to_the_client_factory(loop):
    async def main():
        port = reactor.listenTCP(0, echo_factory(), interface="127.0.0.1")
        number = port.getHost().port
        factory = ClientRecorder()
        connector = reactor.connectTCP("127.0.0.1", number, factory)
        assert type(connector) is TCPConnector and connector.state == "connecting"
        assert connector.getDestination().port == number
        await until(lambda: connector.state == "connected")
        assert connector.getHost().host == "127.0.0.1" and connector.getHost().port not in (0, number)
        connector.disconnect()
        reason = await factory.done
        with pytest.raises(RuntimeError):
            connector.getHost()
        assert reason.check(ConnectionDone)
        assert factory.events == ["started", ("build", number), ("lost", ConnectionDone)]
        assert connector.state == "disconnected"

        await port.stopListening()
        refused = ClientRecorder()
        reactor.connectTCP("127.0.0.1", number, refused)
        reason = await refused.done
        assert reason.check(ConnectionRefusedError)
        assert refused.events == ["started", ("failed", ConnectionRefusedError)]

    run(main(), loop)


class Aborter(protocol.Protocol):
    def connectionMade(self):
        self.transport.abortConnection()


@loop_param()
def test_abort_connection_reports_connection_aborted(loop):
    async def main():
        port = reactor.listenTCP(0, echo_factory(), interface="127.0.0.1")
        factory = ClientRecorder()
        factory.protocol = Aborter
        reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
        reason = await factory.done
        assert reason.check(ConnectionAborted)
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


@loop_param()
def test_tcp_client_service_connects_and_stop_disconnects(loop):
    async def main():
        server = internet.TCPServer(0, RecordingFactory(), interface="127.0.0.1")
        server.privilegedStartService()
        await server.startService()
        factory = ClientRecorder()
        client = internet.TCPClient("127.0.0.1", server.getHost().port, factory)
        client.startService()
        await until(lambda: client._connection.state == "connected")
        await client.stopService()
        assert (await factory.done).check(ConnectionDone)
        await server.stopService()

    run(main(), loop)


class Counting(protocol.Protocol):
    def connectionMade(self):
        self.factory.made += 1
        self.factory.resetDelay()
        self.transport.loseConnection()


class Reconnecting(protocol.ReconnectingClientFactory):
    protocol = Counting
    initialDelay = 0.01
    maxDelay = 0.05
    made = 0


@loop_param()
def test_reconnecting_client_factory_reconnects_until_told_to_stop(loop):
    async def main():
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        number = holder.getsockname()[1]
        holder.close()
        factory = Reconnecting()
        connector = reactor.connectTCP("127.0.0.1", number, factory)
        await until(lambda: factory.retries >= 2, what="a few refused attempts")
        port = reactor.listenTCP(number, echo_factory(), interface="127.0.0.1")  # the server comes up
        await until(lambda: factory.made >= 3, what="repeated reconnections")
        factory.stopTrying()
        connector.disconnect()
        await until(lambda: connector.state == "disconnected")
        made = factory.made
        await asyncio.sleep(0.1)
        assert factory.made == made
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


class Native(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data[::-1])


@loop_param()
def test_plain_asyncio_protocol_factories_are_served_and_closed_on_stop(loop):
    async def main():
        service = internet.TCPServer(0, Native, interface="127.0.0.1")
        service.privilegedStartService()
        await service.startService()
        reader, writer = await asyncio.open_connection("127.0.0.1", service.getHost().port)
        writer.write(b"abc")
        assert await reader.readexactly(3) == b"cba"
        await service.stopService()
        assert await reader.read() == b""  # closed by the stop
        writer.close()

    run(main(), loop)


def test_listen_and_connect_before_the_loop_runs_start_when_it_does():
    """As at .tac load time: listenTCP binds at once, and both serve once the reactor's loop runs."""
    port = reactor.listenTCP(0, echo_factory(), interface="127.0.0.1")
    number = port.getHost().port
    lost = []

    class Factory(protocol.ClientFactory):
        protocol = Echo

        def clientConnectionLost(self, connector, reason):
            lost.append(reason)

    connector = reactor.connectTCP("127.0.0.1", number, Factory())
    assert connector.state == "connecting"

    async def main():
        await until(lambda: connector.state == "connected")
        connector.disconnect()
        await until(lambda: lost)
        await port.stopListening()
        await port.loseAllConnections()

    loop = asyncio.new_event_loop()
    reactor.install(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        reactor.uninstall()
        loop.close()
    assert lost[0].check(ConnectionDone)


def test_stream_server_endpoint_service():
    from twistdlite import endpoints

    async def main():
        service = internet.StreamServerEndpointService(endpoints.TCP4ServerEndpoint(0, interface="127.0.0.1"),
                                                       echo_factory())
        service.privilegedStartService()
        number = service.getHost().port
        await service.startService()
        assert await roundtrip(number) == b"ping"
        await service.stopService()

    run(main())
    with pytest.raises(TypeError):
        internet.StreamServerEndpointService(object(), echo_factory())


@loop_param()
def test_endpoints_connect_plain_asyncio_protocols_and_cancel(loop):
    from twistdlite import endpoints

    class Client(asyncio.Protocol):
        def __init__(self):
            self.received = b""

        def connection_made(self, transport):
            self.transport = transport
            transport.write(b"native")

        def data_received(self, data):
            self.received += data

    async def main():
        port = reactor.listenTCP(0, Native, interface="127.0.0.1")
        endpoint = endpoints.TCP4ClientEndpoint("127.0.0.1", port.getHost().port)
        proto = await endpoint.connect(Client)
        assert isinstance(proto, Client)
        await until(lambda: proto.received == b"evitan")
        proto.transport.close()

        # cancelling the Deferred abandons the attempt: no connection is made
        await until(lambda: not port.connections)
        attempt = endpoint.connect(Client)
        attempt.cancel()
        for _ in range(20):
            await asyncio.sleep(0.002)
        assert attempt.called and attempt.result.check(asyncio.CancelledError) and not port.connections
        attempt.addErrback(lambda failure: None)  # handled
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


def test_a_ports_connection_list_behaves_as_the_set_it_replaces():
    from twistdlite._ports import ConnectionList

    class Item:
        _prev = _next = None

    items = [Item() for _ in range(4)]
    connections = ConnectionList()
    assert not connections and len(connections) == 0
    for item in items:
        connections.add(item)
    connections.add(items[0])  # already in: nothing changes
    assert len(connections) == 4 and set(connections) == set(items)
    connections.discard(items[2])  # from the middle
    connections.discard(items[3])  # the head (the last added)
    connections.discard(Item())  # never added: nothing happens
    connections.discard(items[2])  # already gone: nothing happens
    assert len(connections) == 2 and set(connections) == {items[0], items[1]}
    for item in connections:  # iterating a snapshot: discarding meanwhile is safe
        connections.discard(item)
    assert not connections and list(connections) == []
    connections.add(items[2])
    assert list(connections) == [items[2]]
