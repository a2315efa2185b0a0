"""Daemon mode end to end: every way a start or a stop can go wrong.

The launching command must exit 0 only when every service has started, and
otherwise print the daemon's error and exit 1 -- after the daemon has stopped
what it started and removed its pidfile. Never a hang, nothing left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from daemon_helpers import adopted, launch, popen, wait_no_daemon
from daemon_helpers import open_fds
from support import (LineReader, is_gone, kill_hard, listening_port, read_pid, stop_process, wait_for_file_text,
                     wait_gone, wait_status, wait_until)


def failed_start(cwd, services, *args, **env):
    """Launch a daemon whose start must fail; returns its one error line (after checking the rest)."""
    started_at = time.monotonic()
    done = launch(["-o", *args], cwd, services, **env)
    elapsed = time.monotonic() - started_at
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("twistdlite: error: "), done.stderr
    # By the time the launching command has exited, the pidfile is gone...
    assert not (cwd / "twistd.pid").exists()
    # ...and the daemon is on its way out (it exits right after removing the pidfile).
    wait_no_daemon()
    return lines[0][len("twistdlite: error: "):], elapsed


def log_of(cwd):
    return (cwd / "twistd.log").read_text()


def test_a_start_that_raises_after_detaching(tmp_path):
    error, _ = failed_start(tmp_path, "record:a,record:b,start_raises")
    assert error == "start failed: RuntimeError: boom at start"
    log = log_of(tmp_path)
    assert "RuntimeError: boom at start" in log and "Traceback" in log
    assert log.index("stopped b") < log.index("stopped a")  # what started is stopped, in reverse


def test_an_awaitable_that_fails_later_is_a_failed_start(tmp_path):
    error, elapsed = failed_start(tmp_path, "record:a,listener:0,fails_later")
    assert error == "start failed: RuntimeError: failed half a second later"
    assert elapsed >= 0.5
    log = log_of(tmp_path)
    assert log.index("stopped listener") < log.index("stopped a")


@pytest.mark.parametrize("kind", ["never_starts", "sync_hang"])
def test_a_start_that_never_finishes_times_out_naming_the_service(tmp_path, kind):
    error, elapsed = failed_start(tmp_path, f"record:a,{kind}:slowpoke", "--start-timeout", "0.5")
    assert error.startswith("start timed out after 0.5 s (still starting <")
    assert "'slowpoke'> (at daemontest/slowpoke))" in error
    assert elapsed < 10
    assert "stopped a" in log_of(tmp_path)


def test_a_port_in_use_is_reported_by_the_launching_command(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        error, _ = failed_start(tmp_path, f"record:a,listener:{port}")
    assert error.startswith("start failed: OSError: [Errno 98]") and "in use" in error


def test_a_daemon_that_dies_before_reporting(tmp_path):
    error, _ = failed_start(tmp_path, "record:a,exits")
    assert error == f"the daemon exited before it was ready; see {tmp_path / 'twistd.log'}"


def test_an_unusable_log_file(tmp_path):
    (tmp_path / "logdir").mkdir()
    error, _ = failed_start(tmp_path, "record:a", "-l", "logdir")
    assert error.startswith(f"cannot open log file {tmp_path / 'logdir'}: Is a directory")
    error, _ = failed_start(tmp_path, "record:a", "-l", "missing/app.log")
    assert error.startswith(f"cannot open log file {tmp_path / 'missing' / 'app.log'}")


def test_sigterm_while_services_are_still_starting(tmp_path, daemons):
    proc = popen(["-o", "--start-timeout", "60"], tmp_path, "record:a,never_starts")
    try:
        wait_for_file_text(tmp_path / "twistd.log", "starting forever")
        pid = daemons.from_pidfile(tmp_path / "twistd.pid")
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(20) == 1
        assert LineReader(proc).rest() == \
            "twistdlite: error: stopped by SIGTERM before every service had started\n"
        assert not (tmp_path / "twistd.pid").exists()
        wait_gone(pid)
        assert "stopped a" in log_of(tmp_path)
    finally:
        stop_process(proc)


def test_a_stop_that_hangs_is_bounded_and_names_the_service(tmp_path, daemons):
    done = launch(["-o", "--shutdown-timeout", "0.5"], tmp_path, "record:a,hangs_stopping:stuck,record:b")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    os.kill(pid, signal.SIGTERM)
    assert wait_status(pid) == 1
    assert not (tmp_path / "twistd.pid").exists()
    log = log_of(tmp_path)
    assert ("Stopping the application took longer than 0.5 s (still waiting for <HangsStopping 'stuck'> "
            "(at daemontest/stuck)); exiting anyway.") in log
    assert "stopped b" in log


def test_a_stop_that_blocks_synchronously_is_bounded_too(tmp_path, daemons):
    done = launch(["-o", "--shutdown-timeout", "0.5"], tmp_path, "record:a,sync_hangs_stopping:blocked")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    os.kill(pid, signal.SIGTERM)
    assert wait_status(pid, timeout=15) == 1
    assert not (tmp_path / "twistd.pid").exists()
    log = log_of(tmp_path)
    assert ("Stopping the application took longer than 0.5 s (still waiting for <SyncHangsStopping 'blocked'> "
            "(at daemontest/blocked)); exiting anyway.") in log
    assert "Server Shut Down." in log


def test_a_second_signal_cuts_a_blocking_stop_short(tmp_path, daemons):
    done = launch(["-o"], tmp_path, "record:a,sync_hangs_stopping:blocked")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    os.kill(pid, signal.SIGTERM)
    wait_for_file_text(tmp_path / "twistd.log", "blocking in stopService")
    os.kill(pid, signal.SIGINT)
    assert wait_status(pid, timeout=15) == 1
    assert not (tmp_path / "twistd.pid").exists()
    log = log_of(tmp_path)
    assert log.count("Received SIGINT again, stopping at once.") == 1
    assert "Server Shut Down." in log


def test_a_worker_a_service_forks_keeps_neither_the_pipe_nor_the_pidfile_lock(tmp_path, daemons):
    """The launching command returns at READY although the worker lives on; the lock dies with the daemon."""
    began = time.monotonic()
    done = launch(["-o"], tmp_path, "forks,record:a,listener:0")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 15
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    worker = daemons.track(int((tmp_path / "worker.pid").read_text()))
    try:
        targets = open_fds(worker).values()
        assert str(tmp_path / "twistd.pid") not in targets
        assert not is_gone(worker)
        os.kill(pid, signal.SIGKILL)  # the daemon dies; its worker lives on
        wait_gone(pid)
        status = launch(["status"], tmp_path, tac=False)
        assert status.returncode == 1, status.stdout  # dead, pidfile left: not "running"
    finally:
        kill_hard(worker)


def test_a_stop_that_hangs_exits_non_zero_in_the_foreground(tmp_path):
    proc = popen(["-n", "-o", "--shutdown-timeout", "0.5"], tmp_path, "hangs_stopping:stuck,record:a")
    out = LineReader(proc)
    try:
        out.wait_for("started a")  # every service has started (a SIGTERM before that stops the start instead)
        wait_until(lambda: (tmp_path / "twistd.pid").exists(), what="the pidfile")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 1
        assert "took longer than 0.5 s (still waiting for <HangsStopping 'stuck'>" in out.rest()
        assert not (tmp_path / "twistd.pid").exists()
    finally:
        stop_process(proc)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_during_shutdown_stops_at_once(tmp_path, daemons, second):
    done = launch(["-o"], tmp_path, "record:a,slow_stop:60")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    os.kill(pid, signal.SIGTERM)
    wait_for_file_text(tmp_path / "twistd.log", "slow stop begins")
    began = time.monotonic()
    os.kill(pid, second)
    assert wait_status(pid) == 1
    assert time.monotonic() - began < 10
    assert not (tmp_path / "twistd.pid").exists()
    log = log_of(tmp_path)
    assert "slow stop done" not in log
    lines = [line.split("] ", 1)[1] for line in log.splitlines() if "] " in line]
    assert lines[-3:] == [f"Received {signal.Signals(second).name} again, stopping at once.",
                          "Stopped at once: the services may not have finished stopping; no .tap saved.",
                          "Server Shut Down."], log


def test_kill_9_then_a_new_start(tmp_path, daemons):
    done = launch(["-o"], tmp_path)
    assert done.returncode == 0, done.stderr
    old = daemons.track(read_pid(tmp_path / "twistd.pid"))
    os.kill(old, signal.SIGKILL)
    wait_gone(old)
    assert read_pid(tmp_path / "twistd.pid") == old  # left behind, but nobody holds its lock
    done = launch(["-o"], tmp_path)
    assert done.returncode == 0, done.stderr
    new = daemons.track(read_pid(tmp_path / "twistd.pid"))
    assert new != old
    assert f"Removing stale pidfile {tmp_path / 'twistd.pid'} (it named PID {old})" in log_of(tmp_path)
    daemons.stop(new)
    assert not (tmp_path / "twistd.pid").exists()


@pytest.mark.parametrize("who", ["this test process", "PID 1", "garbage", "a zombie"])
def test_a_pidfile_naming_a_live_unrelated_process_is_stale(tmp_path, daemons, who):
    zombie = None
    if who == "a zombie":
        zombie = subprocess.Popen([sys.executable, "-c", "pass"])
        wait_until(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
                   what="a zombie")
        content = str(zombie.pid)
    else:
        content = {"this test process": str(os.getpid()), "PID 1": "1", "garbage": "not a pid"}[who]
    (tmp_path / "twistd.pid").write_text(content + "\n")
    try:
        done = launch(["-o"], tmp_path)
        assert done.returncode == 0, done.stderr
        pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
        assert f"(it named PID {content})" in log_of(tmp_path)
        daemons.stop(pid)
    finally:
        if zombie is not None:
            zombie.wait()
    assert not is_gone(os.getpid())


def test_a_pidfile_of_a_running_twisted_twistd_is_left_alone(tmp_path):
    """Twisted's twistd holds no lock on its pidfile: its live PID there refuses the start, untouched."""
    fake = tmp_path / "bin" / "twistd"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    twistd = subprocess.Popen([sys.executable, str(fake), "-y", "app.tac"])
    try:
        (tmp_path / "twistd.pid").write_text(f"{twistd.pid}")
        done = launch(["-o"], tmp_path)
        assert done.returncode == 1
        assert done.stderr == (f"twistdlite: error: pidfile {tmp_path / 'twistd.pid'} names PID {twistd.pid}, a "
                               "running twistd (Twisted's, which does not lock its pidfile); refusing to replace it\n")
        assert (tmp_path / "twistd.pid").read_text() == f"{twistd.pid}"
        assert sorted(os.listdir(tmp_path)) == ["bin", "twistd.pid"]
    finally:
        twistd.kill()
        twistd.wait()
    done = launch(["-o"], tmp_path)  # once that twistd is gone, its pidfile is stale like any other
    assert done.returncode == 0, done.stderr
    pid = read_pid(tmp_path / "twistd.pid")
    os.kill(pid, signal.SIGTERM)
    assert wait_status(pid) == 0


def test_a_live_daemon_refuses_a_second_start(tmp_path, daemons):
    done = launch(["-o"], tmp_path)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    again = launch(["-o"], tmp_path)
    assert again.returncode == 1
    assert again.stderr == f"twistdlite: error: already running, PID {pid} (pidfile {tmp_path / 'twistd.pid'})\n"
    assert read_pid(tmp_path / "twistd.pid") == pid and not is_gone(pid)
    daemons.stop(pid)


@pytest.mark.parametrize("stale", [False, True])
def test_twenty_launches_racing_for_one_pidfile(tmp_path, daemons, stale):
    if stale:
        (tmp_path / "twistd.pid").write_text("99999999\n")
    procs = [popen(["-o"], tmp_path) for _ in range(20)]
    try:
        codes = [proc.wait(60) for proc in procs]
        outputs = [LineReader(proc).rest() for proc in procs]
    finally:
        for proc in procs:
            stop_process(proc)
    assert sorted(codes) == [0] + [1] * 19, list(zip(codes, outputs))
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    for code, output in zip(codes, outputs):
        if code == 0:
            assert output == ""
        else:
            assert output == f"twistdlite: error: already running, PID {pid} (pidfile {tmp_path / 'twistd.pid'})\n"
    assert adopted() == {pid}  # exactly one daemon runs
    log = log_of(tmp_path)
    assert log.count("starting up.") == 1
    assert ("Removing stale pidfile" in log) == stale
    port = listening_port(log)
    assert port
    daemons.stop(pid)
    assert not (tmp_path / "twistd.pid").exists()


@pytest.mark.parametrize("umask", ["999", "abc", "8", "1000"])
def test_an_invalid_umask_is_a_usage_error(tmp_path, umask):
    done = launch(["-o", "--umask", umask], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("twistdlite: error: invalid value for '--umask': invalid umask")
    assert len(done.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("option,message", [
    ("-d", "cannot use run directory {missing}: No such file or directory"),
    ("--chroot", "cannot chroot to {missing}: No such file or directory"),
    ("--pidfile", "cannot create pidfile {missing}: directory does not exist"),
])
def test_missing_directories(tmp_path, option, message):
    missing = tmp_path / "nope" / ("twistd.pid" if option == "--pidfile" else "")
    missing = str(missing).rstrip("/")
    done = launch(["-o", option, missing], tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"twistdlite: error: {message.format(missing=missing)}\n"
    assert os.listdir(tmp_path) == []


def test_a_symlink_at_the_pidfile_path(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (tmp_path / "twistd.pid").symlink_to(target)
    done = launch(["-o"], tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"twistdlite: error: pidfile {tmp_path}/twistd.pid is a symbolic link; refusing to follow it\n"
    assert target.read_text() == "keep me\n"
    assert sorted(os.listdir(tmp_path)) == ["precious", "twistd.pid"]


@pytest.mark.parametrize("args,message", [
    (["-u", "no-such-user-x"], "unknown user: no-such-user-x"),
    (["-g", "no-such-group-x"], "unknown group: no-such-group-x"),
])
def test_unknown_user_or_group(tmp_path, args, message):
    done = launch(["-o", *args], tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"twistdlite: error: {message}\n")
    assert os.listdir(tmp_path) == []


@pytest.fixture(params=["tmpfs", "ext4"])
def full_filesystem(request, tmp_path):
    """A small filesystem mounted under tmp_path and filled to the last byte (root only).

    tmpfs, and ext4 on a loop device: ext4 allocates blocks late (delayed allocation) but
    reserves them at write(), so the pidfile's write() itself must see ENOSPC (no fsync needed).
    """
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    if request.param == "tmpfs":
        command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]
    else:
        image = tmp_path / "ext4.img"
        with open(image, "wb") as handle:
            handle.truncate(2 * 1024 * 1024)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot make an ext4 image here: {made.stderr.decode().strip()}")
        command = ["mount", "-o", "loop", str(image), str(mount)]
    done = subprocess.run(command, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {request.param} here: {done.stderr.decode().strip()}")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (4096, 1):  # whole pages, then the last bytes
                try:
                    while os.write(fd, b"x" * size):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("mode", ["foreground", "daemon"])
def test_a_pidfile_on_a_full_filesystem_fails_the_start_in_one_line_naming_it(tmp_path, full_filesystem, mode):
    pidfile = full_filesystem / "twistd.pid"
    args = ["-o", "--pidfile", str(pidfile), *(["-n"] if mode == "foreground" else [])]
    done = launch(args, tmp_path, "record:a")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == f"twistdlite: error: cannot write pidfile {pidfile}: No space left on device\n"
    assert "Traceback" not in done.stdout
    assert not pidfile.exists()
    wait_no_daemon()
