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
import time

from harness import (EXAMPLES, BenchError, Context, Table, adopt, bench_env, echo_once, free_port, is_gone,
                     log_line, read_pid, rss_kib, runs_for, spawn, terminate, twistdlite_cmd, wait_until)
from bench_import import module_times
from servers import TAC_DIR, echo_servers, running


def run(ctx: Context) -> list[Table]:
    """All four measurements as tables."""
    return [*startup_and_memory(ctx), *daemon_start_and_stop(ctx)]


def startup_and_memory(ctx: Context) -> list[Table]:
    """Start-up to ready (ms) and idle RSS (MiB) of each echo server, in the foreground."""
    specs = echo_servers("raw", ctx.twistd, with_click=True)
    runs = runs_for(11, ctx.scale)
    startup = {spec.key: [] for spec in specs}
    memory = {spec.key: [] for spec in specs}
    for round_no in range(runs + 1):  # round 0 warms the caches (.pyc files, page cache) and is not counted
        ctx.settle()
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
               "(`twistdlite -noy examples/echo.tac`; the bare script is `benchmarks/bare_echo.py`, the "
               "*+ import click* rows the same script importing click first, the fixed cost of any launcher "
               "with a command line, which twistdlite requires; twistd runs `benchmarks/tac/twisted_echo.tac`). "
               "Lower is better.",
               reference="bare-click-asyncio", scale=1000.0)
    mem = Table("memory", "4. Idle memory (RSS)", "MiB",
                "Resident set size of the same echo servers right after their first echo. Lower is better.",
                reference="bare-asyncio", scale=1 / 1024, digits=1)
    for spec in specs:
        up.add(spec.key, spec.label, startup[spec.key], spec.missing)
        mem.add(spec.key, spec.label, memory[spec.key], spec.missing)
    up.notes.append(extra_imports(ctx, specs))
    for loop in ("asyncio", "uvloop"):
        up.target(f"startup.{loop}.vs-bare-click", f"twistdlite-{loop}", "<=", 1.1, f"bare-click-{loop}")
        up.target(f"startup.{loop}.vs-twistd", f"twistdlite-{loop}", "<=", 0.4, "twistd")
        mem.target(f"memory.{loop}.vs-bare", f"twistdlite-{loop}", "<=", 1.2, f"bare-{loop}")
        mem.target(f"memory.{loop}.vs-twistd", f"twistdlite-{loop}", "<=", 0.7, "twistd")
    return [up, mem]


def extra_imports(ctx: Context, specs: list) -> str:
    """What ``twistdlite -noy`` imports that the bare script does not, by ``-X importtime`` (a Markdown note)."""
    times = {}
    for spec in specs:
        if spec.key in ("twistdlite-asyncio", "bare-click-asyncio") and not spec.missing:
            workdir = ctx.scratch(f"importtime-{spec.key}")
            with running(spec, workdir, PYTHONPROFILEIMPORTTIME="1"):
                pass
            times[spec.key] = module_times((workdir / "server.log").read_text(errors="replace"))
    if len(times) < 2:
        return ""
    ours, floor = times["twistdlite-asyncio"], times["bare-click-asyncio"]
    extra = {name: us for name, us in ours.items() if name not in floor}
    groups: dict = {}
    for name, us in extra.items():
        group = name if name.startswith("twistdlite") else name.split(".")[0]
        groups[group] = groups.get(group, 0) + us
    top = sorted(groups.items(), key=lambda item: -item[1])[:15]
    rows = "\n".join(f"| {name} | {us / 1000:.1f} |" for name, us in top)
    return (f"Where the difference comes from (`-X importtime`, one run each; the instrumented times run "
            f"high but in proportion): `twistdlite -noy examples/echo.tac` imports {len(extra)} modules the bare "
            f"script importing click does not, {sum(extra.values()) / 1000:.1f} ms of import time in all "
            f"(that script's imports: {sum(floor.values()) / 1000:.1f} ms). The largest, with each "
            f"twistdlite module on its own and other packages summed:\n\n| module or package | ms |\n|---|---:|\n"
            + rows)


def daemon_start_and_stop(ctx: Context) -> list[Table]:
    """Daemon start (ms until the command returns, and until it echoes) and stop (ms), twistdlite vs twistd."""
    # -o on both: twistd -y saves no shutdown .tap of a .tac, so without it the stops would not do the same
    # work. twistdlite's default (saving echo-shutdown.tap) is measured as well, for the record.
    subjects = [("twistdlite", "twistdlite -oy", [*twistdlite_cmd(), "-oy", str(EXAMPLES / "echo.tac")], ""),
                ("twistd", "twistd -oy", [ctx.twistd, "-oy", str(TAC_DIR / "twisted_echo.tac")] if ctx.twistd else [],
                 "" if ctx.twistd else "not installed"),
                ("twistdlite-save", "twistdlite -y (saves echo-shutdown.tap)",
                 [*twistdlite_cmd(), "-y", str(EXAMPLES / "echo.tac")], "")]
    runs = runs_for(11, ctx.scale)
    returned = {key: [] for key, *_ in subjects}
    serving = {key: [] for key, *_ in subjects}
    stopped = {key: [] for key, *_ in subjects}
    for round_no in range(runs + 1):
        ctx.settle()
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
                  "Wall time of `twistdlite -oy examples/echo.tac` until the launching command returns "
                  "(twistdlite returns once every service has started), vs `twistd -oy` on the equivalent "
                  "`.tac`; the *serving* rows run until the daemon first echoes (polled while the command "
                  "runs, so it can come first). Lower is better.",
                  reference="twistd", scale=1000.0)
    stop = Table("stop", "3. Stop", "ms",
                 "From SIGTERM to the daemon's exit with its pidfile gone (polled every 0.2 ms). The compared "
                 "rows run with `-o`: "
                 "twistd -y saves no shutdown `.tap` for a `.tac` (observed with Twisted 26.10), so `-o` makes "
                 "both do the same work; the last row is twistdlite's default, which saves `echo-shutdown.tap` "
                 "(pickle, digest, fsync, rename). Lower is better.",
                 reference="twistd", scale=1000.0)
    for key, label, _, missing in subjects:
        start.add(key, f"{label} (command returns)", returned[key], missing)
    for key, label, _, missing in subjects:
        start.add(f"{key}-serving", f"{label} (serving)", serving[key], missing)
        stop.add(key, label, stopped[key], missing)
    start.target("daemon.vs-twistd", "twistdlite", "<=", 0.5, "twistd")
    stop.target("stop.vs-twistd", "twistdlite", "<=", 1.0, "twistd")
    return [start, stop]


def one_daemon(cmd: list, workdir, label: str) -> tuple[float, float, float]:
    """Start a daemon in ``workdir``, stop it; (returned, serving, stopped) in seconds.

    While the launching command runs, the port is polled too, so *serving* can come before
    *returned* (a launcher that lingers after its daemon is ready shows up as the difference).
    """
    port = free_port()
    env = bench_env(ECHO_PORT=str(port))
    pidfile = workdir / "twistd.pid"
    began = time.monotonic()
    launcher = spawn(cmd, cwd=workdir, log=workdir / "launcher.log", env=env)
    returned = serving = None
    pid = None
    try:
        deadline = began + 60
        while returned is None or serving is None:
            if serving is None and echo_once(port, timeout=1.0):
                serving = time.monotonic() - began
            if returned is None and launcher.poll() is not None:
                returned = time.monotonic() - began
                if launcher.returncode != 0:
                    raise BenchError(f"{label} exited {launcher.returncode}: "
                                     f"{(workdir / 'launcher.log').read_text(errors='replace')[-500:]}")
            if pid is None:
                pid = read_pid(pidfile)
                if pid is not None:
                    adopt(pid, f"{label} daemon")
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: not {'returned' if returned is None else 'serving'} within 60 s")
            time.sleep(0.0005)
        pid = pid or wait_until(lambda: read_pid(pidfile), 10, f"{pidfile}")
        adopt(pid, f"{label} daemon")
        signalled = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: is_gone(pid) and not pidfile.exists(), 30, f"{label} to stop", longest=0.0002)
        stopped = time.monotonic() - signalled
    finally:
        terminate(launcher.pid, timeout=5)
        pid = pid or read_pid(pidfile)
        if pid is not None:
            terminate(pid, timeout=5)
    return returned, serving, stopped
