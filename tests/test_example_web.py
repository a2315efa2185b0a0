"""examples/web_service.tac (Twisted's howto ``service.tac`` on twistdlite) serves the current directory:
in the foreground, as a daemon, and again from the daemon's shutdown ``.tap``."""

from __future__ import annotations

import http.client
import os
import signal

import pytest

from daemon_helpers import Daemons
from support import EXAMPLES, LineReader, read_pid, run, spawn, stop_process, wait_exit, wait_for_file_text, wait_gone

TAC = str(EXAMPLES / "web_service.tac")


def get(port: int, path: str) -> tuple:
    """(status, headers, body) of one request on a kept-alive HTTP/1.1 connection, asked twice."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        answers = []
        for _ in range(2):  # the same connection serves both: HTTP/1.1 keep-alive
            connection.request("GET", path)
            response = connection.getresponse()
            answers.append((response.status, dict(response.getheaders()), response.read()))
        assert answers[0][2] == answers[1][2]
        return answers[0]
    finally:
        connection.close()


@pytest.fixture
def cwd(tmp_path):
    where = tmp_path / "served"
    where.mkdir()
    (where / "page.html").write_text("<p>served by the howto's service.tac</p>\n")
    return where


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_the_howto_service_tac_serves_the_current_directory_in_the_foreground(cwd, reactor):
    proc = spawn(["-noy", TAC, "-r", reactor, "--pidfile", ""], cwd=cwd, WEB_PORT="0")
    out = LineReader(proc)
    try:
        port = int(out.wait_for(r"Site starting on (\d+)").group(1))
        status, headers, body = get(port, "/page.html")
        assert (status, body) == (200, b"<p>served by the howto's service.tac</p>\n")
        assert headers["Content-Type"] == "text/html"
        status, _, listing = get(port, "/")
        assert status == 200 and b'href="page.html"' in listing
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        stop_process(proc)
    text = out.rest()
    assert "Traceback" not in text and '"GET /page.html HTTP/1.1" 200 41' in text


def test_the_howto_service_tac_as_a_daemon_and_again_from_its_shutdown_tap(cwd):
    daemons = Daemons()
    try:
        log = cwd / "twistd.log"
        started = run(["-y", TAC], cwd=cwd, WEB_PORT="0")
        assert started.returncode == 0, started.stderr
        daemons.from_pidfile(cwd / "twistd.pid")
        port = int(wait_for_file_text(log, r"Site starting on (\d+)").group(1))
        assert get(port, "/page.html")[2] == b"<p>served by the howto's service.tac</p>\n"
        pid = read_pid(cwd / "twistd.pid")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        tap = cwd / "Demo application-shutdown.tap"
        assert tap.exists()
        log.unlink()
        again = run(["-f", tap.name], cwd=cwd)
        assert again.returncode == 0, again.stderr
        daemons.from_pidfile(cwd / "twistd.pid")
        port = int(wait_for_file_text(log, r"Site starting on (\d+)").group(1))
        assert get(port, "/page.html")[2] == b"<p>served by the howto's service.tac</p>\n"  # the saved cwd
        pid = read_pid(cwd / "twistd.pid")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        assert "Traceback" not in log.read_text()
    finally:
        daemons.cleanup()
