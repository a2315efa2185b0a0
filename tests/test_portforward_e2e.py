"""``twistdlite portforward`` end to end on asyncio and uvloop: nothing a client sends first is lost.

A real ``twistdlite -n portforward`` process forwards to a destination on
127.0.0.1 in this process (a threaded echo server, or the standard library's
HTTP server). Clients that write the moment they are connected (before the
forwarder has reached the destination) get every byte through: 50 of 50
sequential echoes, an HTTP GET, and 200 concurrent echoes within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import http.server
import socket
import socketserver
import threading
from typing import Iterator

import pytest

from support import LineReader, spawn
from test_plugins_e2e import LOOPBACK, _Echo, kill, stop

REACTORS = ["asyncio", "uvloop"]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 256  # 200 clients connect at once: the destination is not what is tested


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    """Serve ``server`` in a thread; yields its port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def echo_port():
    """A threaded echo server on 127.0.0.1 (the destination to forward to)."""
    with serving(_Server(("127.0.0.1", 0), _Echo)) as port:
        yield port


@contextlib.contextmanager
def forwarder(tmp_path, reactor: str, dest_port: int) -> Iterator[int]:
    """A foreground ``twistdlite portforward`` to 127.0.0.1:dest_port; yields its port, stops it after."""
    pytest.importorskip(reactor)
    proc = spawn(["-n", "--pidfile", "", "-o", "-r", reactor, "portforward", "--port", LOOPBACK,
                  "--host", "127.0.0.1", "--dest_port", str(dest_port)], cwd=tmp_path)
    try:
        out = LineReader(proc)
        yield int(out.wait_for(r"ProxyFactory starting on (\d+)").group(1))
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)


def echo_at_once(port: int, payload: bytes) -> bytes:
    """Connect and write at once; what comes back (up to len(payload)) within 5 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while len(received) < len(payload):
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except socket.timeout:
            pass
        return received


async def concurrent_echoes(port: int, count: int, deadline: float) -> int:
    """Open ``count`` connections at once, each writing a line at once; how many got their echo."""

    async def one(number: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            line = b"echo %d\n" % number
            writer.write(line)
            return await reader.readexactly(len(line)) == line
        finally:
            writer.close()

    results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True),
                                     deadline)
    return sum(result is True for result in results)


@pytest.mark.parametrize("reactor", REACTORS)
def test_clients_that_write_at_once_get_every_byte_through(tmp_path, echo_port, reactor):
    with forwarder(tmp_path, reactor, echo_port) as port:
        answered = sum(echo_at_once(port, b"hello %d\n" % n) == b"hello %d\n" % n for n in range(50))
        assert answered == 50
        big = bytes(range(256)) * 1024  # more than the proxy keeps before the destination answers
        assert echo_at_once(port, big) == big
        assert asyncio.run(concurrent_echoes(port, 200, deadline=30)) == 200


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture
def http_port(tmp_path):
    """The standard library's HTTP server on 127.0.0.1, serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello through the forwarder\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www)))
    server.daemon_threads = True
    with serving(server) as port:
        yield port


@pytest.mark.parametrize("reactor", REACTORS)
def test_http_through_the_forwarder(tmp_path, http_port, reactor):
    with forwarder(tmp_path, reactor, http_port) as port:
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", "/hello.txt")
                response = connection.getresponse()
                assert (response.status, response.read()) == (200, b"hello through the forwarder\n")
            finally:
                connection.close()
