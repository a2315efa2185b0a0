"""Helpers for the daemon-mode tests (tests/test_daemon_*.py, test_control*.py, test_privileges*.py).

* :func:`launch` runs ``twistdlite ARGS`` with the daemon test application
  (tests/tacs/daemon_app.tac), optionally with another interpreter and as
  another user; :class:`Daemon` finds, waits for and cleans up what it started.
* :func:`unprivileged_python` finds an interpreter the ``nobody`` user can run
  with click, python-daemon, lockfile and this checkout importable: the test
  interpreter itself when nobody can use it, else Debian's /usr/bin/python3
  with copies of those three pure-Python packages (no network needed).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pytest

from support import DEADLINE, ROOT, children, is_gone, kill_hard, read_pid, wait_gone, wait_until

TACS = ROOT / "tests" / "tacs"
APP = TACS / "daemon_app.tac"
NOBODY = "nobody"
IS_ROOT = os.geteuid() == 0


#: Live processes whose parent is this test process (daemons are adopted: we are a subreaper).
adopted = children


def proc_status(pid: int) -> dict:
    """The fields of /proc/PID/status."""
    result = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            result[key] = value.strip()
    return result


def open_fds(pid: int) -> dict:
    """``{fd: target}`` for the open descriptors of ``pid``."""
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return found


def launch_env(python: Optional[str] = None, **extra: str) -> dict:
    """The environment of a launched twistdlite: this checkout first on the path, unbuffered."""
    env = dict(os.environ)
    paths = [str(ROOT)]
    if python in _SITES:
        paths.append(str(_SITES[python]))
    paths.append(env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DAEMON_SERVICES", None)
    env.update(extra)
    return env


def _user_kwargs(user: Optional[str]) -> dict:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def launch(args: Iterable[str], cwd: Path, services: str = "record:a,listener:0", *,
           python: Optional[str] = None, user: Optional[str] = None, tac: bool = True,
           timeout: float = DEADLINE, **env: str) -> subprocess.CompletedProcess:
    """Run ``twistdlite [-y daemon_app.tac] ARGS`` to completion (with a deadline)."""
    argv = [python or sys.executable, "-m", "twistdlite", *(["-y", str(APP)] if tac else []), *args]
    return subprocess.run(argv, cwd=cwd, env=launch_env(python, DAEMON_SERVICES=services, **env),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          **_user_kwargs(user))


def popen(args: Iterable[str], cwd: Path, services: str = "record:a,listener:0", *,
          python: Optional[str] = None, user: Optional[str] = None, tac: bool = True,
          stdout=subprocess.PIPE, **env: str) -> subprocess.Popen:
    """Start ``twistdlite [-y daemon_app.tac] ARGS`` in the background (stderr merged into stdout)."""
    argv = [python or sys.executable, "-m", "twistdlite", *(["-y", str(APP)] if tac else []), *args]
    return subprocess.Popen(argv, cwd=cwd, env=launch_env(python, DAEMON_SERVICES=services, **env),
                            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            **_user_kwargs(user))


class Daemons:
    """Tracks the daemons a test starts; :meth:`cleanup` kills whatever still runs."""

    def __init__(self) -> None:
        self.known: set = set()

    def track(self, pid: Optional[int]) -> Optional[int]:
        """Remember ``pid`` for clean-up; returns it."""
        if pid:
            self.known.add(pid)
        return pid

    def from_pidfile(self, path: Path) -> int:
        """The PID in ``path`` (waiting for it to be written), tracked."""
        pid = wait_until(lambda: read_pid(path), what=f"a PID in {path}")
        return self.track(pid)

    def stop(self, pid: int, signum: int = signal.SIGTERM, timeout: float = DEADLINE) -> None:
        """Signal ``pid`` and wait until it has exited (reaping it)."""
        os.kill(pid, signum)
        wait_gone(pid, timeout)

    def cleanup(self) -> None:
        """SIGKILL and reap every tracked or adopted process still alive."""
        for pid in self.known | adopted():
            kill_hard(pid)


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    """A test's daemons, killed at its end whatever happened (import it into a test module to use it)."""
    tracked = Daemons()
    try:
        yield tracked
    finally:
        tracked.cleanup()


def wait_no_daemon(timeout: float = DEADLINE) -> None:
    """Wait until no adopted process is left (a failed daemon has exited and been reaped)."""
    def none_left():
        for pid in adopted():
            is_gone(pid)  # reaps it if it has exited
        return not adopted()

    wait_until(none_left, timeout, "every adopted daemon to exit")


# -- an interpreter the nobody user can run ----------------------------------------------

#: Interpreter -> the directory of packages copied for it (added to PYTHONPATH).
_SITES: dict = {}


def _as_user_ok(python: str, user: str, env: dict) -> tuple[bool, str]:
    probe = "import click, daemon, lockfile, twistdlite.launch.cli, twistdlite.launch.runner; print('ok')"
    try:
        done = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True, timeout=60,
                              cwd="/", **_user_kwargs(user))
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    return done.stdout.strip() == "ok", (done.stderr.strip().splitlines() or [""])[-1]


@functools.lru_cache(maxsize=None)
def unprivileged_python() -> tuple[Optional[str], str]:
    """``(interpreter, "")`` that nobody can run with everything importable, or ``(None, why not)``."""
    try:
        pwd.getpwnam(NOBODY)
    except KeyError:
        return None, "there is no 'nobody' user"
    if not IS_ROOT:
        return None, "only root can run a process as nobody"
    ok, why = _as_user_ok(sys.executable, NOBODY, launch_env())
    if ok:
        return sys.executable, ""
    system = "/usr/bin/python3"
    if not os.access(system, os.X_OK):
        return None, f"{sys.executable} is unusable by nobody ({why}) and {system} is missing"
    site = Path(tempfile.mkdtemp(prefix="twistdlite-nobody-site-"))
    atexit.register(shutil.rmtree, site, True)
    os.chmod(site, 0o755)
    for name in ("click", "daemon", "lockfile"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return None, f"cannot find the package {name} to copy"
        shutil.copytree(list(spec.submodule_search_locations)[0], site / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in site.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    _SITES[system] = site
    ok, why2 = _as_user_ok(system, NOBODY, launch_env(system))
    if ok:
        return system, ""
    return None, (f"no interpreter nobody can run: {sys.executable} ({why}); {system} with copied "
                  f"packages ({why2}); is the checkout {ROOT} readable by everyone?")


def nobody_dir(prefix: str = "twistdlite-nobody-") -> Path:
    """A fresh directory under /tmp that nobody owns (remove it with shutil.rmtree)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    entry = pwd.getpwnam(NOBODY)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o755)
    return path


def public_dir(prefix: str = "twistdlite-root-") -> Path:
    """A fresh root-owned directory under /tmp that everyone may read but only root may change."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path
