"""Logging throughput: lines per second a service logging in a tight loop gets into a log file.

Subjects: a twistdlite service (``tac/log_loop.tac`` under ``twistdlite -noy -l
FILE``, logging through stdlib ``logging``), stdlib ``logging`` to a
``FileHandler`` alone (``stdlib_log_loop.py``, the reference), and a Twisted
service (``tac/twisted_log_loop.tac`` under ``twistd -noy -l FILE``, logging
through ``twisted.logger``). Each times its own loop and writes the result to a
file; the harness then checks the lines really are in the log (rotated files
included) and stops the server.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from harness import (BENCH_DIR, BenchError, Context, Table, bench_env, log_line, runs_for, spawn, terminate,
                     twistdlite_cmd, wait_until)
from servers import TAC_DIR

LINES = 100_000


def run(ctx: Context) -> list[Table]:
    """The logging table."""
    lines = max(500, int(LINES * ctx.scale))
    subjects = [
        ("twistdlite", "twistdlite service (stdlib logging via -l FILE)",
         lambda log: [*twistdlite_cmd(), "-noy", str(TAC_DIR / "log_loop.tac"), "-l", str(log)], ""),
        ("stdlib", "stdlib logging to a FileHandler alone",
         lambda log: [sys.executable, str(BENCH_DIR / "stdlib_log_loop.py"), str(log)], ""),
        ("twistd", "twistd service (twisted.logger via -l FILE)",
         lambda log: [ctx.twistd, "-noy", str(TAC_DIR / "twisted_log_loop.tac"), "-l", str(log)],
         "" if ctx.twistd else "not installed"),
    ]
    runs = runs_for(5, ctx.scale)
    rates = {key: [] for key, *_ in subjects}
    for round_no in range(runs):
        ctx.settle()
        for key, _, command, missing in subjects:
            if missing:
                continue
            rates[key].append(one_run(key, command, lines, ctx))
        log_line(f"logging round {round_no + 1}/{runs} done")
    table = Table("logging", "7. Logging throughput", "lines/s",
                  f"{lines:,} lines (`tick N of the logging benchmark`, twistd's `<time> [system] message` format) "
                  f"logged in a tight loop by a running service into a log file; the loop times itself. "
                  f"Higher is better.", reference="stdlib", digits=0)
    for key, label, _, missing in subjects:
        table.add(key, label, rates[key], missing)
    table.target("logging.vs-stdlib", "twistdlite", ">=", 0.8, "stdlib")
    table.target("logging.vs-twistd", "twistdlite", ">=", 1.5, "twistd")
    return [table]


def one_run(key: str, command, lines: int, ctx: Context) -> float:
    """One subject once: lines per second, after checking every line reached the file."""
    workdir = ctx.scratch(f"logging-{key}")
    logfile = workdir / "bench.log"
    result = workdir / "result.json"
    env = bench_env(BENCH_LINES=str(lines), BENCH_RESULT=str(result))
    proc = spawn(command(logfile), cwd=workdir, log=workdir / "output.log", env=env)
    try:
        def finished():
            """True once the result file exists; raises if the process died first."""
            if result.exists():
                return True
            if proc.poll() is not None and not result.exists():
                raise BenchError(f"{key} exited {proc.returncode} before logging its lines: "
                                 f"{(workdir / 'output.log').read_text(errors='replace')[-500:]}")
            return False

        wait_until(finished, 60 + lines / 2000, f"{key} to log {lines} lines")
        data = json.loads(result.read_text())
    finally:
        terminate(proc.pid, timeout=10)
    written = count_lines(logfile)
    if written < lines:
        raise BenchError(f"{key}: only {written} of {lines} lines reached {logfile.name}")
    return data["lines"] / data["seconds"]


def count_lines(logfile: Path) -> int:
    """How many benchmark lines are in ``logfile`` and its rotated siblings (``name.1``, ``name.2``...)."""
    pattern = re.compile(rb"tick \d+ of the logging benchmark")
    total = 0
    for path in logfile.parent.glob(logfile.name + "*"):
        if path == logfile or re.fullmatch(re.escape(logfile.name) + r"\.\d+", path.name):
            total += len(pattern.findall(path.read_bytes()))
    return total
