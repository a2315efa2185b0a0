"""Privileges end to end: root binds a port below 1024 and drops to nobody; nobody is refused what needs root.

The daemon must run, after dropping privileges, on an interpreter and a
checkout that ``nobody`` can read: see daemon_helpers.unprivileged_python
(the test interpreter when nobody can use it, else Debian's /usr/bin/python3
with copies of click, python-daemon and lockfile). Skipped when not root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from daemon_helpers import (IS_ROOT, launch, nobody_dir, open_fds, proc_status, public_dir,
                            unprivileged_python, wait_no_daemon)
from support import connect, is_gone, read_pid, recv_until, wait_for_file_text

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="privilege tests need root")

NOBODY_IDS = "65534\t65534\t65534\t65534"


@pytest.fixture(scope="module")
def python():
    interpreter, why = unprivileged_python()
    if interpreter is None:
        pytest.skip(f"no interpreter the nobody user can run: {why}")
    return interpreter


@pytest.fixture
def rundir():
    """A root-owned run directory everyone can read (nobody cannot remove files from it)."""
    path = public_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def nobody_rundir():
    path = nobody_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_low_port() -> int:
    for port in range(990, 600, -1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def answer(port: int) -> list:
    with connect(port) as sock:
        return recv_until(sock).decode().split()


def test_root_binds_a_low_port_then_runs_as_nobody_for_good(python, rundir, daemons):
    port = free_low_port()
    done = launch(["-o", "-u", "nobody"], rundir, f"record:a,listener:{port}", python=python)
    assert done.returncode == 0, done.stderr
    pidfile = rundir / "twistd.pid"
    pid = daemons.track(read_pid(pidfile))
    status = proc_status(pid)
    assert status["Uid"] == NOBODY_IDS and status["Gid"] == NOBODY_IDS
    assert status["Groups"] == "65534"  # root's supplementary groups are gone, nobody's are set
    assert status["CapEff"] == "0000000000000000"
    # The port below 1024 was bound before the drop, and nobody serves it and cannot become root again.
    assert answer(port) == ["65534", "65534", "65534", "denied"]
    assert "bound as uid 0" in (rundir / "twistd.log").read_text()
    # Its files are root's (made before the drop), readable as they should be.
    assert pidfile.stat().st_uid == 0 and oct(pidfile.stat().st_mode & 0o777) == "0o644"
    assert (rundir / "twistd.log").stat().st_uid == 0
    assert str(pidfile) in open_fds(pid).values()

    status_cmd = launch(["status"], rundir, tac=False, python=python, user="nobody")
    assert status_cmd.returncode == 0 and f"running, PID {pid}" in status_cmd.stdout

    daemons.stop(pid)
    # nobody may not remove a file from root's directory: the pidfile is left empty and unlocked...
    assert pidfile.read_text() == ""
    assert (f"Could not remove the pidfile {pidfile}: Permission denied; it is left empty and unlocked"
            in (rundir / "twistd.log").read_text())  # ...and the log says so
    assert launch(["status"], rundir, tac=False).returncode == 3
    # ...which is harmless: the next start proceeds without manual clean-up.
    done = launch(["-o", "-u", "nobody"], rundir, f"record:a,listener:{port}", python=python)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(pidfile))
    assert "Removing stale pidfile" not in (rundir / "twistd.log").read_text()
    stop = launch(["stop"], rundir, tac=False)
    assert stop.returncode == 0, stop.stderr
    assert is_gone(pid)


def test_after_dropping_to_nobody_a_rotation_or_reopen_it_may_not_do_never_silences_the_log(
        python, rundir, daemons):
    """twistd.log and its directory are root's: SIGUSR1 and SIGHUP fail, say so, and logging goes on."""
    done = launch(["-o", "-u", "nobody"], rundir, "record:a,listener:0", python=python)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(rundir / "twistd.pid"))
    log = rundir / "twistd.log"
    os.kill(pid, signal.SIGUSR1)
    wait_for_file_text(log, "Could not rotate the log: PermissionError")
    os.kill(pid, signal.SIGHUP)  # the file is where it was: reopening it in place works
    wait_for_file_text(log, "Received SIGHUP, reopened the log.")
    os.rename(log, rundir / "twistd.log.moved")  # as logrotate would, leaving no file nobody can create
    os.kill(pid, signal.SIGHUP)
    moved = rundir / "twistd.log.moved"
    wait_for_file_text(moved, "Could not reopen the log: PermissionError")
    daemons.stop(pid)
    text = moved.read_text()
    assert "Received SIGTERM, shutting down." in text and "Server Shut Down." in text
    assert sorted(os.listdir(rundir)) == ["twistd.log.moved", "twistd.pid"]  # the pidfile: empty, harmless


def test_the_applications_uid_and_gid_apply_without_options(python, rundir, daemons):
    done = launch(["-o"], rundir, "record:a,listener:0", python=python, DAEMON_UID="65534", DAEMON_GID="65534")
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(rundir / "twistd.pid"))
    assert proc_status(pid)["Uid"] == NOBODY_IDS
    daemons.stop(pid)


@pytest.mark.parametrize("args", [["-u", "65534", "-g", "65534"], ["-u", "nobody", "-g", "nogroup"]])
def test_user_and_group_by_number_or_name(python, rundir, daemons, args):
    import grp

    try:
        grp.getgrnam("nogroup")
    except KeyError:
        pytest.skip("no group called nogroup here")
    done = launch(["-o", *args], rundir, "record:a", python=python)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(rundir / "twistd.pid"))
    status = proc_status(pid)
    assert status["Uid"] == NOBODY_IDS and status["Gid"] == NOBODY_IDS
    daemons.stop(pid)


def test_euid_sets_only_the_effective_user(python, rundir, daemons):
    done = launch(["-o", "-u", "nobody", "--euid"], rundir, "record:a", python=python)
    assert done.returncode == 0, done.stderr
    pid = daemons.track(read_pid(rundir / "twistd.pid"))
    uids = proc_status(pid)["Uid"].split()
    assert uids[0] == "0" and uids[1] == "65534"  # real root, effective nobody
    daemons.stop(pid)
    assert not (rundir / "twistd.pid").exists()  # removed as the real user, root


def test_a_refused_privilege_drop_after_detaching(tmp_path):
    done = launch(["-o", "-u", "nobody"], tmp_path, "record:a", DAEMON_REFUSE_DROP="1")
    assert done.returncode == 1
    assert done.stderr == ("twistdlite: error: cannot drop privileges to uid=65534 gid=65534: "
                           "Operation not permitted\n")
    assert not (tmp_path / "twistd.pid").exists()
    wait_no_daemon()


# -- as nobody: what needs root is refused, clearly ------------------------------------

@pytest.mark.parametrize("args,message", [
    (["-u", "root"], "cannot switch to uid 0: only root can change user (running as uid 65534)"),
    (["-u", "nobody", "-g", "0"], "cannot switch to gid 0: only root can change group (running as uid 65534)"),
])
def test_switching_user_when_not_root(python, nobody_rundir, args, message):
    done = launch(["-o", *args], nobody_rundir, "record:a", python=python, user="nobody")
    assert (done.returncode, done.stderr) == (1, f"twistdlite: error: {message}\n")
    assert os.listdir(nobody_rundir) == []


def test_an_unwritable_rundir(python, rundir):
    done = launch(["-o"], rundir, "record:a", python=python, user="nobody")
    assert done.returncode == 1
    assert done.stderr == f"twistdlite: error: cannot open pidfile {rundir}/twistd.pid: Permission denied\n"
    assert os.listdir(rundir) == []


def test_an_unwritable_log_file(python, nobody_rundir, rundir):
    (rundir / "app.log").write_text("")
    done = launch(["-o", "-l", str(rundir / "app.log")], nobody_rundir, "record:a", python=python, user="nobody")
    assert done.returncode == 1
    assert done.stderr == f"twistdlite: error: cannot open log file {rundir / 'app.log'}: Permission denied\n"
    assert os.listdir(nobody_rundir) == []
    wait_no_daemon()


def test_a_low_port_as_nobody(python, nobody_rundir):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as handle:
        if int(handle.read()) <= 990:
            pytest.skip("this kernel lets anyone bind low ports")
    port = free_low_port()
    done = launch(["-o"], nobody_rundir, f"record:a,listener:{port}", python=python, user="nobody")
    assert done.returncode == 1
    assert done.stderr == "twistdlite: error: start failed: PermissionError: [Errno 13] Permission denied\n"
    assert os.listdir(nobody_rundir) == ["twistd.log"]
    assert "stopped a" not in (nobody_rundir / "twistd.log").read_text()  # it never started
    wait_no_daemon()
