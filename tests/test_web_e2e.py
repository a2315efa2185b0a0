"""`twistdlite web` end to end: real processes and real sockets on 127.0.0.1.

HTTP/1.1 keep-alive and pipelining, path attacks, a 100 MB header, slow and stalled clients, 2,000
concurrent connections, --wsgi and --class (served, and refused at start when they name nothing usable),
a WSGI application that raises. Waits are on log lines, sockets and process state, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource as rlimits
import signal
import socket
import textwrap
import threading
import time

import pytest

from support import LineReader, run, spawn, stop_process, wait_exit, wait_until
from websupport import parse_responses

LOOPBACK = "tcp:0:interface=127.0.0.1"

APP = '''
from twistdlite.web import resource


def application(environ, start_response):
    body = ("hello from wsgi: %s %s?%s len=%s" % (environ["REQUEST_METHOD"], environ["PATH_INFO"],
            environ["QUERY_STRING"], len(environ["wsgi.input"].read()))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def streaming(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(3):
        yield b"part %d;" % i


def broken(environ, start_response):
    if environ["PATH_INFO"] == "/fine":
        start_response("200 OK", [])
        return [b"fine"]
    raise RuntimeError("the application broke")


not_callable = 42


class Root(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"a Root resource at " + request.path


class NotAResource:
    pass
'''


class Server:
    """A ``twistdlite -n web ...`` process and its port; killed at the end if still running."""

    def __init__(self, cwd, *args: str, launcher: tuple = (), **env: str) -> None:
        self.proc = spawn(["-n", "--pidfile", "", "-o", *launcher, "web", "--listen", LOOPBACK, *args], cwd=cwd,
                          **env)
        self.out = LineReader(self.proc)
        self.port = int(self.out.wait_for(r"Site starting on (\d+)").group(1))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def get(self, path: bytes = b"/hello.txt") -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return read_all(sock)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert wait_exit(self.proc) == 0
        return self.out.rest()

    def kill(self) -> None:
        stop_process(self.proc)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello, world\n")
    (root / "sub" / "index.html").write_text("<p>index</p>")
    (root / "big.bin").write_bytes(b"b" * (4 << 20))
    (root / "out").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "secret.txt").write_text("not for the web")
    (tmp_path / "app.py").write_text(APP)
    return root


@pytest.fixture
def servers():
    started = []
    yield lambda *args, **kw: started.append(Server(*args, **kw)) or started[-1]
    for server in started:
        server.kill()


def test_keep_alive_and_pipelining_in_order_on_one_connection(site, servers):
    server = servers(site.parent, "--path", str(site))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"hello, world\n")
        sock.sendall(b"GET /sub/ HTTP/1.1\r\nHost: t\r\n\r\nHEAD /hello.txt HTTP/1.1\r\n\r\n"
                     b"GET /nothing HTTP/1.1\r\n\r\nGET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
        responses = parse_responses(read_all(sock), head_only=(1,))
    assert [r.status for r in responses] == [200, 200, 404, 200]
    assert responses[0].body == b"<p>index</p>" and responses[3].body == b"hello, world\n"
    assert responses[3].headers["connection"] == "close"
    server.stop()


def test_path_attacks_over_real_sockets_and_the_server_lives_on(site, servers):
    server = servers(site.parent, "--path", str(site))
    for path in (b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2e%2e%2fsecret.txt", b"/sub/..%2F..%2Fsecret.txt",
                 b"//etc/passwd", b"/out", b"/sub/%00", b"/%00", b"/hello.txt%00"):
        answer = server.get(path)
        assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), path
        assert b"not for the web" not in answer and b"root:" not in answer
    assert server.get(b"/sub/%00").startswith(b"HTTP/1.1 400 ")
    assert server.get().endswith(b"hello, world\n")
    text = server.stop()
    assert "Traceback" not in text


def test_several_ranges_over_a_real_socket_get_multipart_byteranges(site, servers):
    import email.parser
    import email.policy

    data = bytes(range(256)) * 4096  # 1 MiB: the middle part is streamed
    (site / "pattern.bin").write_bytes(data)
    server = servers(site.parent, "--path", str(site))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /pattern.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-99,200000-899999,-10\r\n\r\n"
                     b"HEAD /pattern.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,5-6\r\nConnection: close\r\n\r\n")
        answer, head = parse_responses(read_all(sock), head_only=(1,))
    assert answer.status == 206 and int(answer.headers["content-length"]) == len(answer.body)
    ctype = answer.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + answer.body)
    assert not message.defects
    assert [(p["content-range"], p.get_payload(decode=True)) for p in message.iter_parts()] == [
        ("bytes 0-99/1048576", data[:100]), ("bytes 200000-899999/1048576", data[200000:900000]),
        ("bytes 1048566-1048575/1048576", data[-10:])]
    assert (head.status, head.headers["content-length"]) == (200, "1048576")
    server.stop()


def test_symlinks_out_are_served_only_when_allowed(site, servers):
    server = servers(site.parent, "--path", str(site), "--allow-symlinks-out")
    assert server.get(b"/out").endswith(b"not for the web")
    server.stop()


def test_a_100_mb_header_is_cut_off_at_the_limit_in_bounded_time_and_memory(site, servers):
    server = servers(site.parent, "--path", str(site), "--logfile", str(site.parent / "access.log"))
    server.get()
    before = server.rss_kib()
    answer = bytearray()
    sent = [0]

    def attack():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX-Huge: ")
            block = b"h" * (1 << 20)
            try:
                for _ in range(100):  # 100 MB, unless the server stops taking it
                    sock.sendall(block)
                    sent[0] += len(block)
            except OSError:
                pass
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    answer.extend(data)
            except OSError:
                pass

    began = time.monotonic()
    thread = threading.Thread(target=attack)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the server kept taking the header"
    assert time.monotonic() - began < 20
    assert sent[0] < 10 << 20, f"the server read {sent[0]} bytes of a header limited to 16 KiB"
    assert bytes(answer).startswith(b"HTTP/1.1 431 ") or answer == b""  # a reset may beat the answer
    assert server.rss_kib() - before < 8 * 1024, "memory grew by more than 8 MiB"
    assert server.get().endswith(b"hello, world\n")
    server.stop()


def test_slowloris_and_stalled_downloads_are_closed_and_their_descriptors_released(site, servers):
    server = servers(site.parent, "--path", str(site), "--head-timeout", "0.5", "--write-timeout", "1",
                     "--logfile", str(site.parent / "access.log"))
    server.get()
    baseline = server.fds()
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nX-Slow: 1\r\n")  # and never the end of the head
    stalled = []
    for _ in range(30):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big.bin HTTP/1.1\r\n\r\n")  # and never read the 4 MiB answer
        stalled.append(sock)
    try:
        wait_until(lambda: server.fds() >= baseline + 31, timeout=10, what="the connections to be accepted")
        assert read_all(slow) == b""  # dropped by the head timeout
        # Every stalled download is aborted by the write timeout: its socket and its file are closed.
        wait_until(lambda: server.fds() <= baseline, timeout=20, what="the stalled downloads' descriptors")
        assert server.get().endswith(b"hello, world\n")
    finally:
        slow.close()
        for sock in stalled:
            sock.close()
    text = server.stop()
    assert "Timing out client that stopped reading" in text and "no complete request head" in text


def test_2000_concurrent_connections_are_all_served(site, servers):
    soft, hard = rlimits.getrlimit(rlimits.RLIMIT_NOFILE)
    needed = 4500  # 2,000 client sockets here, 2,000 accepted there (the child inherits the limit)
    if soft < needed:
        if hard != rlimits.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        rlimits.setrlimit(rlimits.RLIMIT_NOFILE, (needed, hard))
    try:
        server = servers(site.parent, "--path", str(site), "--logfile", str(site.parent / "access.log"))

        async def one_client(port: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            return reader, writer

        async def main():
            opened = []
            for start in range(0, 2000, 200):
                opened += await asyncio.gather(*(one_client(server.port) for _ in range(200)))
            answers = []
            for reader, writer in opened:  # every connection is open at once before any is read
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
                body = await asyncio.wait_for(reader.readexactly(13), 20)
                answers.append((head.split(b"\r\n", 1)[0], body))
            for _, writer in opened:
                writer.close()
            return answers

        answers = asyncio.run(main())
        assert len(answers) == 2000 and set(answers) == {(b"HTTP/1.1 200 OK", b"hello, world\n")}
        server.stop()
        log_lines = (site.parent / "access.log").read_text().splitlines()
        assert len(log_lines) == 2000
    finally:
        rlimits.setrlimit(rlimits.RLIMIT_NOFILE, (soft, hard))


def test_a_plain_wsgi_callable_is_served_and_streams(site, servers):
    server = servers(site.parent, "--wsgi", "app.application", "--max-threads", "2")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /some/path?q=1 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"
                     b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
        responses = parse_responses(read_all(sock))
    assert [r.body for r in responses] == [b"hello from wsgi: POST /some/path?q=1 len=4",
                                           b"hello from wsgi: GET /x? len=0"]
    server.stop()
    streamed = servers(site.parent, "--wsgi", "app:streaming")
    answer = parse_responses(streamed.get(b"/"))[0]
    assert answer.headers["transfer-encoding"] == "chunked" and answer.body == b"part 0;part 1;part 2;"
    streamed.stop()


def test_a_wsgi_application_that_raises_gets_500_with_its_traceback_logged_and_serving_goes_on(site, servers):
    server = servers(site.parent, "--wsgi", "app.broken")
    failed = server.get(b"/boom")
    assert failed.startswith(b"HTTP/1.1 500 ") and b"the application broke" not in failed
    assert server.get(b"/fine").endswith(b"fine")
    text = server.stop()
    assert "Traceback (most recent call last)" in text and "RuntimeError: the application broke" in text


def test_a_resource_class_is_served_with_class(site, servers):
    server = servers(site.parent, "--class", "app.Root")
    assert server.get(b"/a/b").endswith(b"a Root resource at /a/b")
    server.stop()


@pytest.mark.parametrize("args, message", [
    (["--wsgi", "nowhere.application"], "web: --wsgi nowhere.application: no module named 'nowhere'"),
    (["--wsgi", "app.missing"], "web: --wsgi app.missing: app has no attribute 'missing'"),
    (["--wsgi", "app.not_callable"], "web: --wsgi app.not_callable: int object is not callable "
                                     "(a WSGI application is)"),
    (["--class", "nowhere.Root"], "web: --class nowhere.Root: no module named 'nowhere'"),
    (["--class", "app.NotAResource"], "web: --class app.NotAResource: <class 'app.NotAResource'> is not a "
                                      "twistdlite.web.resource.Resource subclass"),
    (["--class", "app.application"], None),
])
def test_wsgi_or_class_naming_nothing_usable_fails_at_start_in_one_line(site, args, message):
    result = run(["-n", "--pidfile", "", "web", "--listen", LOOPBACK, *args], cwd=site.parent)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("twistdlite: error: web: ")
    if message is not None:
        assert result.stderr == f"twistdlite: error: {message}\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_options_that_conflict_or_a_missing_parser_are_one_line(site, tmp_path, servers):
    both = run(["-n", "web", "--path", str(site), "--wsgi", "app.application"], cwd=site.parent)
    assert both.returncode == 2
    assert both.stderr == "twistdlite: error: web: --path and --wsgi cannot be used together: each names what " \
                          "to serve\n"
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("httptools", "h11"):
        (blocker / f"{name}.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", "
                                            f"name='{name}')\n")
    missing = run(["-n", "web", "--path", str(site)], cwd=site.parent, PYTHONPATH=f"{blocker}")
    assert missing.returncode == 1, missing.stderr
    assert missing.stderr == "twistdlite: error: web: the web plugin needs an HTTP parser, httptools or h11: " \
                             "pip install 'twistdlite[web]'\n"
    # With h11 alone (no httptools wheel for the platform) it serves.
    (blocker / "h11.py").unlink()
    alone = servers(site.parent, "--path", str(site), PYTHONPATH=f"{blocker}")
    assert alone.get().endswith(b"hello, world\n")
    alone.stop()


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_a_file_truncated_while_sent_is_cut_short_logged_once_and_serving_goes_on(site, tmp_path, reactor, servers):
    big = site / "shrinking.bin"
    big.write_bytes(b"s" * (16 << 20))
    server = servers(tmp_path, "--path", str(site), launcher=("-r", reactor))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(20)
    sock.sendall(b"GET /shrinking.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    received = sock.recv(65536)
    os.truncate(big, 1 << 20)  # while most of it is still to be sent
    received += read_all(sock)  # the server closes the connection, short of the length announced
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 16777216" in head and len(body) < 16 << 20
    server.out.wait_for(r"Short send: .*shrinking\.bin")
    assert server.get().endswith(b"hello, world\n")
    text = server.stop()
    assert text.count("Short send:") == 1 and "Traceback" not in text and "Exception in callback" not in text
    assert re.search(r'"GET /shrinking\.bin HTTP/1\.1" 200 \d+ ', text)


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_downloads_that_close_the_connection_end_cleanly(site, tmp_path, reactor):
    """The last chunk sent while the send buffer drains, then the close: one connection_lost, no asyncio error."""
    proc = spawn(["-n", "--pidfile", "", "-o", "-r", reactor, "web", "--listen", LOOPBACK, "--path", str(site)],
                 cwd=tmp_path)
    out = LineReader(proc)
    try:
        port = int(out.wait_for(r"Site starting on (\d+)").group(1))
        for version in (b"HTTP/1.0", b"HTTP/1.1") * 3:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /big.bin " + version + b"\r\nHost: t\r\nConnection: close\r\n\r\n")
                body = read_all(sock).partition(b"\r\n\r\n")[2]
                assert len(body) == 4 << 20
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        stop_process(proc)
    text = out.rest()
    assert text.count('"GET /big.bin HTTP/1.') == 6 and "Exception in callback" not in text and "Traceback" not in text
