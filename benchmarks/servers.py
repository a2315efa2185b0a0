"""The echo servers the benchmarks compare, and a way to run one that always ends it.

Each :class:`ServerSpec` is one subject: twistdlite on asyncio or uvloop, the
hand-written asyncio script (the floor) on asyncio or uvloop, and Twisted's
``twistd`` on the equivalent ``.tac``. A spec whose program is not installed
carries the reason in ``missing`` and is reported, not run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from harness import (BENCH_DIR, EXAMPLES, BenchError, bench_env, free_port, spawn, terminate,
                     twistdlite_cmd, uvloop_available, wait_serving)

TAC_DIR = BENCH_DIR / "tac"


@dataclass
class ServerSpec:
    """How to start one echo server: its command (``ECHO_PORT`` in the environment picks the port)."""

    key: str
    label: str
    cmd: list = field(default_factory=list)
    family: str = ""  # "twistdlite", "bare" or "twistd"
    loop: str = "asyncio"
    missing: str = ""


@dataclass
class Running:
    """A started server: its process, port and the monotonic times it was spawned and first served."""

    spec: ServerSpec
    proc: object
    port: int
    spawned: float
    served: float
    workdir: Path

    @property
    def pid(self) -> int:
        """The server's PID."""
        return self.proc.pid

    @property
    def startup(self) -> float:
        """Seconds from spawn to the first echo round trip."""
        return self.served - self.spawned


def echo_servers(mode: str, twistd: Optional[str], loops: tuple = ("asyncio", "uvloop"),
                 with_click: bool = False) -> list[ServerSpec]:
    """The subjects for ``mode`` "raw" (examples/echo.tac) or "line" (a LineReceiver echo).

    ``with_click`` adds the bare script importing click first (``bare-click-LOOP``): the start-up
    floor of any launcher with a command line (twistdlite requires click).
    """
    tac = EXAMPLES / "echo.tac" if mode == "raw" else TAC_DIR / "line_echo.tac"
    twisted_tac = TAC_DIR / ("twisted_echo.tac" if mode == "raw" else "twisted_line_echo.tac")
    have_uvloop = uvloop_available()
    specs = []
    for loop in loops:
        missing = "" if loop == "asyncio" or have_uvloop else "uvloop not installed"
        reactor = ["-r", "uvloop"] if loop == "uvloop" else []
        specs.append(ServerSpec(f"twistdlite-{loop}", f"twistdlite ({loop})",
                                [*twistdlite_cmd(), "-noy", str(tac), *reactor], "twistdlite", loop, missing))
    for loop in loops:
        missing = "" if loop == "asyncio" or have_uvloop else "uvloop not installed"
        udp = ["--udp"] if mode == "raw" else []  # like examples/echo.tac, which serves UDP echo too
        specs.append(ServerSpec(f"bare-{loop}", f"bare asyncio script ({loop})",
                                [sys.executable, str(BENCH_DIR / "bare_echo.py"), "--mode", mode, "--loop", loop,
                                 *udp], "bare", loop, missing))
        if with_click:
            specs.append(ServerSpec(f"bare-click-{loop}", f"bare asyncio script + import click ({loop})",
                                    [sys.executable, str(BENCH_DIR / "bare_echo.py"), "--mode", mode, "--loop",
                                     loop, *udp, "--click"], "bare", loop, missing))
    specs.append(ServerSpec("twistd", "twistd (Twisted, epoll)", [twistd, "-noy", str(twisted_tac)] if twistd else [],
                            "twistd", "epoll", "" if twistd else "not installed"))
    return specs


@contextlib.contextmanager
def running(spec: ServerSpec, workdir: Path, cpu: Optional[int] = None, raise_nofile: bool = False,
            timeout: float = 30.0, **env_extra: str) -> Iterator[Running]:
    """Start ``spec`` in ``workdir`` on a free port, wait until it echoes, yield it; always kill and reap it."""
    if spec.missing:
        raise BenchError(f"{spec.label}: {spec.missing}")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = bench_env(ECHO_PORT=str(port), **env_extra)
    spawned = time.monotonic()
    proc = spawn(spec.cmd, cwd=workdir, log=workdir / "server.log", env=env, cpu=cpu, raise_nofile=raise_nofile)
    try:
        try:
            served = wait_serving(port, proc, timeout)
        except BenchError as exc:
            raise BenchError(f"{spec.label}: {exc}; its output:\n{_tail(workdir / 'server.log')}") from None
        yield Running(spec, proc, port, spawned, served, workdir)
    finally:
        terminate(proc.pid, timeout=10.0)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def two_cpus() -> tuple[Optional[int], Optional[int]]:
    """(server CPU, client CPU) to pin to when there are at least two usable CPUs, else (None, None)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]
