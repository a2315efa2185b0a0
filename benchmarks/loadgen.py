"""The load generator: a separate process that drives an echo server on 127.0.0.1.

    python benchmarks/loadgen.py echo --port P [--conns 50] [--size 64] [--duration 3] [--warmup 0.5]
                                      [--server-pid PID]
    python benchmarks/loadgen.py idle --port P --conns N [--steps 2]

``echo`` is a closed loop: each connection sends one line of ``size`` bytes
(CRLF included), waits for the whole echo, and sends the next. Requests
completed inside the measured window (after the warm-up) are counted; the
result is one JSON object on stdout. Every loop is bounded in time.

``idle`` opens ``conns`` connections in ``steps`` equal steps (each checked
with one echo, then left idle), prints ``HELD n`` after each step and waits for
a line on stdin before the next step; after the last it waits for a line,
closes everything and exits. It prints ``ERROR ...`` and exits 1 on failure.
Runs on uvloop when it is installed (the cheapest client Python has), so the
client costs the server as little CPU as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import time

HOST = "127.0.0.1"


class EchoClient(asyncio.Protocol):
    """One closed-loop connection: send a line, wait for it, count, repeat."""

    def __init__(self, state: dict, line: bytes) -> None:
        self.state = state
        self.line = line
        self.size = len(line)
        self.pending = 0
        self.transport = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        """Turn Nagle off, as the servers' side does."""
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self) -> None:
        """Send the first line."""
        self.transport.write(self.line)

    def data_received(self, data: bytes) -> None:
        """Count each complete echo and send the next line."""
        self.pending += len(data)
        state = self.state
        while self.pending >= self.size:
            self.pending -= self.size
            state["count"] += 1
            if state["running"]:
                self.transport.write(self.line)

    def connection_lost(self, exc) -> None:
        """Note a connection the server dropped during the run."""
        if self.state["running"]:
            self.state["lost"] += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def run_echo(args) -> dict:
    """The closed-loop echo load; its result as a dict."""
    loop = asyncio.get_running_loop()
    line = b"x" * (args.size - 2) + b"\r\n"
    state = {"count": 0, "running": True, "lost": 0}
    clients = []
    for _ in range(args.conns):
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: EchoClient(state, line), HOST, args.port), 10)
        clients.append(client)
    # One checked round trip per connection first, so the server has built every protocol.
    for client in clients:
        client.start()
    await asyncio.wait_for(_until(lambda: state["count"] >= args.conns), 10)
    await asyncio.sleep(args.warmup)
    server_start, machine_start = cpu_seconds(args.server_pid), machine_cpu()
    start_count, start, cpu_start = state["count"], time.perf_counter(), time.process_time()
    await asyncio.sleep(args.duration)
    # A machine busy elsewhere can keep the server (or this process) off the CPU for a whole short window
    # (the test suite's tiny scale measures 0.3 s): the window then lasts until one line has come back.
    await asyncio.wait_for(_until(lambda: state["count"] > start_count), 10)
    end_count, end, cpu_end = state["count"], time.perf_counter(), time.process_time()
    server_end, machine_end = cpu_seconds(args.server_pid), machine_cpu()
    state["running"] = False
    for client in clients:
        client.transport.close()
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in clients)), 10)
    requests = end_count - start_count
    seconds = end - start
    return {"requests": requests, "seconds": seconds, "rps": requests / seconds, "conns": args.conns,
            "size": args.size, "lost": state["lost"], "client_cpu": (cpu_end - cpu_start) / seconds,
            "server_cpu": (server_end - server_start) / seconds if args.server_pid else None,
            "server_us_per_request": ((server_end - server_start) / requests * 1e6
                                      if args.server_pid and requests else None),
            "others": others_share(machine_start, machine_end,
                                   (server_end - server_start) + (cpu_end - cpu_start) if args.server_pid else None)}


def machine_cpu() -> tuple:
    """(CPU seconds busy in processes or stolen by the hypervisor, CPU seconds in all) from /proc/stat.

    Interrupt and softirq time is left out of *busy*: on loopback it is mostly this benchmark's own
    network processing, which the kernel does not always charge to the processes.
    """
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system = fields[0], fields[1], fields[2]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + steal) / tick, sum(fields) / tick


def others_share(start: tuple, end: tuple, ours) -> object:
    """The share of the machine's CPU that other processes (or the hypervisor) took meanwhile."""
    if ours is None or end[1] <= start[1]:
        return None
    return max(0.0, (end[0] - start[0]) - ours) / (end[1] - start[1])


def cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` has used, all its threads (0.0 when no PID is given).

    From each thread's ``schedstat`` (on-CPU nanoseconds); ``stat``'s user + system
    ticks (10 ms each) where the kernel keeps no schedstat.
    """
    if not pid:
        return 0.0
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                    total += int(handle.read().split()[0])
            except FileNotFoundError:  # a thread that just ended
                continue
        return total / 1e9
    except (FileNotFoundError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _until(condition, step: float = 0.001) -> None:
    while not condition():
        await asyncio.sleep(step)


class IdleClient(asyncio.Protocol):
    """A connection that echoes one line, then sits idle."""

    def __init__(self) -> None:
        self.echoed = asyncio.get_running_loop().create_future()
        self.got = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        """Send the one line this connection echoes."""
        self.transport = transport
        transport.write(b"hello\r\n")

    def data_received(self, data: bytes) -> None:
        """Wait for the whole echo."""
        self.got += data
        if self.got.endswith(b"hello\r\n") and not self.echoed.done():
            self.echoed.set_result(None)

    def connection_lost(self, exc) -> None:
        """Fail the wait when the server closes first."""
        if not self.echoed.done():
            self.echoed.set_exception(ConnectionError("closed before the echo"))


async def _read_stdin_line(loop) -> str:
    return await loop.run_in_executor(None, sys.stdin.readline)


async def run_idle(args) -> None:
    """Open the idle connections step by step, reporting each step and waiting for stdin."""
    loop = asyncio.get_running_loop()
    clients: list[IdleClient] = []
    step_size = -(-args.conns // args.steps)
    batch = 40  # below the servers' listen backlog (50), so no SYN is dropped and retried
    deadline = time.monotonic() + args.timeout
    for step in range(args.steps):
        target = min(args.conns, (step + 1) * step_size)
        while len(clients) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(clients)} connections opened within {args.timeout:g} s")
            count = min(batch, target - len(clients))
            pairs = await asyncio.wait_for(asyncio.gather(
                *(loop.create_connection(IdleClient, HOST, args.port) for _ in range(count))), 30)
            new = [client for _, client in pairs]
            await asyncio.wait_for(asyncio.gather(*(c.echoed for c in new)), 30)
            clients.extend(new)
        print(f"HELD {len(clients)}", flush=True)
        await asyncio.wait_for(_read_stdin_line(loop), args.timeout)
    for client in clients:
        client.transport.close()
    await asyncio.sleep(0)


def main(argv=None) -> int:
    """Parse the arguments and run one mode; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["echo", "idle"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--server-pid", type=int, default=0, help="measure this server's CPU time in the window")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = None
    if args.loop in ("auto", "uvloop"):
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            if args.loop == "uvloop":
                raise
    loop = loop or asyncio.new_event_loop()
    try:
        if args.mode == "echo":
            result = loop.run_until_complete(run_echo(args))
            print(json.dumps(result), flush=True)
        else:
            loop.run_until_complete(run_idle(args))
    except Exception as exc:  # one line for the harness to report
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
