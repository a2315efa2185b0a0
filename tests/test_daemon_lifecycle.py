"""Daemon mode end to end: start, readiness, the detached process, files, signals, stop.

Real forks, real signals, real sockets on 127.0.0.1; every wait has a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from daemon_helpers import APP, IS_ROOT, launch, open_fds, popen, proc_status, launch_env
from support import (connect, is_gone, listening_port, read_pid, recv_until, wait_for_file_text, wait_gone,
                     wait_status, wait_until)


def started(cwd, daemons, args=(), services="record:a,listener:0", pidfile="twistd.pid", **env):
    """Launch a daemon that must start; returns its PID (from the pidfile)."""
    done = launch(["-o", *args], cwd, services, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr == ""  # a successful start says nothing
    return daemons.track(read_pid(cwd / pidfile))


def _zombie_children() -> list:
    """Our children (and adoptees: we are a subreaper) that have exited and are not reaped yet."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(entry))
    return found


def test_detaching_leaves_no_intermediate_process_unreaped(tmp_path, daemons):
    """Where PID 1 does not reap, a middle process of the double fork would stay a zombie for good."""
    before = set(_zombie_children())
    done = launch(["-o"], tmp_path)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    assert set(_zombie_children()) - before == set()
    assert proc_status(pid)["PPid"] == str(os.getpid())  # the daemon itself is adopted, alive
    daemons.stop(pid)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_start_ready_then_kill_cat_pidfile_stops_cleanly(tmp_path, daemons, signum):
    pidfile = tmp_path / "twistd.pid"
    pid = started(tmp_path, daemons)
    assert not is_gone(pid)

    # The PID is the daemon's own: detached (adopted by us as subreaper, not its launcher's
    # child), in a new session but not its leader, without a controlling terminal.
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ppid, session, tty = int(fields[1]), int(fields[3]), int(fields[4])
    assert ppid == os.getpid()
    assert session not in (pid, os.getsid(0))
    assert tty == 0

    # Exactly the descriptors it needs: stdio on /dev/null, the pidfile (its lock), the log,
    # the listening socket and the loop's own; the readiness pipe is closed once ready.
    fds = open_fds(pid)
    assert fds[0] == fds[1] == fds[2] == "/dev/null"
    assert str(pidfile) in fds.values()
    assert str(tmp_path / "twistd.log") in fds.values()
    # (the launching command returns at READY, a moment before the daemon closes its end)
    wait_until(lambda: not [target for target in open_fds(pid).values() if target.startswith("pipe:")],
               what="the readiness pipe to be closed")
    assert proc_status(pid)["Umask"] == "0077"

    log = (tmp_path / "twistd.log").read_text()
    assert "started a" in log
    with connect(listening_port(log)) as sock:
        uid, euid, gid, setuid0 = recv_until(sock).decode().split()
    assert (int(uid), int(euid)) == (os.getuid(), os.geteuid())

    if signum == signal.SIGTERM:
        subprocess.run(["sh", "-c", "kill `cat twistd.pid`"], cwd=tmp_path, check=True, timeout=10)
    else:
        os.kill(pid, signum)
    assert wait_status(pid) == 0  # the daemon's own exit status
    assert not pidfile.exists()
    log = (tmp_path / "twistd.log").read_text()
    name = signal.Signals(signum).name
    assert f"Received {name}, shutting down." in log
    assert log.index("stopped listener") < log.index("stopped a")  # reverse order
    assert log.rstrip().endswith("Server Shut Down.")


def test_the_pidfile_is_written_before_any_service_starts(tmp_path, daemons):
    """A service sees the daemon's own PID in the pidfile when it starts (no PID-less window)."""
    tac = tmp_path / "peek.tac"
    tac.write_text(
        "import logging, os\n"
        "from twistdlite import service\n"
        "class Peek(service.Service):\n"
        "    def startService(self):\n"
        "        service.Service.startService(self)\n"
        "        logging.getLogger('peek').info('pidfile=%s me=%s', open('twistd.pid').read().strip(),"
        " os.getpid())\n"
        "application = service.Application('peek')\n"
        "Peek().setServiceParent(application)\n")
    done = launch(["-o", "-y", str(tac)], tmp_path, tac=False)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    match = re.search(r"pidfile=(\d+) me=(\d+)", (tmp_path / "twistd.log").read_text())
    assert match and int(match.group(1)) == int(match.group(2)) == pid
    daemons.stop(pid)


@pytest.mark.parametrize("args,umask", [(["--umask", "022"], "0022"), (["--umask", "0"], "0000")])
def test_umask_option_when_daemonizing(tmp_path, daemons, args, umask):
    pid = started(tmp_path, daemons, args)
    assert proc_status(pid)["Umask"] == umask
    daemons.stop(pid)
    assert not (tmp_path / "twistd.pid").exists()


@pytest.mark.parametrize("args,umask", [([], "0027"), (["--umask", "077"], "0077")])
def test_umask_in_the_foreground_is_untouched_unless_asked(tmp_path, args, umask):
    proc = subprocess.Popen([sys.executable, "-m", "twistdlite", "-noy", str(APP), "-l", "fg.log", *args],
                            cwd=tmp_path, env=launch_env(DAEMON_SERVICES="record:a"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o027)
    try:
        wait_for_file_text(tmp_path / "fg.log", "started a")
        assert proc_status(proc.pid)["Umask"] == umask
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_rundir_holds_the_pidfile_and_the_log(tmp_path, daemons):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pid = started(tmp_path, daemons, ["-d", "run"], pidfile="run/twistd.pid")
    assert (run_dir / "twistd.log").exists()
    assert not (tmp_path / "twistd.log").exists()
    assert os.readlink(f"/proc/{pid}/cwd") == str(run_dir)
    daemons.stop(pid)
    assert not (run_dir / "twistd.pid").exists()


def test_rundir_holds_the_shutdown_tap(tmp_path, daemons):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    done = launch(["-d", "run"], tmp_path, "record:a")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(run_dir / "twistd.pid"))
    daemons.stop(pid)
    assert sorted(os.listdir(run_dir)) == ["daemontest-shutdown.tap", "twistd.log"]
    assert os.listdir(tmp_path) == ["run"]


def test_absolute_pidfile_and_logfile_ignore_the_rundir(tmp_path, daemons):
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    pid = started(tmp_path, daemons, ["-d", "run", "--pidfile", str(tmp_path / "var" / "app.pid"),
                                      "-l", str(tmp_path / "var" / "app.log")], pidfile="var/app.pid")
    assert "started a" in (tmp_path / "var" / "app.log").read_text()
    assert os.listdir(tmp_path / "run") == []
    daemons.stop(pid)
    assert not (tmp_path / "var" / "app.pid").exists()


def test_log_to_stdout_when_daemonized(tmp_path, daemons):
    """``-l -``: the daemon keeps the launching command's stdout (here a file) and logs there."""
    out = tmp_path / "out.txt"
    with open(out, "wb") as handle:
        proc = popen(["-o", "-l", "-"], tmp_path, stdout=handle)
        assert proc.wait(20) == 0
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    wait_for_file_text(out, r"Listener starting on \d+")
    assert not (tmp_path / "twistd.log").exists()
    assert open_fds(pid)[1] == str(out)
    daemons.stop(pid)
    wait_for_file_text(out, "Server Shut Down.")


def test_sighup_reopens_the_log_and_never_kills(tmp_path, daemons):
    pid = started(tmp_path, daemons)
    log = tmp_path / "twistd.log"
    os.rename(log, tmp_path / "moved.log")  # as an external rotation would
    os.kill(pid, signal.SIGHUP)
    wait_for_file_text(log, r"Received SIGHUP, reopened the log\.")
    os.kill(pid, signal.SIGHUP)
    wait_for_file_text(log, r"(?s)reopened the log\..*reopened the log\.")
    assert not is_gone(pid) and (tmp_path / "twistd.pid").exists()
    daemons.stop(pid)
    assert "Server Shut Down." in log.read_text()
    assert "Server Shut Down." not in (tmp_path / "moved.log").read_text()


def test_sigusr1_rotates_and_never_kills(tmp_path, daemons):
    pid = started(tmp_path, daemons)
    os.kill(pid, signal.SIGUSR1)
    wait_for_file_text(tmp_path / "twistd.log.1", r"Received SIGUSR1")
    assert not is_gone(pid)
    daemons.stop(pid)
    wait_for_file_text(tmp_path / "twistd.log", "Server Shut Down.")


def test_sigusr2_dumps_the_stacks_of_threads_and_tasks(tmp_path, daemons):
    pid = started(tmp_path, daemons)
    os.kill(pid, signal.SIGUSR2)
    text = wait_for_file_text(tmp_path / "twistd.log", r"(?s)Received SIGUSR2.*asyncio task").string
    dump = text[text.index("Received SIGUSR2"):]
    assert "Thread MainThread" in dump
    assert "in serve" in dump  # the main task, waiting for a stop
    assert "_dump_stacks" in dump  # the main thread's own stack
    assert not is_gone(pid)
    daemons.stop(pid)


@pytest.mark.skipif(not IS_ROOT, reason="--chroot needs root")
def test_chroot(tmp_path, daemons):
    jail = tmp_path / "jail"
    (jail / "run").mkdir(parents=True)
    pid = started(tmp_path, daemons, ["--chroot", str(jail), "-d", "/run"], pidfile="jail/run/twistd.pid")
    assert os.readlink(f"/proc/{pid}/root") == str(jail)
    assert os.readlink(f"/proc/{pid}/cwd") == str(jail / "run")
    assert "started a" in (jail / "run" / "twistd.log").read_text()
    status = launch(["--chroot", str(jail), "-d", "/run", "status"], tmp_path, tac=False)
    assert status.returncode == 0 and f"PID {pid}" in status.stdout
    stop = launch(["--chroot", str(jail), "-d", "/run", "stop"], tmp_path, tac=False)
    assert stop.returncode == 0, stop.stderr
    assert is_gone(pid)
    assert not (jail / "run" / "twistd.pid").exists()


def test_descriptors_a_tac_leaves_open_are_closed_and_named(tmp_path, daemons):
    """Only the explicit list survives detaching; anything else the .tac opened is closed, and the log says so."""
    tac = tmp_path / "leaky.tac"
    tac.write_text(
        "import asyncio, sys\n"
        "from twistdlite import service\n"
        "sys.kept_open = open(__file__)\n"
        "sys.early_loop = asyncio.new_event_loop()  # no loop may cross the fork: closed under it\n"
        "application = service.Application('leaky')\n")
    done = launch(["-o", "-y", str(tac)], tmp_path, tac=False)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    line = next(line for line in (tmp_path / "twistd.log").read_text().splitlines()
                if "Detaching closed descriptors" in line)
    assert f"-> {tac}" in line and "anon_inode:[eventpoll]" in line
    assert str(tac) not in open_fds(pid).values()
    daemons.stop(pid)
    assert not (tmp_path / "twistd.pid").exists()


def test_daemon_on_uvloop(tmp_path, daemons):
    pytest.importorskip("uvloop")
    pid = started(tmp_path, daemons, ["-r", "uvloop"])
    assert "reactor class: uvloop." in (tmp_path / "twistd.log").read_text()
    os.kill(pid, signal.SIGUSR2)
    wait_for_file_text(tmp_path / "twistd.log", r"Received SIGUSR2")
    daemons.stop(pid)
    assert not (tmp_path / "twistd.pid").exists()
    assert "Server Shut Down." in (tmp_path / "twistd.log").read_text()
