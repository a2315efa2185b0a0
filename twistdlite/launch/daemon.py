"""Detaching (python-daemon) and the readiness pipe between the daemon and the launching command.

The launching command forks; the child starts a new session (``setsid``) and
forks the daemon, which can then never regain a controlling terminal, and
exits at once, reaped by the launching command (so no intermediate process is
left a zombie where PID 1 does not reap). The daemon then enters
python-daemon's ``DaemonContext`` (working directory, umask, stdio to
/dev/null, every descriptor closed except an explicit list: the readiness
pipe, the pidfile and, with ``-l -``, stdout; the signal map).

The daemon first sends its PID, then ``READY`` once every service has
started, or ``ERROR <length>`` and the message. The launching command returns
as soon as it has read a whole answer (a worker the daemon forked may still
hold the pipe open), or on EOF, or at its deadline: a daemon that dies without
a word or stays silent past the deadline (it is killed) is a failed start too,
never a hang.

The daemon sends a failure only when it is done cleaning up (services
stopped, pidfile removed): :meth:`PipeReadiness.failed` records the message
and :meth:`PipeReadiness.close` sends it, so when the launching command exits
1 a new start can follow at once.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import Any, Iterable, Optional, Union

from twistdlite.launch import forks
from twistdlite.launch.errors import StartError
from twistdlite.launch.readiness import Readiness

_PID = b"PID "
_READY = b"READY\n"
_ERROR = b"ERROR "

#: True in a launching command once its daemon has reported READY: nothing of this
#: process remains to clean up (the daemon owns the pidfile and the application).
LAUNCHER_DONE = False

#: Seconds the launching command waits beyond the daemon's own start and stop
#: deadlines before it declares the daemon wedged and kills it.
GRACE = 10.0


class PipeReadiness(Readiness):
    """The daemon's end of the readiness pipe."""

    def __init__(self, fd: int) -> None:
        self.fd: Optional[int] = fd
        self.error: Optional[str] = None
        self.closed_fds: list = []

    def _send(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass  # the launching command is gone; nobody to tell

    def announce(self, pid: int) -> None:
        """Tell the launching command the daemon's PID (so it can kill a daemon that never reports)."""
        self._send(_PID + str(pid).encode() + b"\n")

    def ready(self) -> None:
        """Tell the launching command to exit 0."""
        if self.error is None:
            self._send(_READY)
        self.close()

    def failed(self, message: str) -> None:
        """Record ``message``; :meth:`close` sends it (the launching command prints it and exits 1)."""
        if self.error is None:
            self.error = message or "start failed"

    def close(self) -> None:
        """Send a recorded failure, then close the pipe (the launching command sees EOF)."""
        if self.error is not None:
            message = self.error.encode("utf-8", "replace")
            self._send(b"%s%d\n%s" % (_ERROR, len(message), message))
        fd, self.fd = self.fd, None
        if fd is not None:
            forks.forget(fd)
            os.close(fd)


class Launcher:
    """The launching command's side: waits for the daemon's word, with a deadline."""

    def __init__(self, fd: int, child: int, logfile: Optional[str], timeout: float) -> None:
        self.fd = fd
        self.child = child
        self.logfile = logfile
        self.timeout = timeout
        self.pid: Optional[int] = None

    def wait(self) -> None:
        """Return when the daemon is ready; :class:`StartError` with its message otherwise."""
        try:
            data, finished = self._read(self.timeout)
            if not finished:
                self._kill()
                self._read(5.0)
                raise StartError(f"the daemon (PID {self.pid or 'unknown'}) did not report ready within "
                                 f"{self.timeout:g} s and was killed{self._see_log()}")
        finally:
            os.close(self.fd)
            self._reap()
        if data == _READY:
            global LAUNCHER_DONE
            LAUNCHER_DONE = True
            return
        message = _error_message(data)
        if message is not None:
            raise StartError(message or "start failed")
        raise StartError(f"the daemon exited before it was ready{self._see_log()}")

    def _read(self, timeout: float) -> tuple[bytes, bool]:
        """Read until a whole answer, EOF or the deadline; returns what came after the PID line and
        whether the daemon is done talking (an answer or EOF)."""
        deadline = time.monotonic() + timeout
        data = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._strip_pid(data), False
            readable, _, _ = select.select([self.fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return self._strip_pid(data), True
            data += chunk
            answer = self._strip_pid(data)
            if self.pid is not None and _complete(answer):
                return answer, True

    def _strip_pid(self, data: bytes) -> bytes:
        """``data`` without its PID line (remembering the PID)."""
        if data.startswith(_PID) and b"\n" in data:
            line, data = data.split(b"\n", 1)
            try:
                self.pid = int(line[len(_PID):])
            except ValueError:
                pass
        return data

    def _kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def _reap(self) -> None:
        try:
            os.waitpid(self.child, 0)  # the session leader, which exited as soon as it forked the daemon
        except ChildProcessError:
            pass

    def _see_log(self) -> str:
        return f"; see {os.path.abspath(self.logfile)}" if self.logfile else ""


def _error_message(data: bytes) -> Optional[str]:
    """The message of a whole ``ERROR <length>`` answer (None if ``data`` is not one)."""
    if not data.startswith(_ERROR) or b"\n" not in data:
        return None
    head, body = data[len(_ERROR):].split(b"\n", 1)
    if not head.isdigit() or len(body) < int(head):
        return None
    return body[:int(head)].decode("utf-8", "replace")


def _complete(answer: bytes) -> bool:
    """True once ``answer`` holds the daemon's whole word: READY, or a whole error."""
    return answer == _READY or _error_message(answer) is not None


def open_descriptors() -> dict:
    """This process's open descriptors: ``{fd: what it refers to}`` (from /proc/self/fd)."""
    found = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in names:
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used, now closed
    return found


class Detacher:
    """Detaching, prepared early: python-daemon imported and /dev/null opened before any ``--chroot``.

    ``keep_stdout`` keeps the launching command's stdout as the daemon's
    (``-l -``); otherwise stdin, stdout and stderr all go to /dev/null.
    """

    def __init__(self, umask: Optional[int], logfile: Optional[str], timeout: float,
                 keep_stdout: bool = False) -> None:
        import daemon as python_daemon  # imported only when detaching

        self.python_daemon = python_daemon
        self.umask = umask
        self.logfile = logfile
        self.timeout = timeout
        self.devnull = open(os.devnull, "r+b", buffering=0)
        self.stdout: Any = self.devnull
        if keep_stdout and _usable(sys.stdout):
            self.stdout = sys.stdout

    def detach(self, keep_fds: Iterable[int]) -> Union[Launcher, PipeReadiness]:
        """Fork and detach: a :class:`Launcher` in the launching command, a :class:`PipeReadiness` in the daemon."""
        keep = [fd for fd in keep_fds if fd is not None]
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child:
            os.close(write_fd)
            self.devnull.close()
            return Launcher(read_fd, child, self.logfile, self.timeout)
        os.close(read_fd)
        readiness = PipeReadiness(write_fd)
        try:
            # Our own setsid and second fork (python-daemon's would orphan its middle process
            # as a zombie where PID 1 does not reap): this process, the session leader, exits
            # at once and the launching command reaps it; the daemon is its child.
            os.setsid()
            if os.fork():
                os._exit(0)
            stdio = {0, 1, 2, self.devnull.fileno()}
            preserved = set(keep) | {write_fd}
            readiness.closed_fds = [f"{fd} -> {target}" for fd, target in sorted(open_descriptors().items())
                                    if fd not in stdio and fd not in preserved]
            context = self.python_daemon.DaemonContext(
                working_directory=os.getcwd(),
                umask=self.umask if self.umask is not None else _current_umask(),
                detach_process=False,  # done above
                files_preserve=[write_fd, *keep],
                prevent_core=False,
                stdin=self.devnull,
                stdout=self.stdout,
                stderr=self.devnull,
                signal_map={
                    signal.SIGTSTP: None,
                    signal.SIGTTIN: None,
                    signal.SIGTTOU: None,
                    signal.SIGHUP: None,  # never die of a hang-up; the run reopens the log on it
                },
            )
            context.open()
            self.devnull.close()
            readiness.announce(os.getpid())
        except BaseException as exc:  # noqa: BLE001 - must never return into the launcher's code
            readiness.failed(f"cannot detach: {exc}")
            readiness.close()
            os._exit(1)
        return readiness


def _usable(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() >= 0
    except (OSError, ValueError, AttributeError):
        return False


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
