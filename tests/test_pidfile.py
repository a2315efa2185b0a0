"""The pidfile (twistdlite/launch/pidfile.py), in-process: locking, stale detection, symlinks, release."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys

import pytest

from support import wait_until
from twistdlite.launch import pidfile as pidfile_module
from twistdlite.launch.errors import AlreadyRunning, LaunchError
from twistdlite.launch.pidfile import PidFile, probe


@pytest.fixture
def path(tmp_path):
    return tmp_path / "twistd.pid"


def locked(path):
    held = PidFile(str(path))
    held.acquire()
    return held


def test_acquire_write_release(path):
    held = locked(path)
    held.write(os.getpid())
    assert path.read_text() == f"{os.getpid()}\n"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # anyone may read the PID
    assert probe(str(path)).running and probe(str(path)).pid == os.getpid()
    held.release()
    assert not path.exists()
    assert probe(str(path)) == pidfile_module.PidStatus(False, False, None)


def test_the_pid_is_written_then_cut_to_length_never_emptied_first(path, monkeypatch):
    """On ext4 a truncation to 0 makes the file's last close (the daemon's, at its stop) write its data back:
    milliseconds of every stop. The file is cut to the PID's length after the write instead."""
    held = locked(path)
    path.write_text("123456789012\n")  # a longer stale content
    cuts = []
    real = os.ftruncate
    monkeypatch.setattr(pidfile_module.os, "ftruncate", lambda fd, size: (cuts.append(size), real(fd, size)))
    held.write(4242)
    assert path.read_text() == "4242\n" and cuts == [5]
    held.release()


def test_write_replaces_longer_content(path):
    path.write_text("123456789\n")
    held = locked(path)
    held.write(7)
    assert path.read_text() == "7\n"
    held.release()


def test_a_held_pidfile_refuses_a_second_acquire_saying_who(path):
    held = locked(path)
    held.write(os.getpid())
    with pytest.raises(AlreadyRunning) as info:
        PidFile(str(path)).acquire()
    assert str(info.value) == f"already running, PID {os.getpid()} (pidfile {path})"
    held.release()


def test_a_held_pidfile_with_no_pid_yet(path, monkeypatch):
    monkeypatch.setattr(pidfile_module, "PID_WAIT", 0.05)
    held = locked(path)
    with pytest.raises(AlreadyRunning, match="PID not written yet"):
        PidFile(str(path)).acquire()
    assert probe(str(path)) == pidfile_module.PidStatus(True, True, None)
    held.release()


@pytest.mark.parametrize("content", ["", "garbage\n", "-5\n", "0\n", "1\n", "SELF", "99999999\n"])
def test_an_unlocked_pidfile_is_stale_whatever_it_names(path, content):
    # PID 1 and our own PID are live processes: a PID number never proves liveness.
    text = f"{os.getpid()}\n" if content == "SELF" else content
    path.write_text(text)
    assert not probe(str(path)).running
    held = locked(path)
    assert held.stale == (text.strip() or None)
    held.write(os.getpid())
    held.release()


def test_a_loser_never_reports_the_stale_pid(path, monkeypatch):
    """Between locking and writing its PID, the winner's file must not show the stale PID."""
    monkeypatch.setattr(pidfile_module, "PID_WAIT", 0.05)
    path.write_text("99999999\n")
    held = locked(path)
    assert held.stale == "99999999" and path.read_text() == ""
    with pytest.raises(AlreadyRunning, match="PID not written yet"):
        PidFile(str(path)).acquire()
    held.release()


@pytest.mark.parametrize("named", ["99999999", "PID 1", "a live process that does not hold it"])
def test_a_loser_never_reports_a_pid_the_holder_has_not_written(path, monkeypatch, named):
    """The winner is off the CPU between taking the lock and emptying the stale pidfile (it has not
    even written its own PID yet): a losing start, and a probe (status, stop), must not take the PID
    the file still names for the holder's."""
    monkeypatch.setattr(pidfile_module, "PID_WAIT", 0.05)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = {"99999999": "99999999", "PID 1": "1"}.get(named, str(other.pid))
        path.write_text(stale + "\n")
        fd = os.open(str(path), os.O_RDWR)  # the winner, caught right after its lock
        assert pidfile_module._try_lock(fd)
        try:
            with pytest.raises(AlreadyRunning) as info:
                PidFile(str(path)).acquire()
            assert str(info.value) == f"already running, PID not written yet (pidfile {path})"
            assert probe(str(path)) == pidfile_module.PidStatus(True, True, None)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # the holder's own PID counts
            with pytest.raises(AlreadyRunning, match=f"already running, PID {os.getpid()} "):
                PidFile(str(path)).acquire()
            assert probe(str(path)) == pidfile_module.PidStatus(True, True, os.getpid())
        finally:
            os.close(fd)
        assert probe(str(path)) == pidfile_module.PidStatus(True, False, os.getpid())  # unlocked: as it is
    finally:
        other.kill()
        other.wait()


def test_a_zombie_pid_is_stale(path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
               what="a zombie")
    path.write_text(f"{child.pid}\n")
    try:
        assert not probe(str(path)).running
        held = locked(path)
        assert held.stale == str(child.pid)
        held.release()
    finally:
        child.wait()


def test_the_lock_is_inherited_by_a_fork_and_dies_with_kill_9(path):
    """The daemon's lock survives the launching command closing its copy, and kill -9 frees it."""
    held = locked(path)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only sleeps (no exec: that would close the fd)
        import time

        time.sleep(60)
        os._exit(0)
    try:
        held.write(child)
        held.close()  # the launching command lets go; the child still holds the lock
        assert probe(str(path)).running
        with pytest.raises(AlreadyRunning):
            PidFile(str(path)).acquire()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert not probe(str(path)).running  # the file remains, but nobody holds it
    again = locked(path)
    assert again.stale == str(child)
    again.release()


class SteppedClock:
    """The pidfile module's ``time``: each sleep moves the clock ``step`` seconds at once and calls ``on_sleep``."""

    def __init__(self, step: float, on_sleep=lambda now: None) -> None:
        self.now = 0.0
        self.step = step
        self.on_sleep = on_sleep
        self.sleeps = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += self.step
        self.on_sleep(self.now)


def holding_child(path):
    """A forked child holding ``path``'s lock (its PID written) until :func:`os.close` of the returned fd."""
    held = locked(path)
    release_r, release_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the "daemon": holds the lock until told to die
        os.close(release_w)
        os.read(release_r, 1)
        os._exit(3)
    os.close(release_r)
    held.write(child)
    held.close()  # the launching command's copy: the child holds the lock now
    return child, release_w


def test_discard_stale_waits_for_a_dying_daemon_to_let_go_of_the_lock(path, monkeypatch):
    """The launching command sees the readiness pipe close before the dying daemon's lock is gone (the
    kernel closes its files one by one; a loaded machine deschedules it in between): the stale pidfile
    is removed once the daemon has exited, however long that takes."""
    child, release = holding_child(path)

    def dies_late(now: float) -> None:
        if now == 3.0:  # well after the one second the launching command used to give it
            os.close(release)
            wait_until(lambda: pidfile_module.process_gone(child), what="the daemon to exit")

    monkeypatch.setattr(pidfile_module, "time", SteppedClock(0.25, dies_late))
    try:
        PidFile(str(path)).discard_stale(child)
        assert not path.exists()
    finally:
        monkeypatch.undo()
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_discard_stale_leaves_a_lock_held_after_the_daemon_is_gone_to_its_holder(path, monkeypatch):
    """Once the dead daemon has exited, a held lock is a new start's: left alone, without waiting."""
    child, release = holding_child(path)
    os.close(release)
    wait_until(lambda: pidfile_module.process_gone(child), what="the daemon to exit")
    try:
        newcomer = locked(path)
        newcomer.write(os.getpid())
        clock = SteppedClock(0.25)
        monkeypatch.setattr(pidfile_module, "time", clock)
        PidFile(str(path)).discard_stale(child)
        monkeypatch.undo()
        assert clock.sleeps == 0 and path.read_text() == f"{os.getpid()}\n"
        newcomer.release()
    finally:
        os.waitpid(child, 0)


def test_the_lock_is_dropped_across_exec(path):
    """An exec'd child (a service's subprocess) must not keep the daemon's lock alive."""
    held = locked(path)
    held.write(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
    try:
        held.release()
        assert not probe(str(path)).running
    finally:
        child.kill()
        child.wait()


def test_a_symlink_at_the_path_is_never_followed(tmp_path, path):
    target = tmp_path / "target"
    target.write_text("precious\n")
    path.symlink_to(target)
    with pytest.raises(LaunchError, match="is a symbolic link; refusing to follow it"):
        PidFile(str(path)).acquire()
    with pytest.raises(LaunchError, match="symbolic link"):
        probe(str(path))
    dangling = tmp_path / "dangling.pid"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(LaunchError, match="symbolic link"):
        PidFile(str(dangling)).acquire()
    assert target.read_text() == "precious\n"
    assert not (tmp_path / "nowhere").exists()


def test_a_hard_link_is_refused(tmp_path, path):
    other = tmp_path / "other"
    other.write_text("precious\n")
    os.link(other, path)
    with pytest.raises(LaunchError, match="other hard links"):
        PidFile(str(path)).acquire()
    assert other.read_text() == "precious\n"


def test_a_missing_directory(tmp_path):
    missing = tmp_path / "nope" / "twistd.pid"
    with pytest.raises(LaunchError, match="directory does not exist"):
        PidFile(str(missing)).acquire()
    assert probe(str(missing)).exists is False


def test_not_a_regular_file(tmp_path, path):
    path.mkdir()
    with pytest.raises(LaunchError):
        PidFile(str(path)).acquire()
    fifo = tmp_path / "fifo.pid"
    os.mkfifo(fifo)
    with pytest.raises(LaunchError, match="not a regular file"):
        PidFile(str(fifo)).acquire()


def test_release_empties_the_file_when_it_cannot_unlink_and_says_so(path, monkeypatch, caplog):
    """After dropping privileges the daemon may not remove its pidfile: it leaves it empty and unlocked."""
    held = locked(path)
    held.write(4242)

    def refused(name, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "unlink", refused)
    with caplog.at_level(logging.WARNING, logger="twistdlite"):
        held.release()
    monkeypatch.undo()
    assert path.exists() and path.read_text() == ""
    assert caplog.messages == [f"Could not remove the pidfile {path}: Permission denied; it is left empty and "
                               "unlocked (harmless: the next start proceeds)"]
    found = probe(str(path))
    assert found.exists and not found.running and found.pid is None
    again = locked(path)  # the next start proceeds, with nothing stale to report
    assert again.stale is None
    again.release()


def test_release_leaves_a_file_that_is_no_longer_ours(path):
    held = locked(path)
    held.write(1)
    path.unlink()
    path.write_text("someone else\n")
    held.release()
    assert path.read_text() == "someone else\n"


def test_acquire_retries_when_the_file_is_replaced_under_it(path, monkeypatch):
    """A racing holder removed the file between our open and our lock: we must lock the new file."""
    path.write_text("")
    real_try_lock = pidfile_module._try_lock
    calls = []

    def try_lock(fd):
        if not calls:
            path.unlink()  # the previous holder exits and removes its pidfile
            path.write_text("")
        calls.append(fd)
        return real_try_lock(fd)

    monkeypatch.setattr(pidfile_module, "_try_lock", try_lock)
    held = locked(path)
    assert len(calls) == 2
    assert os.fstat(held.fd).st_ino == path.stat().st_ino
    held.release()
    assert not path.exists()


def test_release_twice_and_close_are_harmless(path):
    held = locked(path)
    held.release()
    held.release()
    held.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_pid_that_cannot_be_written_is_one_line_naming_the_pidfile(path, monkeypatch, code):
    held = locked(path)

    def full(fd, pid):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(pidfile_module, "_write_pid", full)
    with pytest.raises(LaunchError) as info:
        held.write(4242)
    assert str(info.value) == f"cannot write pidfile {path}: {os.strerror(code)}"
    held.release()
    assert not path.exists()


def test_no_pidfile_does_nothing_at_every_step():
    nothing = pidfile_module.for_options("")
    assert isinstance(nothing, pidfile_module.NoPidFile)
    nothing.acquire()
    nothing.write(1)
    nothing.discard_stale(1)
    nothing.close()
    nothing.release()
    assert (nothing.fd, nothing.stale, nothing.keep_fds()) == (None, None, [])
    assert isinstance(pidfile_module.for_options("twistd.pid"), PidFile)
