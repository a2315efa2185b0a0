"""The network examples, each run end to end: twistdlite -noy examples/X.tac in a subprocess,
on 127.0.0.1 with free ports, under asyncio and (where it matters) uvloop; and bad input to them."""

from __future__ import annotations

import os
import re
import sys
import signal
import socket
import ssl
import subprocess

import pytest

from netsupport import make_cert
from support import EXAMPLES, LineReader, connect, env, recv_until, run, spawn, stop_process, wait_exit

REACTORS = ["asyncio", "uvloop"]


class Running:
    """A twistdlite subprocess and its output; stops it (SIGTERM, exit 0 expected) on close."""

    def __init__(self, tac: str, cwd, reactor: str = "asyncio", **env: str) -> None:
        self.proc = spawn(["-noy", str(EXAMPLES / tac), "-r", reactor, "--pidfile", ""], cwd=cwd, **env)
        self.out = LineReader(self.proc)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        return self.out.wait_for(pattern, timeout)

    def port(self, name: str) -> int:
        return int(self.wait_for(rf"{name} starting on (\d+)").group(1))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        status = wait_exit(self.proc)
        text = self.out.rest()
        assert status == 0, text
        assert "Server Shut Down." in text
        assert "Traceback" not in text, text
        return text

    def kill(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def running():
    started = []

    def start(tac, cwd, reactor="asyncio", **env):
        server = Running(tac, cwd, reactor, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def udp_roundtrip(port: int, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(payload, ("127.0.0.1", port))
        data, _ = sock.recvfrom(65536)
        return data


@pytest.mark.parametrize("reactor", REACTORS)
def test_echo_tac_serves_tcp_and_udp(tmp_path, running, reactor):
    server = running("echo.tac", tmp_path, reactor, ECHO_PORT="0", ECHO_UDP_PORT="0")
    tcp = server.port("EchoFactory")
    udp = server.port("EchoUDP")
    with connect(tcp) as sock:
        sock.sendall(b"over tcp\n")
        assert recv_until(sock) == b"over tcp\n"
    assert udp_roundtrip(udp, b"over udp") == b"over udp"
    text = server.stop()
    assert f"(TCP Port {tcp} Closed)" in text and f"(UDP Port {udp} Closed)" in text
    assert f"reactor class: {reactor}" in text


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_echo_tac_defaults_to_port_8007_for_both(tmp_path, running):
    if not (_free(8007, socket.SOCK_STREAM) and _free(8007, socket.SOCK_DGRAM)):
        pytest.skip("port 8007 is busy on this machine")
    server = running("echo.tac", tmp_path)
    assert server.port("EchoFactory") == 8007
    assert server.port("EchoUDP") == 8007
    assert udp_roundtrip(8007, b"default") == b"default"
    server.stop()


def test_echo_tac_port_in_use_fails_with_one_line_and_exit_1(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    number = holder.getsockname()[1]
    try:
        done = run(["-noy", str(EXAMPLES / "echo.tac")], cwd=tmp_path, ECHO_PORT=str(number), ECHO_UDP_PORT="0")
    finally:
        holder.close()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"twistdlite: error: Couldn't listen on 127.0.0.1:{number}: Address already in use "
        "(another process is listening on it)."]
    assert "Traceback" not in done.stdout
    assert not (tmp_path / "twistd.pid").exists()


def test_timer_tac_logs_heartbeats(tmp_path, running):
    server = running("timer.tac", tmp_path, TIMER_STEP="0.05")
    server.wait_for(r"\[heartbeat\] heartbeat 1\b")
    server.wait_for(r"\[heartbeat\] heartbeat 4\b")
    server.stop()


@pytest.mark.parametrize("reactor", REACTORS)
def test_tls_echo_tac(tmp_path, running, reactor):
    key, cert = make_cert(tmp_path)
    server = running("tls_echo.tac", tmp_path, reactor, TLS_KEY=str(key), TLS_CERT=str(cert), TLS_PORT="0")
    port = server.port("EchoFactory")
    context = ssl.create_default_context(cafile=str(cert))
    with connect(port) as raw, context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"encrypted\n")
        assert recv_until(sock) == b"encrypted\n"
    with connect(port) as sock:  # garbage instead of a handshake: dropped, server unharmed
        sock.sendall(b"\x00" * 64 + b"not tls at all\r\n\r\n")
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
    with connect(port) as raw, context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"still fine\n")
        assert recv_until(sock) == b"still fine\n"
    server.stop()


def test_tls_echo_tac_with_mismatched_files_fails_to_load_with_one_line(tmp_path):
    key, cert = make_cert(tmp_path)
    other_key, _ = make_cert(tmp_path, "other")
    done = run(["-noy", str(EXAMPLES / "tls_echo.tac")], cwd=tmp_path, TLS_KEY=str(other_key),
               TLS_CERT=str(cert), TLS_PORT="0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"twistdlite: error: error while running {EXAMPLES / 'tls_echo.tac'}: TLSConfigError: cannot use TLS "
        f"certificate '{cert}' with private key '{other_key}': the private key does not match the certificate")
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run(["-noy", str(EXAMPLES / "tls_echo.tac")], cwd=empty, TLS_PORT="0")  # no files at all
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith("TLSConfigError: private key file 'server.key' does not exist")


@pytest.mark.parametrize("reactor", REACTORS)
def test_unix_echo_tac(tmp_path, running, reactor):
    path = tmp_path / "echo.sock"
    # what a crash leaves behind: a socket file nobody listens on
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    server = running("unix_echo.tac", tmp_path, reactor, ECHO_SOCKET=str(path))
    server.wait_for(r"Removed stale UNIX socket")
    server.wait_for(r"EchoFactory starting on")
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o660)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b"local\n")
        assert recv_until(sock) == b"local\n"
    server.stop()
    assert not path.exists()


@pytest.mark.parametrize("where,reason", [
    ("long", "path too long"),
    ("missing", "does not exist"),
])
def test_unix_echo_tac_bad_paths_fail_with_one_line(tmp_path, where, reason):
    path = "/tmp/" + "s" * 120 if where == "long" else str(tmp_path / "gone" / "echo.sock")
    done = run(["-noy", str(EXAMPLES / "unix_echo.tac")], cwd=tmp_path, ECHO_SOCKET=path)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"twistdlite: error: Couldn't listen on UNIX socket {path}: ") and reason in line


def test_client_tac_keeps_reconnecting_to_a_server_that_comes_and_goes(tmp_path, running):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = str(holder.getsockname()[1])
    holder.close()
    client = running("client.tac", tmp_path, ECHO_PORT=port, CLIENT_RETRY_INITIAL="0.05",
                     CLIENT_RETRY_MAX="0.3")
    # the server is down at start: the client retries, with growing waits, and stays up
    client.wait_for(r"Connecting to TCP4ClientEndpoint\(127\.0\.0\.1:\d+\) failed \(Connection was refused")
    client.wait_for(r"retry 3 in ")
    waits = [float(w) for w in re.findall(r"retry \d+ in ([\d.]+) s", client.out.rest())]
    assert all(0.05 <= wait <= 1.3 for wait in waits), waits
    for round_number in (1, 2):  # the server comes and goes, twice
        server = running("echo.tac", tmp_path, ECHO_PORT=port, ECHO_UDP_PORT="0")
        server.wait_for(r"EchoFactory starting on")
        client.wait_for(rf"Server echoed: hello #{round_number} from client.tac")
        server.stop()
        client.wait_for(r"Lost the connection to TCP4ClientEndpoint" if round_number == 1 else
                        r"(?s)Server echoed: hello #2.*Lost the connection")
    client.stop()


@pytest.mark.parametrize("reactor", REACTORS)
def test_asyncio_native_tac(tmp_path, running, reactor):
    server = running("asyncio_native.tac", tmp_path, reactor, NATIVE_PORT="0")
    port = server.port("UpperEcho")
    with connect(port) as sock:
        sock.sendall(b"shout\n")
        assert recv_until(sock) == b"SHOUT\n"
        server.stop()  # closes the open connection too


EXAMPLE_ENV = {
    "echo.tac": {"ECHO_PORT": "0"},
    "timer.tac": {},
    "unix_echo.tac": {},
    "client.tac": {},
    "asyncio_native.tac": {},
    "tls_echo.tac": {},
}


@pytest.mark.parametrize("tac", sorted(EXAMPLE_ENV))
def test_examples_pickle_by_reference(tmp_path, tac, monkeypatch):
    """What a .tap needs: every class the application holds lives in an importable module."""
    monkeypatch.chdir(tmp_path)
    if tac == "tls_echo.tac":
        key, cert = make_cert(tmp_path)
        monkeypatch.setenv("TLS_KEY", str(key))
        monkeypatch.setenv("TLS_CERT", str(cert))
    for name, value in EXAMPLE_ENV[tac].items():
        monkeypatch.setenv(name, value)
    code = (
        "import pickle, pickletools, sys\n"
        "from twistdlite.launch.loader import load_tac\n"
        f"app = load_tac({str(EXAMPLES / tac)!r})\n"
        "data = pickle.dumps(app)\n"
        "assert b'__builtin__' not in data and b'__main__' not in data, 'a class defined in the .tac'\n"
        "clone = pickle.loads(data)\n"
        "print(type(clone).__name__, clone.name, len(list(clone)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Application ")
