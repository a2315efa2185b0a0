"""Child processes for ``reactor.spawnProcess``: the process transport, on asyncio's pipes.

The child is started at once with :class:`subprocess.Popen` (so
``transport.pid`` is known when ``spawnProcess`` returns); its pipes are
connected to the event loop (``loop.connect_read_pipe``/``connect_write_pipe``)
and a small daemon thread waits for its exit, so no child watcher is needed
and a stop never waits for a child. The protocol (a
``twistdlite.protocol.ProcessProtocol``) sees what Twisted's sees:
``connectionMade``; ``childDataReceived`` (``outReceived``/``errReceived``);
``childConnectionLost`` per pipe; ``processExited`` when the child exits;
``processEnded`` once it has exited and every pipe is closed, with a Failure of
``ProcessDone`` (exit code 0) or ``ProcessTerminated`` (non-zero code, a signal,
or a program that could not be started at all).
"""

from __future__ import annotations

import logging
import os
import signal as signal_module
import subprocess
import threading
from typing import Any, Optional

from twistdlite.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twistdlite.failure import Failure

__all__ = ["Process", "spawn"]

log = logging.getLogger("twistdlite")

_SIGNALS = {"TERM": signal_module.SIGTERM, "KILL": signal_module.SIGKILL, "INT": signal_module.SIGINT,
            "HUP": signal_module.SIGHUP, "STOP": signal_module.SIGSTOP, "CONT": signal_module.SIGCONT,
            "USR1": signal_module.SIGUSR1, "USR2": signal_module.SIGUSR2, "QUIT": signal_module.SIGQUIT}

#: The child file descriptors the protocol sees by default: stdin written, stdout/stderr read.
DEFAULT_CHILD_FDS = {0: "w", 1: "r", 2: "r"}


def _call(proto: Any, name: str, *args: Any) -> None:
    """Call ``proto.name(*args)``, logging (never raising) what it raises."""
    try:
        getattr(proto, name)(*args)
    except Exception:
        log.exception("Unhandled error in %s.%s", type(proto).__name__, name)


class _PipeReader:
    """The asyncio protocol of one pipe read from the child (its stdout or stderr)."""

    def __init__(self, process: "Process", fd: int) -> None:
        self.process = process
        self.fd = fd

    def connection_made(self, transport: Any) -> None:
        self.process._readers[self.fd] = transport

    def data_received(self, data: bytes) -> None:
        _call(self.process.proto, "childDataReceived", self.fd, data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.process._pipe_closed(self.fd)

    def pause_writing(self) -> None:  # pragma: no cover - read pipes never write
        pass

    def resume_writing(self) -> None:  # pragma: no cover
        pass


class _PipeWriter:
    """The asyncio protocol of the child's stdin."""

    def __init__(self, process: "Process") -> None:
        self.process = process

    def connection_made(self, transport: Any) -> None:
        self.process._stdin_connected(transport)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.process._pipe_closed(0)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


class Process:
    """The transport of a child process: ``pid``, ``write``, ``closeStdin``, ``signalProcess``, ``loseConnection``."""

    def __init__(self, proto: Any, executable: Any, args: Any, env: Optional[dict], path: Any,
                 uid: Optional[int], gid: Optional[int], childFDs: Optional[dict]) -> None:
        self.proto = proto
        self.executable = executable
        self.args = list(args) if args else [executable]
        self.env = env
        self.path = path
        self.uid = uid
        self.gid = gid
        self.childFDs = dict(DEFAULT_CHILD_FDS if childFDs is None else childFDs)
        self.pid: Optional[int] = None
        self.status: Optional[int] = None  # the wait status once exited
        self.lostProcess = False
        self._popen: Optional[subprocess.Popen] = None
        self._readers: dict = {}
        self._open: set = set()  # child fds whose pipe is still open on our side
        self._stdin: Any = None
        self._pending: list = []  # written before the stdin pipe was connected
        self._close_stdin = False
        self._exit_reason: Any = None
        self._ended = False
        self.disconnecting = False
        for fd, kind in self.childFDs.items():
            if fd not in (0, 1, 2):
                raise NotImplementedError(f"childFDs: only the child's descriptors 0, 1 and 2 are supported, not {fd}")
            if not (kind in ("r", "w") or isinstance(kind, int)):
                raise ValueError(f"childFDs[{fd}] must be 'r', 'w' or a descriptor number, not {kind!r}")

    # -- starting -------------------------------------------------------------------------------
    def _stream(self, fd: int) -> Any:
        kind = self.childFDs.get(fd)
        if kind is None:
            return subprocess.DEVNULL
        if isinstance(kind, int) and not isinstance(kind, bool):
            return kind
        return subprocess.PIPE

    def start(self, loop: Any) -> None:
        """Start the child, connect its pipes to ``loop``, and tell the protocol."""
        try:
            options = _identity(self.uid, self.gid)
            self._popen = subprocess.Popen(
                self.args, executable=self.executable, env=dict(os.environ) if self.env is None else self.env,
                cwd=self.path, stdin=self._stream(0), stdout=self._stream(1), stderr=self._stream(2),
                close_fds=True, start_new_session=False, **options)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._failed_to_start(loop, exc)
            return
        self.pid = self._popen.pid
        for fd, pipe in ((0, self._popen.stdin), (1, self._popen.stdout), (2, self._popen.stderr)):
            if pipe is not None:
                self._open.add(fd)
        self.proto.makeConnection(self)
        if self._popen.stdin is not None:
            loop.create_task(loop.connect_write_pipe(lambda: _PipeWriter(self), self._popen.stdin))
        for fd, pipe in ((1, self._popen.stdout), (2, self._popen.stderr)):
            if pipe is not None:
                loop.create_task(loop.connect_read_pipe(lambda fd=fd: _PipeReader(self, fd), pipe))
        threading.Thread(target=self._wait, args=(loop, self._popen), daemon=True,
                         name=f"twistdlite-wait-{self.pid}").start()

    def _failed_to_start(self, loop: Any, exc: BaseException) -> None:
        reason = getattr(exc, "strerror", None) or str(exc)
        where = getattr(exc, "filename", None) or self.executable
        message = f"cannot run {os.fsdecode(where) if isinstance(where, bytes) else where}: {reason}"
        log.error("spawnProcess: %s", message)
        self.proto.makeConnection(self)
        self._exit_reason = Failure(ProcessTerminated(exitCode=1, status=256, reason=message))
        self.lostProcess = True
        loop.call_soon(self._report_exit)

    def _wait(self, loop: Any, popen: subprocess.Popen) -> None:
        popen.wait()
        try:
            loop.call_soon_threadsafe(self._exited, popen.returncode)
        except RuntimeError:  # the loop is closed: the daemon has stopped
            pass

    # -- ending ---------------------------------------------------------------------------------
    def _exited(self, returncode: int) -> None:
        if returncode < 0:
            self.status = -returncode
            reason: BaseException = ProcessTerminated(signal=-returncode, status=-returncode)
        else:
            self.status = returncode << 8
            reason = ProcessDone(self.status) if returncode == 0 else ProcessTerminated(
                exitCode=returncode, status=self.status)
        self._exit_reason = Failure(reason)
        self.lostProcess = True
        self._report_exit()

    def _report_exit(self) -> None:
        _call(self.proto, "processExited", self._exit_reason)
        self._maybe_ended()

    def _pipe_closed(self, fd: int) -> None:
        if fd not in self._open:
            return
        self._open.discard(fd)
        if fd == 0:
            self._stdin = None
        else:
            self._readers.pop(fd, None)
        _call(self.proto, "childConnectionLost", fd)
        self._maybe_ended()

    def _maybe_ended(self) -> None:
        if self._ended or not self.lostProcess or self._open:
            return
        self._ended = True
        _call(self.proto, "processEnded", self._exit_reason)

    # -- the transport --------------------------------------------------------------------------
    def _stdin_connected(self, transport: Any) -> None:
        self._stdin = transport
        for data in self._pending:
            transport.write(data)
        self._pending = []
        if self._close_stdin:
            transport.close()

    def write(self, data: bytes) -> None:
        """Write ``data`` to the child's stdin."""
        self.writeToChild(0, data)

    def writeSequence(self, seq: Any) -> None:
        """Write each of ``seq`` to the child's stdin."""
        self.write(b"".join(seq))

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Write ``data`` to the child's descriptor ``childFD`` (only 0, its stdin, is written here)."""
        if childFD != 0 or self.childFDs.get(0) != "w":
            raise KeyError(childFD)
        if self._close_stdin or 0 not in self._open:
            return
        if self._stdin is None:
            self._pending.append(bytes(data))
        else:
            self._stdin.write(data)

    def closeChildFD(self, childFD: int) -> None:
        """Close our end of the pipe to the child's descriptor ``childFD``."""
        if childFD == 0:
            self._close_stdin = True
            if self._stdin is not None:
                self._stdin.close()
            elif 0 in self._open and self._popen is not None and self._popen.stdin is not None \
                    and not self._pending:
                pass  # closed once connected (see _stdin_connected)
            return
        reader = self._readers.get(childFD)
        if reader is not None:
            reader.close()

    def closeStdin(self) -> None:
        """Close the child's stdin (it reads end-of-file once what was written is through)."""
        self.closeChildFD(0)

    def closeStdout(self) -> None:
        """Stop reading the child's stdout."""
        self.closeChildFD(1)

    def closeStderr(self) -> None:
        """Stop reading the child's stderr."""
        self.closeChildFD(2)

    def loseConnection(self) -> None:
        """Close stdin, stdout and stderr (the child is not signalled)."""
        self.disconnecting = True
        self.closeStdin()
        self.closeStderr()
        self.closeStdout()

    def signalProcess(self, signalID: Any) -> None:
        """Send a signal: ``"TERM"``, ``"KILL"``, ``"INT"``, ``"HUP"``... or a number (``ProcessExitedAlready`` once exited)."""
        signum = _SIGNALS.get(signalID, signalID) if isinstance(signalID, str) else signalID
        if isinstance(signalID, str) and signalID not in _SIGNALS:
            raise ValueError(f"unknown signal {signalID!r}")
        if self.pid is None or self.lostProcess or self._popen is None or self._popen.returncode is not None:
            raise ProcessExitedAlready()
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            raise ProcessExitedAlready() from None

    def getPeer(self) -> Any:
        """Twisted's ``_ProcessAddress`` stand-in (the process has no network address)."""
        return ("process", self.pid)

    getHost = getPeer

    def __repr__(self) -> str:
        state = "ended" if self._ended else "exited" if self.lostProcess else "running"
        return f"<Process pid={self.pid} {state}>"


def _identity(uid: Optional[int], gid: Optional[int]) -> dict:
    """Popen's ``user``/``group``/``extra_groups`` for spawnProcess's ``uid``/``gid``, as Twisted's switchUID.

    The gid is set when given; a uid other than ours is set with that user's
    own groups (initgroups: its name's group list with the primary gid, this
    process's effective gid when none is given), never this process's
    supplementary groups. A uid with no user entry keeps only the primary gid.
    """
    options: dict = {}
    if gid is not None:
        options["group"] = gid
    if uid is not None and uid != os.getuid():
        import pwd

        options["user"] = uid
        primary = gid if gid is not None else os.getegid()
        try:
            options["extra_groups"] = os.getgrouplist(pwd.getpwuid(uid).pw_name, primary)
        except KeyError:
            options["extra_groups"] = [primary]
    return options


def spawn(proto: Any, executable: Any, args: Any, env: Optional[dict], path: Any, uid: Optional[int],
          gid: Optional[int], usePTY: bool, childFDs: Optional[dict]) -> Process:
    """``reactor.spawnProcess``: start the child now (or once the loop runs) and return its transport."""
    if usePTY:
        raise NotImplementedError("spawnProcess(usePTY=True) is not supported by twistdlite")
    process = Process(proto, executable, args, env, path, uid, gid, childFDs)
    from twistdlite import _loopstate

    loop = _loopstate.current_loop()
    if loop is None:
        _loopstate.call_when_running(lambda: process.start(_loopstate.get_loop()))
    else:
        process.start(loop)
    return process
