"""Out of file descriptors: a server says so in a few lines, backs off, and serves again.

A real ``twistdlite -n -y examples/echo.tac`` runs with RLIMIT_NOFILE lowered
(in the child, before exec) and gets more connections than it has descriptors
for. Its log holds a bounded number of one-line reports with a count, never a
traceback, and once the connections close it serves new ones again; on
asyncio and uvloop.
"""

from __future__ import annotations

import re
import resource
import socket
import subprocess

import pytest

from support import ROOT, TWISTDLITE, LineReader, env, stop_process, wait_exit, wait_until

LIMIT = 40  # descriptors the server may have: a dozen are its own, the rest for connections
CLIENTS = 60


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def echoes(port: int) -> bool:
    """One line echoed over a new connection (False if the server does not answer it)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"again\n")
            return sock.recv(16) == b"again\n"
    except OSError:
        return False


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_running_out_of_descriptors_is_logged_in_a_few_lines_and_the_server_recovers(tmp_path, reactor):
    pytest.importorskip(reactor)
    proc = subprocess.Popen([*TWISTDLITE, "-n", "--pidfile", "", "-o", "-r", reactor, "-y",
                             str(ROOT / "examples" / "echo.tac")], cwd=tmp_path, env=env(ECHO_PORT="0"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=limited)
    clients = []
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"EchoFactory starting on (\d+)").group(1))
        for _ in range(CLIENTS):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        if reactor == "asyncio":  # (uvloop's libuv closes what it cannot accept, silently)
            out.wait_for(r"accept\(\) failed: Too many open files")
        for sock in clients:
            sock.close()
        clients = []
        wait_until(lambda: echoes(port), what="the server to serve again")
        proc.terminate()
        assert wait_exit(proc) == 0
        log = out.rest()
    finally:
        for sock in clients:
            sock.close()
        stop_process(proc)
    assert "Traceback" not in log and "OSError" not in log, log
    failures = [line for line in log.splitlines() if "accept() failed" in line]
    assert len(failures) <= 3, log
    if reactor == "asyncio":
        assert re.search(r"accept\(\) failed: Too many open files; accepting again shortly", failures[0]), log
        assert re.search(r"accept\(\) failed \d+ times in the last \d+ s: Too many open files$", failures[-1]), log
    assert len(log.splitlines()) < 30, log
