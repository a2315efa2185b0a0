"""Plugins end to end: real twistdlite processes on 127.0.0.1, in the foreground and as daemons.

Each built-in plugin serves in the foreground and as a daemon (``twistdlite
--pidfile ... web ...``, no ``-y``), saves ``<tapname>-shutdown.tap`` on SIGTERM
and serves again from it with ``-f``; a third-party plugin is found through an
entry point (a hand-made dist-info on PYTHONPATH); bad input gets one line and
the right exit status. Waits are on log lines and process exits, never fixed sleeps.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import socketserver
import threading
from pathlib import Path

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from support import (ROOT, LineReader, read_pid, run, spawn, stop_process, wait_exit, wait_for_file_text, wait_gone,
                     wait_until)
from test_plugins import HELLO, make_dist

LOOPBACK = "tcp:0:interface=127.0.0.1"


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello from the web plugin\n")
    return root


def get(port: int, path: str = "/hello.txt", method: str = "GET") -> tuple:
    """(status, body) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"User-Agent": "e2e"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    return wait_exit(proc)


def kill(proc) -> None:
    stop_process(proc)


def ports_in(log: Path, pattern: str, count: int) -> list:
    """The ports of the first ``count`` "NAME starting on PORT" lines of ``log``, once there are that many."""
    return wait_until(lambda: [int(p) for p in re.findall(pattern, log.read_text())][:count]
                      if len(re.findall(pattern, log.read_text())) >= count else None,
                      what=f"{count} x {pattern!r} in {log}")


def stop_daemon(pidfile: Path) -> None:
    pid = read_pid(pidfile)
    assert pid, f"no PID in {pidfile}"
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


# -- web ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
def test_web_in_the_foreground(tmp_path, www, reactor):
    pytest.importorskip(reactor)
    proc = spawn(["-n", "--pidfile", "", "-r", reactor, "web", "--path", str(www), "--listen", LOOPBACK],
                 cwd=tmp_path)
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"Site starting on (\d+)").group(1))
        assert get(port) == (200, b"hello from the web plugin\n")
        assert get(port, "/missing")[0] == 404
        out.wait_for(r'\[HTTPChannel,\d+,127\.0\.0\.1\] "127\.0\.0\.1" - - \[[^]]+\] "GET /hello\.txt HTTP/1\.1" '
                     r'200 26 "-" "e2e"')
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)
    assert "application: web" in out.rest() and f"reactor class: {reactor}." in out.rest()
    assert "Saving web application to web-shutdown.tap..." in out.rest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web-shutdown.tap", "www"]


def test_web_as_a_daemon_then_again_from_its_shutdown_tap(tmp_path, www, daemons):
    rundir = tmp_path / "run"
    rundir.mkdir()
    pidfile, log = rundir / "web.pid", rundir / "twistd.log"
    started = run(["--pidfile", "web.pid", "web", "--path", str(www), "--listen", LOOPBACK], cwd=rundir)
    assert (started.returncode, started.stderr) == (0, ""), started.stderr
    daemons.from_pidfile(pidfile)
    (port,) = ports_in(log, r"Site starting on (\d+)", 1)
    assert get(port) == (200, b"hello from the web plugin\n")
    wait_for_file_text(log, r'"GET /hello\.txt HTTP/1\.1" 200 26')
    stop_daemon(pidfile)
    assert (rundir / "web-shutdown.tap").exists() and not pidfile.exists()

    again = run(["--pidfile", "web.pid", "-f", "web-shutdown.tap"], cwd=rundir)
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    daemons.from_pidfile(pidfile)
    port = ports_in(log, r"Site starting on (\d+)", 2)[1]
    assert get(port) == (200, b"hello from the web plugin\n")  # the saved --path
    stopped = run(["--pidfile", "web.pid", "stop"], cwd=rundir)
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(p.name for p in rundir.iterdir()) == ["twistd.log", "web-shutdown.tap"]


# -- portforward ---------------------------------------------------------------------------------------------

class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo_port():
    """A plain threaded echo server on 127.0.0.1 (the destination to forward to)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


def through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)  # no half-close: as with twistd's portforward, EOF closes both sides
        received = b""
        while len(received) < len(payload):
            data = sock.recv(65536)
            if not data:
                break
            received += data
        return received


def test_portforward_in_the_foreground(tmp_path, echo_port):
    proc = spawn(["-n", "--pidfile", "", "portforward", "--port", LOOPBACK, "--host", "127.0.0.1",
                  "--dest_port", str(echo_port)], cwd=tmp_path)
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"ProxyFactory starting on (\d+)").group(1))
        payload = os.urandom(2_000_000)
        assert through(port, payload) == payload
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portforward-shutdown.tap"]


def test_portforward_as_a_daemon_then_again_from_its_shutdown_tap(tmp_path, echo_port, daemons):
    pidfile, log = tmp_path / "pf.pid", tmp_path / "twistd.log"
    started = run(["--pidfile", "pf.pid", "portforward", "-p", LOOPBACK, "-h", "127.0.0.1", "-d", str(echo_port)],
                  cwd=tmp_path)
    assert (started.returncode, started.stderr) == (0, ""), started.stderr
    daemons.from_pidfile(pidfile)
    (port,) = ports_in(log, r"ProxyFactory starting on (\d+)", 1)
    assert through(port, b"over the daemon\n") == b"over the daemon\n"
    stop_daemon(pidfile)
    assert (tmp_path / "portforward-shutdown.tap").exists()

    again = run(["--pidfile", "pf.pid", "-f", "portforward-shutdown.tap"], cwd=tmp_path)
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    daemons.from_pidfile(pidfile)
    port = ports_in(log, r"ProxyFactory starting on (\d+)", 2)[1]
    assert through(port, b"to the saved destination\n") == b"to the saved destination\n"
    stop_daemon(pidfile)


# -- a third-party plugin, and bad input ---------------------------------------------------------------------

@pytest.fixture
def site_dir(tmp_path):
    """A directory on PYTHONPATH with a plugin installed by hand, and a broken one."""
    return make_dist(tmp_path / "site", {"hello": "hello_plugin:maker", "broken": "no_such_module_here:maker"},
                     {"hello_plugin": HELLO})


def with_site(site_dir: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(site_dir), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def greets_then_stops(args: list, cwd: Path, env: dict) -> None:
    """Run ``twistdlite -n ARGS`` in the foreground, check it greets with bonjour, stop it (exit 0)."""
    proc = spawn(["-n", "--pidfile", "", *args], cwd=cwd, **env)
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"GreeterFactory starting on (\d+)").group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert sock.recv(100) == b"bonjour\n"
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)


def test_a_plugin_registered_through_an_entry_point(tmp_path, site_dir):
    env = with_site(site_dir)
    rundir = tmp_path / "run"
    rundir.mkdir()
    helped = run(["--help"], cwd=rundir, **env)
    assert helped.returncode == 0
    assert re.search(r"^  hello +Greet, then echo\.$", helped.stdout, re.M), helped.stdout
    assert re.search(r"^  broken +\[cannot be loaded: ModuleNotFoundError: No module named\s+"
                     r"'no_such_module_here'\]$", helped.stdout, re.M), helped.stdout
    assert "--greeting" in run(["hello", "--help"], cwd=rundir, **env).stdout

    greets_then_stops(["hello", "--greeting", "bonjour"], rundir, env)
    assert sorted(p.name for p in rundir.iterdir()) == ["hello-shutdown.tap"]
    greets_then_stops(["-f", "hello-shutdown.tap"], rundir, env)  # the greeting survives the .tap


def test_bad_input_is_one_line_with_the_right_status_and_leaves_nothing(tmp_path, site_dir, www):
    env = with_site(site_dir)
    rundir = tmp_path / "run"
    rundir.mkdir()
    missing = tmp_path / "missing"
    for args, status, message in [
        (["frobnicate"], 2, "No such command 'frobnicate'. Available plugins: broken, hello, portforward, web."),
        (["-n", "broken"], 1, "plugin 'broken' (entry point broken = no_such_module_here:maker, from hello-plugin "
                              "1.0) cannot be loaded: ModuleNotFoundError: No module named 'no_such_module_here'"),
        (["--pidfile", "x.pid", "broken"], 1, None),
        (["web", "--bogus"], 2, "web: No such option '--bogus'."),
        (["portforward", "--dest_port", "many"], 2, None),
        (["--pidfile", "x.pid", "web", "--path", str(missing)], 1, f"web: --path {missing}: no such file or directory"),
        (["-n", "web", "--path", str(missing)], 1, f"web: --path {missing}: no such file or directory"),
        (["-y", "x.tac", "web"], 2, "-y/--python and a plugin (web) cannot be used together: "
                                    "the plugin makes the application"),
        (["-f", "x.tap", "web", "--path", str(www)], 2, None),
    ]:
        result = run(args, cwd=rundir, **env)
        assert result.returncode == status, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("twistdlite: error: "), \
            (args, result.stderr)
        if message is not None:
            assert result.stderr == f"twistdlite: error: {message}\n", args
        assert "Traceback" not in result.stdout + result.stderr
    assert list(rundir.iterdir()) == []
