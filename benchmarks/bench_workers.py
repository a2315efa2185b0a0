"""``--workers``: echo throughput and server CPU with 1 and 2 workers, and connections failed during a reload.

* **Scale**: the closed-loop line echo of table 6a (``loadgen.py echo``, 50
  connections) against ``benchmarks/tac/line_echo.tac`` run as one process and
  with ``--workers 2``. Nothing is pinned: on a 2-core machine the two workers
  and the load generator share both cores. The server's CPU is that of the
  whole process tree (supervisor and workers), measured around each load run,
  divided by the lines echoed; each worker's share of it shows the balance the
  kernel's accept gives.
* **Reload under load**: new connections (one line echoed on each, then
  closed) from 32 concurrent clients while the pool is sent ``SIGHUP``; every
  connection refused, reset or left without its echo counts as failed (the
  goal is 0), on the plain line echo and on one that works 1 ms per line
  (busy workers, whose queues fill). The same churn and the same replacement
  of workers is run on a bare asyncio pre-fork pool (``bare_pool.py``)
  sharing one socket, as twistdlite does, and with one ``SO_REUSEPORT`` socket
  per worker: the measurement behind twistdlite's choice of the shared socket.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from harness import (BENCH_DIR, BenchError, Context, Table, bench_env, free_port, log_line, runs_for, scaled,
                     spawn, terminate, wait_serving)
from loadgen import cpu_seconds

TAC = BENCH_DIR / "tac" / "line_echo.tac"
BUSY_TAC = BENCH_DIR / "tac" / "busy_line_echo.tac"
BUSY_MS = 1.0
LOADGEN = BENCH_DIR / "loadgen.py"
BARE_POOL = BENCH_DIR / "bare_pool.py"
CONNECTIONS = 50
LINE_SIZE = 64
CHURN_CLIENTS = 32


def run(ctx: Context) -> list[Table]:
    """The scale tables and the reload table."""
    return [*scale(ctx), reload_under_load(ctx)]


def _command(workers: int, tac: Path = TAC) -> list:
    extra = ["--workers", str(workers)] if workers > 1 else []
    return [sys.executable, "-m", "twistdlite", "-noy", str(tac), "--pidfile", "", *extra]


def _tree(pid: int) -> list:
    """``pid`` and its children."""
    found = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _start(cmd: list, workdir: Path, ready: Optional[str] = None, timeout: float = 30.0) -> tuple:
    """Start a server on a free port; (process, port, log path) once it echoes (and ``ready`` is logged)."""
    port = free_port()
    log = workdir / "server.log"
    proc = spawn(cmd, cwd=workdir, log=log, env=bench_env(ECHO_PORT=str(port)))
    try:
        wait_serving(port, proc, timeout)
        if ready is not None:
            deadline = time.monotonic() + timeout
            while ready not in log.read_text(errors="replace"):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise BenchError(f"{cmd[-1]}: never logged {ready!r}")
                time.sleep(0.01)
    except BaseException:
        terminate(proc.pid)
        raise
    return proc, port, log


def scale(ctx: Context) -> list[Table]:
    """Throughput and CPU per line with 1 and 2 workers."""
    runs = runs_for(5, ctx.scale)
    duration = scaled(1.5, ctx.scale, 0.3)
    subjects = [(1, "one-process", "twistdlite, 1 process (no --workers)"),
                (2, "two-workers", "twistdlite --workers 2")]
    rps = {key: [] for _, key, _ in subjects}
    per_line = {key: [] for _, key, _ in subjects}
    shares: list = []
    for round_no in range(runs):
        ctx.settle()
        for workers, key, _ in subjects:
            workdir = ctx.scratch(f"workers-{key}")
            proc, port, _ = _start(_command(workers), workdir,
                                   ready="All 2 workers are ready" if workers > 1 else None)
            try:
                pids = _tree(proc.pid)
                before = {pid: cpu_seconds(pid) for pid in pids}
                result = _load(port, duration)
                used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
            finally:
                terminate(proc.pid)
            requests = result["requests"]
            rps[key].append(result["rps"])
            per_line[key].append(sum(used.values()) / requests * 1e6 if requests else float("nan"))
            if workers > 1:
                worker_cpu = sorted((used[pid] for pid in pids if pid != proc.pid), reverse=True)
                total = sum(worker_cpu)
                if total > 0:
                    shares.append([cpu / total for cpu in worker_cpu])
        log_line(f"workers scale round {round_no + 1}/{runs} done")
    table = Table("workers", "W1. Echo throughput with workers", "lines/s",
                  f"The closed loop of table 6a ({CONNECTIONS} connections, {LINE_SIZE}-byte lines, "
                  f"{duration:g} s per run) against `benchmarks/tac/line_echo.tac` as one process and with "
                  "`--workers 2`; nothing pinned, so on 2 cores the workers share them with the load "
                  "generator, which alone needs about one. Higher is better.", reference="one-process", digits=0)
    cost = Table("workers-cpu", "W2. Echo with workers: server CPU per line", "µs",
                 "On-CPU time of the whole server (the supervisor and its workers, every thread, from "
                 "schedstat) over each load run above, divided by the lines echoed. Lower is better.",
                 reference="one-process", digits=2)
    for _, key, label in subjects:
        table.add(key, label, rps[key])
        cost.add(key, label, per_line[key])
    table.report_ratio("workers.two-vs-one", "two-workers", "one-process")
    cost.report_ratio("workers-cpu.two-vs-one", "two-workers", "one-process")
    if shares:
        busiest = statistics.median(share[0] for share in shares)
        table.notes.append(f"Balance of the shared socket's accept: the busier worker did a median "
                           f"{busiest:.0%} of the pool's work (50% is an even split), over {len(shares)} runs.")
    return [table, cost]


def _load(port: int, duration: float) -> dict:
    """One closed-loop run of the load generator (its JSON result); the CPU is measured by the caller."""
    import json

    cmd = [sys.executable, str(LOADGEN), "echo", "--port", str(port), "--conns", str(CONNECTIONS),
           "--size", str(LINE_SIZE), "--duration", str(duration), "--warmup", "0"]
    done = subprocess.run(cmd, env=bench_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=duration + 60)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or lines[-1].startswith("ERROR"):
        raise BenchError(f"the load generator failed ({done.returncode}): {done.stdout[-300:]}{done.stderr[-300:]}")
    return json.loads(lines[-1])


async def _churn(port: int, duration: float, hup_at: float, target: int) -> dict:
    """New connections from CHURN_CLIENTS clients for ``duration`` s, SIGHUP to ``target`` at ``hup_at`` s."""
    counts = {"ok": 0, "failed": 0, "errors": {}}
    loop = asyncio.get_running_loop()
    end = loop.time() + duration

    async def client() -> None:
        while loop.time() < end:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
                writer.write(b"ping\r\n")
                line = await asyncio.wait_for(reader.readline(), 5)
                writer.close()
                if line != b"ping\r\n":
                    raise ConnectionError("no echo")
                counts["ok"] += 1
            except (OSError, asyncio.TimeoutError) as exc:
                counts["failed"] += 1
                name = type(exc).__name__
                counts["errors"][name] = counts["errors"].get(name, 0) + 1

    loop.call_later(hup_at, os.kill, target, signal.SIGHUP)
    await asyncio.gather(*(client() for _ in range(CHURN_CLIENTS)))
    return counts


def _wait_for(path: Path, pattern: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, path.read_text(errors="replace")):
            return True
        time.sleep(0.02)
    return False


def reload_under_load(ctx: Context) -> Table:
    """Failed connections while the pool reloads: twistdlite, and bare pools on a shared or SO_REUSEPORT socket."""
    runs = runs_for(3, ctx.scale)
    duration = scaled(2.5, ctx.scale, 1.0)
    pool = [r"Worker \d \(PID \d+\) stopped\.[\s\S]*Worker \d \(PID \d+\) stopped\.", "All 2 workers are ready"]
    bare = [sys.executable, str(BARE_POOL)]
    subjects = [
        ("twistdlite", "twistdlite --workers 2 (line echo)", _command(2), pool, {}),
        ("twistdlite-busy", f"twistdlite --workers 2 (line echo, {BUSY_MS:g} ms per line)",
         _command(2, BUSY_TAC), pool, {"ECHO_BUSY_MS": str(BUSY_MS)}),
        ("bare-shared-busy", f"bare pre-fork pool, one shared socket ({BUSY_MS:g} ms per line)",
         [*bare, "--mode", "shared", "--busy-ms", str(BUSY_MS)], ["reloaded", "ready"], {}),
        ("bare-reuseport-busy", f"bare pre-fork pool, an SO_REUSEPORT socket per worker ({BUSY_MS:g} ms per line)",
         [*bare, "--mode", "reuseport", "--busy-ms", str(BUSY_MS)], ["reloaded", "ready"], {}),
    ]
    totals = {key: [0, 0] for key, *_ in subjects}
    for _ in range(runs):
        ctx.settle()
        for key, label, cmd, (reloaded, ready), env in subjects:
            workdir = ctx.scratch(f"reload-{key}")
            port = free_port()
            log = workdir / "server.log"
            full = cmd if key.startswith("twistdlite") else [*cmd, "--port", str(port)]
            proc = spawn(full, cwd=workdir, log=log, env=bench_env(ECHO_PORT=str(port), **env))
            try:
                if not _wait_for(log, re.escape(ready), 30):
                    raise BenchError(f"{label}: not ready")
                wait_serving(port, proc, 30)
                counts = asyncio.run(_churn(port, duration, duration / 3, proc.pid))
                if not _wait_for(log, reloaded, 30):
                    raise BenchError(f"{label}: the reload did not finish")
            finally:
                terminate(proc.pid)
            totals[key][0] += counts["ok"] + counts["failed"]
            totals[key][1] += counts["failed"]
            if counts["errors"]:
                log_line(f"{label}: {counts['errors']}")
    rows = [[label, str(runs), f"{totals[key][0]:,}", str(totals[key][1])] for key, label, *_ in subjects]
    table = Table("workers-reload", "W3. Connections failed during a reload under load", "",
                  f"{CHURN_CLIENTS} clients open new connections for {duration:g} s each run (each echoes one "
                  f"line, then closes); a third of the way in the pool is told to reload (SIGHUP: new workers, "
                  f"then each old one stops accepting, finishes its connections and exits). A connection refused, "
                  f"reset or closed without its echo is failed. {runs} reloads per subject; the bare pools "
                  f"(`benchmarks/bare_pool.py`) replace their workers the same way.",
                  grid=(["subject", "reloads", "connections", "failed"], rows))
    failed = totals["twistdlite"][1] + totals["twistdlite-busy"][1]
    attempted = totals["twistdlite"][0] + totals["twistdlite-busy"][0]
    table.require("workers-reload.zero-failed", "no connection fails during a twistdlite reload under load",
                  failed == 0, f"{failed} of {attempted} failed")
    table.notes.append("Why twistdlite's workers share one socket: a connection queued on it is accepted by "
                       "whichever worker still listens, so a retiring worker loses nothing; with one "
                       "SO_REUSEPORT socket per worker, the connections queued on a retiring worker's socket are "
                       "reset when it closes (Linux migrates them only with net.ipv4.tcp_migrate_req=1). Busy "
                       "workers let those queues fill, which is when the difference shows.")
    return table


def main(argv=None) -> int:
    """Run this benchmark alone: ``python benchmarks/bench_workers.py [--scale S]``."""
    import argparse
    import tempfile

    from harness import become_subreaper, cleanup

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    become_subreaper()
    ctx = Context(args.scale, Path(tempfile.mkdtemp(prefix="twistdlite-bench-workers-")), None)
    try:
        for table in run(ctx):
            table.evaluate()
            print(table.markdown() if hasattr(table, "markdown") else table)
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
