"""A confined daemon keeps every promise: ``--chroot`` into a jail holding only /dev/null, and a
privilege drop to a user who cannot read the Python installation nor twistdlite's files.

Either way the daemon serves TCP and a UNIX socket, rotates its log (SIGUSR1), dumps its
stacks (SIGUSR2), and on SIGTERM stops and saves its shutdown ``.tap``: everything it
imports after confinement was imported before it (twistdlite/launch/preload.py).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from daemon_helpers import daemons  # noqa: F401 (the fixture)
from daemon_helpers import IS_ROOT, NOBODY, Daemons, launch_env, nobody_dir
from support import ROOT, connect, read_pid, recv_until, wait_for_file_text, wait_gone, wait_until
from twistdlite.launch import persist

TAC = ROOT / "tests" / "tacs" / "confined_app.tac"

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="--chroot and -u need root")


def make_jail(path: Path) -> Path:
    """A directory holding only dev/null (the character device when root may make one)."""
    (path / "dev").mkdir(parents=True)
    try:
        os.mknod(path / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError:
        (path / "dev" / "null").touch()
    return path


@pytest.fixture
def hidden_install():
    """A copy of the twistdlite package in a directory only root can read (for PYTHONPATH)."""
    where = Path(tempfile.mkdtemp(prefix="twistdlite-hidden-"))
    os.chmod(where, 0o700)
    shutil.copytree(ROOT / "twistdlite", where / "twistdlite",
                    ignore=shutil.ignore_patterns("__pycache__"))
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def echo(sock: socket.socket, text: bytes) -> bytes:
    with sock:
        sock.sendall(text)
        return recv_until(sock)


def unix_connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


def serve_rotate_dump_stop(daemons: Daemons, args: list, rundir: Path, env: dict) -> Path:
    """Start the confined echo daemon, use all it offers, stop it; returns the saved .tap's path."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "twistdlite", *args, "-y", str(TAC)], cwd=rundir, env=env,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    pid = daemons.track(read_pid(rundir / "twistd.pid"))
    log = rundir / "twistd.log"
    port = int(wait_for_file_text(log, r"Factory starting on (\d+)").group(1))
    assert echo(connect(port), b"over tcp\n") == b"over tcp\n"
    assert echo(unix_connect(rundir / "echo.sock"), b"over unix\n") == b"over unix\n"

    os.kill(pid, signal.SIGUSR1)
    wait_for_file_text(rundir / "twistd.log.1", r"Received SIGUSR1")
    os.kill(pid, signal.SIGUSR2)
    dump = wait_for_file_text(log, r"(?s)Received SIGUSR2.*?(\d+) asyncio task\(s\)").group(0)
    assert "Thread MainThread" in dump
    assert echo(connect(port), b"after rotation\n") == b"after rotation\n"

    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    text = log.read_text()
    assert "Saved." in text and "Server Shut Down." in text, text
    everything = text + (rundir / "twistd.log.1").read_text()
    assert not re.search(r"Traceback|Error|cannot", everything), everything
    assert not (rundir / "twistd.pid").exists()
    assert not (rundir / "echo.sock").exists()
    tap = rundir / "confined-shutdown.tap"
    header, _ = persist.decode(tap.read_bytes(), source=str(tap))
    assert header.name == "confined"
    return tap


def test_chroot_into_a_jail_holding_only_dev_null(tmp_path, daemons, hidden_install):
    jail = make_jail(tmp_path / "jail")
    env = launch_env()
    env["PYTHONPATH"] = str(hidden_install)  # outside the jail, like the interpreter's own files
    serve_rotate_dump_stop(daemons, ["--chroot", str(jail)], jail, env)
    assert sorted(p.name for p in jail.iterdir()) == [
        "confined-shutdown.tap", "dev", "twistd.log", "twistd.log.1"]


def test_chroot_then_privilege_drop_by_name(tmp_path, daemons, hidden_install):
    """-u nobody with --chroot: the user database is read before the chroot (the jail has none)."""
    jail = make_jail(tmp_path / "jail")
    nobody = pwd.getpwnam(NOBODY)
    os.chown(jail, nobody.pw_uid, nobody.pw_gid)
    log = jail / "twistd.log"  # nobody's, so that nobody may rotate it after the drop
    log.touch(mode=0o600)
    os.chown(log, nobody.pw_uid, -1)
    env = launch_env()
    env["PYTHONPATH"] = str(hidden_install)
    tap = serve_rotate_dump_stop(daemons, ["--chroot", str(jail), "-u", NOBODY], jail, env)
    assert tap.stat().st_uid == nobody.pw_uid


def test_privilege_drop_to_a_user_who_cannot_read_the_install(daemons, hidden_install):
    probe = os.path.dirname(os.__file__)
    rundir = nobody_dir()
    try:
        import subprocess

        readable = subprocess.run(["setpriv", "--reuid", NOBODY, "--regid", str(pwd.getpwnam(NOBODY).pw_gid), "--clear-groups",
                                   "test", "-r", probe], capture_output=True).returncode == 0
        if readable:
            pytest.skip(f"{NOBODY} can read {probe}: not the case this test is about")
        env = launch_env()
        env["PYTHONPATH"] = str(hidden_install)
        log = rundir / "twistd.log"  # nobody's, so that nobody may rotate it after the drop
        log.touch(mode=0o600)
        os.chown(log, pwd.getpwnam(NOBODY).pw_uid, -1)
        tap = serve_rotate_dump_stop(daemons, ["-u", NOBODY, "-d", str(rundir)], rundir, env)
        assert tap.stat().st_uid == os.stat(rundir).st_uid  # saved after the drop, by nobody
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def test_a_pool_in_a_jail_as_nobody_on_uvloop_reloads(tmp_path, daemons, hidden_install):
    """--workers with --chroot, -u nobody and -r uvloop: workers serve and a SIGHUP reload re-reads the
    application file inside the jail (one not found there says so and changes nothing)."""
    import subprocess

    pytest.importorskip("uvloop")
    jail = make_jail(tmp_path / "jail")
    nobody = pwd.getpwnam(NOBODY)
    os.chown(jail, nobody.pw_uid, nobody.pw_gid)
    log = jail / "twistd.log"
    log.touch(mode=0o600)
    os.chown(log, nobody.pw_uid, -1)
    shutil.copy(TAC, jail / "app.tac")
    shutil.copy(TAC.parent / "echo_services.py", jail)
    env = launch_env()
    env["PYTHONPATH"] = str(hidden_install)
    done = subprocess.run([sys.executable, "-m", "twistdlite", "--chroot", str(jail), "-u", NOBODY, "-r", "uvloop",
                           "--workers", "2", "-y", "app.tac"], cwd=jail, env=env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    pid = daemons.track(read_pid(jail / "twistd.pid"))
    port = int(wait_for_file_text(log, r"\[worker 1\] Factory starting on (\d+)").group(1))
    assert "reactor class: uvloop" in log.read_text()

    (jail / "app.tac").rename(jail / "moved.tac")
    os.kill(pid, signal.SIGHUP)
    wait_for_file_text(log, r"Reload failed: .*'app.tac' does not exist \(read inside --chroot "
                            + re.escape(str(jail)) + r"\); the running workers keep serving\.")
    (jail / "moved.tac").rename(jail / "app.tac")
    os.kill(pid, signal.SIGHUP)
    wait_for_file_text(log, r"Reloaded: generation 2 serving; retiring 2 workers")
    wait_until(lambda: len(re.findall(r"Worker \d \(PID \d+\) stopped\.",
                                      log.read_text().split("Reloaded: generation 2")[1])) == 2,
               what="the old generation gone")
    assert echo(connect(port), b"after the reload\n") == b"after the reload\n"
    assert echo(unix_connect(jail / "echo.sock"), b"over unix\n") == b"over unix\n"

    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    text = log.read_text()
    assert "Server Shut Down." in text and "Saved." in text, text
    assert not re.search(r"Traceback|Error", text), text
    assert not (jail / "twistd.pid").exists() and not (jail / "echo.sock").exists()


def _http_get(port: int, path: str) -> bytes:
    with connect(port) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize("plugin", ["web", "portforward"])
def test_each_plugin_serves_in_a_jail(tmp_path, hidden_install, plugin):
    """A plugin's modules (twistdlite.web's request handling, the proxy) are imported before the chroot."""
    import subprocess

    jail = make_jail(tmp_path / "jail")
    (jail / "hello.txt").write_text("hello from the jail\n")
    env = launch_env()
    env["PYTHONPATH"] = str(hidden_install)
    jailed = ["--chroot", str(jail), "--pidfile", "", "-n", "-o", "-l", "twistd.log"]
    web = ["web", "--listen", "tcp:0:interface=127.0.0.1", "--path", "/"]
    procs = [subprocess.Popen([sys.executable, "-m", "twistdlite", *jailed, *web], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)]
    try:
        port = int(wait_for_file_text(jail / "twistd.log", r"Site starting on (\d+)").group(1))
        if plugin == "portforward":
            outside = jail / "twistd.log"
            forward = jail / "forward"
            forward.mkdir()
            make_jail(forward / "jail")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "twistdlite", "--chroot", str(forward / "jail"), "--pidfile", "", "-n", "-o",
                 "-l", "twistd.log", "portforward", "--listen", "tcp:0:interface=127.0.0.1", "-h", "127.0.0.1",
                 "-d", str(port)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT))
            log = forward / "jail" / "twistd.log"
            port = int(wait_for_file_text(log, r"ProxyFactory starting on (\d+)").group(1))
        else:
            outside = log = jail / "twistd.log"
        assert _http_get(port, "/hello.txt").endswith(b"\r\n\r\nhello from the jail\n")
        assert _http_get(port, "/missing").startswith(b"HTTP/1.1 404 ")
        assert b"Directory listing for /dev/" in _http_get(port, "/dev/")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=30)[0].decode()
            assert proc.returncode == 0, output
    for path in {outside, log}:
        text = path.read_text()
        assert "Server Shut Down." in text and not re.search(r"Traceback|Error|cannot", text), text
