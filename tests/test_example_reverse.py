"""The seed example of the Twisted docs, run end to end: twistdlite -noy examples/reverse_app.tac."""

from __future__ import annotations

import signal

import pytest

from support import EXAMPLES, LineReader, connect, recv_until, spawn, wait_exit


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_reverse_server_reverses_quits_and_stops_cleanly(tmp_path, signum):
    proc = spawn(["-noy", str(EXAMPLES / "reverse_app.tac")], cwd=tmp_path)
    try:
        out = LineReader(proc)
        out.wait_for(r"ReverserFactory starting on 2323")
        with connect(2323) as sock:
            sock.sendall(b"hello world!\r\n")
            assert recv_until(sock, b"\r\n") == b"!dlrow olleh\r\n"
            sock.sendall(b"quit\r\n")
            assert sock.recv(100) == b""  # the server closed the connection
        assert (tmp_path / "twistd.pid").read_text().strip() == str(proc.pid)
        proc.send_signal(signum)
        assert wait_exit(proc) == 0
        text = out.rest()
        assert "shutting down" in text and "Server Shut Down." in text
        assert not (tmp_path / "twistd.pid").exists()
        assert not (tmp_path / "Reverser-shutdown.tap").exists()  # -o
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
