"""Memory per idle connection, measured with tracemalloc inside the server process.

    python benchmarks/connmem.py [--count 2000] [--subjects twistdlite,bare,twistd] [--loops asyncio,uvloop] [--top 12]

Each subject serves a LineReceiver-shaped echo on 127.0.0.1 in a process of
its own: twistdlite (a ``basic.LineReceiver`` through ``TCPPort``, the code a
``TCPServer`` runs), the hand-written asyncio protocol of ``bare_echo.py``
(``LineEcho``), each on asyncio and uvloop, and Twisted (its ``LineReceiver``
through ``reactor.listenTCP``, on its default reactor). The load side is this
process, so only the server's allocations are counted.

The server starts tracemalloc before it listens; the client then opens and
closes a warm-up batch (so free lists, caches and the event loop's tables are
in their steady state), the server takes its baseline, the client opens
``count`` connections and checks each with one echo, and the server, once it
holds them all, takes the second reading. Both readings are taken after
``gc.collect()``. The result is (second - baseline) / count: every byte the
server's Python allocators hold for one more idle connection, whoever
allocated it (the event loop's transport and selector entries, the socket
object, the framework's adapter and the protocol). Kernel socket buffers and
allocator slack are not counted (the RSS table of bench_echo.py sees those).

:func:`measure` measures one subject; :func:`run` (``run(ctx)``) gives the
suite's table. ``--top`` prints the allocation sites that grew most, per
connection, for a breakdown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WARMUP = 200
LINE = b"ping\r\n"


# -- the server side (run in a child process) -------------------------------------------------------------

def _serve(subject: str, loop_name: str, count: int, warmup: int, top: int) -> None:
    """Serve the echo, report READY, then the baseline and the reading as JSON lines on stdout."""
    import gc
    import tracemalloc

    _raise_nofile()
    tracemalloc.start(int(os.environ.get("CONNMEM_FRAMES", "1")))
    state = {"made": 0, "lost": 0, "echoed": 0, "baseline": None, "snapshot": None}

    def say(**fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    def reading() -> tuple[int, Any]:
        gc.collect()
        return tracemalloc.get_traced_memory()[0], (tracemalloc.take_snapshot() if top else None)

    def poll() -> bool:
        """One step of the plan; True once finished."""
        if state["baseline"] is None:
            if state["lost"] >= warmup and state["made"] == warmup:
                state["baseline"] = reading()
                say(event="baseline", bytes=state["baseline"][0])
            return False
        if state["made"] - state["lost"] >= count and state["echoed"] >= warmup + count:
            total, snapshot = reading()
            sites = []
            if snapshot is not None:
                base = state["baseline"][1]
                for stat in snapshot.compare_to(base, "lineno")[:top]:
                    frame = stat.traceback[0]
                    sites.append([f"{frame.filename}:{frame.lineno}", stat.size_diff, stat.count_diff])
            say(event="reading", bytes=total, held=state["made"] - state["lost"],
                per_connection=(total - state["baseline"][0]) / count, sites=sites)
            return True
        return False

    if subject == "twistd":
        from twisted.internet import reactor, task
        from twisted.internet.protocol import ServerFactory
        from twisted.protocols.basic import LineReceiver

        class TwistedEcho(LineReceiver):
            def connectionMade(self) -> None:
                state["made"] += 1

            def lineReceived(self, line: bytes) -> None:
                state["echoed"] += 1
                self.sendLine(line)

            def connectionLost(self, reason: Any = None) -> None:
                state["lost"] += 1

        factory = ServerFactory.forProtocol(TwistedEcho)
        factory.noisy = False
        port = reactor.listenTCP(0, factory, interface="127.0.0.1", backlog=128)
        say(event="ready", port=port.getHost().port)
        looping = task.LoopingCall(lambda: poll() and reactor.stop())
        looping.start(0.01)
        reactor.run()
        return

    import asyncio

    loop = asyncio.new_event_loop()
    if loop_name == "uvloop":
        import uvloop

        loop.close()
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        if subject == "twistdlite":
            sys.path.insert(0, str(ROOT))
            from twistdlite import basic, protocol
            from twistdlite._ports import TCPPort

            class LiteEcho(basic.LineReceiver):
                def connectionMade(self) -> None:
                    state["made"] += 1

                def lineReceived(self, line: bytes) -> None:
                    state["echoed"] += 1
                    self.sendLine(line)

                def connectionLost(self, reason: Any = None) -> None:
                    state["lost"] += 1

            factory = protocol.ServerFactory.forProtocol(LiteEcho)
            factory.noisy = False
            port = TCPPort(0, factory, backlog=128, interface="127.0.0.1")
            await port.start()
            number = port.getHost().port
        else:
            sys.path.insert(0, str(BENCH_DIR))
            from bare_echo import LineEcho

            class BareEcho(LineEcho):
                def connection_made(self, transport: Any) -> None:
                    state["made"] += 1
                    super().connection_made(transport)

                def data_received(self, data: bytes) -> None:
                    state["echoed"] += data.count(b"\r\n")
                    super().data_received(data)

                def connection_lost(self, exc: Any) -> None:
                    state["lost"] += 1

            server = await asyncio.get_running_loop().create_server(BareEcho, "127.0.0.1", 0, backlog=128)
            number = server.sockets[0].getsockname()[1]
        say(event="ready", port=number)
        while not poll():
            await asyncio.sleep(0.01)

    loop.run_until_complete(main())


# -- the client side ---------------------------------------------------------------------------------------

def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _python_for(subject: str) -> Optional[str]:
    """The interpreter that runs ``subject`` (None when it is not available)."""
    if subject != "twistd":
        return sys.executable
    candidates = [os.environ.get("TWISTED_PYTHON", ""), "/work/twisted-venv/bin/python"]
    twistd = os.environ.get("TWISTD")
    if twistd and twistd.lower() != "none":
        candidates.insert(0, str(Path(twistd).with_name("python")))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class _Lines:
    """Reads JSON lines from a child's stdout with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.buffer = b""

    def next(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("the server did not answer in time")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"the server exited (status {self.proc.wait()})")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _open(port: int, count: int) -> list[socket.socket]:
    """``count`` connections, each checked with one echo."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            sock.sendall(LINE)
            got = b""
            while len(got) < len(LINE):
                data = sock.recv(64)
                if not data:
                    raise RuntimeError("the server closed a connection")
                got += data
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def measure(subject: str, loop: str = "asyncio", count: int = 2000, top: int = 0, timeout: float = 60.0) -> dict:
    """Bytes per idle connection of ``subject`` ("twistdlite", "bare" or "twistd") on ``loop``.

    Returns the server's reading: ``per_connection`` (bytes), ``held``, and ``sites``
    (``[file:line, bytes, blocks]`` of the ``top`` sites that grew most).
    """
    _raise_nofile()
    python = _python_for(subject)
    if python is None:
        raise RuntimeError("Twisted is not installed (set TWISTED_PYTHON or TWISTD)")
    cmd = [python, str(Path(__file__).resolve()), "_serve", subject, loop, str(count), str(WARMUP), str(top)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=str(BENCH_DIR))
    held: list = []
    try:
        lines = _Lines(proc)
        ready = lines.next(timeout)
        for sock in _open(ready["port"], WARMUP):
            sock.close()
        lines.next(timeout)  # the baseline
        held = _open(ready["port"], count)
        return lines.next(timeout)
    finally:
        for sock in held:
            sock.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def subjects(loops: tuple = ("asyncio", "uvloop")) -> list[tuple[str, str, str]]:
    """(key, subject, loop) of every measurement, uvloop ones only where uvloop is installed."""
    import importlib.util

    have_uvloop = importlib.util.find_spec("uvloop") is not None
    chosen = []
    for loop in loops:
        if loop == "uvloop" and not have_uvloop:
            continue
        chosen += [(f"twistdlite-{loop}", "twistdlite", loop), (f"bare-{loop}", "bare", loop)]
    if _python_for("twistd") is not None:
        chosen.append(("twistd", "twistd", "epoll"))
    return chosen


def run(ctx: Any) -> list:
    """The suite's table: bytes per idle connection (tracemalloc), with the targets of issue 11."""
    from harness import Table, runs_for

    count = max(100, int(2000 * ctx.scale))
    rounds = runs_for(3, ctx.scale)
    table = Table("connmem", "6e. Memory per idle connection, in the server (tracemalloc)", "B",
                  f"Bytes the server's Python allocators hold per idle connection (tracemalloc, {count:,} "
                  f"connections each checked with one echo, after a warm-up; median of {rounds} rounds). "
                  "Allocator slack and kernel buffers are not included (tables 6c and 6d, from RSS, show them).")
    samples: dict = {}
    for _ in range(rounds):
        for key, subject, loop in subjects():
            samples.setdefault(key, []).append(measure(subject, loop, count)["per_connection"])
    labels = {"twistdlite-asyncio": "twistdlite (asyncio)", "twistdlite-uvloop": "twistdlite (uvloop)",
              "bare-asyncio": "bare asyncio protocol (asyncio)", "bare-uvloop": "bare asyncio protocol (uvloop)",
              "twistd": "twistd (Twisted, epoll)"}
    for key, values in samples.items():
        table.add(key, labels[key], values)
    for loop in ("asyncio", "uvloop"):
        if f"twistdlite-{loop}" in samples:
            table.target(f"connmem.{loop}.vs-bare", f"twistdlite-{loop}", "<=", 1.1, f"bare-{loop}")
            if "twistd" in samples:
                table.target(f"connmem.{loop}.vs-twistd", f"twistdlite-{loop}", "<=", 1.0, "twistd")
    return [table]


def main(argv: Optional[list] = None) -> int:
    """Measure and print every subject (or serve, in the child)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        subject, loop, count, warmup, top = argv[1:6]
        _serve(subject, loop, int(count), int(warmup), int(top))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--top", type=int, default=0, help="print the N allocation sites that grew most")
    parser.add_argument("--only", default="", help="comma-separated keys (twistdlite-asyncio, bare-uvloop, twistd...)")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(",")))
    for key, subject, loop in subjects():
        if wanted and key not in wanted:
            continue
        values = []
        for _ in range(args.rounds):
            result = measure(subject, loop, args.count, args.top)
            values.append(result["per_connection"])
        values.sort()
        print(f"{key:20} {values[len(values) // 2]:8.1f} B/conn  (rounds: {', '.join(f'{v:.1f}' for v in values)})")
        for site, size, blocks in result.get("sites", []):
            print(f"    {size / args.count:8.1f} B {blocks / args.count:5.2f} blocks  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
