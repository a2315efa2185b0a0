"""Import cost: what ``import twistdlite.service`` and ``twistdlite --help`` load, and how long they take.

Wall times are medians of fresh interpreters (``python -c ...``), side by side
with the interpreter doing nothing and with Twisted's equivalents. The module
lists come from ``-X importtime`` (``PYTHONPROFILEIMPORTTIME=1``), summed per
top-level package. ``import twistdlite.service`` must not import click (nor
anything else of the launcher's).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict

from harness import BenchError, Context, Table, bench_env, log_line, runs_for, twistd_python, twistdlite_cmd

#: Modules ``import twistdlite.service`` must leave alone (the launcher's and optional ones).
HEAVY = ("click", "daemon", "lockfile", "uvloop", "twistdlite.launch")


def run(ctx: Context) -> list[Table]:
    """The wall-time table and the import lists."""
    commands = [
        ("python-pass", "python -c pass (the interpreter alone)", [sys.executable, "-c", "pass"], ""),
        ("import-asyncio", "python -c 'import asyncio'", [sys.executable, "-c", "import asyncio"], ""),
        ("import-service", "python -c 'import twistdlite.service'",
         [sys.executable, "-c", "import twistdlite.service"], ""),
        ("help", "twistdlite --help", [*twistdlite_cmd(), "--help"], ""),
    ]
    if ctx.twistd:
        twisted_python = twistd_python(ctx.twistd)
        commands += [
            ("import-twisted", "python -c 'import twisted.application.service' (Twisted's interpreter)",
             [twisted_python, "-c", "import twisted.application.service"], ""),
            ("twistd-help", "twistd --help", [ctx.twistd, "--help"], ""),
        ]
    else:
        commands += [("import-twisted", "python -c 'import twisted.application.service'", [], "not installed"),
                     ("twistd-help", "twistd --help", [], "not installed")]
    runs = runs_for(9, ctx.scale)
    times = {key: [] for key, *_ in commands}
    for round_no in range(runs + 1):
        ctx.settle()
        for key, _, cmd, missing in commands:
            if missing:
                continue
            took = _wall(cmd)
            if round_no:
                times[key].append(took)
    log_line("import timings done")

    table = Table("import", "5. Import cost", "ms",
                  "Wall time of a fresh interpreter running each command (medians). Lower is better.",
                  reference="python-pass", scale=1000.0)
    for key, label, _, missing in commands:
        table.add(key, label, times[key], missing)

    loaded = _modules_after([sys.executable, "-c",
                             "import sys, twistdlite.service; print(' '.join(sorted(sys.modules)))"])
    heavy = sorted(name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY))
    table.require("import.no-click", "`import twistdlite.service` imports no click (nor daemon, lockfile, uvloop, "
                  "twistdlite.launch)", not heavy,
                  f"it imported {', '.join(heavy)}" if heavy else f"{len(loaded)} modules loaded in all")

    for title, cmd in (("import twistdlite.service", [sys.executable, "-c", "import twistdlite.service"]),
                       ("twistdlite --help", [*twistdlite_cmd(), "--help"])):
        total, packages = import_profile(cmd)
        rows = "\n".join(f"| {name} | {us / 1000:.1f} |" for name, us in packages[:10])
        table.notes.append(f"Top packages by import time of `{title}` (`-X importtime`, self time summed per "
                           f"top-level package; {total / 1000:.1f} ms in all):\n\n| package | ms |\n|---|---:|\n{rows}")
    return [table]


def _wall(cmd: list) -> float:
    began = time.monotonic()
    done = subprocess.run(cmd, env=bench_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=60)
    took = time.monotonic() - began
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}")
    return took


def _modules_after(cmd: list) -> list[str]:
    done = subprocess.run(cmd, env=bench_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-300:]}")
    return done.stdout.split()


def import_profile(cmd: list) -> tuple[int, list[tuple[str, int]]]:
    """Run ``cmd`` with ``-X importtime``; (total µs, [(top-level package, self µs)] largest first)."""
    done = subprocess.run(cmd, env=bench_env(PYTHONPROFILEIMPORTTIME="1"), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-300:]}")
    return parse_importtime(done.stderr)


def module_times(text: str) -> dict:
    """``{module: self µs}`` from ``-X importtime`` output."""
    found = {}
    for line in text.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            try:
                self_us, _cumulative, name = line[len("import time:"):].split("|", 2)
                found[name.strip()] = int(self_us)
            except ValueError:
                continue
    return found


def parse_importtime(text: str) -> tuple[int, list[tuple[str, int]]]:
    """Parse ``-X importtime`` output: (sum of self µs, [(top-level package, self µs)] largest first)."""
    per_package: dict = defaultdict(int)
    for name, micros in module_times(text).items():
        per_package[name.split(".")[0]] += micros
    return sum(per_package.values()), sorted(per_package.items(), key=lambda item: -item[1])
