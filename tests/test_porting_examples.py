"""examples/porting/: Twisted's application howto examples and service idioms, ported by imports only,
each run end to end in the foreground, as a daemon, and (where it saves) again from its shutdown .tap.

Ports are free ones (port 0, read back from the "starting on PORT" log line); every wait polls
with a deadline. Bad input runs here too: a program that is not there (idioms: its error reaches
processEnded and the service goes on), a thread pool call that raises, a 'before shutdown' trigger
that never fires.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from daemon_helpers import Daemons
from support import (EXAMPLES, LineReader, connect, read_pid, recv_until, run, spawn, stop_process, wait_exit,
                     wait_for_file_text, wait_status, wait_until)

PORTING = EXAMPLES / "porting"


def tcp_echo(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"ping\n")
        assert recv_until(sock, b"\n") == b"ping\n"


def udp_echo(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"dgram", ("127.0.0.1", port))
        assert sock.recvfrom(100)[0] == b"dgram"


class Log:
    """Where a run's log is read: a foreground run's output, or a file (a daemon's)."""

    def __init__(self, reader: LineReader = None, path: Path = None, after: int = 0) -> None:
        self.reader = reader
        self.path = path
        self.after = after  # a file's lines from this offset on (what an earlier run wrote is not this run's)

    def wait_for(self, pattern: str) -> re.Match:
        if self.reader is not None:
            return self.reader.wait_for(pattern)
        regex = re.compile(pattern)
        return wait_until(lambda: self.path.exists() and regex.search(self.text()), what=f"{pattern!r} in {self.path}")

    def text(self) -> str:
        if self.reader is not None:
            return self.reader.rest()
        return self.path.read_bytes()[self.after:].decode("utf-8", "replace")


# -- what each example must do while it runs ----------------------------------------------


def check_echo(log: Log, cwd: Path) -> None:
    tcp_echo(int(log.wait_for(r"EchoFactory starting on (\d+)").group(1)))


def check_web(log: Log, cwd: Path) -> None:
    port = int(log.wait_for(r"Site starting on (\d+)").group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) as response:
        assert response.read() == b"hello from the current directory\n"


def check_dailylog(log: Log, cwd: Path) -> None:
    tcp_echo(int(log.wait_for(r"\[\S+\] EchoFactory starting on (\d+)").group(1)))


def check_services(log: Log, cwd: Path) -> None:
    tcp_echo(int(log.wait_for(r"EchoFactory starting on (\d+)").group(1)))
    udp_echo(int(log.wait_for(r"UDPEcho starting on (\d+)").group(1)))
    first = int(log.wait_for(r"\[porting_idioms\.Ticker\] tick (\d+)\n").group(1))
    log.wait_for(rf"\[porting_idioms\.Ticker\] tick {first + 20}\n")  # the TimerService goes on


def check_idioms(log: Log, cwd: Path) -> None:
    start = int(log.wait_for(r"\[porting_idioms\.Heartbeat\] starting at beat (\d+)").group(1))
    log.wait_for(rf"\[porting_idioms\.Heartbeat\] beat {start + 3} digest [0-9a-f]{{8}}\n")  # deferToThread
    log.wait_for(r"\[porting_idioms\.Heartbeat\] a pool thread waited for the loop")  # callInThread, blockingCall
    log.wait_for(r"\[porting_idioms\.Child\] child python said 'hello from the child' and ended: "
                 r"A process has ended without apparent errors")  # spawnProcess
    log.wait_for(r"\[porting_idioms\.Child\] child missing said '' and ended: .*cannot run "
                 r"/nonexistent/program: No such file or directory")  # the service lives on:
    log.wait_for(rf"\[porting_idioms\.Heartbeat\] beat {start + 5} digest")
    log.wait_for(r"\[-\] heartbeat \d+0\n")  # log.msg


def after_idioms(text: str) -> None:
    """What the idioms' stop must have logged, in twistd's order (checked with twistd 26.10): the 'before
    shutdown' trigger added in startService runs first, stopService right after it without waiting for the
    trigger's Deferred, and both Deferreds are waited for before the run ends."""
    stopped = re.search(r"stopped at beat \d+", text)
    assert stopped
    assert (text.index("flushing before shutdown") < stopped.start() < text.index("] flushed")
            < text.index("Server Shut Down."))


EXAMPLES_RUN = [
    # (tac, application name, what to check, where it logs (None: twistd's default), saves a .tap)
    ("echoservice.tac", "echo", check_echo, None, True),
    ("webservice.tac", "Demo application", check_web, None, True),
    ("dailylog.tac", "myapp", check_dailylog, "my.log", True),  # in $LOG_DIR, a new one for each run
    ("services.tac", "EchoExample", check_services, None, True),
    ("idioms.tac", "idioms", check_idioms, None, True),
]

ENV = {"ECHO_PORT": "0", "UDP_PORT": "0", "WEB_PORT": "0"}


def stop_foreground(proc, reader: LineReader, log: Log) -> str:
    """SIGTERM a foreground run; it exits 0 having logged its clean shut-down; returns its log."""
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc) == 0, reader.rest()
    text = log.text()
    assert "Server Shut Down." in text and "Traceback" not in text, text + reader.rest()
    return text


def log_for(logfile, step: str, cwd: Path, reader: LineReader = None) -> tuple:
    """The environment and the :class:`Log` of one run: its own log directory when the example logs to a file."""
    directory = cwd / f"logs-{step}"
    directory.mkdir()
    env = dict(ENV, LOG_DIR=str(directory))
    if logfile is not None:
        return env, Log(path=directory / logfile)
    return env, Log(reader=reader, path=None if reader is not None else cwd / "twistd.log")


@pytest.mark.parametrize("tac,name,check,logfile,saves", EXAMPLES_RUN, ids=[e[0] for e in EXAMPLES_RUN])
def test_a_ported_example_runs_in_the_foreground_as_a_daemon_and_from_its_tap(tmp_path, tac, name, check,
                                                                             logfile, saves):
    (tmp_path / "hello.txt").write_text("hello from the current directory\n")
    daemons = Daemons()
    try:
        # 1. foreground, no .tap
        env, _ = log_for(logfile, "foreground", tmp_path)
        proc = spawn(["-n", "-o", "--pidfile", "", "-y", str(PORTING / tac)], cwd=tmp_path, **env)
        reader = LineReader(proc)
        log = Log(reader=reader) if logfile is None else Log(path=Path(env["LOG_DIR"]) / logfile)
        try:
            check(log, tmp_path)
            text = stop_foreground(proc, reader, log)
        finally:
            stop_process(proc)
        if tac == "idioms.tac":
            after_idioms(text)

        # 2. a daemon, stopped with SIGTERM: it saves "<name>-shutdown.tap"
        env, daemon_log = log_for(logfile, "daemon", tmp_path)
        done = run(["-y", str(PORTING / tac)], cwd=tmp_path, **env)
        assert done.returncode == 0, done.stderr
        pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
        check(daemon_log, tmp_path)
        os.kill(pid, signal.SIGTERM)
        assert wait_status(pid) == 0
        log = daemon_log.text()
        assert "Server Shut Down." in log and "Traceback" not in log, log
        if tac == "idioms.tac":
            after_idioms(log)
        tap = tmp_path / f"{name}-shutdown.tap"
        assert tap.exists() == saves, log

        # 3. the saved application, run again in the foreground
        if saves:
            env, _ = log_for(None, "restart", tmp_path)
            # a .tap keeps its observer (dailylog's file, in the daemon's log directory): read what follows
            after = daemon_log.path.stat().st_size if logfile is not None else 0
            proc = spawn(["-n", "-o", "--pidfile", "", "-f", str(tap)], cwd=tmp_path, **env)
            reader = LineReader(proc)
            restarted = Log(reader=reader) if logfile is None else Log(path=daemon_log.path, after=after)
            try:
                check(restarted, tmp_path)
                if tac == "idioms.tac":  # the count was saved with the service and goes on
                    saved = int(re.findall(r"stopped at beat (\d+)", log)[-1])
                    assert int(re.search(r"starting at beat (\d+)", reader.rest()).group(1)) == saved
                stop_foreground(proc, reader, restarted)
            finally:
                stop_process(proc)
    finally:
        daemons.cleanup()


def test_the_howtos_logger_factory_writes_the_log_it_opens(tmp_path):
    my_log = tmp_path / "my.log"
    proc = spawn(["-n", "-o", "--pidfile", "", "--logger", "mylogger.logger", "-y", str(PORTING / "echoservice.tac")],
                 cwd=tmp_path, PYTHONPATH=f"{PORTING}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                 MY_LOG=str(my_log), **ENV)
    try:
        port = int(wait_for_file_text(my_log, r"\[\S+\] EchoFactory starting on (\d+)").group(1))
        tcp_echo(port)
        stop_foreground(proc, LineReader(proc), Log(path=my_log))
    finally:
        stop_process(proc)


STUCK_TAC = """
import asyncio
from twistdlite import reactor, service

class Flusher:
    def flush(self):
        return asyncio.get_running_loop().create_future()  # never fires

application = service.Application("stuck")
reactor.addSystemEventTrigger("before", "shutdown", Flusher().flush)
reactor.addSystemEventTrigger("after", "startup", reactor.callInThread, int, "not a number")  # raises
reactor.addSystemEventTrigger("after", "startup", print, "startup triggers ran", flush=True)
reactor.run()  # as a Twisted script would end: a warning under twistdlite
"""


def test_a_thread_pool_call_that_raises_is_logged_and_a_trigger_that_never_fires_is_bounded_and_named(tmp_path):
    tac = tmp_path / "stuck.tac"
    tac.write_text(STUCK_TAC)
    proc = spawn(["-n", "-o", "--pidfile", "", "--shutdown-timeout", "0.5", "-y", str(tac)], cwd=tmp_path)
    reader = LineReader(proc)
    try:
        reader.wait_for("startup triggers ran")
        reader.wait_for(r"Unhandled error in a thread pool call to builtins\.int\n\tTraceback(.*\n)*?\tValueError: "
                        r"invalid literal for int\(\) with base 10: 'not a number'\n")
        assert proc.poll() is None  # the daemon lives on
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 1
        text = reader.rest()
        assert "reactor.run() ignored: twistdlite runs the reactor itself" in text
        assert "Stopping the application took longer than 0.5 s" in text
        assert "The 'before' 'shutdown' trigger __builtin__.Flusher.flush never fired (waited 0.5 s)" in text
        assert "Server Shut Down." in text
    finally:
        stop_process(proc)
