"""The pool's logic in-process: options, back-off, the crash limit, sharing rules, the socket share, probes."""

from __future__ import annotations

import json
import logging
import os
import socket

import pytest

from twistdlite import internet, protocol, service
from twistdlite._ports import SocketShare, TCPPort, UNIXPort
from twistdlite.launch import cli, health, workers
from twistdlite.launch.options import Options


def parse(*args: str) -> Options:
    ctx = cli.cli.make_context("twistdlite", list(args))
    return cli.make_options(ctx.params)


@pytest.mark.parametrize("value, message", [
    ("0", "0 workers: give at least 1 (1 runs the single process)"),
    ("-3", "-3 workers: give at least 1 (1 runs the single process)"),
    ("many", "'many' is not a whole number or 'auto'"),
    ("", "'' is not a whole number or 'auto'"),
])
def test_bad_worker_counts_are_usage_errors(capsys, value, message):
    assert cli.run_cli(["-noy", "x.tac", "--workers", value]) == 2
    err = capsys.readouterr().err
    assert err == f"twistdlite: error: invalid value for '--workers': {message}\n"


def test_worker_counts_and_defaults():
    assert parse("-ny", "x.tac").workers == 1
    assert parse("-ny", "x.tac", "--workers", "3").workers == 3
    assert parse("-ny", "x.tac", "--workers", "auto").workers == len(os.sched_getaffinity(0))
    options = parse("-ny", "x.tac", "--worker-timeout", "2.5", "--crash-limit", "2", "--crash-window", "9")
    assert (options.worker_timeout, options.crash_limit, options.crash_window) == (2.5, 2, 9.0)


def test_a_malformed_health_endpoint_is_a_usage_error(capsys):
    assert cli.run_cli(["-noy", "x.tac", "--health", "tcp:notaport"]) == 2
    assert capsys.readouterr().err.startswith("twistdlite: error: invalid value for '--health': ")


def test_backoff_is_exponential_capped_and_jittered():
    low = [workers.backoff_delay(n, rand=lambda: 0.0) for n in range(1, 12)]
    high = [workers.backoff_delay(n, rand=lambda: 1.0) for n in range(1, 12)]
    assert high[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert low[:2] == pytest.approx([0.05, 0.1])
    assert max(high) == workers.BACKOFF_CAP and max(low) == workers.BACKOFF_CAP / 2


def test_crash_limit_counts_within_the_window_only():
    limit = workers.CrashLimit(3, 30.0)
    assert not limit.record(0.0) and not limit.record(10.0)
    assert not limit.record(40.5)  # the first two fell out of the window
    assert not limit.record(41.0)
    assert limit.record(42.0)


def test_exits_are_described():
    assert workers.describe_exit(0) == "exited with status 0"
    assert workers.describe_exit(-9) == "was killed by SIGKILL"


def test_datagram_services_cannot_be_shared(tmp_path):
    app = service.Application("a")
    internet.TCPServer(0, protocol.ServerFactory()).setServiceParent(app)
    assert workers.unshareable(app) is None
    inner = service.MultiService()
    inner.setServiceParent(app)
    internet.UNIXDatagramServer(str(tmp_path / "d"), protocol.DatagramProtocol()).setServiceParent(inner)
    assert "UNIXDatagramServer cannot be shared" in workers.unshareable(app)


def test_the_share_gives_a_reloaded_port_the_same_socket_and_owns_unix_files(tmp_path):
    share = SocketShare()
    first = TCPPort(0, protocol.ServerFactory(), interface="127.0.0.1")
    unix = UNIXPort(str(tmp_path / "s"), protocol.ServerFactory())
    with share.binding() as load:
        first.bind()
        unix.bind()
    assert load.new == load.keys and len(load.keys) == 2
    again = TCPPort(0, protocol.ServerFactory(), interface="127.0.0.1")
    with share.binding() as second:
        again.bind()
    assert second.new == [] and again.getHost().port == first.getHost().port
    for port in (first, again, unix):
        port.stopListening()
    assert (tmp_path / "s").exists()  # a port never removes a file the share owns
    probe = socket.create_connection(("127.0.0.1", first.getHost().port))  # the share still listens
    probe.close()
    share.close()
    assert not (tmp_path / "s").exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first.getHost().port), timeout=1)


def test_two_ports_asking_for_port_0_get_two_sockets_and_keep_them_across_loads():
    share = SocketShare()
    ports = [TCPPort(0, protocol.ServerFactory(), interface="127.0.0.1") for _ in range(2)]
    with share.binding():
        for port in ports:
            port.bind()
    first = [port.getHost().port for port in ports]
    assert first[0] != first[1]
    again = [TCPPort(0, protocol.ServerFactory(), interface="127.0.0.1") for _ in range(3)]
    with share.binding() as load:
        for port in again:
            port.bind()
    assert [port.getHost().port for port in again][:2] == first and len(load.new) == 1
    for port in ports + again:
        port.stopListening()
    share.close()


def test_health_answers():
    state = health.HealthState(lambda: (True, "fine"), lambda: (False, "starting"))
    live = health.answer(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", state)
    assert live.startswith(b"HTTP/1.0 200 OK\r\n")
    assert json.loads(live.split(b"\r\n\r\n", 1)[1]) == {"status": "live", "reason": "fine"}
    assert health.answer(b"GET /readyz?verbose HTTP/1.0\r\n\r\n", state).startswith(b"HTTP/1.0 503 ")
    assert health.answer(b"POST /readyz HTTP/1.0\r\n\r\n", state).startswith(b"HTTP/1.0 405 ")
    assert health.answer(b"GET / HTTP/1.0\r\n\r\n", state).startswith(b"HTTP/1.0 404 ")
    assert health.answer(b"garbage\r\n\r\n", state).startswith(b"HTTP/1.0 400 ")
    assert health.answer(b"HEAD /livez HTTP/1.0\r\n\r\n", state).endswith(b"\r\n\r\n")


def test_single_process_readiness_drives_readyz():
    class Inner:
        notifier = "n"

        def __init__(self):
            self.calls = []

        def ready(self):
            self.calls.append("ready")

        def failed(self, message):
            self.calls.append(message)

        def close(self):
            self.calls.append("close")

    inner = Inner()
    probed = health.ProbedReadiness(inner)
    state = probed.state()
    assert state.ready() == (False, "starting") and state.live()[0]
    probed.ready()
    assert state.ready() == (True, "every service has started")
    probed.stopping()
    assert state.ready() == (False, "shutting down")
    assert probed.notifier == "n" and inner.calls == ["ready"]


def test_forwarded_records_name_their_worker(caplog):
    caplog.set_level(logging.INFO)
    workers.emit_forwarded({"name": "twistdlite", "levelno": 20, "levelname": "INFO", "msg": "hi 100%",
                            "created": 0.0}, 3)
    workers.emit_forwarded({"name": "app", "levelno": 20, "levelname": "INFO", "msg": "x",
                            "system": "Echo,1,127.0.0.1"}, 2)
    first, second = caplog.records[-2:]
    assert (first.system, first.worker, first.getMessage()) == ("worker 3", 3, "hi 100%")
    assert second.system == "worker 2,Echo,1,127.0.0.1"


@pytest.mark.parametrize("args, fragment", [
    (["--crash-limit", "0"], "invalid value for '--crash-limit'"),
    (["--worker-timeout", "0"], "invalid value for '--worker-timeout'"),
    (["--crash-window", "inf"], "invalid value for '--crash-window'"),
])
def test_bad_supervision_settings_are_usage_errors(capsys, args, fragment):
    assert cli.run_cli(["-noy", "x.tac", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"twistdlite: error: {fragment}") and err.count("\n") == 1, err


def test_a_connection_accepted_before_it_is_a_transport_is_closed_in_a_forked_child(monkeypatch):
    """A probe connection accepted in the turn a worker is forked is not kept open by the worker."""
    import asyncio
    import stat
    import weakref

    from twistdlite import _ports

    monkeypatch.setattr(_ports, "_tracking", False)
    monkeypatch.setattr(_ports, "_serving", weakref.WeakSet())
    monkeypatch.setattr(_ports, "_accepted", weakref.WeakSet())
    _ports.track_accepts()  # as the supervisor does before it serves its health probe
    loop = asyncio.new_event_loop()
    port = TCPPort(0, protocol.ServerFactory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    try:
        loop.run_until_complete(port.start())
        client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
        port.socket.settimeout(5)
        conn, _ = port.socket.accept()  # what the loop calls when the socket is readable; no transport yet
        assert not list(port.connections)
        _ports.close_inherited()  # in the child: every copy of the parent's sockets now points at /dev/null
        assert stat.S_ISCHR(os.fstat(conn.fileno()).st_mode)
        assert client.recv(1) == b""  # no copy of the connection is left open: the client sees the end
        client.close()
        conn.close()
    finally:
        if port.server is not None:
            port.server.close()
        loop.close()
