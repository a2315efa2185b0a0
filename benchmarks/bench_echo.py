"""Echo throughput (closed loop, LineReceiver echo) and memory with many idle connections.

* **Throughput**: 50 concurrent connections from a separate load-generator
  process (``loadgen.py echo``), each sending a 64-byte line and waiting for its
  echo before sending the next, for a fixed time. Servers: twistdlite running
  ``benchmarks/tac/line_echo.tac`` (a LineReceiver that sends each line back) on
  asyncio and uvloop, the hand-written asyncio server (``bare_echo.py --mode
  line``) on both loops, and twistd on ``tac/twisted_line_echo.tac``. With two
  or more CPUs the server is pinned to one and the load generator to another.
  Servers take turns within each round.
* **Idle connections**: 10,000 connections (each checked with one echo, then
  left idle) opened in two halves; the server's RSS before, at half and at
  full gives the memory per connection of each half (flat = the halves agree).
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from typing import Optional

from harness import (BENCH_DIR, BenchError, Context, Table, bench_env, log_line, nofile_limits, rss_kib,
                     runs_for, scaled, spawn, terminate)
from servers import echo_servers, running, two_cpus

LOADGEN = BENCH_DIR / "loadgen.py"
CONNECTIONS = 50
LINE_SIZE = 64
IDLE_CONNECTIONS = 10_000
SATURATED = 0.9  # a closed-loop run where neither side reaches this share of a core was disturbed
FLAT_SLACK_KIB = 0.5  # RSS moves in pages and allocator arenas: small counts need some slack
IDLE_RUNS = 2


def run(ctx: Context) -> list[Table]:
    """Both measurements as tables."""
    return [*throughput(ctx), *idle(ctx)]


def throughput(ctx: Context) -> list[Table]:
    """Requests per second of each server under the closed-loop load."""
    specs = echo_servers("line", ctx.twistd)
    runs = runs_for(7, ctx.scale)
    duration = scaled(1.5, ctx.scale, 0.3)
    warmup = scaled(0.3, ctx.scale, 0.1)
    first = 0 if runs == 1 else -1  # round -1 warms every server and the machine up and is not counted
    server_cpu, client_cpu = two_cpus()
    results = {spec.key: [] for spec in specs}
    usage = {spec.key: [] for spec in specs}
    per_request = {spec.key: [] for spec in specs}
    retries, budget = 0, max(2, runs * len(specs) // 2)
    for round_no in range(first, runs):
        ctx.settle()
        for spec in specs:
            if spec.missing:
                continue
            with running(spec, ctx.scratch(f"echo-{spec.key}"), cpu=server_cpu) as server:
                while True:
                    result = load(server.port, duration, warmup, client_cpu, server.pid)
                    if round_no < 0 or saturated(result) or retries >= budget:
                        break
                    retries += 1  # neither side was busy: the machine took the CPU away; measure again
            if round_no < 0:
                continue
            results[spec.key].append(result["rps"])
            usage[spec.key].append((result["server_cpu"], result["client_cpu"]))
            per_request[spec.key].append(result["server_us_per_request"])
        log_line(f"echo throughput round {round_no + 1}/{runs} done" if round_no >= 0 else "echo warm-up round done")

    table = Table("echo", "6a. Echo throughput", "lines/s",
                  f"Closed loop: {CONNECTIONS} connections, each sending a {LINE_SIZE}-byte line (CRLF included) "
                  f"and waiting for its echo before the next; {duration:g} s measured after {warmup:g} s of "
                  f"warm-up per run, after one uncounted warm-up round; the load generator is a separate "
                  f"process (`benchmarks/loadgen.py`, on uvloop when installed)"
                  + (f"; server pinned to CPU {server_cpu}, load generator to CPU {client_cpu}"
                     if server_cpu is not None else "; not pinned (fewer than 2 CPUs)")
                  + ". One request is one line. On 2 cores the load generator (one core) caps the rate: "
                  "see the CPU shares below and, for what the server itself costs, table 6b. Higher is better.",
                  reference="twistd", digits=0)
    for spec in specs:
        table.add(spec.key, spec.label, results[spec.key], spec.missing)
    shares = [f"{spec.label} {statistics.median(s for s, _ in usage[spec.key]):.0%} / "
              f"{statistics.median(c for _, c in usage[spec.key]):.0%}" for spec in specs if usage[spec.key]]
    table.notes.append("CPU busy during the measured window, server / load generator (medians; 100% = one "
                       "core): " + "; ".join(shares) + ". A server below ~95% while the load generator is near "
                       "100% is held back by the load generator (or by other work on the machine), which pulls "
                       "ratios towards 1; the per-request CPU cost below does not depend on that.")
    if retries:
        table.notes.append(f"{retries} run(s) were measured again because neither the server nor the load "
                           f"generator was at least {SATURATED:.0%} busy — with {CONNECTIONS} connections in a "
                           f"closed loop one of them is, unless the machine takes the CPU away (other work, or "
                           f"the hypervisor); at most {budget} repeats per suite"
                           + (" (all used: later disturbed runs were kept)." if retries >= budget else "."))
    cost = Table("echo-cpu", "6b. Echo: server CPU per line", "µs",
                 "Server CPU time (on-CPU time of all its threads, from /proc/PID/task/*/schedstat, in "
                 "nanoseconds) during the measured window of the runs above, divided by the lines echoed: "
                 "the server's own cost per line, whatever held the throughput back. The bare scripts are "
                 "written as tightly as a careful engineer would (`benchmarks/bare_echo.py`: a chunk that is "
                 "one whole line goes straight back, anything else is split by hand over a bytearray and "
                 "written with one `writelines`). Lower is better.", reference="bare-asyncio", digits=2)
    for spec in specs:
        cost.add(spec.key, spec.label, per_request[spec.key], spec.missing)
    for loop in ("asyncio", "uvloop"):
        cost.report_ratio(f"echo-cpu.{loop}.vs-bare", f"twistdlite-{loop}", f"bare-{loop}")
    cost.report_ratio("echo-cpu.asyncio.vs-twistd", "twistdlite-asyncio", "twistd")
    tables = [table, cost]
    table.target("echo.uvloop.vs-twistd", "twistdlite-uvloop", ">=", 2.0, "twistd")
    table.target("echo.asyncio.vs-twistd", "twistdlite-asyncio", ">=", 1.0, "twistd")
    table.target("echo.asyncio.vs-bare", "twistdlite-asyncio", ">=", 0.85, "bare-asyncio")
    table.target("echo.uvloop.vs-bare", "twistdlite-uvloop", ">=", 0.85, "bare-uvloop")
    return tables


def saturated(result: dict) -> bool:
    """True when the server or the load generator was busy enough for the run to show capacity."""
    busy = [value for value in (result.get("server_cpu"), result.get("client_cpu")) if value is not None]
    return not busy or max(busy) >= SATURATED


def load(port: int, duration: float, warmup: float, cpu: Optional[int], server_pid: int) -> dict:
    """Run the load generator once against ``port`` (pinned to ``cpu``); its JSON result."""
    cmd = [sys.executable, str(LOADGEN), "echo", "--port", str(port), "--conns", str(CONNECTIONS),
           "--size", str(LINE_SIZE), "--duration", str(duration), "--warmup", str(warmup),
           "--server-pid", str(server_pid)]
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    try:
        done = subprocess.run(cmd, env=bench_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=duration + warmup + 60, preexec_fn=preexec)
    except subprocess.TimeoutExpired:
        raise BenchError("the load generator did not finish in time") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or lines[-1].startswith("ERROR"):
        raise BenchError(f"the load generator failed ({done.returncode}): {done.stdout[-300:]}{done.stderr[-300:]}")
    result = json.loads(lines[-1])
    if result["requests"] <= 0:
        raise BenchError("the load generator completed no request")
    return result


def idle(ctx: Context) -> list[Table]:
    """RSS per idle connection, first and second half, for each server; and the per-connection cost's targets."""
    wanted = max(20, int(IDLE_CONNECTIONS * ctx.scale))
    soft, hard = nofile_limits()
    room = hard - 200  # each side needs one descriptor per connection, plus its own
    held_target = min(wanted, room)
    note = ""
    if held_target < wanted:
        note = (f"Scaled down from {wanted:,} to {held_target:,} connections: the hard open-file limit "
                f"is {hard:,} (raise it with `ulimit -Hn` as root to measure {wanted:,}).")
    specs = [spec for spec in echo_servers("line", ctx.twistd)]
    runs = runs_for(IDLE_RUNS, ctx.scale)
    rows = []
    table = Table("idle", f"6c. {held_target:,} idle connections", "KiB",
                  f"{held_target:,} connections to each LineReceiver echo server, opened in two halves by a separate "
                  f"process, each checked with one echo and then left idle; RSS of the server before, at half and "
                  f"at full (the first of {runs} run(s) shown). The soft open-file limit of both processes is "
                  f"raised to the hard limit ({hard:,}). *Flat* means the second half cost at most 1.5× the first "
                  f"half per connection (+{FLAT_SLACK_KIB:g} KiB of slack for page and arena granularity).")
    per_conn: dict = {spec.key: [] for spec in specs}
    failed: dict = {}
    for run_no in range(runs):
        ctx.settle()
        for spec in specs:
            if spec.missing or spec.key in failed:
                continue
            try:
                before, half, full, held, half_count = hold(spec, ctx, held_target)
            except BenchError as exc:
                failed[spec.key] = str(exc)
                rows.append([spec.label, f"failed: {exc}", "—", "—", "—", "—", "—", "—"])
                if spec.family == "twistdlite":
                    table.require(f"idle.{spec.key}.flat", f"{spec.label} holds {held_target:,} idle connections",
                                  False, str(exc))
                continue
            first = (half - before) / half_count
            second = (full - half) / max(1, held - half_count)
            per_conn[spec.key].append((full - before) / held)
            if run_no:
                continue
            flat = second <= 1.5 * first + FLAT_SLACK_KIB
            rows.append([spec.label, f"{held:,}", f"{before / 1024:.1f}", f"{half / 1024:.1f}", f"{full / 1024:.1f}",
                         f"{first:.2f}", f"{second:.2f}", f"{(full - before) / held:.2f}"])
            if spec.family == "twistdlite":
                table.require(f"idle.{spec.key}.flat", f"{spec.label} holds {held_target:,} idle connections with "
                              f"flat memory per connection", held == held_target and flat,
                              f"held {held:,}; {first:.2f} KiB per connection in the first half, "
                              f"{second:.2f} in the second")
        log_line(f"idle connections round {run_no + 1}/{runs} done")
    rows += [[spec.label, spec.missing, "—", "—", "—", "—", "—", "—"] for spec in specs if spec.missing]
    table.grid = (["server", "held", "RSS before (MiB)", "at half (MiB)", "at full (MiB)",
                   "KiB/conn, 1st half", "KiB/conn, 2nd half", "KiB/conn, all"], rows)
    if note:
        table.notes.append(note)
    memory = Table("idle-mem", "6d. Memory per idle connection", "KiB",
                   f"The server's RSS growth over the {held_target:,} idle connections of table 6c, per "
                   f"connection ({runs} run(s) each; servers take turns). Every server runs the same "
                   "LineReceiver-shaped echo on 127.0.0.1 and is measured the same way, after every connection "
                   "has echoed once; the bare scripts keep what a plain asyncio protocol keeps (its transport, "
                   "and a buffer only while a line is incomplete). Lower is better.",
                   reference="bare-asyncio", digits=2)
    for spec in specs:
        memory.add(spec.key, spec.label, per_conn[spec.key],
                   spec.missing or (f"failed: {failed[spec.key]}" if spec.key in failed else ""))
    for loop in ("asyncio", "uvloop"):
        memory.target(f"idle-mem.{loop}.vs-bare", f"twistdlite-{loop}", "<=", 1.1, f"bare-{loop}")
        memory.target(f"idle-mem.{loop}.vs-twistd", f"twistdlite-{loop}", "<=", 1.0, "twistd")
    return [table, memory]


def hold(spec, ctx: Context, count: int) -> tuple[int, int, int, int, int]:
    """Open ``count`` idle connections to ``spec`` in two steps; (rss before, at half, at full, held, half) in KiB."""
    with running(spec, ctx.scratch(f"idle-{spec.key}"), raise_nofile=True) as server:
        before = rss_kib(server.pid)
        workdir = server.workdir
        client = spawn([sys.executable, str(LOADGEN), "idle", "--port", str(server.port), "--conns", str(count),
                        "--steps", "2", "--timeout", "120"], cwd=workdir, log=workdir / "client.log",
                       stdin=subprocess.PIPE, raise_nofile=True)
        try:
            half = _wait_held(client, workdir / "client.log", 1, 120)
            rss_half = rss_kib(server.pid)
            client.stdin.write(b"\n")
            client.stdin.flush()
            full = _wait_held(client, workdir / "client.log", 2, 120)
            rss_full = rss_kib(server.pid)
            client.stdin.write(b"\n")
            client.stdin.flush()
            client.wait(timeout=30)
        finally:
            try:
                client.stdin.close()
            except OSError:
                pass
            terminate(client.pid, timeout=10)
        return before, rss_half, rss_full, full, half


def _wait_held(client: subprocess.Popen, log, nth: int, timeout: float) -> int:
    """Wait for the ``nth`` ``HELD n`` line in the client's log; returns n."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        held = [line for line in lines if line.startswith("HELD ")]
        if len(held) >= nth:
            return int(held[nth - 1].split()[1])
        errors = [line for line in lines if line.startswith("ERROR")]
        if errors or client.poll() is not None:
            raise BenchError(f"the idle client failed: {(errors or lines or ['exited'])[-1]}")
        select.select([], [], [], 0.01)
    raise BenchError(f"the idle client did not report step {nth} within {timeout:g} s")
