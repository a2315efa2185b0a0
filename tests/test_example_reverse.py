"""The seed example of the Twisted docs, run end to end: twistdlite -noy examples/reverse_app.tac,
on a free port (REVERSE_PORT=0; the log line names the port), on asyncio and uvloop."""

from __future__ import annotations

import signal

import pytest

from support import EXAMPLES, LineReader, connect, recv_until, spawn, stop_process, wait_exit


@pytest.mark.parametrize("reactor", ["asyncio", "uvloop"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_reverse_server_reverses_quits_and_stops_cleanly(tmp_path, signum, reactor):
    proc = spawn(["-noy", str(EXAMPLES / "reverse_app.tac"), "-r", reactor], cwd=tmp_path, REVERSE_PORT="0")
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"ReverserFactory starting on (\d+)").group(1))
        assert port != 0
        with connect(port) as sock:
            sock.sendall(b"hello world!\r\n")
            assert recv_until(sock, b"\r\n") == b"!dlrow olleh\r\n"
            sock.sendall(b"quit\r\n")
            assert sock.recv(100) == b""  # the server closed the connection
        assert (tmp_path / "twistd.pid").read_text().strip() == str(proc.pid)
        proc.send_signal(signum)
        assert wait_exit(proc) == 0
        text = out.rest()
        assert f"reactor class: {reactor}" in text
        assert "shutting down" in text and "Server Shut Down." in text
        assert f"(TCP Port {port} Closed)" in text
        assert not (tmp_path / "twistd.pid").exists()
        assert not (tmp_path / "Reverser-shutdown.tap").exists()  # -o
    finally:
        stop_process(proc)


def test_reverse_example_keeps_the_docs_port_by_default(monkeypatch):
    import importlib
    import sys

    monkeypatch.delenv("REVERSE_PORT", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("reverse", None)
    try:
        reverse = importlib.import_module("reverse")
        assert reverse.ReverserService().port == 2323
        monkeypatch.setenv("REVERSE_PORT", "0")
        assert reverse.ReverserService().port == 0
    finally:
        sys.modules.pop("reverse", None)
