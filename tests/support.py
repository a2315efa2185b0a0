"""Shared helpers for end-to-end tests: run twistdlite in subprocesses, wait on readiness and exit.

Never sleep for a fixed time: every wait here polls a condition until a deadline.
The test session is a child subreaper (see conftest.py), so detached daemons
are reparented to it and reaped by :func:`wait_gone`, never left as zombies.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TWISTDLITE = [sys.executable, "-m", "twistdlite"]
DEADLINE = 20.0

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (so daemons can be reaped)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def env(**extra: str) -> dict:
    """The environment for a twistdlite subprocess: this checkout importable, unbuffered output."""
    result = dict(os.environ)
    result["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), result.get("PYTHONPATH", "")]))
    result["PYTHONUNBUFFERED"] = "1"
    result.update(extra)
    return result


def run(args: Iterable[str], cwd: Optional[Path] = None, timeout: float = DEADLINE,
        **env_extra: str) -> subprocess.CompletedProcess:
    """Run ``twistdlite ARGS`` to completion (with a deadline); returns the completed process."""
    return subprocess.run([*TWISTDLITE, *args], cwd=cwd, env=env(**env_extra), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def spawn(args: Iterable[str], cwd: Optional[Path] = None, **env_extra: str) -> subprocess.Popen:
    """Start ``twistdlite ARGS`` in the background; stdout and stderr merged into ``.stdout``."""
    return subprocess.Popen([*TWISTDLITE, *args], cwd=cwd, env=env(**env_extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_until(condition: Callable[[], object], timeout: float = DEADLINE, what: str = "condition", *,
               first: float = 0.005, longest: float = 0.1, error: type = AssertionError) -> object:
    """Poll ``condition`` (every ``first`` s, backing off to ``longest``) until it returns something truthy;
    ``error`` (AssertionError) at the deadline."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, longest)


class LineReader:
    """Reads a Popen's merged output without blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.text = ""
        os.set_blocking(proc.stdout.fileno(), False)

    def _pump(self) -> None:
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, ValueError):
            chunk = None
        if chunk:
            self.text += chunk.decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float = DEADLINE) -> re.Match:
        """Wait until ``pattern`` (a regex) appears in the output; returns the match."""
        regex = re.compile(pattern)

        def found():
            self._pump()
            match = regex.search(self.text)
            if match is None and self.proc.poll() is not None:
                self._pump()
                match = regex.search(self.text)
                if match is None:
                    raise AssertionError(f"process exited ({self.proc.returncode}) before {pattern!r}:\n{self.text}")
            return match

        return wait_until(found, timeout, f"{pattern!r} in output:\n{self.text}")

    def rest(self) -> str:
        """Everything read so far, after draining what is left."""
        self._pump()
        return self.text


def wait_for_file_text(path: Path, pattern: str, timeout: float = DEADLINE) -> re.Match:
    """Wait until ``pattern`` appears in the file at ``path``; returns the match."""
    regex = re.compile(pattern)

    def found():
        try:
            return regex.search(path.read_text(errors="replace"))
        except FileNotFoundError:
            return None

    return wait_until(found, timeout, f"{pattern!r} in {path}")


def listening_port(output: str) -> int:
    """The port from a ``... starting on PORT`` log line."""
    match = re.search(r"starting on (\d+)", output)
    assert match, f"no 'starting on PORT' line in:\n{output}"
    return int(match.group(1))


def is_gone(pid: int) -> bool:
    """True when ``pid`` has exited (reaping it if it is our child or adoptee; a zombie counts as gone)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    if state not in ("Z", "X"):
        return False
    # It died between the two looks: reap it now if it is ours, or it stays a zombie (its PID
    # still answers kill(pid, 0)) for the rest of the session.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


def children(parent: Optional[int] = None, zombies: bool = False) -> set:
    """Live processes whose parent is ``parent`` (default: this process; daemons too: the test session
    and the benchmark suite are child subreapers, so detached daemons are adopted); with ``zombies``,
    exited ones not yet reaped as well."""
    me = os.getpid() if parent is None else parent
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and (zombies or fields[0] not in ("Z", "X")):
            found.add(int(entry))
    return found


def wait_gone(pid: int, timeout: float = DEADLINE) -> None:
    """Wait until ``pid`` has exited."""
    wait_until(lambda: is_gone(pid), timeout, f"PID {pid} to exit")


def wait_status(pid: int, timeout: float = DEADLINE) -> int:
    """Wait for our child or adoptee ``pid`` to exit and reap it; returns its exit status (-N: signal N)."""
    def reaped():
        done, status = os.waitpid(pid, os.WNOHANG)
        return (os.waitstatus_to_exitcode(status),) if done == pid else None

    return wait_until(reaped, timeout, f"PID {pid} to exit")[0]


def wait_exit(proc: subprocess.Popen, timeout: float = DEADLINE) -> int:
    """Wait for a Popen to exit; returns its status."""
    return proc.wait(timeout=timeout)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """At a test's end: kill ``proc`` if it still runs, and reap it (a test leaves no process behind)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout)


def kill_hard(pid: int) -> None:
    """SIGKILL ``pid`` if it still runs, and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        wait_gone(pid, 5)
    except AssertionError:
        pass


def read_pid(path: Path) -> Optional[int]:
    """The PID in a pidfile, or None."""
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def connect(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A connected TCP socket with a timeout."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def recv_until(sock: socket.socket, terminator: bytes = b"\n", limit: int = 1 << 20) -> bytes:
    """Read from ``sock`` until ``terminator`` is seen or the peer closes."""
    data = b""
    while terminator not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# -- running without root's file-access capabilities ------------------------------------------------

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_NET_BIND_SERVICE = 1, 2, 10


def drop_capabilities(*caps: int) -> Callable[[], None]:
    """A preexec_fn that removes ``caps`` from the child's bounding set, so even root lacks them after exec."""
    def drop() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in caps:
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop


def python_without_file_capabilities(code: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    """Run ``python -c code`` as this user but, when root, without the capabilities that bypass
    file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): an unreadable file is then unreadable
    to root too, so tests of "not readable" errors run in CI (as root) as well."""
    preexec = drop_capabilities(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) if os.geteuid() == 0 else None
    return subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=preexec)
