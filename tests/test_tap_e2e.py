"""The shutdown .tap end to end: save on SIGTERM, restart with -f, refuse damaged or unsafe files.

Every run is a real twistdlite process on 127.0.0.1; waits are on log lines and
process exit, never fixed sleeps.
"""

from __future__ import annotations

import json
import os
import pickle
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from support import (EXAMPLES, LineReader, connect, read_pid, recv_until, run, spawn, stop_process, wait_exit,
                     wait_for_file_text, wait_gone, wait_status, wait_until)
from twistdlite.launch import persist

COUNTER_TAC = str(EXAMPLES / "counter.tac")
ROOT = os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ask(port: int, *commands: str) -> list:
    """Open one connection, send each command, return the reply lines."""
    replies = []
    with connect(port) as sock:
        for command in commands:
            sock.sendall(command.encode() + b"\n")
            replies.append(recv_until(sock, b"\n").decode().strip())
        sock.sendall(b"quit\n")
        assert sock.recv(100) == b""
    return replies


def status(port: int) -> dict:
    return json.loads(ask(port, "status")[0])


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return wait_exit(proc)


def kill(proc: subprocess.Popen) -> None:
    stop_process(proc)


def saved_factory(path: Path):
    app, header = persist.load(str(path))
    top = app.getServiceNamed("counter")
    return top.getServiceNamed("tcp").factory, top.getServiceNamed("ticker"), header


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("twistdlite: error: "), stderr
    return lines[0][len("twistdlite: error: "):]


# -- the documented promise -------------------------------------------------------------

def test_counter_state_port_and_timer_survive_a_restart_from_the_shutdown_tap(tmp_path):
    port = free_port()
    proc = spawn(["-ny", COUNTER_TAC], cwd=tmp_path, COUNTER_PORT=str(port), COUNTER_STEP="0.05")
    try:
        out = LineReader(proc)
        out.wait_for(rf"CounterFactory starting on {port}\b")
        assert ask(port, "count") == ["connections 1"]
        assert ask(port, "greet bonjour", "hello") == ["ok", "bonjour"]
        wait_until(lambda: status(port)["ticks"] >= 3, what="the timer to tick")
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)
    assert re.search(r"Saving Counter application to Counter-shutdown.tap\.\.\.\n.*Saved\.", out.rest())
    tap = tmp_path / "Counter-shutdown.tap"
    assert stat.S_IMODE(tap.stat().st_mode) == 0o600
    assert not (tmp_path / "twistd.pid").exists()
    factory, ticker, header = saved_factory(tap)
    connections, ticks = factory.connections, factory.ticks
    # count, greet, and at least one status poll (one is enough when the timer ticked 3 times already)
    assert connections >= 3 and factory.greeting == "bonjour" and ticks >= 3
    assert ticker.step == 0.05 and header.path == (str(EXAMPLES),)

    # No COUNTER_* variables now: the port, step and state all come from the .tap.
    proc = spawn(["-nf", "Counter-shutdown.tap"], cwd=tmp_path)
    try:
        out = LineReader(proc)
        out.wait_for(rf"CounterFactory starting on {port}\b")  # the same fixed port
        now = status(port)
        assert now["connections"] == connections + 1 and now["greeting"] == "bonjour"
        assert now["ticks"] >= ticks and now["step"] == 0.05
        # The timer goes on at its saved 0.05 s step (at the default 1 s this would take 5 s).
        wait_until(lambda: status(port)["ticks"] >= ticks + 5, timeout=2.5, what="the restored timer")
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)
    assert "Saved." in out.rest()
    # The restarted application kept its name: the same file was overwritten, no other .tap appeared.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Counter-shutdown.tap"]
    factory, _, _ = saved_factory(tap)
    assert factory.connections >= connections + 3 and factory.ticks >= ticks + 5


def test_daemon_round_trip_with_a_key_from_the_environment(tmp_path):
    key = tmp_path / "tap.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    rundir = tmp_path / "run"
    rundir.mkdir()
    result = run(["-y", COUNTER_TAC], cwd=rundir, COUNTER_PORT="0", COUNTER_STEP="0.05",
                 TWISTDLITE_TAP_KEY=str(key))
    assert result.returncode == 0, result.stderr
    log = rundir / "twistd.log"
    pid = read_pid(rundir / "twistd.pid")
    try:
        port = int(wait_for_file_text(log, r"CounterFactory starting on (\d+)").group(1))
        assert ask(port, "greet from the daemon") == ["ok"]
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        _kill_pid(pid)
    tap = rundir / "Counter-shutdown.tap"
    assert b'"digest":"hmac-sha256"' in tap.read_bytes().split(b"\n")[1]
    assert not (rundir / "twistd.pid").exists()

    refused = run(["-nof", "Counter-shutdown.tap"], cwd=rundir)
    assert refused.returncode == 1
    assert one_error_line(refused.stderr).startswith("Counter-shutdown.tap is signed with a key: pass --tap-key")

    result = run(["-f", "Counter-shutdown.tap", "--tap-key", str(key)], cwd=rundir)
    assert result.returncode == 0, result.stderr
    pid = read_pid(rundir / "twistd.pid")
    try:
        ports = wait_until(lambda: re.findall(r"CounterFactory starting on (\d+)", log.read_text())[1:],
                           what="the restarted daemon to listen")
        assert ask(int(ports[0]), "hello") == ["from the daemon"]
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        _kill_pid(pid)
    assert "Saved." in log.read_text().rsplit("starting on", 1)[1]


def _kill_pid(pid) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_gone(pid)


# -- damaged, foreign and unsafe files -----------------------------------------------------

class Marker:
    """Unpickling this creates a file: proof that a .tap was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _write_bad_tap(tmp_path: Path, kind: str) -> tuple:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Marker(str(marker)))
    key = persist.TapKey(b"a" * 32, str(tmp_path / "a.key"))
    data = b"".join(persist.encode(payload, key if kind == "wrong key" else None))
    path = tmp_path / "bad.tap"
    mode = 0o600
    if kind == "truncated":
        data = data[:-4]
    elif kind == "flipped byte":
        data = data[:-2] + bytes([data[-2] ^ 0x04]) + data[-1:]
    elif kind == "plain pickle":
        data = payload
    elif kind == "newer format":
        data = data.replace(b"TWISTDLITE-TAP 1", b"TWISTDLITE-TAP 2", 1)
    elif kind in ("nested header", "nested header, key"):
        data = b"TWISTDLITE-TAP 1\n" + b"[" * 30_000 + b"]" * 30_000 + b"\n" + b"0" * 64 + b"\n" + payload
    elif kind == "world-writable":
        mode = 0o666
    elif kind == "missing":
        return path, marker
    path.write_bytes(data)
    path.chmod(mode)
    if kind == "other owner":
        os.chown(path, 65534, 65534)
    return path, marker


BAD = {
    "truncated": "bad.tap is truncated (",
    "flipped byte": "bad.tap is damaged: its contents do not match its SHA-256 digest; refusing to load it",
    "plain pickle": "bad.tap is not a twistdlite .tap file (it looks like a plain pickle): it has no",
    "newer format": "bad.tap was written by twistdlite ",
    "wrong key": "bad.tap was not signed with the key in ",
    "nested header": "bad.tap is damaged (its header is unreadable); refusing to load it",
    "nested header, key": "bad.tap is damaged (its header is unreadable); refusing to load it",
    "world-writable": "bad.tap is writable by group and others (mode 0666)",
    "other owner": "bad.tap is owned by nobody (uid 65534), and loading it as root would let that user",
    "missing": "Application file 'bad.tap' does not exist",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_tap_is_refused_with_one_line_and_exit_1_before_unpickling(tmp_path, kind):
    if kind == "other owner" and not ROOT:
        pytest.skip("chown needs root")
    path, marker = _write_bad_tap(tmp_path, kind)
    key_file = tmp_path / "b.key"
    key_file.write_bytes(b"b" * 32)
    key_file.chmod(0o600)
    args = ["-nf", "bad.tap"] + (["--tap-key", str(key_file)] if kind in ("wrong key", "nested header, key")
                                 else [])
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(args, cwd=tmp_path)
    assert result.returncode == 1
    assert one_error_line(result.stderr).startswith(BAD[kind])
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no pidfile, log or .tap written


def test_the_marker_is_unpickled_from_an_intact_tap(tmp_path):
    """The control for the test above: the same payload, intact, is unpickled (and refused after)."""
    path, marker = _write_bad_tap(tmp_path, "intact")
    result = run(["-nf", "bad.tap"], cwd=tmp_path)
    assert result.returncode == 1
    assert "'application' in bad.tap is a TextIOWrapper, not a twistdlite service" in result.stderr
    assert marker.exists()


def test_allow_unsafe_tap_loads_a_world_writable_tap(tmp_path):
    from twistdlite import service

    app = service.Application("Loose")
    path = tmp_path / "loose.tap"
    persist.save(app, str(path))
    path.chmod(0o666)
    assert run(["-nf", "loose.tap"], cwd=tmp_path).returncode == 1
    proc = spawn(["-nf", "loose.tap", "--allow-unsafe-tap", "-o"], cwd=tmp_path)
    try:
        out = LineReader(proc)
        out.wait_for(r"application: Loose")
        wait_until(lambda: read_pid(tmp_path / "twistd.pid") == proc.pid, what="the pidfile")
        assert stop(proc) == 0, out.rest()
    finally:
        kill(proc)


def test_default_tap_file_is_twistd_tap(tmp_path):
    result = run(["-n"], cwd=tmp_path)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == "Application file 'twistd.tap' does not exist"


@pytest.mark.parametrize("mode", [["-ny"], ["-noy"]])
def test_missing_key_file_fails_before_anything_is_written(tmp_path, mode):
    result = run([*mode, COUNTER_TAC, "--tap-key", "no.key"], cwd=tmp_path, COUNTER_PORT="0")
    assert result.returncode == 1
    assert one_error_line(result.stderr) == "tap key file 'no.key' does not exist"
    assert list(tmp_path.iterdir()) == []


# -- faults at save time: shutdown completes, the old .tap stays, exit 1 -------------------

FAULTY_MODULE = '''\
"""A service that can be made unsaveable, and a write function that finds the disk full."""
import errno
import logging
import os
import threading

from twistdlite import service


class Holder(service.Service):
    def startService(self):
        service.Service.startService(self)
        logging.getLogger("twistdlite").info("holder started")


def full_disk(fd, chunks):
    os.write(fd, chunks[0][:8])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def apply(holder, fault):
    if fault == "lock":
        holder.lock = threading.Lock()
    elif fault == "full":
        from twistdlite.launch import persist
        persist._write_all = full_disk
'''

FAULTY_TAC = '''\
import os
from twistdlite import service
import faulty
application = service.Application("Faulty")
holder = faulty.Holder()
holder.setName("holder")
holder.setServiceParent(application)
faulty.apply(holder, os.environ.get("FAULT", ""))
'''


def _faulty_app(tmp_path: Path) -> tuple:
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "faulty.py").write_text(FAULTY_MODULE)
    (appdir / "faulty.tac").write_text(FAULTY_TAC)
    rundir = tmp_path / "run"
    rundir.mkdir()
    from twistdlite import service

    previous = service.Application("Faulty")
    persist.save(previous, str(rundir / "Faulty-shutdown.tap"))
    return appdir / "faulty.tac", rundir, (rundir / "Faulty-shutdown.tap").read_bytes()


def _run_until_stopped(args, rundir, **env) -> tuple:
    proc = spawn(args, cwd=rundir, **env)
    try:
        out = LineReader(proc)
        out.wait_for(r"holder started")
        code = stop(proc)
    finally:
        kill(proc)
    return code, out.rest()


@pytest.mark.parametrize("fault, reason", [
    ("lock", "service 'Faulty/holder' attribute 'lock' cannot be pickled: TypeError: cannot pickle "
             "'_thread.lock' object"),
    ("full", "No space left on device (in {rundir})"),
])
def test_save_failure_keeps_the_previous_tap_and_exits_1(tmp_path, fault, reason):
    tac, rundir, previous = _faulty_app(tmp_path)
    code, text = _run_until_stopped(["-ny", str(tac)], rundir, FAULT=fault)
    assert code == 1, text
    expected = (f"cannot save Faulty-shutdown.tap: {reason.format(rundir=rundir)}; "
                "Faulty-shutdown.tap was not changed")
    assert re.search(r"\[twistdlite\] " + re.escape(expected) + "\n", text), text
    assert "Server Shut Down." in text
    assert (rundir / "Faulty-shutdown.tap").read_bytes() == previous
    assert sorted(p.name for p in rundir.iterdir()) == ["Faulty-shutdown.tap"]  # no pidfile, no temp file


def test_unwritable_run_directory_at_save_time(tmp_path):
    tac, rundir, previous = _faulty_app(tmp_path)
    piddir = tmp_path / "run" / "pid"
    piddir.mkdir()
    if ROOT:
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no 'nobody' user to drop to")
        os.chown(piddir, nobody.pw_uid, nobody.pw_gid)
        rundir.chmod(0o755)
        args = ["-ny", str(tac), "--pidfile", "pid/twistd.pid", "-u", str(nobody.pw_uid), "-g", str(nobody.pw_gid)]
        code, text = _run_until_stopped(args, rundir)
    else:
        args = ["-ny", str(tac), "--pidfile", str(piddir / "twistd.pid")]
        proc = spawn(args, cwd=rundir)
        try:
            out = LineReader(proc)
            out.wait_for(r"holder started")
            rundir.chmod(0o500)
            code = stop(proc)
        finally:
            kill(proc)
            rundir.chmod(0o700)
        text = out.rest()
    assert code == 1, text
    assert (f"cannot save Faulty-shutdown.tap: Permission denied (in {rundir}); Faulty-shutdown.tap was not "
            "changed\n") in text
    assert "Server Shut Down." in text
    assert (rundir / "Faulty-shutdown.tap").read_bytes() == previous
    assert sorted(p.name for p in rundir.iterdir()) == ["Faulty-shutdown.tap", "pid"]
    assert list(piddir.iterdir()) == []  # the pidfile was removed


# -- the save interrupted: a second signal, or SIGKILL -------------------------------------------

SLOW_SAVE_TAC = str(Path(__file__).parent / "tacs" / "slow_save.tac")


def _slow_save_daemon(rundir: Path) -> tuple:
    """A daemon whose shutdown save is under way (its temporary file half written): (pid, temp file)."""
    done = run(["-y", SLOW_SAVE_TAC], cwd=rundir, SLOW_SAVE_MARK=str(rundir / "mark"))
    assert done.returncode == 0, done.stderr
    pid = read_pid(rundir / "twistd.pid")
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: (rundir / "mark").exists(), what="the save to begin")
    temps = [p for p in rundir.iterdir() if p.name.endswith(".tmp")]
    assert [p.name for p in temps] == [p.name for p in temps if re.fullmatch(
        rf"\.slowsave-shutdown\.tap\.{pid}-\w+\.tmp", p.name)] and len(temps) == 1, temps
    return pid, temps[0]


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_during_the_save_stops_at_once_and_keeps_the_previous_tap(tmp_path, second):
    from twistdlite import service

    persist.save(service.Application("slowsave"), str(tmp_path / "slowsave-shutdown.tap"))
    previous = (tmp_path / "slowsave-shutdown.tap").read_bytes()
    pid, temp = _slow_save_daemon(tmp_path)
    began = time.monotonic()
    os.kill(pid, second)
    assert wait_status(pid) == 1
    assert time.monotonic() - began < 10
    assert (tmp_path / "slowsave-shutdown.tap").read_bytes() == previous
    assert not temp.exists() and not (tmp_path / "twistd.pid").exists()
    log = (tmp_path / "twistd.log").read_text()
    lines = [line.split("] ", 1)[1] for line in log.splitlines() if "] " in line]
    assert lines[-4:] == [
        "Saving slowsave application to slowsave-shutdown.tap...",
        f"Received {signal.Signals(second).name} again, stopping at once.",
        "Stopped at once: the save was cut short; no .tap saved (slowsave-shutdown.tap was not changed).",
        "Server Shut Down."], log
    assert "Saved." not in lines


def test_a_save_killed_with_sigkill_leaves_a_temporary_file_the_next_start_removes(tmp_path):
    pid, temp = _slow_save_daemon(tmp_path)
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert temp.exists()  # what SIGKILL leaves
    foreign = tmp_path / ".slowsave-shutdown.tap.1-notours.tmp"  # PID 1 lives: never removed
    foreign.write_bytes(b"someone else's")
    (tmp_path / "twistd.log").unlink()
    done = run(["-y", SLOW_SAVE_TAC], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pid = read_pid(tmp_path / "twistd.pid")
    try:
        assert not temp.exists()
        assert foreign.read_bytes() == b"someone else's"
        assert f"Removed {temp.name}, left by a save that was interrupted (PID " in (
            tmp_path / "twistd.log").read_text().replace("./", "")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    assert (tmp_path / "slowsave-shutdown.tap").exists()
