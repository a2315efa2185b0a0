"""Detaching (python-daemon) and the readiness pipe between the daemon and the launching command.

The launching command forks once; the child detaches with python-daemon's
``DaemonContext`` (fork, setsid, fork, stdio to /dev/null, descriptors closed
except an explicit list). The launching command reads the readiness pipe until
the daemon reports ``ready`` or an error, or dies without a word.
"""

from __future__ import annotations

import os
import signal
from typing import Iterable, Optional

from twistdlite.launch.errors import StartError

_READY = b"READY\n"
_ERROR = b"ERROR\n"


class Readiness:
    """How the run reports its start-up outcome. In the foreground it says nothing."""

    def ready(self) -> None:
        """Every service has started."""

    def failed(self, message: str) -> None:
        """The start failed with ``message``."""

    def close(self) -> None:
        """Nothing more will be reported."""


class PipeReadiness(Readiness):
    """The daemon's end of the readiness pipe."""

    def __init__(self, fd: int) -> None:
        self.fd: Optional[int] = fd

    def _send(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass  # the launching command is gone; nobody to tell
        self.close()

    def ready(self) -> None:
        """Tell the launching command to exit 0."""
        self._send(_READY)

    def failed(self, message: str) -> None:
        """Tell the launching command to print ``message`` and exit 1."""
        self._send(_ERROR + message.encode("utf-8", "replace"))

    def close(self) -> None:
        """Close the pipe (the launching command sees EOF)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class Launcher:
    """The launching command's side: waits for the daemon's word."""

    def __init__(self, fd: int, child: int, logfile: Optional[str]) -> None:
        self.fd = fd
        self.child = child
        self.logfile = logfile

    def wait(self) -> None:
        """Return when the daemon is ready; :class:`StartError` with its message otherwise."""
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.fd)
        try:
            os.waitpid(self.child, 0)  # the intermediate process python-daemon leaves behind
        except ChildProcessError:
            pass
        data = b"".join(chunks)
        if data == _READY:
            return
        if data.startswith(_ERROR):
            raise StartError(data[len(_ERROR):].decode("utf-8", "replace") or "start failed")
        where = f"; see {os.path.abspath(self.logfile)}" if self.logfile else ""
        raise StartError(f"the daemon exited before it was ready{where}")


def detach(keep_fds: Iterable[int], umask: Optional[int], logfile: Optional[str]):
    """Fork and detach. Returns a :class:`Launcher` in the launching command, a :class:`PipeReadiness` in the daemon."""
    import daemon  # python-daemon; imported only when detaching

    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child:
        os.close(write_fd)
        return Launcher(read_fd, child, logfile)
    os.close(read_fd)
    readiness = PipeReadiness(write_fd)
    try:
        context = daemon.DaemonContext(
            working_directory=os.getcwd(),
            umask=umask if umask is not None else os.umask(os.umask(0)),
            detach_process=True,
            files_preserve=[write_fd, *keep_fds],
            prevent_core=False,
            signal_map={
                signal.SIGTSTP: None,
                signal.SIGTTIN: None,
                signal.SIGTTOU: None,
                signal.SIGHUP: None,  # never die of a hang-up; the run reopens the log on it
            },
        )
        context.open()
    except BaseException as exc:  # noqa: BLE001 - must never return into the launcher's code
        readiness.failed(f"cannot detach: {exc}")
        os._exit(1)
    return readiness
