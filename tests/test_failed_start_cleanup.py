"""A start that fails leaves nothing behind, end to end: the sockets bound and the UNIX socket
files made by ``privilegedStartService`` are released when a later bind fails, when the
privilege drop is refused, or when a later service fails to start."""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from support import run

UNIX_THEN = """\
import os
from twistdlite import internet, protocol, service
application = service.Application("cleanup")
internet.UNIXServer("app.sock", protocol.Factory.forProtocol(protocol.Protocol)).setServiceParent(application)
"""


def write_tac(directory, body: str):
    path = directory / "app.tac"
    path.write_text(UNIX_THEN + textwrap.dedent(body))
    return path


def failed(done) -> str:
    """The one error line of a start that failed with exit 1."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("twistdlite: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture
def busy_port():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def test_a_failed_bind_releases_the_unix_socket_bound_before_it(tmp_path, busy_port):
    write_tac(tmp_path, """\
        internet.TCPServer(int(os.environ["BUSY"]), protocol.Factory.forProtocol(protocol.Protocol),
                           interface="127.0.0.1").setServiceParent(application)
        """)
    done = run(["-noy", "app.tac", "--pidfile", ""], cwd=tmp_path, BUSY=str(busy_port))
    assert failed(done) == (f"twistdlite: error: Couldn't listen on 127.0.0.1:{busy_port}: "
                            "Address already in use (another process is listening on it).")
    assert sorted(os.listdir(tmp_path)) == ["app.tac"]  # app.sock is gone


def test_a_failed_start_releases_the_sockets_of_the_services_after_it(tmp_path):
    # The UNIX server comes second: bound in privilegedStartService, never started.
    (tmp_path / "app.tac").write_text(textwrap.dedent("""\
        from twistdlite import internet, protocol, service

        class Refusing(protocol.Factory):
            protocol = protocol.Protocol

            def startFactory(self):
                raise RuntimeError("no start today")

        application = service.Application("cleanup")
        internet.TCPServer(0, Refusing(), interface="127.0.0.1").setServiceParent(application)
        internet.UNIXServer("app.sock", protocol.Factory.forProtocol(protocol.Protocol)).setServiceParent(application)
        """))
    done = run(["-noy", "app.tac", "--pidfile", ""], cwd=tmp_path)
    assert failed(done) == "twistdlite: error: start failed: RuntimeError: no start today"
    assert sorted(os.listdir(tmp_path)) == ["app.tac"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can be refused a privilege drop it may ask for")
def test_a_refused_privilege_drop_releases_the_bound_unix_socket(tmp_path):
    write_tac(tmp_path, """\
        def refuse(*args):
            raise PermissionError(1, "Operation not permitted")

        os.setgroups = os.initgroups = refuse
        """)
    done = run(["-noy", "app.tac", "--pidfile", "", "-u", "nobody"], cwd=tmp_path)
    assert failed(done).startswith("twistdlite: error: cannot drop privileges to uid=65534")
    assert sorted(os.listdir(tmp_path)) == ["app.tac"]


def test_a_unix_datagram_client_whose_server_is_missing_fails_in_one_line(tmp_path):
    write_tac(tmp_path, """\
        internet.UNIXDatagramClient("missing.sock", protocol.DatagramProtocol()).setServiceParent(application)
        """)
    done = run(["-noy", "app.tac", "--pidfile", ""], cwd=tmp_path)
    assert failed(done) == ("twistdlite: error: An outgoing connection could not be made: cannot connect to "
                            "UNIX datagram socket missing.sock: No such file or directory.")
    assert "Traceback" not in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["app.tac"]
