"""systemd's notify protocol and journald priorities.

In-process: the notifier's environment handling and messages, the journal
formatter. End to end: ``twistdlite`` run with ``NOTIFY_SOCKET`` naming a real
``AF_UNIX`` datagram socket this test binds, as systemd would.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import LineReader, read_pid, run, spawn, wait_exit, wait_for_file_text, wait_gone, wait_until
from twistdlite.launch import logsetup, notify
from twistdlite.logger import JournalFormatter

# A .tac whose behaviour the environment chooses: a slow asynchronous start, a failing
# one, a loop blocked for a while once started; it records what its children see.
TAC = '''
import asyncio, os, subprocess, time
from twistdlite import service

class Slow(service.Service):
    async def startService(self):
        service.Service.startService(self)
        await asyncio.sleep(float(os.environ.get("START_DELAY", "0")))
        if os.environ.get("START_FAILS"):
            raise RuntimeError("the database is down")
        env = subprocess.run(["env"], capture_output=True, text=True).stdout
        with open("child-env.txt", "w") as f:
            f.write(env)
        block = float(os.environ.get("BLOCK_AFTER", "0"))
        if block:
            asyncio.get_running_loop().call_later(block, time.sleep, float(os.environ["BLOCK_FOR"]))
        with open("started", "w") as f:
            f.write("yes")

application = service.Application("notified")
Slow().setServiceParent(application)
'''


class Listener:
    """systemd's side: a datagram socket collecting (time, {key: value}) messages."""

    def __init__(self, address: str, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if abstract else address)
        self.sock.settimeout(0.05)
        self.address = address
        self.messages: list = []

    def pump(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, BlockingIOError):
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str = None, timeout: float = 20.0) -> dict:
        def found():
            self.pump()
            for _, fields in self.messages:
                if key in fields and (value is None or fields[key] == value):
                    return fields
            return None

        return wait_until(found, timeout, f"{key} in {self.messages}")

    def keys(self) -> list:
        self.pump()
        return [key for _, fields in self.messages for key in fields]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.tac").write_text(TAC)
    return tmp_path


@pytest.fixture
def listener(tmp_path: Path):
    sock = Listener(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def foreground(app: Path, listener: Listener, **env: str):
    proc = spawn(["--start-timeout", "5", "-noy", "app.tac"], cwd=app, NOTIFY_SOCKET=listener.address, **env)
    return proc, LineReader(proc)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return wait_exit(proc)


# In-process: the environment and the messages.

def test_the_variables_are_taken_out_of_the_environment(tmp_path):
    listener = Listener(str(tmp_path / "n.sock"))
    try:
        environ = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000",
                   "WATCHDOG_PID": str(os.getpid()), "OTHER": "kept"}
        notifier = notify.from_environment(environ)
        assert environ == {"OTHER": "kept"}
        assert notifier.enabled and notifier.watchdog_interval == pytest.approx(0.1)
        notifier.ready("Serving x", mainpid=42)
        assert listener.wait_for("READY") == {"READY": "1", "STATUS": "Serving x", "MAINPID": "42"}
        notifier.close()
    finally:
        listener.close()


def test_no_socket_means_silence():
    notifier = notify.from_environment({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.send(READY=1) is False


def test_an_abstract_socket_name_works():
    name = f"@twistdlite-test-{os.getpid()}"
    listener = Listener(name, abstract=True)
    try:
        notifier = notify.from_environment({"NOTIFY_SOCKET": name})
        notifier.stopping("SIGTERM")
        assert listener.wait_for("STOPPING") == {"STOPPING": "1", "STATUS": "Stopping (SIGTERM)"}
        notifier.close()
    finally:
        listener.close()


@pytest.mark.parametrize("value", ["soon", "-5", "0", "1.5"])
def test_a_watchdog_usec_that_is_not_a_number_is_ignored_with_one_warning(value, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "twistdlite")
    notifier = notify.from_environment({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": value})
    assert notifier.watchdog_usec is None
    assert caplog.records == []  # read before the log is open: the warning waits for it
    notifier.log_warnings()
    notifier.log_warnings()
    assert [r.getMessage() for r in caplog.records] == [
        f"WATCHDOG_USEC={value!r} is not a positive number of microseconds; no watchdog pings."]


def test_a_notify_socket_that_is_no_path_is_ignored_with_one_warning(caplog):
    caplog.set_level(logging.WARNING, "twistdlite")
    notifier = notify.from_environment({"NOTIFY_SOCKET": "relative.sock"})
    assert not notifier.enabled and notifier.send(READY=1) is False
    notifier.log_warnings()
    assert [r.getMessage() for r in caplog.records] == [
        "NOTIFY_SOCKET='relative.sock' is neither a path nor an abstract name (@...); not notifying systemd."]


def test_a_watchdog_meant_for_another_process_is_not_pinged(tmp_path):
    notifier = notify.from_environment({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "1000",
                                        "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog_usec is None


def test_a_missing_socket_costs_one_warning_at_the_first_message(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "twistdlite")
    notifier = notify.from_environment({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert caplog.records == []  # the log may not be open yet when the notifier is made
    assert notifier.send(READY=1) is False
    assert notifier.send(STOPPING=1) is False
    assert len(caplog.records) == 1
    assert "missing.sock cannot be reached (No such file or directory)" in caplog.records[0].getMessage()


def test_a_forked_child_inherits_a_silent_notifier(tmp_path):
    sent = []
    notifier = notify.Notifier("/x", sender=sent.append)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if notifier.send(READY=1) is False else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert notifier.send(READY=1) is True and sent == [b"READY=1\n"]


def test_a_failed_start_sends_its_status_and_never_ready():
    sent = []
    inner = notify.NotifyingReadiness(_Quiet(), notify.Notifier("/x", sender=sent.append), "Serving")
    inner.failed("port 80 in use\nsecond line")
    inner.ready()
    assert sent == [b"STATUS=start failed: port 80 in use second line\n"]


class _Quiet:
    def ready(self):
        pass

    def failed(self, message):
        pass

    def close(self):
        pass


# journald

def test_journal_lines_carry_their_priority_and_no_timestamp():
    formatter = JournalFormatter()
    record = logging.LogRecord("twistdlite", logging.WARNING, __file__, 1, "disk %s", ("full",), None)
    assert formatter.format(record) == "<4>[twistdlite] disk full"
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = formatter.format(record).split("\n")
    assert lines[0] == "<3>[app] failed"
    assert all(line.startswith("<3>\t") for line in lines[1:]) and lines[-1] == "<3>\tValueError: boom"
    for level, priority in ((logging.DEBUG, 7), (logging.INFO, 6), (logging.CRITICAL, 2)):
        record = logging.LogRecord("a", level, __file__, 1, "m", (), None)
        assert formatter.format(record).startswith(f"<{priority}>")


def test_the_journal_is_recognised_by_its_device_and_inode(tmp_path):
    with open(tmp_path / "f", "w") as stream:
        st = os.fstat(stream.fileno())
        assert logsetup.is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not logsetup.is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not logsetup.is_journal(stream, {"JOURNAL_STREAM": "garbage"})
        assert not logsetup.is_journal(stream, {})


def test_a_run_logging_to_the_journal_writes_priorities(app):
    read_fd, write_fd = os.pipe()
    st = os.fstat(write_fd)
    from support import TWISTDLITE, env

    proc = subprocess.Popen([*TWISTDLITE, "-noy", "app.tac"], cwd=app, stdin=subprocess.DEVNULL,
                            stdout=write_fd, stderr=subprocess.STDOUT,
                            env=env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    os.close(write_fd)
    try:
        wait_until(lambda: (app / "started").exists(), what="the start")
    finally:
        assert stop(proc) == 0
    with os.fdopen(read_fd) as out:
        lines = out.read().splitlines()
    assert "<6>[twistdlite] reactor class: asyncio." in lines
    assert "<6>[twistdlite] Server Shut Down." in lines
    assert all(re.match(r"<[0-7]>", line) for line in lines), lines


def test_without_the_journal_lines_keep_twistds_format(app):
    proc = spawn(["-noy", "app.tac"], cwd=app, JOURNAL_STREAM="1:1")
    reader = LineReader(proc)
    reader.wait_for(r"\d{4}-\d\d-\d\dT\S+ \[twistdlite\] reactor class: asyncio\.")
    wait_until(lambda: (app / "started").exists(), what="the start")
    assert stop(proc) == 0
    assert "<6>" not in reader.rest()


# End to end: a real socket, as systemd's.

def test_ready_comes_only_after_a_slow_start_has_finished(app, listener):
    proc, reader = foreground(app, listener, START_DELAY="0.5")
    try:
        ready = listener.wait_for("READY")
        assert (app / "started").exists()  # startService had finished when READY was sent
        assert ready["STATUS"] == f"Serving notified (PID {proc.pid})"
        assert "MAINPID" not in ready  # the process systemd started is the one that talks
        keys = listener.keys()
        assert keys.index("EXTEND_TIMEOUT_USEC") < keys.index("READY")
        extend = next(f for _, f in listener.messages if "EXTEND_TIMEOUT_USEC" in f)
        assert 4_000_000 < int(extend["EXTEND_TIMEOUT_USEC"]) <= 6_000_000  # what is left of --start-timeout 5
        proc.send_signal(signal.SIGTERM)
        assert listener.wait_for("STOPPING") == {"STOPPING": "1", "STATUS": "Stopping (SIGTERM)"}
        assert wait_exit(proc) == 0
    finally:
        stop(proc)
    # Children the application starts do not talk to systemd in its name.
    child_env = (app / "child-env.txt").read_text()
    assert "NOTIFY_SOCKET" not in child_env and "WATCHDOG_USEC" not in child_env


def test_a_failed_start_sends_status_never_ready_and_exits_1(app, listener):
    proc, reader = foreground(app, listener, START_DELAY="0.1", START_FAILS="1")
    assert wait_exit(proc) == 1
    status = listener.wait_for("STATUS")
    assert status["STATUS"] == "start failed: RuntimeError: the database is down"
    assert "READY" not in listener.keys()


def test_watchdog_pings_from_the_loop_and_none_while_it_is_blocked(app, listener):
    proc, reader = foreground(app, listener, WATCHDOG_USEC="200000", BLOCK_AFTER="1.0", BLOCK_FOR="1.5")
    try:
        listener.wait_for("READY")
        ready_at = next(t for t, f in listener.messages if "READY" in f)
        reader.wait_for(r"\[twistdlite\] reactor class")  # still running

        def pings():
            listener.pump()
            return [t for t, f in listener.messages if "WATCHDOG" in f]

        wait_until(lambda: [t for t in pings() if t > ready_at + 2.5], what="pings after the block")
        times = pings()
        first_second = [t for t in times if ready_at <= t < ready_at + 1.0]
        assert len(first_second) >= 3, times
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) >= 1.2, gaps  # the loop was blocked 1.5 s: no ping meanwhile
        assert all(f == {"WATCHDOG": "1"} for _, f in listener.messages if "WATCHDOG" in f)
    finally:
        assert stop(proc) == 0


def test_sighup_sends_reloading_then_ready(app, listener):
    proc, reader = foreground(app, listener)
    try:
        listener.wait_for("READY")
        before = len(listener.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        wait_until(lambda: listener.pump() or [f for _, f in listener.messages[before:] if "READY" in f],
                   what="READY after RELOADING")
        after = [f for _, f in listener.messages[before:]]
        assert "RELOADING" in after[0] and after[1]["READY"] == "1"
        reader.wait_for("Received SIGHUP, reopened the log.")
    finally:
        assert stop(proc) == 0


def test_a_missing_socket_warns_once_and_the_run_goes_on(app, tmp_path):
    proc = spawn(["-noy", "app.tac"], cwd=app, NOTIFY_SOCKET=str(tmp_path / "gone.sock"))
    reader = LineReader(proc)
    try:
        wait_until(lambda: (app / "started").exists(), what="the start")
        reader.wait_for("not notifying systemd")
    finally:
        assert stop(proc) == 0
    assert reader.rest().count("cannot be reached") == 1


@pytest.mark.parametrize("variables, warning", [
    ({"WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC='soon' is not a positive number of microseconds; no watchdog pings."),
    ({"NOTIFY_SOCKET": "relative.sock"}, "NOTIFY_SOCKET='relative.sock' is neither a path nor an abstract name"),
])
def test_a_malformed_variable_is_one_warning_in_the_log_and_the_run_goes_on(variables, warning, app, listener):
    proc = spawn(["-noy", "app.tac"], cwd=app, **{"NOTIFY_SOCKET": listener.address, **variables})
    reader = LineReader(proc)
    try:
        wait_until(lambda: (app / "started").exists(), what="the start")
        # In the log, in its format (not a bare line on stderr before the log is open).
        reader.wait_for(r"(?m)^\d{4}-\d\d-\d\dT\S+ \[twistdlite\] " + re.escape(warning))
        if "NOTIFY_SOCKET" not in variables:
            listener.wait_for("READY")  # the run goes on
    finally:
        assert stop(proc) == 0
    assert reader.rest().count(warning) == 1
    assert "WATCHDOG" not in listener.keys()


def test_a_daemon_names_itself_with_mainpid(app, listener):
    result = run(["--pidfile", "twistd.pid", "-y", "app.tac"], cwd=app, NOTIFY_SOCKET=listener.address)
    assert result.returncode == 0, result.stderr
    pid = read_pid(app / "twistd.pid")
    try:
        ready = listener.wait_for("READY")
        assert ready["MAINPID"] == str(pid) and ready["STATUS"] == f"Serving notified (PID {pid})"
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    assert listener.wait_for("STOPPING")["STOPPING"] == "1"


# The manual

def test_the_manual_lists_every_variable_read_and_every_message_sent():
    from support import ROOT
    from test_manpage import page_text_of

    text = page_text_of((ROOT / "man" / "twistdlite.1").read_text())
    sections = dict(re.findall(r'^\.SH "?([^"\n]+)"?\n(.*?)(?=^\.SH |\Z)', text, re.M | re.S))
    for variable in [*notify.ENVIRONMENT, logsetup.JOURNAL_STREAM_ENV]:
        assert re.search(rf"^\.(B|BR) {variable}\b", sections["ENVIRONMENT"], re.M), variable
    sent = ["READY=1", "STATUS=", "MAINPID=", "STOPPING=1", "WATCHDOG=1", "RELOADING=1", "MONOTONIC_USEC=",
            "EXTEND_TIMEOUT_USEC="]
    for message in sent:
        assert message in sections["SYSTEMD"], message
