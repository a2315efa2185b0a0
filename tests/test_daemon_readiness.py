"""The readiness pipe (twistdlite/launch/daemon.py), in-process against small real processes."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from support import DEADLINE, is_gone, wait_gone
from twistdlite.launch import daemon as daemon_module
from twistdlite.launch.daemon import Launcher, PipeReadiness, open_descriptors
from twistdlite.launch.errors import StartError


def fake_daemon(script: str, timeout: float = 10.0, logfile=None):
    """A process that plays the daemon's side of the pipe (``w`` is its write end); returns the Launcher."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", f"import os, time\nw = {write_fd}\n{script}"],
                            pass_fds=[write_fd])
    os.close(write_fd)
    return Launcher(read_fd, proc.pid, logfile, timeout), proc


def test_ready(monkeypatch):
    monkeypatch.setattr(daemon_module, "LAUNCHER_DONE", False)
    launcher, proc = fake_daemon("os.write(w, b'PID 4242\\n'); time.sleep(0.1); os.write(w, b'READY\\n')")
    launcher.wait()
    assert launcher.pid == 4242
    assert is_gone(proc.pid)
    assert daemon_module.LAUNCHER_DONE  # the CLI edge may now leave at once


def test_not_ready_leaves_the_launcher_to_exit_normally(monkeypatch):
    monkeypatch.setattr(daemon_module, "LAUNCHER_DONE", False)
    launcher, _ = fake_daemon("os.write(w, b'PID 1\\nERROR 2\\nno')")
    with pytest.raises(StartError):
        launcher.wait()
    assert not daemon_module.LAUNCHER_DONE


def test_error_message_is_raised():
    launcher, _ = fake_daemon("os.write(w, b'PID 1\\nERROR 32\\nstart failed: RuntimeError: boom')")
    with pytest.raises(StartError, match="^start failed: RuntimeError: boom$"):
        launcher.wait()


@pytest.mark.parametrize("answer, outcome", [(b"READY\n", None), (b"ERROR 4\nboom", "^boom$")])
def test_a_whole_answer_is_enough_while_a_forked_worker_holds_the_pipe(answer, outcome):
    """A worker the daemon forked may keep the pipe open for ever: the answer itself ends the wait."""
    launcher, proc = fake_daemon("worker = os.fork()\n"
                                 "if worker == 0:\n    time.sleep(60)\n    os._exit(0)\n"
                                 f"os.write(w, b'PID %d\\n' % worker); os.write(w, {answer!r})", timeout=30)
    began = time.monotonic()
    try:
        if outcome is None:
            launcher.wait()
        else:
            with pytest.raises(StartError, match=outcome):
                launcher.wait()
        assert time.monotonic() - began < 10  # not the deadline
    finally:
        if launcher.pid:
            os.kill(launcher.pid, 9)
            wait_gone(launcher.pid)


def test_an_answer_in_pieces_is_read_whole():
    launcher, _ = fake_daemon("os.write(w, b'PID 5\\nERR'); time.sleep(0.05); os.write(w, b'OR 11\\nsplit'); "
                              "time.sleep(0.05); os.write(w, b' apart')")
    with pytest.raises(StartError, match="^split apart$"):
        launcher.wait()


def test_a_daemon_that_dies_without_a_word(tmp_path):
    launcher, _ = fake_daemon("os._exit(3)", logfile="twistd.log")
    with pytest.raises(StartError, match=f"^the daemon exited before it was ready; see {os.path.abspath('twistd.log')}$"):
        launcher.wait()
    launcher, _ = fake_daemon("os.write(w, b'PID 7\\n'); os._exit(3)")
    with pytest.raises(StartError, match="^the daemon exited before it was ready$"):
        launcher.wait()


def test_a_silent_daemon_is_killed_at_the_deadline():
    launcher, proc = fake_daemon("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                 "os.write(w, b'PID %d\\n' % os.getpid())\ntime.sleep(60)", timeout=0.5)
    # The 0.5 s are the daemon's silence after its PID line, not the interpreter's start-up,
    # which takes longer than that on a loaded machine (the PID unknown, nothing would be killed).
    assert select.select([launcher.fd], [], [], DEADLINE)[0], "the fake daemon never wrote its PID"
    began = time.monotonic()
    with pytest.raises(StartError, match=f"^the daemon \\(PID {proc.pid}\\) did not report ready within 0.5 s "
                                         "and was killed$"):
        launcher.wait()
    assert 0.5 <= time.monotonic() - began < 5
    assert is_gone(proc.pid)


def test_pipe_readiness_sends_the_first_failure_only_at_close():
    read_fd, write_fd = os.pipe()
    readiness = PipeReadiness(write_fd)
    readiness.announce(99)
    readiness.failed("first")
    readiness.failed("second")
    readiness.ready()  # after a failure, ready says nothing (and closes)
    assert os.read(read_fd, 100) == b"PID 99\nERROR 5\nfirst"
    assert os.read(read_fd, 100) == b""  # closed
    os.close(read_fd)
    readiness.close()  # twice is harmless


def test_pipe_readiness_ready():
    read_fd, write_fd = os.pipe()
    readiness = PipeReadiness(write_fd)
    readiness.ready()
    readiness.failed("too late")  # after ready, nothing more can be said
    readiness.close()
    assert os.read(read_fd, 100) == b"READY\n"
    os.close(read_fd)


def test_pipe_readiness_survives_a_gone_launcher():
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    readiness = PipeReadiness(write_fd)
    readiness.failed("nobody listens")
    readiness.close()  # EPIPE is swallowed


def test_open_descriptors_lists_ours(tmp_path):
    with open(tmp_path / "f", "w") as handle:
        assert open_descriptors()[handle.fileno()] == str(tmp_path / "f")
