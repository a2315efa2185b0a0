"""UNIX socket files: path checks, stale-socket detection, the optional PID lock, clean removal.

A listening UNIX socket lives at a path. Before binding, :func:`bind_unix`
checks the path fits ``sun_path`` and its directory exists, then looks at what
is already there: a socket nobody listens on (left by a crash) is removed and
replaced; a socket someone still listens on refuses the bind; anything that is
not a socket is never touched. :func:`remove_socket_file` removes the file at
stop only if it is still the one this process created.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
from typing import Any, Optional, Tuple

from twistdlite.error import CannotListenError

log = logging.getLogger("twistdlite")

#: False in a process that serves on sockets another process bound and owns (a worker of
#: ``twistdlite --workers``): it then never removes their socket files or lock files.
_owns_files = True


def disown_files() -> None:
    """From now on this process leaves UNIX socket files and ``.lock`` files to the process that made them."""
    global _owns_files
    _owns_files = False


def owns_files() -> bool:
    """False once :func:`disown_files` was called in this process."""
    return _owns_files


#: The longest path ``sun_path`` holds, without its terminating NUL.
MAX_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103

Identity = Optional[Tuple[int, int]]


def is_abstract(path: Any) -> bool:
    """True for a Linux abstract-namespace address (it starts with a NUL byte)."""
    return isinstance(path, (str, bytes)) and path[:1] in ("\0", b"\0")


def _fail(path: Any, code: int, text: str, hint: str = "") -> CannotListenError:
    return CannotListenError(None, path, OSError(code, text), hint)


def check_path(path: Any) -> None:
    """Fail clearly when ``path`` cannot name a UNIX socket (too long, missing directory)."""
    if not isinstance(path, (str, bytes, os.PathLike)) or not os.fspath(path):
        raise _fail(path, errno.EINVAL, "a UNIX socket address must be a non-empty path")
    if is_abstract(path):
        if len(os.fsencode(path)) > MAX_PATH_BYTES + 1:
            raise _fail(path, errno.ENAMETOOLONG, "abstract address too long")
        return
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise _fail(path, errno.ENAMETOOLONG,
                    f"path too long ({size} bytes; a UNIX socket path holds at most {MAX_PATH_BYTES})",
                    "use a shorter or relative path")
    directory = os.path.dirname(os.path.abspath(os.fsdecode(path)))
    if not os.path.isdir(directory):
        raise _fail(path, errno.ENOENT, f"directory {directory} does not exist")


def probe_live(path: Any, sock_type: int) -> bool:
    """True when something accepts connections (or datagrams) at the socket file ``path``."""
    probe = socket.socket(socket.AF_UNIX, sock_type)
    try:
        probe.setblocking(False)
        probe.connect(os.fspath(path))
    except (BlockingIOError, InterruptedError):
        return True  # a listener with a full backlog is alive
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        # EPROTOTYPE (a socket of the other type), EACCES...: someone else's; keep it.
        return True
    finally:
        probe.close()
    return True


def clear_stale(path: Any, sock_type: int) -> None:
    """Remove a stale socket file at ``path``; :class:`CannotListenError` if it is live or not a socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CannotListenError(None, path, exc) from None
    if not stat.S_ISSOCK(info.st_mode):
        raise _fail(path, errno.EEXIST, "the path exists and is not a socket", "remove it or choose another path")
    if probe_live(path, sock_type):
        raise _fail(path, errno.EADDRINUSE, "Address already in use",
                    "another process is listening on it")
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CannotListenError(None, path, exc) from None
    log.info("Removed stale UNIX socket %s", os.fsdecode(path))


class PidLock:
    """``<path>.lock``: an advisory lock held while listening, with the PID inside (``wantPID``)."""

    def __init__(self, path: Any) -> None:
        self.path = os.fsdecode(path) + ".lock"
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock; :class:`CannotListenError` when a live process holds it."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CannotListenError(None, self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _fail(self.path[:-5], errno.EADDRINUSE, "Address already in use",
                        f"{self.path} is held by a live process") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file and let go of the lock."""
        if self.fd is None:
            return
        if _owns_files:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = None

    @staticmethod
    def is_held(path: Any) -> bool:
        """True when a live process holds ``<path>.lock``."""
        import fcntl

        try:
            fd = os.open(os.fsdecode(path) + ".lock", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False


def bind_unix(path: Any, sock_type: int, mode: Optional[int]) -> Tuple[socket.socket, Identity]:
    """A socket bound at ``path`` (stale file replaced, ``mode`` applied); returns it and its file identity."""
    check_path(path)
    abstract = is_abstract(path)
    if not abstract:
        clear_stale(path, sock_type)
    sock = socket.socket(socket.AF_UNIX, sock_type)
    try:
        sock.bind(os.fspath(path))
        identity: Identity = None
        if not abstract:
            info = os.lstat(path)
            identity = (info.st_dev, info.st_ino)
            if mode is not None:
                os.chmod(path, mode)
    except OSError as exc:
        sock.close()
        raise CannotListenError(None, path, exc) from None
    return sock, identity


def remove_socket_file(path: Any, identity: Identity) -> None:
    """Remove the socket file at ``path`` if it is still the one with ``identity`` (and this process owns it)."""
    if identity is None or not _owns_files:
        return
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == identity:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # e.g. privileges were dropped and the directory is not ours
        log.warning("Could not remove UNIX socket %s: %s", os.fsdecode(path), exc.strerror or exc)
