"""Start-up to ready, idle memory, daemon start and stop: twistdlite vs the bare asyncio script vs twistd.

* **Start-up to ready**: from spawning the process to the first echo round trip
  on a fresh TCP connection (the port is chosen beforehand and polled every
  millisecond), for ``twistdlite -noy examples/echo.tac`` on asyncio and uvloop,
  the hand-written asyncio script, and ``twistd -noy`` on the equivalent ``.tac``.
* **Idle memory**: the RSS of each of those servers right after its first echo.
* **Daemon start**: wall time of ``twistdlite -y examples/echo.tac`` until the
  command returns, vs ``twistd -y`` (and, for both, until the daemon echoes).
* **Stop**: from SIGTERM to the daemon's exit with its pidfile gone.

Subjects take turns within each round, so drift on a shared machine hits all alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from harness import (EXAMPLES, BenchError, Context, Table, adopt, bench_env, free_port, is_gone, log_line,
                     rss_kib, runs_for, terminate, twistdlite_cmd, wait_serving, wait_until)
from servers import TAC_DIR, echo_servers, running


def run(ctx: Context) -> list[Table]:
    """All four measurements as tables."""
    return [*startup_and_memory(ctx), *daemon_start_and_stop(ctx)]


def startup_and_memory(ctx: Context) -> list[Table]:
    """Start-up to ready (ms) and idle RSS (MiB) of each echo server, in the foreground."""
    specs = echo_servers("raw", ctx.twistd)
    runs = runs_for(7, ctx.scale)
    startup = {spec.key: [] for spec in specs}
    memory = {spec.key: [] for spec in specs}
    for round_no in range(runs + 1):  # round 0 warms the caches (.pyc files, page cache) and is not counted
        for spec in specs:
            if spec.missing:
                continue
            with running(spec, ctx.scratch(f"startup-{spec.key}")) as server:
                if round_no:
                    startup[spec.key].append(server.startup)
                    memory[spec.key].append(rss_kib(server.pid))
        if round_no:
            log_line(f"start-up round {round_no}/{runs} done")

    up = Table("startup", "1. Start-up to ready", "ms",
               "From spawning the process to the first echo round trip on a new TCP connection to it "
               "(`twistdlite -noy examples/echo.tac`; the bare script is `benchmarks/bare_echo.py`; "
               "twistd runs `benchmarks/tac/twisted_echo.tac`). Lower is better.",
               reference="bare-asyncio", scale=1000.0)
    mem = Table("memory", "4. Idle memory (RSS)", "MiB",
                "Resident set size of the same echo servers right after their first echo. Lower is better.",
                reference="bare-asyncio", scale=1 / 1024, digits=1)
    for spec in specs:
        up.add(spec.key, spec.label, startup[spec.key], spec.missing)
        mem.add(spec.key, spec.label, memory[spec.key], spec.missing)
    for loop in ("asyncio", "uvloop"):
        up.target(f"startup.{loop}.vs-bare", f"twistdlite-{loop}", "<=", 1.3, f"bare-{loop}")
        up.target(f"startup.{loop}.vs-twistd", f"twistdlite-{loop}", "<=", 0.4, "twistd")
        mem.target(f"memory.{loop}.vs-bare", f"twistdlite-{loop}", "<=", 1.2, f"bare-{loop}")
        mem.target(f"memory.{loop}.vs-twistd", f"twistdlite-{loop}", "<=", 0.7, "twistd")
    return [up, mem]


def daemon_start_and_stop(ctx: Context) -> list[Table]:
    """Daemon start (ms until the command returns, and until it echoes) and stop (ms), twistdlite vs twistd."""
    subjects = [("twistdlite", "twistdlite -y", [*twistdlite_cmd(), "-y", str(EXAMPLES / "echo.tac")], "")]
    subjects.append(("twistd", "twistd -y",
                     [ctx.twistd, "-y", str(TAC_DIR / "twisted_echo.tac")] if ctx.twistd else [],
                     "" if ctx.twistd else "not installed"))
    runs = runs_for(5, ctx.scale)
    returned = {key: [] for key, *_ in subjects}
    serving = {key: [] for key, *_ in subjects}
    stopped = {key: [] for key, *_ in subjects}
    for round_no in range(runs + 1):
        for key, label, cmd, missing in subjects:
            if missing:
                continue
            ret, srv, stop = one_daemon(cmd, ctx.scratch(f"daemon-{key}"), label)
            if round_no:
                returned[key].append(ret)
                serving[key].append(srv)
                stopped[key].append(stop)
        if round_no:
            log_line(f"daemon round {round_no}/{runs} done")

    start = Table("daemon", "2. Daemon start", "ms",
                  "Wall time of `twistdlite -y examples/echo.tac` until the launching command returns "
                  "(twistdlite returns once every service has started), vs `twistd -y` on the equivalent "
                  "`.tac`; the *serving* rows run until the daemon first echoes. Lower is better.",
                  reference="twistd", scale=1000.0)
    stop = Table("stop", "3. Stop", "ms",
                 "From SIGTERM to the daemon's exit with its pidfile gone (both save `echo-shutdown.tap`, "
                 "their default). Lower is better.", reference="twistd", scale=1000.0)
    for key, label, _, missing in subjects:
        start.add(key, f"{label} (command returns)", returned[key], missing)
    for key, label, _, missing in subjects:
        start.add(f"{key}-serving", f"{label} (serving)", serving[key], missing)
        stop.add(key, label, stopped[key], missing)
    start.target("daemon.vs-twistd", "twistdlite", "<=", 0.5, "twistd")
    return [start, stop]


def one_daemon(cmd: list, workdir, label: str) -> tuple[float, float, float]:
    """Start a daemon in ``workdir``, wait for it to echo, stop it; (returned, serving, stopped) seconds."""
    port = free_port()
    env = bench_env(ECHO_PORT=str(port))
    pidfile = workdir / "twistd.pid"
    began = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{label} did not return within 60 s") from None
    finally:
        returned = time.monotonic() - began
        pid = _read_pid(pidfile)
        if pid is not None:
            adopt(pid, f"{label} daemon")
    if done.returncode != 0:
        if pid is not None:
            terminate(pid)
        raise BenchError(f"{label} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    try:
        serving = wait_serving(port, timeout=30) - began
        pid = pid or wait_until(lambda: _read_pid(pidfile), 10, f"{pidfile}")
        adopt(pid, f"{label} daemon")
        signalled = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: is_gone(pid) and not pidfile.exists(), 30, f"{label} to stop")
        stopped = time.monotonic() - signalled
    finally:
        if pid is not None:
            terminate(pid, timeout=5)
    return returned, serving, stopped


def _read_pid(path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
