"""``twistdlite stop`` and ``twistdlite status`` (twistdlite/launch/control.py), and start-stop-daemon as a client.

In-process through the CLI edge (run_cli) against pidfiles held by helper
processes, then end to end against real daemons.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from daemon_helpers import launch
from support import is_gone, read_pid, wait_gone, wait_until
from twistdlite.launch.cli import run_cli
from twistdlite.launch.control import pidfile_path, process_gone
from twistdlite.launch.options import Options

HOLDER = """
import signal, sys, time
from twistdlite.launch.pidfile import PidFile
mode = sys.argv[2]
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
held = PidFile(sys.argv[1])
held.acquire()
if mode != "nopid":
    held.write(__import__("os").getpid())
print("held", flush=True)
time.sleep(60)
"""


def hold(path, mode="term"):
    """A child process that holds the pidfile at ``path`` (and writes its PID unless mode is 'nopid')."""
    from daemon_helpers import launch_env

    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdout=subprocess.PIPE,
                            env=launch_env(), text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def cli(capsys, *args):
    code = run_cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- where the pidfile is -------------------------------------------------------------------

@pytest.mark.parametrize("options,expected", [
    (Options(), "./twistd.pid"),
    (Options(rundir="/srv/app"), "/srv/app/twistd.pid"),
    (Options(rundir="/srv/app", pidfile="/run/app.pid"), "/run/app.pid"),
    (Options(chroot="/jail"), "/jail/twistd.pid"),
    (Options(chroot="/jail", rundir="/run", pidfile="app.pid"), "/jail/run/app.pid"),
    (Options(chroot="/jail", rundir="var", pidfile="/app.pid"), "/jail/app.pid"),
])
def test_pidfile_path(options, expected):
    assert pidfile_path(options) == expected


def test_no_pidfile_is_a_usage_error(capsys, tmp_path):
    assert cli(capsys, "--pidfile", "", "status") == (2, "", "twistdlite: error: no pidfile to look at: "
                                                         "--pidfile is empty\n")


def test_process_gone_counts_a_zombie_as_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: process_gone(child.pid), what="the child to exit (unreaped)")
        assert os.path.exists(f"/proc/{child.pid}")  # still a zombie
    finally:
        child.wait()
    assert process_gone(child.pid)
    assert not process_gone(os.getpid())


# -- status ---------------------------------------------------------------------------------

def test_status_running_dead_and_not_running(capsys, tmp_path):
    path = tmp_path / "twistd.pid"
    code, out, _ = cli(capsys, "--pidfile", str(path), "status")
    assert (code, out) == (3, f"twistdlite is not running (no live pidfile at {path})\n")
    holder = hold(path)
    try:
        code, out, _ = cli(capsys, "--pidfile", str(path), "status")
        assert (code, out) == (0, f"twistdlite is running, PID {holder.pid} (pidfile {path})\n")
    finally:
        holder.kill()
        holder.wait()
    # kill -9 left the pidfile: dead, but the pidfile remains (LSB 1), whatever the PID now is.
    code, out, _ = cli(capsys, "--pidfile", str(path), "status")
    assert (code, out) == (1, f"twistdlite is not running, but its pidfile {path} remains "
                              f"(it names PID {holder.pid})\n")
    path.write_text(f"{os.getpid()}\n")  # a live, unrelated process: still not running
    assert cli(capsys, "--pidfile", str(path), "status")[0] == 1
    path.write_text("")  # the harmless leftover of a daemon that dropped privileges
    assert cli(capsys, "--pidfile", str(path), "status")[0] == 3


def test_status_uses_rundir(capsys, tmp_path):
    holder = hold(tmp_path / "twistd.pid")
    try:
        assert cli(capsys, "-d", str(tmp_path), "status")[0] == 0
    finally:
        holder.kill()
        holder.wait()


def test_status_of_a_starting_daemon(capsys, tmp_path):
    path = tmp_path / "twistd.pid"
    holder = hold(path, "nopid")
    try:
        code, out, _ = cli(capsys, "--pidfile", str(path), "status")
        assert (code, out) == (0, f"twistdlite is running, PID not written yet (starting) (pidfile {path})\n")
    finally:
        holder.kill()
        holder.wait()


def test_status_unknown_when_the_pidfile_cannot_be_read(capsys, tmp_path):
    path = tmp_path / "twistd.pid"
    path.symlink_to(tmp_path / "elsewhere")
    code, out, err = cli(capsys, "--pidfile", str(path), "status")
    assert code == 4
    assert err == f"twistdlite: error: pidfile {path} is a symbolic link; refusing to follow it\n"


# -- stop -----------------------------------------------------------------------------------

def test_stop_sends_sigterm_and_waits(capsys, tmp_path):
    path = tmp_path / "twistd.pid"
    holder = hold(path)
    code, out, err = cli(capsys, "--pidfile", str(path), "stop")
    assert (code, out, err) == (0, f"twistdlite stopped (PID {holder.pid})\n", "")
    assert holder.poll() == -signal.SIGTERM  # gone (and already a zombie until we reaped it)


def test_stop_gives_up_after_the_timeout(capsys, tmp_path):
    path = tmp_path / "twistd.pid"
    holder = hold(path, "ignore")
    try:
        began = time.monotonic()
        code, out, err = cli(capsys, "--pidfile", str(path), "stop", "--timeout", "0.3")
        assert 0.3 <= time.monotonic() - began < 5
        assert (code, out) == (1, "")
        assert err == f"twistdlite: error: PID {holder.pid} is still running 0.3 s after SIGTERM (pidfile {path})\n"
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


def test_stop_with_nothing_running(capsys, tmp_path):
    path = tmp_path / "twistd.pid"
    assert cli(capsys, "--pidfile", str(path), "stop") == (
        1, "", f"twistdlite: error: not running (no live pidfile at {path})\n")
    assert cli(capsys, "--pidfile", str(path), "stop", "--missing-ok") == (
        0, f"twistdlite is not running (no live pidfile at {path})\n", "")
    path.write_text(f"{os.getpid()}\n")  # a stale pidfile naming a live process: never signalled
    assert cli(capsys, "--pidfile", str(path), "stop") == (
        1, "", f"twistdlite: error: not running (stale pidfile {path} names PID {os.getpid()}, "
               "which holds no lock)\n")
    assert cli(capsys, "--pidfile", str(path), "stop", "--missing-ok")[0] == 0


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf", "nan", "-inf", "1e12", "1e400", "86401"])
def test_stop_bad_timeout(capsys, tmp_path, value):
    code, out, err = cli(capsys, "--pidfile", str(tmp_path / "p"), "stop", "--timeout", value)
    assert code == 2 and err.startswith("twistdlite: error: ") and "--timeout" in err


# -- end to end, with real daemons ------------------------------------------------------------

def test_stop_and_status_of_a_real_daemon(tmp_path, daemons):
    (tmp_path / "run").mkdir()
    done = launch(["-o", "-d", "run"], tmp_path)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "run" / "twistd.pid"))
    status = launch(["-d", "run", "status"], tmp_path, tac=False)
    assert (status.returncode, status.stdout) == (
        0, f"twistdlite is running, PID {pid} (pidfile {tmp_path / 'run' / 'twistd.pid'})\n")
    stop = launch(["-d", "run", "stop"], tmp_path, tac=False)
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, f"twistdlite stopped (PID {pid})\n", "")
    assert is_gone(pid)
    assert not (tmp_path / "run" / "twistd.pid").exists()  # removed before the process exited
    assert "Server Shut Down." in (tmp_path / "run" / "twistd.log").read_text()
    status = launch(["-d", "run", "status"], tmp_path, tac=False)
    assert status.returncode == 3


def test_stop_of_a_daemon_whose_stop_hangs(tmp_path, daemons):
    done = launch(["-o", "--shutdown-timeout", "30"], tmp_path, "record:a,hangs_stopping:stuck")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    stop = launch(["stop", "--timeout", "0.5"], tmp_path, tac=False)
    assert stop.returncode == 1
    assert stop.stderr == (f"twistdlite: error: PID {pid} is still running 0.5 s after SIGTERM "
                           f"(pidfile {tmp_path / 'twistd.pid'})\n")
    assert not is_gone(pid)
    os.kill(pid, signal.SIGTERM)  # the second signal: stop at once
    wait_gone(pid)
    assert not (tmp_path / "twistd.pid").exists()


SSD = shutil.which("start-stop-daemon") or "/usr/sbin/start-stop-daemon"


@pytest.mark.skipif(not os.access(SSD, os.X_OK), reason="start-stop-daemon (dpkg) is not installed")
def test_start_stop_daemon_stops_it_through_the_pidfile(tmp_path, daemons):
    done = launch(["-o"], tmp_path)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(tmp_path / "twistd.pid"))
    # start-stop-daemon waits for the process to vanish; as its adopter we reap it meanwhile.
    reaper = threading.Thread(target=wait_gone, args=(pid,), daemon=True)
    reaper.start()
    ssd = subprocess.run([SSD, "--stop", "--pidfile", "twistd.pid", "--retry", "TERM/10"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30)
    assert ssd.returncode == 0, ssd.stdout + ssd.stderr
    reaper.join(20)
    assert is_gone(pid)
    assert not (tmp_path / "twistd.pid").exists()
    log = (tmp_path / "twistd.log").read_text()
    assert "Received SIGTERM, shutting down." in log and "Server Shut Down." in log
    # Nothing left to stop: start-stop-daemon says so (1), or succeeds with --oknodo.
    again = subprocess.run([SSD, "--stop", "--pidfile", "twistd.pid", "--retry", "TERM/10"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 1
    again = subprocess.run([SSD, "--stop", "--oknodo", "--pidfile", "twistd.pid"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 0
