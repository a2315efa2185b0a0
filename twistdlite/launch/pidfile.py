"""The pidfile: a file holding the daemon's PID, and a lock that says whether it is alive.

Liveness never rests on the PID number: the running process holds an
open-file-description lock (``F_OFD_SETLK``) on the pidfile for its whole
life. A pidfile nobody holds is stale, whatever PID it names (a reused PID, a
zombie, garbage). The lock belongs to the open file description, so it
survives the forks of daemonizing and dies with the last process holding it,
including after ``kill -9``. Probing (``status``, ``stop``) uses ``F_OFD_GETLK``,
which never takes the lock, so a probe cannot make a starting daemon fail.
The PID a locked pidfile names counts only once the process it names has the
file open: a start that has just locked a stale pidfile still shows the stale
PID for a moment, and a losing start must not report it (nor ``stop`` signal it).

The pidfile is never opened through a symlink (``O_NOFOLLOW``) nor written
when it has other hard links, and is made readable by everyone (mode 0644) so
``status``, ``stop`` and init scripts can read it whatever the umask.

Why not the ``lockfile`` package: its ``PIDLockFile`` takes the lock by
creating the file (``O_EXCL``) and judges it held by the file's mere
existence, so it cannot tell a stale pidfile (left by ``kill -9``) from a live
one, and a reused PID fools anything that reads it. An OS lock held for the
daemon's whole life is the only liveness test that cannot lie.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import time
from typing import Optional

from twistdlite.launch import forks
from twistdlite.launch.errors import AlreadyRunning, LaunchError

# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = "hhqqi4x"
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
log = logging.getLogger("twistdlite")

#: How long a losing start waits for the winner to write its PID (for the message only).
PID_WAIT = 5.0


def _lock_request(kind: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0)


def _try_lock(fd: int) -> bool:
    """Take the write lock on ``fd``; False when another open file description holds it."""
    try:
        fcntl.fcntl(fd, _OFD_SETLK, _lock_request(fcntl.F_WRLCK))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _is_locked(fd: int) -> bool:
    """True when some open file description holds a lock on ``fd``'s file (does not take it)."""
    answer = fcntl.fcntl(fd, _OFD_GETLK, _lock_request(fcntl.F_WRLCK))
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def _read_pid(fd: int) -> Optional[int]:
    data = os.pread(fd, 64, 0)
    try:
        pid = int(data.strip() or b"x")
    except ValueError:
        return None
    return pid if pid > 0 else None


def _open(path: str, flags: int) -> int:
    where = os.path.abspath(path)  # the run directory may not be where the command was typed
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LaunchError(f"pidfile {where} is a symbolic link; refusing to follow it") from None
        if exc.errno == errno.ENOENT:
            raise LaunchError(f"cannot create pidfile {where}: directory does not exist") from None
        raise LaunchError(f"cannot open pidfile {where}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LaunchError(f"pidfile {where} is not a regular file")
    if info.st_nlink > 1:
        os.close(fd)
        raise LaunchError(f"pidfile {where} has other hard links; refusing to use it")
    return fd


def _holds_open(pid: int, fd: int) -> Optional[bool]:
    """Whether process ``pid`` has ``fd``'s file open: False when it surely has not (no such process,
    or none of its descriptors is that file), None when we cannot tell (another user's process, no /proc)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and someone else's: /proc may still show its descriptors
    except (OverflowError, ValueError):
        return False
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    ours = os.fstat(fd)
    for name in names:
        try:
            info = os.stat(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (ours.st_dev, ours.st_ino):
            return True
    return False


def _holder_pid(fd: int) -> Optional[int]:
    """The PID in a locked pidfile, if it is the holder's own.

    A start that has just locked a stale pidfile still shows the stale PID
    until it empties the file, and the daemon's PID is written only after it
    has detached: the PID counts once the process it names has the file open
    (the lock holder keeps it open for its whole life).
    """
    pid = _read_pid(fd)
    if pid is None or _holds_open(pid, fd) is False:
        return None
    return pid


def _wait_for_pid(fd: int, timeout: Optional[float] = None) -> Optional[int]:
    """The holder's PID, waiting a little for a daemon that locked the file but has not written it yet
    (None at the deadline, or at once when the lock is no longer held)."""
    deadline = time.monotonic() + (PID_WAIT if timeout is None else timeout)
    while True:
        pid = _holder_pid(fd)
        if pid is not None or time.monotonic() >= deadline or not _is_locked(fd):
            return pid
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone: it has closed its files, so its locks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _unlink_as_real_user(path: str) -> None:
    """Unlink ``path``; with only the effective uid dropped (``--euid``), as the real user."""
    try:
        os.unlink(path)
        return
    except PermissionError:
        euid = os.geteuid()
        if os.getuid() != 0 or euid == 0:
            raise
    os.seteuid(0)
    try:
        os.unlink(path)
    finally:
        os.seteuid(euid)


def _write_pid(fd: int, pid: int) -> None:
    """Make ``pid`` the whole content of the file ``fd`` (a seam: tests fake a full disk here).

    No fsync: a full filesystem fails the ``pwrite`` itself (tmpfs allocates at once; ext4
    reserves the blocks of its delayed allocation at write time: both tested full), and
    readers (``status``, ``stop``, init scripts) read the page cache. What an fsync would add
    is the PID surviving a power loss, which nothing needs: the daemon is gone by then, and
    the pidfile's lock, not its content, says whether it runs. (A network filesystem that
    reports write errors only at fsync or close would go unnoticed: a pidfile belongs on a
    local one.) The fsync cost 0.3-14 ms of every start on this machine's ext4 disk.

    The file is cut to the PID's length after writing it, never truncated to 0 first: on ext4
    (``auto_da_alloc``) a truncation to 0 has the file's last close allocate and write its data at
    once, which is the daemon's close at its stop, after the unlink: 0.3-5 ms of the stop (strace
    -T, machine busy), where twistd's unlink of its pidfile takes ~0.05 ms.
    """
    data = f"{pid}\n".encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))  # after the write, and never to 0 (see the docstring)


class PidStatus:
    """What a probe of a pidfile found: whether it exists, whether its lock is held, the PID it names
    (while it is locked, only the holder's own PID: None until the holder has written it)."""

    __slots__ = ("exists", "running", "pid")

    def __init__(self, exists: bool, running: bool, pid: Optional[int]) -> None:
        self.exists = exists
        self.running = running
        self.pid = pid

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PidStatus):
            return NotImplemented
        return (self.exists, self.running, self.pid) == (other.exists, other.running, other.pid)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PidStatus(exists={self.exists!r}, running={self.running!r}, pid={self.pid!r})"


def probe(path: str) -> PidStatus:
    """Look at the pidfile at ``path`` without locking it."""
    try:
        fd = _open(path, os.O_RDONLY)
    except LaunchError:
        if not os.path.lexists(path):
            return PidStatus(False, False, None)
        raise
    try:
        running = _is_locked(fd)
        return PidStatus(True, running, _holder_pid(fd) if running else _read_pid(fd))
    finally:
        os.close(fd)


def _unlocking_twistd(content: bytes) -> Optional[int]:
    """The PID in ``content`` if it is a live Twisted ``twistd``: the one pidfile owner that holds no lock.

    Anything else an unlocked pidfile names (a reused PID, a zombie, garbage) is stale.
    """
    try:
        pid = int(content.strip() or b"x")
        with open(f"/proc/{pid}/stat", "rb") as handle:
            if handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")[:3]
    except (ValueError, OSError, IndexError):
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    return pid if any(os.path.basename(arg) == b"twistd" for arg in argv) else None


class PidFile:
    """The pidfile of this run: :meth:`acquire` it, :meth:`write` the PID, :meth:`release` at exit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: Optional[int] = None
        #: The PID a stale pidfile named when it was replaced ("" if it held garbage).
        self.stale: Optional[str] = None

    def acquire(self, pid_wait: Optional[float] = None) -> None:
        """Lock the pidfile; :class:`AlreadyRunning` if a live process holds it (naming its PID, which a
        holder that is still starting is given ``pid_wait`` seconds, :data:`PID_WAIT` by default, to write)."""
        while True:
            fd = _open(self.path, os.O_RDWR | os.O_CREAT)
            if not _try_lock(fd):
                pid = _wait_for_pid(fd, pid_wait)
                if pid is None and not _is_locked(fd):
                    os.close(fd)  # the holder let go while we waited: try again
                    continue
                os.close(fd)
                who = f"PID {pid}" if pid else "PID not written yet"
                raise AlreadyRunning(f"already running, {who} (pidfile {os.path.abspath(self.path)})")
            # The holder we raced with may have removed the file as it exited:
            # our lock only counts if the path still names the file we locked.
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = os.pread(fd, 64, 0)
        twistd = _unlocking_twistd(old)
        if twistd is not None:
            os.close(fd)  # neither emptied nor removed: it is that twistd's
            raise AlreadyRunning(f"pidfile {os.path.abspath(self.path)} names PID {twistd}, a running twistd "
                                 "(Twisted's, which does not lock its pidfile); refusing to replace it")
        if old.strip():
            self.stale = old.strip().decode("ascii", "replace")
            os.ftruncate(fd, 0)  # a losing start must never report the stale PID as ours
        try:
            os.fchmod(fd, 0o644)  # anyone may read a PID; only the lock says it is alive
        except OSError:
            pass
        self.fd = fd

    def write(self, pid: int) -> None:
        """Write ``pid`` as the file's whole content; :class:`LaunchError` naming the pidfile on failure."""
        assert self.fd is not None, "acquire() first"
        try:
            _write_pid(self.fd, pid)
        except OSError as exc:  # a full filesystem (ENOSPC), a quota (EDQUOT), an I/O error
            raise LaunchError(f"cannot write pidfile {os.path.abspath(self.path)}: "
                              f"{exc.strerror or exc}") from None

    def close(self) -> None:
        """Close this process's descriptor only: the lock stays with the daemon that shares it."""
        fd, self.fd = self.fd, None
        if fd is not None:
            forks.forget(fd)
            os.close(fd)

    def discard_stale(self, pid: Optional[int], timeout: float = 10.0) -> None:
        """Remove the pidfile a daemon that died (``pid``) left behind, unless someone holds it now.

        The launching command learns of the death when the readiness pipe
        closes, which the dying process may do before it lets go of the pidfile
        (the kernel releases its files one by one, and a loaded machine can
        deschedule it in between): a held lock is retried until ``pid`` has
        exited, for up to ``timeout`` seconds (one second when ``pid`` is not
        known). A lock still held once ``pid`` is gone is someone else's.
        """
        deadline = time.monotonic() + (timeout if pid is not None else min(timeout, 1.0))
        while True:
            exited = pid is not None and process_gone(pid)
            try:
                self.acquire(pid_wait=0)
                break
            except AlreadyRunning:
                if exited or time.monotonic() >= deadline:
                    return
                time.sleep(0.01)
            except LaunchError:
                return
        if self.stale is None or self.stale == str(pid):
            self.release()
        else:
            self.close()

    def release(self) -> None:
        """Remove the pidfile (or, when we may not, empty it and log why) and drop the lock."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            ours = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            if ours:
                try:
                    _unlink_as_real_user(self.path)
                except OSError as exc:
                    os.ftruncate(fd, 0)  # e.g. privileges dropped: an empty, unlocked file is harmless
                    log.warning("Could not remove the pidfile %s: %s; it is left empty and unlocked "
                                "(harmless: the next start proceeds)", os.path.abspath(self.path),
                                exc.strerror or exc)
        except OSError:
            pass
        finally:
            forks.forget(fd)
            os.close(fd)

    def keep_fds(self) -> list:
        """The descriptors a daemon must keep open for this pidfile: its locked one."""
        return [self.fd] if self.fd is not None else []


class NoPidFile:
    """The pidfile of a run without one (``--pidfile ''``): every step does nothing."""

    path = ""
    fd = None
    stale = None

    def acquire(self, pid_wait: Optional[float] = None) -> None:
        """Nothing to lock."""

    def write(self, pid: int) -> None:
        """Nothing to write."""

    def close(self) -> None:
        """Nothing to close."""

    def discard_stale(self, pid: Optional[int], timeout: float = 10.0) -> None:
        """Nothing to discard."""

    def release(self) -> None:
        """Nothing to remove."""

    def keep_fds(self) -> list:
        """No descriptor to keep."""
        return []


def for_options(path: str) -> "PidFile | NoPidFile":
    """The pidfile at ``path``, or a :class:`NoPidFile` when ``path`` is empty (no pidfile)."""
    return PidFile(path) if path else NoPidFile()
