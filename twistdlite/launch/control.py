"""``twistdlite stop`` and ``twistdlite status``: act on a daemon through its pidfile.

Both find the pidfile through the options that started the daemon
(``--pidfile``, ``-d/--rundir``, ``--chroot``, given before the subcommand) and
judge liveness by the pidfile's lock, never by the PID alone (see
:mod:`twistdlite.launch.pidfile`).

``status`` follows the LSB convention: 0 running, 1 dead but the pidfile
remains, 3 not running, 4 unknown (the pidfile cannot be read).
``stop`` sends SIGTERM and waits until the process is gone (a zombie counts as
gone): 0 stopped, 1 still running after ``--timeout`` or nothing to stop (0
with ``--missing-ok``).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional

import click

from twistdlite.launch import durations
from twistdlite.launch.errors import LaunchError, UsageError
from twistdlite.launch.options import Options
from twistdlite.launch.pidfile import PidStatus, probe, process_gone

#: LSB exit statuses for ``status``.
RUNNING, DEAD_WITH_PIDFILE, NOT_RUNNING, UNKNOWN = 0, 1, 3, 4


class NotRunning(LaunchError):
    """``stop`` found nothing to stop."""


class StatusUnknown(LaunchError):
    """``status`` could not read the pidfile (LSB status 4)."""

    exit_code = UNKNOWN


def pidfile_path(options: Options) -> str:
    """Where the run these options describe keeps its pidfile, as seen from here."""
    if not options.pidfile:
        raise UsageError("no pidfile to look at: --pidfile is empty")
    path = os.path.join(options.rundir or ".", options.pidfile)
    if options.chroot:
        # The run chroots, then changes to the run directory inside the new root.
        inside = os.path.normpath(os.path.join("/", path))
        path = os.path.join(options.chroot, inside.lstrip("/"))
    return path


def _options(ctx: click.Context) -> Options:
    options = ctx.find_root().obj
    if not isinstance(options, Options):  # pragma: no cover - the group always sets it
        raise UsageError("stop/status must be run as subcommands of twistdlite")
    return options


def _probe(path: str, unknown: type = LaunchError) -> PidStatus:
    try:
        return probe(path)
    except LaunchError as exc:
        raise unknown(exc.message) from None


@click.command(help="Say whether the daemon runs, and its PID (and its workers' with --workers). Exit status: 0 running, "
                    "1 dead but the pidfile remains, 3 not running, 4 unknown.")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Print whether the daemon runs and exit with the LSB status code."""
    path = pidfile_path(_options(ctx))
    shown = os.path.abspath(path)
    found = _probe(path, StatusUnknown)
    if found.running:
        pid = f"PID {found.pid}" if found.pid else "PID not written yet (starting)"
        click.echo(f"twistdlite is running, {pid} (pidfile {shown})")
        _show_workers(path, found.pid)
        ctx.exit(RUNNING)
    if found.exists and found.pid is not None:
        click.echo(f"twistdlite is not running, but its pidfile {shown} remains (it names PID {found.pid})")
        ctx.exit(DEAD_WITH_PIDFILE)
    click.echo(f"twistdlite is not running (no live pidfile at {shown})")
    ctx.exit(NOT_RUNNING)


def _show_workers(path: str, pid: Optional[int]) -> None:
    """With --workers: one line per worker (PID, age, restarts), from the status file beside the pidfile."""
    from twistdlite.launch.workers import read_status, status_path

    state = read_status(status_path(path))
    if not state or state.get("supervisor") != pid:
        return
    workers = state.get("workers") or []
    click.echo(f"{len(workers)} workers (wanted {state.get('wanted')}, generation {state.get('generation')}):")
    now = time.time()
    for worker in workers:
        age = max(0.0, now - float(worker.get("started", now)))
        restarts = int(worker.get("restarts", 0))
        click.echo(f"  worker {worker.get('number')}: PID {worker.get('pid')}, up {_age(age)}, "
                   f"{restarts} restart{'s' if restarts != 1 else ''}, {worker.get('state')}"
                   f"{'' if worker.get('generation') == state.get('generation') else ', previous generation'}")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@click.command(help="Stop the daemon: send SIGTERM and wait until it has exited.")
@click.option("--timeout", type=float, default=30.0, show_default=True, callback=durations.option,
              metavar="SECONDS", help=f"How long to wait for the daemon to exit ({durations.HELP}).")
@click.option("--missing-ok", is_flag=True, help="Exit 0 when nothing is running.")
@click.pass_context
def stop(ctx: click.Context, timeout: float, missing_ok: bool) -> None:
    """Send SIGTERM to the daemon and wait until it is gone."""
    path = pidfile_path(_options(ctx))
    shown = os.path.abspath(path)
    found = _probe(path)
    if not found.running:
        if found.exists and found.pid is not None:
            why = f"not running (stale pidfile {shown} names PID {found.pid}, which holds no lock)"
        else:
            why = f"not running (no live pidfile at {shown})"
        if missing_ok:
            click.echo(f"twistdlite is {why}")
            ctx.exit(0)
        raise NotRunning(why)
    pid = found.pid or _wait_for_pid(path)
    if pid is None:
        raise LaunchError(f"the pidfile {shown} is locked but names no PID; is the daemon still starting?")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise LaunchError(f"PID {pid} (from {shown}) does not exist, yet the pidfile is locked") from None
    except PermissionError:
        raise LaunchError(f"cannot signal PID {pid} (from {shown}): permission denied") from None
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not process_gone(pid):
        if time.monotonic() >= deadline:
            raise LaunchError(f"PID {pid} is still running {timeout:g} s after SIGTERM (pidfile {shown})")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    click.echo(f"twistdlite stopped (PID {pid})")


def _wait_for_pid(path: str, timeout: float = 1.0) -> Optional[int]:
    """The PID of a daemon that holds the lock but has not written its PID yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe(path)
        if not found.running or found.pid is not None:
            return found.pid
        time.sleep(0.02)
    return None
