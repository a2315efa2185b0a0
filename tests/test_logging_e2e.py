"""Logging end to end: real twistdlite processes (daemon and foreground) writing real logs.

The application (written into tmp_path) answers ``ok`` to each command line
once it has done what the line asks (log, print, warn, fail...), so a test
knows the line is in the log before it looks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from support import (
    LineReader,
    connect,
    is_gone,
    kill_hard,
    read_pid,
    recv_until,
    run,
    spawn,
    wait_exit,
    wait_for_file_text,
    wait_gone,
    wait_until,
)

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
LOGROTATE = shutil.which("logrotate") or next(
    (path for path in ("/usr/sbin/logrotate", "/sbin/logrotate") if os.access(path, os.X_OK)), None)

LOGAPP = '''
import asyncio, logging, os, sys, warnings
from twistdlite import basic, protocol

log = logging.getLogger("app")


class Cmd(basic.LineReceiver):
    def lineReceived(self, line):
        cmd, _, arg = line.decode("utf-8", "surrogateescape").partition(" ")
        if cmd == "log":
            log.info("%s", arg)
        elif cmd == "print":
            print(arg)
        elif cmd == "err":
            sys.stderr.write(arg + "\\n")
        elif cmd == "warn":
            warnings.warn(arg)
        elif cmd == "boom":
            raise ValueError(arg)
        elif cmd == "loopboom":
            def fail():
                raise RuntimeError(arg)
            asyncio.get_running_loop().call_soon(fail)
        elif cmd == "spam":
            for number in range(int(arg)):
                log.info("spam %04d %s", number, "x" * 64)
        self.sendLine(b"ok")


class CmdFactory(protocol.ServerFactory):
    protocol = Cmd


class Chatty(basic.LineReceiver):
    def connectionMade(self):
        log.info("connected")
        asyncio.get_running_loop().call_soon(log.info, "later, outside the callback")

    def lineReceived(self, line):
        log.info("line %s", line.decode())
        self.sendLine(b"ok")

    def connectionLost(self, reason):
        log.info("disconnected")


class ChattyFactory(protocol.ServerFactory):
    protocol = Chatty


class EchoUDP(protocol.DatagramProtocol):
    def datagramReceived(self, data, addr):
        log.info("datagram %r", data)
        self.transport.write(data, addr)


def broken_observer(event):
    raise RuntimeError("observer bug")


def json_observer():
    from twistdlite.logger import jsonFileLogObserver
    return jsonFileLogObserver(open(os.environ["JSON_LOG"], "a"))


def not_an_observer():
    return 42


not_callable = "a string"
'''

TAC = '''
import os
from twistdlite import internet, service
import logapp
application = service.Application("logtest")
internet.TCPServer(0, logapp.CmdFactory(), interface="127.0.0.1").setServiceParent(application)
'''

COMPONENT_TAC = TAC + '''
from twistdlite.logger import ILogObserver, textFileLogObserver
from twistdlite.logfile import DailyLogFile
logfile = DailyLogFile("my.log", os.environ["LOGDIR"])
application.setComponent(ILogObserver, textFileLogObserver(logfile))
'''

BROKEN_OBSERVER_TAC = TAC + '''
from twistdlite.logger import ILogObserver
application.setComponent(ILogObserver, logapp.broken_observer)
'''

CHATTY_TAC = """
from twistdlite import internet, service
import logapp
application = service.Application("chatty")
internet.TCPServer(0, logapp.ChattyFactory(), interface="127.0.0.1").setServiceParent(application)
internet.UDPServer(0, logapp.EchoUDP(), interface="127.0.0.1").setServiceParent(application)
"""

JSON_FILE_TAC = TAC + '''
from twistdlite.logger import ILogObserver, jsonFileLogObserver
application.setComponent(ILogObserver, jsonFileLogObserver(open("j.log", "a")))  # as in Twisted's docs
'''


@pytest.fixture
def app(tmp_path):
    """tmp_path holding app.tac (and logapp.py beside it)."""
    (tmp_path / "logapp.py").write_text(LOGAPP)
    (tmp_path / "app.tac").write_text(TAC)
    return tmp_path


class Daemon:
    """A daemon started with ``twistdlite -oy app.tac ARGS``, killed at teardown if still there."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.pid = None

    def start(self, *args: str, log: str = "twistd.log", tac: str = "app.tac", **env: str) -> int:
        source = ["-f", tac] if tac.endswith(".tap") else ["-oy", tac]
        path = self.cwd / log
        earlier = path.read_text().count("starting on") if path.exists() else 0
        result = run([*source, *args], cwd=self.cwd, **env)
        assert result.returncode == 0, result.stderr
        self.pid = read_pid(self.cwd / "twistd.pid")
        assert self.pid

        def port():
            ports = re.findall(r"starting on (\d+)", path.read_text()) if path.exists() else []
            return int(ports[-1]) if len(ports) > earlier else None

        return wait_until(port, what=f"a new 'starting on' line in {path}")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        wait_gone(self.pid)
        assert not (self.cwd / "twistd.pid").exists()


@pytest.fixture
def daemon(app):
    started = Daemon(app)
    yield started
    if started.pid is not None:
        kill_hard(started.pid)


def send(port: int, *commands: bytes) -> None:
    """Send each command line and wait for its ``ok``."""
    with connect(port) as sock:
        for command in commands:
            sock.sendall(command + b"\r\n")
            assert recv_until(sock, b"\r\n") == b"ok\r\n", command


def send_failing(port: int, command: bytes) -> None:
    """Send a command that makes the protocol raise; the server drops the connection."""
    with connect(port) as sock:
        sock.sendall(command + b"\r\n")
        assert recv_until(sock, b"\r\n") == b""


def entries(path: Path) -> list:
    """The log's lines without their time stamps (continuation lines kept, starting with a tab)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("\t"):
            lines.append(line)
            continue
        match = re.fullmatch(STAMP + r" (\[[^]]+\] .*)", line)
        assert match, f"not a twistd log line: {line!r}"
        lines.append(match.group(1))
    return lines


def test_daemon_default_log_has_twistds_lines_captured_stdio_warnings_errors_and_rotates_on_usr1(daemon, app):
    port = daemon.start()
    send(port, b"log hello", b"print printed words", b"err to stderr", b"warn careful now",
         b"loopboom in the loop", b"log caf\xff\xfe bytes")
    send_failing(port, b"boom kaboom")
    log = app / "twistd.log"
    wait_for_file_text(log, r"ValueError: kaboom")
    assert oct(os.stat(log).st_mode & 0o777) == "0o600"  # the daemon's umask 0077

    daemon.signal(signal.SIGUSR1)
    wait_for_file_text(app / "twistd.log.1", r"Received SIGUSR1, rotating the log\.")
    send(port, b"log after rotation")
    daemon.stop()

    before = entries(app / "twistd.log.1")
    assert re.fullmatch(r"\[twistdlite\] twistdlite \S+ \(\S+ \d+\.\d+\.\d+\S*\) starting up\.", before[0])
    # The protocol's own lines carry its connection's system (the first connection is 0);
    # what it prints stays marked [stdout]/[stderr].
    for expected in ("[twistdlite] reactor class: asyncio.", "[twistdlite] application: logtest",
                     f"[twistdlite] CmdFactory starting on {port}", "[Cmd,0,127.0.0.1] hello",
                     "[stdout] printed words", "[stderr] to stderr",
                     "[Cmd,0,127.0.0.1] caf\\udcff\\udcfe bytes",
                     "[twistdlite] Received SIGUSR1, rotating the log."):
        assert expected in before, expected
    warning = next(line for line in before if "UserWarning" in line)
    assert warning.startswith("[Cmd,0,127.0.0.1] ")  # warned inside lineReceived, as twistd shows it
    assert "UserWarning: careful now" in warning
    loop_error = before.index(next(line for line in before if line.startswith("[asyncio] Exception in callback")))
    assert "\tTraceback (most recent call last):" in before[loop_error:loop_error + 4]
    assert "\tRuntimeError: in the loop" in before[loop_error:]
    proto_error = before.index("[Cmd,1,127.0.0.1] Unhandled error in Cmd.dataReceived; dropping the connection")
    assert before[proto_error + 1] == "\tTraceback (most recent call last):"
    assert "\tValueError: kaboom" in before[proto_error:]

    after = entries(app / "twistd.log")
    assert after[0] == "[Cmd,2,127.0.0.1] after rotation"
    assert "[twistdlite] Received SIGTERM, shutting down." in after
    assert after[-1] == "[twistdlite] Server Shut Down."
    assert sorted(name for name in os.listdir(app) if name.startswith("twistd.log")) == [
        "twistd.log", "twistd.log.1"]


def test_log_rotates_by_size_and_keeps_at_most_max_rotated(daemon, app):
    port = daemon.start("--log-rotate-length", "3000", "--log-max-rotated", "2")
    send(port, b"spam 200")  # ~20 kB: several rotations
    daemon.stop()
    names = sorted(name for name in os.listdir(app) if name.startswith("twistd.log"))
    assert names == ["twistd.log", "twistd.log.1", "twistd.log.2"]
    assert all(os.path.getsize(app / name) <= 3000 for name in names)
    spam = [int(line.split()[2]) for name in ("twistd.log.2", "twistd.log.1", "twistd.log")
            for line in entries(app / name) if line.startswith("[Cmd,0,127.0.0.1] spam")]
    assert spam == list(range(spam[0], 200))  # in order, nothing lost across the kept files


def test_rotation_can_be_turned_off(daemon, app):
    """More than the default limit (1 MB) is logged: with 0, nothing rotates (0 is not "the default")."""
    from twistdlite.launch.options import DEFAULT_ROTATE_LENGTH

    port = daemon.start("--log-rotate-length", "0")
    send(port, b"spam 9000")  # ~1.2 MB
    daemon.stop()
    assert [name for name in os.listdir(app) if name.startswith("twistd.log")] == ["twistd.log"]
    assert os.path.getsize(app / "twistd.log") > DEFAULT_ROTATE_LENGTH


def run_logrotate(app: Path, body: str) -> None:
    config = app / "logrotate.conf"
    config.write_text(f"{app / 'twistd.log'} {{\n{textwrap.indent(body.strip(), '    ')}\n}}\n")
    config.chmod(0o644)
    result = subprocess.run([LOGROTATE, "-f", "-s", str(app / "logrotate.state"), str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(LOGROTATE is None, reason="logrotate is not installed (Debian package logrotate)")
def test_logrotate_move_then_postrotate_usr1_reopens_the_log_at_its_path(daemon, app):
    port = daemon.start()
    send(port, b"log before logrotate")
    run_logrotate(app, f"""
rotate 3
nocompress
postrotate
    kill -USR1 $(cat {app / 'twistd.pid'})
endscript
""")
    wait_until(lambda: (app / "twistd.log").exists(), what="twistd.log to be reopened")
    send(port, b"log after logrotate")
    daemon.stop()
    rotated = entries(app / "twistd.log.1")
    assert "[Cmd,0,127.0.0.1] before logrotate" in rotated
    assert rotated[-1] == "[twistdlite] Received SIGUSR1, rotating the log."
    current = entries(app / "twistd.log")
    assert current[0] == "[Cmd,1,127.0.0.1] after logrotate"
    assert current[-1] == "[twistdlite] Server Shut Down."
    assert not (app / "twistd.log.2").exists()  # reopened, not rotated a second time


@pytest.mark.skipif(LOGROTATE is None, reason="logrotate is not installed (Debian package logrotate)")
def test_logrotate_copytruncate_leaves_a_working_log(daemon, app):
    port = daemon.start()
    send(port, b"log before copytruncate")
    run_logrotate(app, "rotate 3\nnocompress\ncopytruncate\n")
    assert os.path.getsize(app / "twistd.log") == 0
    send(port, b"log after copytruncate")
    daemon.stop()
    assert "[Cmd,0,127.0.0.1] before copytruncate" in entries(app / "twistd.log.1")
    data = (app / "twistd.log").read_bytes()
    assert b"\0" not in data  # appended at the new end, not at the old offset
    assert entries(app / "twistd.log")[0] == "[Cmd,1,127.0.0.1] after copytruncate"


def test_foreground_logs_to_stdout_and_a_file_with_l(app):
    proc = spawn(["-noy", "app.tac"], cwd=app)
    try:
        out = LineReader(proc)
        port = int(out.wait_for(r"CmdFactory starting on (\d+)").group(1))
        send(port, b"log to stdout", b"print plain print")
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        if proc.poll() is None:
            kill_hard(proc.pid)
    text = out.rest()
    assert re.search(STAMP + r" \[Cmd,0,127\.0\.0\.1\] to stdout\n", text)
    assert "\nplain print\n" in text  # not captured in the foreground
    assert re.search(STAMP + r" \[twistdlite\] Server Shut Down\.", text)
    assert not (app / "twistd.log").exists()

    proc = spawn(["-noy", "app.tac", "-l", "fg.log"], cwd=app)
    try:
        port = int(wait_for_file_text(app / "fg.log", r"starting on (\d+)").group(1))
        send(port, b"log to the file")
        proc.send_signal(signal.SIGINT)
        assert wait_exit(proc) == 0
    finally:
        if proc.poll() is None:
            kill_hard(proc.pid)
    assert "[Cmd,0,127.0.0.1] to the file" in entries(app / "fg.log")
    assert b"to the file" not in proc.stdout.read()


def test_syslog_wins_over_logfile_and_sends_to_the_socket(app):
    address = str(app / "syslog.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(10)
    proc = spawn(["-noy", "app.tac", "--syslog", "--prefix", "reverser", "-l", "ignored.log"], cwd=app,
                 TWISTDLITE_SYSLOG_SOCKET=address)
    try:
        messages = []
        while not any(b"starting on" in message for message in messages):
            messages.append(server.recv(65536))
        port = int(re.search(rb"starting on (\d+)", messages[-1]).group(1))
        send(port, b"log via syslog")
        messages.append(server.recv(65536))
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        server.close()
        if proc.poll() is None:
            kill_hard(proc.pid)
    assert messages[0].startswith(f"<14>reverser[{proc.pid}]: [twistdlite] twistdlite ".encode())
    assert messages[-1] == f"<14>reverser[{proc.pid}]: [Cmd,0,127.0.0.1] via syslog\0".encode()
    assert not (app / "ignored.log").exists()


def test_application_component_daily_log_file_as_in_the_twisted_docs(daemon, app):
    (app / "my.tac").write_text(COMPONENT_TAC)
    logdir = app / "logs"
    logdir.mkdir()
    port = daemon.start("-l", "ignored.log", log="logs/my.log", tac="my.tac", LOGDIR=str(logdir))
    send(port, b"log into my.log")
    daemon.signal(signal.SIGUSR1)  # the component's DailyLogFile rotates too
    dated = logdir / ("my.log." + time.strftime("%Y-%m-%d"))
    wait_until(dated.exists, what=str(dated))
    send(port, b"log after usr1")
    daemon.stop()
    assert "[Cmd,0,127.0.0.1] into my.log" in entries(dated)
    assert entries(logdir / "my.log")[0] == "[Cmd,1,127.0.0.1] after usr1"
    assert not (app / "ignored.log").exists() and not (app / "twistd.log").exists()


def test_application_log_observer_survives_the_shutdown_tap(daemon, app):
    (app / "my.tac").write_text(COMPONENT_TAC)
    logdir = app / "logs"
    logdir.mkdir()
    result = run(["-y", "my.tac"], cwd=app, LOGDIR=str(logdir))  # saves logtest-shutdown.tap
    assert result.returncode == 0, result.stderr
    daemon.pid = read_pid(app / "twistd.pid")
    wait_for_file_text(logdir / "my.log", r"starting on")
    daemon.stop()
    assert "[twistdlite] Saved." in entries(logdir / "my.log")
    port = daemon.start(log="logs/my.log", tac="logtest-shutdown.tap")
    send(port, b"log from the restored application")
    daemon.stop()
    lines = entries(logdir / "my.log")
    assert "[Cmd,0,127.0.0.1] from the restored application" in lines
    assert lines[-1] == "[twistdlite] Server Shut Down."
    assert not (app / "twistd.log").exists()


def test_logger_factory_overrides_everything(daemon, app):
    port = daemon.start("--logger", "logapp.json_observer", "-l", "ignored.log", log="log.json",
                        JSON_LOG=str(app / "log.json"))
    send(port, b"log as json")
    daemon.stop()
    events = [json.loads(line) for line in (app / "log.json").read_text().splitlines()]
    expected = {"system": "Cmd,0,127.0.0.1", "message": "as json", "level": "info", "logger": "app"}
    assert expected.items() <= next(event for event in events if event["logger"] == "app").items()
    assert events[-1]["message"] == "Server Shut Down."
    assert not (app / "ignored.log").exists() and not (app / "twistd.log").exists()


@pytest.mark.parametrize("spec, status, message", [
    ("nosuchmodule.factory", 2, "--logger 'nosuchmodule.factory': no module named 'nosuchmodule'"),
    ("logapp.missing", 2, "--logger 'logapp.missing': logapp has no attribute 'missing'"),
    ("logapp.not_callable", 2, "--logger 'logapp.not_callable': a str is not callable"),
    ("logapp.not_an_observer", 1, "--logger 'logapp.not_an_observer' returned a int: int is not a log observer"),
])
def test_bad_logger_is_one_clear_line(app, spec, status, message):
    result = run(["-oy", "app.tac", "--logger", spec], cwd=app)
    wait_daemon_gone(app)
    assert result.returncode == status
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"twistdlite: error: {message}"), result.stderr
    assert not (app / "twistd.pid").exists()


def processes_in(directory: Path) -> list:
    """PIDs of live processes whose working directory is ``directory``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == str(directory):
                    with open(f"/proc/{entry}/stat") as handle:
                        if handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                            found.append(int(entry))
            except OSError:
                continue
    return found


def wait_daemon_gone(directory: Path) -> None:
    """A daemon that failed to start may still be cleaning up after its launcher returned: wait for it."""
    for pid in processes_in(directory):
        wait_gone(pid)


def unwritable_directory(app: Path) -> Path:
    if os.geteuid() != 0:
        locked = app / "locked"
        locked.mkdir(mode=0o500)
        return locked
    try:  # root writes anywhere; /sys refuses new files even to root
        os.close(os.open("/sys/twistdlite-probe.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    except OSError:
        return Path("/sys")
    os.unlink("/sys/twistdlite-probe.log")
    pytest.skip("no directory here is unwritable for root")


def test_unwritable_log_directory_is_reported_by_the_launching_command(app):
    directory = unwritable_directory(app)
    result = run(["-oy", "app.tac", "-l", str(directory / "app.log")], cwd=app)
    wait_daemon_gone(app)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"twistdlite: error: cannot open log file {directory / 'app.log'}: Permission denied"]
    assert not (app / "twistd.pid").exists()


def test_an_observer_that_raises_is_reported_once_and_the_service_keeps_running(app):
    (app / "broken.tac").write_text(BROKEN_OBSERVER_TAC)
    proc = spawn(["-noy", "broken.tac", "--pidfile", ""], cwd=app)
    try:
        out = LineReader(proc)
        out.wait_for(r"RuntimeError: observer bug")
        port = _listening_port(proc.pid)  # the observer lost the "starting on" line
        send(port, b"log one", b"log two", b"log three")
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        if proc.poll() is None:
            kill_hard(proc.pid)
    text = out.rest()
    assert text.count("observer bug") == 1, text
    assert "twistdlite: logging to the log observer" in text


def _listening_port(pid: int) -> int:
    """The TCP port ``pid`` listens on (from /proc), waiting until it does."""
    def sockets() -> set:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        return inodes

    def find():
        inodes = sockets()  # asked again each time: the port may not be bound yet
        with open("/proc/net/tcp") as table:
            for row in table.readlines()[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    return int(fields[1].split(":")[1], 16)
        return 0

    return wait_until(find, what=f"a listening socket of PID {pid}")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_disk_full_never_stops_the_service(app):
    # Rotation off: renaming is guarded to regular files (tested on a FIFO), never tried on /dev.
    proc = spawn(["-noy", "app.tac", "-l", "/dev/full", "--log-rotate-length", "0", "--pidfile", ""], cwd=app)
    try:
        out = LineReader(proc)
        out.wait_for(r"No space left on device")
        port = _listening_port(proc.pid)
        send(port, b"log lost", b"spam 50", b"log still lost")
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        if proc.poll() is None:
            kill_hard(proc.pid)
    text = out.rest()
    assert text.count("No space left on device") == 1, text
    assert text.startswith("twistdlite: logging to /dev/full failed: OSError: [Errno 28]")


def test_a_connections_own_lines_carry_its_system_as_in_twistd(daemon, app):
    (app / "chatty.tac").write_text(CHATTY_TAC)
    daemon.start(tac="chatty.tac")  # returns once every service has started: both ports are logged
    text = (app / "twistd.log").read_text()
    tcp = int(re.search(r"ChattyFactory starting on (\d+)", text).group(1))
    udp = int(re.search(r"EchoUDP starting on (\d+)", text).group(1))
    send(tcp, b"one", b"two")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(b"ping", ("127.0.0.1", udp))
        assert sock.recvfrom(100)[0] == b"ping"
    daemon.stop()
    lines = entries(app / "twistd.log")
    for expected in ("[Chatty,0,127.0.0.1] connected", "[Chatty,0,127.0.0.1] line one",
                     "[Chatty,0,127.0.0.1] line two", "[Chatty,0,127.0.0.1] disconnected",
                     "[EchoUDP (UDP)] datagram b'ping'",
                     "[app] later, outside the callback"):  # scheduled work is not the callback
        assert expected in lines, expected
    assert lines.index("[Chatty,0,127.0.0.1] connected") < lines.index("[Chatty,0,127.0.0.1] disconnected")


def test_a_daemons_always_failing_observer_is_reported_once_to_syslog_and_never_loops(app):
    # A daemon's stderr is captured into the log, which is what fails, and the
    # stderr it replaced is /dev/null: the one report goes to syslog.
    (app / "broken.tac").write_text(BROKEN_OBSERVER_TAC)
    address = str(app / "syslog.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(20)
    pid = None
    try:
        result = run(["-oy", "broken.tac"], cwd=app, TWISTDLITE_SYSLOG_SOCKET=address)
        assert result.returncode == 0, result.stderr
        pid = read_pid(app / "twistd.pid")
        report = server.recv(65536)
        send(_listening_port(pid), b"log one", b"print two", b"err three", b"spam 20")
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.recv(65536)  # nothing more: reported once, no loop
    finally:
        server.close()
        if pid is not None and not is_gone(pid):
            kill_hard(pid)
    assert re.fullmatch(rf"<11>twistdlite\[{pid}\]: \[twistdlite\] twistdlite: logging to the log observer "
                        r"<function broken_observer at 0x[0-9a-f]+> failed: RuntimeError: observer bug "
                        r"\(further failures are not reported\)\x00", report.decode()), report
    assert not (app / "twistd.pid").exists() and not (app / "twistd.log").exists()


def test_a_json_observer_on_a_plain_open_file_survives_the_shutdown_tap(daemon, app):
    # open("j.log", "a") in the .tac, as Twisted's docs show it; --rundir moves the run (and
    # the .tap) elsewhere after the .tac is read, so the file is saved by its absolute path.
    (app / "json.tac").write_text(JSON_FILE_TAC)
    (app / "run").mkdir()
    where = ("--rundir", "run", "--pidfile", str(app / "twistd.pid"))
    result = run(["-y", "json.tac", *where], cwd=app)  # saves run/logtest-shutdown.tap
    assert result.returncode == 0, result.stderr
    daemon.pid = read_pid(app / "twistd.pid")
    port = int(wait_for_file_text(app / "j.log", r"starting on (\d+)").group(1))
    send(port, b"log before the restart")
    daemon.stop()
    assert "Saved." in [json.loads(line)["message"] for line in (app / "j.log").read_text().splitlines()]
    port = daemon.start(*where, log="j.log", tac="run/logtest-shutdown.tap")
    send(port, b"log from the restored observer")
    daemon.stop()
    events = [json.loads(line) for line in (app / "j.log").read_text().splitlines()]
    messages = [event["message"] for event in events]
    assert messages.index("before the restart") < messages.index("from the restored observer")  # appended
    assert messages[-1] == "Server Shut Down." and messages.count("Saved.") == 2
    assert next(event for event in events if event["message"] == "from the restored observer")["system"] == (
        "Cmd,0,127.0.0.1")
    assert not (app / "twistd.log").exists() and not (app / "run" / "twistd.log").exists()
