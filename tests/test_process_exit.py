"""How a stopped run leaves the process: at once (no interpreter teardown), but with everything a
user can see done first — the log's last lines on disk, the pidfile gone, the application's
``atexit`` callbacks run (once, in the daemon, not in its launching command) and its non-daemon
threads finished. Foreground and daemon mode, real processes and signals.
"""

from __future__ import annotations

import os
import signal

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from support import LineReader, read_pid, run, spawn, stop_process, wait_for_file_text, wait_status

APP = """\
import atexit, os, threading, time
from twistdlite import service

MARK = {mark!r}

def note(what):
    with open(MARK, "a") as handle:
        handle.write(f"{{what}} {{os.getpid()}}\\n")

atexit.register(note, "atexit")

class Worker(service.Service):
    # A non-daemon thread that finishes its work only after the stop: the process must wait for it.
    def startService(self):
        service.Service.startService(self)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.work)
        self.thread.start()
        note("started")

    def work(self):
        self.done.wait()
        time.sleep(0.2)  # still working when the run is over
        note("thread")

    def stopService(self):
        service.Service.stopService(self)
        self.done.set()

application = service.Application("exiting")
Worker().setServiceParent(application)
"""


def _app(tmp_path):
    mark = tmp_path / "mark.txt"
    tac = tmp_path / "exiting.tac"
    tac.write_text(APP.format(mark=str(mark)))
    return tac, mark


def _assert_finished(tmp_path, mark, pid):
    lines = mark.read_text().split()
    # In order: started, the thread's late work, then the atexit callback; all in the serving process.
    assert lines == ["started", str(pid), "thread", str(pid), "atexit", str(pid)]
    log = (tmp_path / "exiting.log").read_text()
    assert log.rstrip().endswith("Server Shut Down.")
    assert not (tmp_path / "exiting.pid").exists()


def test_a_foreground_run_ends_with_its_atexit_callbacks_threads_log_and_pidfile_done(tmp_path):
    tac, mark = _app(tmp_path)
    proc = spawn(["-n", "-o", "-y", str(tac), "-l", "exiting.log", "--pidfile", "exiting.pid"], cwd=tmp_path)
    try:
        wait_for_file_text(mark, "started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, LineReader(proc).rest()
    finally:
        stop_process(proc)
        proc.stdout.close()
    _assert_finished(tmp_path, mark, proc.pid)


def test_a_daemon_ends_with_its_atexit_callbacks_threads_log_and_pidfile_done(tmp_path, daemons):
    tac, mark = _app(tmp_path)
    done = run(["-o", "-y", str(tac), "-l", "exiting.log", "--pidfile", "exiting.pid"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    pid = daemons.track(read_pid(tmp_path / "exiting.pid"))
    wait_for_file_text(mark, "started")
    os.kill(pid, signal.SIGTERM)
    assert wait_status(pid) == 0
    # The launching command loaded the same .tac (so registered the callback too) but left at
    # once when the daemon was ready: the callback ran once, in the daemon.
    _assert_finished(tmp_path, mark, pid)
