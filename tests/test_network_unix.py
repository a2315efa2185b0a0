"""UNIX stream and datagram sockets in process, on asyncio and uvloop: the socket file's life
(stale replaced, live refused, mode, removed on stop, PID lock) and clear errors for bad paths."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat

import pytest

from netsupport import loop_param, run, until
from twistdlite import endpoints, internet, protocol, reactor
from twistdlite._ports import UNIXPort
from twistdlite._unixsock import MAX_PATH_BYTES
from twistdlite.error import CannotListenError, ConnectError


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def echo_factory():
    return protocol.Factory.forProtocol(Echo)


async def unix_roundtrip(path, payload=b"hello"):
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    return data


@loop_param()
def test_unix_server_serves_applies_mode_and_removes_its_file(loop, tmp_path):
    path = tmp_path / "echo.sock"

    async def main():
        service = internet.UNIXServer(str(path), echo_factory(), mode=0o660)
        service.privilegedStartService()
        assert type(service._port) is UNIXPort
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert service.getHost().name == str(path)
        await service.startService()
        assert await unix_roundtrip(path) == b"hello"
        await service.stopService()
        assert not path.exists()

        port = reactor.listenUNIX(str(path), echo_factory())
        assert type(port) is UNIXPort
        await until(lambda: port.server is not None)
        assert await unix_roundtrip(path, b"again") == b"again"
        await port.stopListening()
        assert not path.exists()

    run(main(), loop)


def _leave_stale_socket(path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    sock.close()  # the file stays, nobody listens: what a crash leaves behind


@loop_param()
def test_a_stale_socket_file_is_replaced(loop, tmp_path, caplog):
    path = tmp_path / "stale.sock"
    _leave_stale_socket(path)
    assert path.exists()

    async def main():
        service = internet.UNIXServer(str(path), echo_factory())
        service.privilegedStartService()
        await service.startService()
        assert await unix_roundtrip(path) == b"hello"
        await service.stopService()

    with caplog.at_level(logging.INFO, logger="twistdlite"):
        run(main(), loop)
    assert f"Removed stale UNIX socket {path}" in caplog.text


def test_a_live_socket_refuses_and_is_left_alone(tmp_path):
    path = tmp_path / "live.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen()
    try:
        with pytest.raises(CannotListenError) as info:
            internet.UNIXServer(str(path), echo_factory()).privilegedStartService()
        assert str(info.value) == (f"Couldn't listen on UNIX socket {path}: Address already in use "
                                   "(another process is listening on it).")
        assert path.exists()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))  # the live server still has its socket
        client.close()
    finally:
        live.close()


def test_a_failed_bind_after_a_unix_server_removes_its_socket_file(tmp_path):
    from twistdlite import service

    path = tmp_path / "first.sock"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    application = service.Application("partial")
    internet.UNIXServer(str(path), echo_factory(), wantPID=True).setServiceParent(application)
    internet.UNIXDatagramServer(str(tmp_path / "dgram.sock"), protocol.DatagramProtocol()).setServiceParent(
        application)
    internet.TCPServer(busy.getsockname()[1], echo_factory(), interface="127.0.0.1").setServiceParent(application)
    try:
        with pytest.raises(CannotListenError):
            application.privilegedStartService()
    finally:
        busy.close()
    assert os.listdir(tmp_path) == []  # both socket files and the .lock are gone
    assert [child._getPort() for child in list(application)[:2]] == [None, None]  # sockets closed
    internet.UNIXServer(str(path), echo_factory()).privilegedStartService()  # and the path is free


@loop_param()
def test_a_unix_server_whose_start_fails_removes_its_socket_file(loop, tmp_path):
    class Refusing(protocol.Factory):
        protocol = Echo

        def startFactory(self):
            raise RuntimeError("no start today")

    path = tmp_path / "refusing.sock"
    server = internet.UNIXServer(str(path), Refusing())

    async def main():
        server.privilegedStartService()
        assert path.exists()
        with pytest.raises(RuntimeError, match="no start today"):
            await server.startService()
        assert not path.exists()
        with pytest.raises(OSError):
            await asyncio.open_unix_connection(str(path))

    run(main(), loop)


def test_a_file_that_is_not_a_socket_is_never_removed(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    with pytest.raises(CannotListenError) as info:
        reactor.listenUNIX(str(path), echo_factory())
    assert "the path exists and is not a socket" in str(info.value)
    assert path.read_text() == "keep me"


def test_path_too_long_and_missing_directory_are_clear(tmp_path):
    long_path = "/tmp/" + "x" * (MAX_PATH_BYTES - 4)
    with pytest.raises(CannotListenError) as info:
        internet.UNIXServer(long_path, echo_factory()).privilegedStartService()
    message = str(info.value)
    assert f"path too long ({MAX_PATH_BYTES + 1} bytes; a UNIX socket path holds at most {MAX_PATH_BYTES})" in message
    assert "\n" not in message

    missing = tmp_path / "no" / "such" / "dir" / "s.sock"
    with pytest.raises(CannotListenError) as info:
        internet.UNIXServer(str(missing), echo_factory()).privilegedStartService()
    assert str(info.value) == (f"Couldn't listen on UNIX socket {missing}: "
                               f"directory {missing.parent} does not exist.")
    with pytest.raises(CannotListenError):
        internet.UNIXDatagramServer(str(missing), protocol.DatagramProtocol()).privilegedStartService()


@loop_param()
def test_want_pid_holds_a_lock_file_while_listening(loop, tmp_path):
    path = tmp_path / "locked.sock"
    lock = tmp_path / "locked.sock.lock"

    async def main():
        port = reactor.listenUNIX(str(path), echo_factory(), wantPID=True)
        await until(lambda: port.server is not None)
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(CannotListenError) as info:
            reactor.listenUNIX(str(path), echo_factory(), wantPID=True)
        assert "is held by a live process" in str(info.value)

        factory = protocol.ClientFactory.forProtocol(Echo)
        endpoint = endpoints.UNIXClientEndpoint(str(path), checkPID=True)
        proto = await endpoint.connect(factory)
        proto.transport.loseConnection()

        await port.stopListening()
        assert not lock.exists() and not path.exists()
        _leave_stale_socket(path)
        with pytest.raises(ConnectError) as refused:
            await endpoint.connect(factory)
        assert "no live process holds" in str(refused.value)
        os.unlink(path)

    run(main(), loop)


@loop_param()
def test_unix_client_endpoint_and_service(loop, tmp_path):
    path = tmp_path / "c.sock"

    async def main():
        server = await endpoints.serverFromString(f"unix:{path}:mode=600").listen(echo_factory())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        proto = await endpoints.clientFromString(f"unix:path={path}").connect(echo_factory())
        assert isinstance(proto, Echo)
        proto.transport.loseConnection()

        events = []

        class Factory(protocol.ClientFactory):
            protocol = Echo

            def clientConnectionLost(self, connector, reason):
                events.append("lost")

        client = internet.UNIXClient(str(path), Factory())
        client.startService()
        await until(lambda: client._connection.state == "connected")
        await client.stopService()
        assert events == ["lost"]
        await server.stopListening()
        await server.loseAllConnections()
        assert not path.exists()

    run(main(), loop)


class DatagramEcho(protocol.DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(data.upper(), addr)


class DatagramClient(protocol.ConnectedDatagramProtocol):
    def __init__(self):
        self.received = []
        self.started = 0
        self.stopped = 0

    def startProtocol(self):
        self.started += 1
        self.transport.write(b"ping")

    def stopProtocol(self):
        self.stopped += 1

    def datagramReceived(self, data):
        self.received.append(data)


@loop_param()
def test_unix_datagram_server_and_connected_client(loop, tmp_path):
    server_path = tmp_path / "dgram.sock"
    client_path = tmp_path / "client.sock"

    async def main():
        server = internet.UNIXDatagramServer(str(server_path), DatagramEcho(), mode=0o640)
        server.privilegedStartService()
        assert stat.S_IMODE(server_path.stat().st_mode) == 0o640
        await server.startService()
        client_proto = DatagramClient()
        client = internet.UNIXDatagramClient(str(server_path), client_proto, bindAddress=str(client_path))
        await client.startService()
        await until(lambda: client_proto.received == [b"PING"])
        assert client_proto.transport.getPeer().name == str(server_path)
        await client.stopService()
        assert client_proto.stopped == 1 and not client_path.exists()
        await server.stopService()
        assert not server_path.exists()

        refused = internet.UNIXDatagramClient(str(server_path), DatagramClient())
        with pytest.raises(ConnectError) as info:
            await refused.startService()
        assert f"cannot connect to UNIX datagram socket {server_path}" in str(info.value)

    run(main(), loop)


@loop_param()
def test_abstract_namespace_sockets_leave_no_file(loop):
    name = f"\0twistdlite-test-{os.getpid()}"

    async def main():
        port = reactor.listenUNIX(name, echo_factory())
        await until(lambda: port.server is not None)
        got = []

        class Client(protocol.Protocol):
            def connectionMade(self):
                self.transport.write(b"abstract")

            def dataReceived(self, data):
                got.append(data)
                self.transport.loseConnection()

        proto = await endpoints.UNIXClientEndpoint(name).connect(protocol.Factory.forProtocol(Client))
        await until(lambda: got == [b"abstract"])
        assert proto.transport.getPeer().name == name
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


def test_connect_unix_datagram_to_nothing_reports_connection_failed(tmp_path):
    failures = []

    class Client(protocol.ConnectedDatagramProtocol):
        def connectionFailed(self, failure):
            failures.append(failure)

    port = reactor.connectUNIXDatagram(str(tmp_path / "nothing.sock"), Client())
    assert port.transport is None
    (failure,) = failures
    assert "cannot connect to UNIX datagram socket" in failure.getErrorMessage()
