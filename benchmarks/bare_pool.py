"""A bare pre-fork asyncio line echo, for comparing how workers share a port (benchmarks/bench_workers.py).

    python bare_pool.py --mode shared|reuseport --port PORT [--workers 2] [--busy-ms MS]

``shared``: the parent binds one listening socket and every worker accepts on
it (what ``twistdlite --workers`` does). ``reuseport``: every worker binds its
own ``SO_REUSEPORT`` socket on the port and the kernel spreads connections
over the sockets by a hash. ``SIGHUP`` replaces the workers as twistdlite
reloads: new workers first, then each old one stops accepting (closes its
listening socket), lets its connections finish and exits. ``SIGTERM`` stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time


BUSY = 0.0


class LineEcho(asyncio.Protocol):
    """Echo whole lines back."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer:
            if BUSY:
                time.sleep(BUSY)
            *lines, self.buffer = self.buffer.split(b"\n")
            self.transport.write(b"".join(line + b"\n" for line in lines))

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)


def listening(port: int, reuseport: bool) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(50)
    return sock


def accepting() -> bool:
    """True while connections the loop has accepted are still being set up (asyncio's own tasks)."""
    return any(getattr(task.get_coro(), "__qualname__", "").endswith("_accept_connection2")
               for task in asyncio.all_tasks())


def worker(sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGTERM; then stop accepting, let connections finish (5 s at most), exit."""
    loop = asyncio.new_event_loop()

    class Serving:
        connections: set = set()

    def factory():
        protocol = LineEcho()
        protocol.server = Serving
        return protocol

    async def main() -> None:
        server = await loop.create_server(factory, sock=sock)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        deadline = time.monotonic() + 5
        loop.remove_reader(sock.fileno())  # no new accepts; those accepted become transports first
        while accepting() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        server.close()
        while Serving.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    os._exit(0)


def main(argv=None) -> int:
    """Run the pool until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["shared", "reuseport"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--busy-ms", type=float, default=0.0, help="block the loop this long per line (a busy worker)")
    args = parser.parse_args(argv)
    global BUSY
    BUSY = args.busy_ms / 1000
    reuseport = args.mode == "reuseport"
    shared = None if reuseport else listening(args.port, False)
    children: set = set()

    def spawn() -> int:
        sock = shared if shared is not None else listening(args.port, True)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            worker(sock)
        if reuseport:
            sock.close()  # the worker owns its socket
        children.add(pid)
        return pid

    def reload(*_) -> None:
        old = set(children)
        for _ in range(args.workers):
            spawn()
        time.sleep(0.2)  # the new workers' loops are serving by now
        for pid in old:
            os.kill(pid, signal.SIGTERM)
        for pid in old:
            os.waitpid(pid, 0)
            children.discard(pid)
        print("reloaded", flush=True)

    stopping = []
    signal.signal(signal.SIGHUP, reload)
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    for _ in range(args.workers):
        spawn()
    print("ready", flush=True)
    while not stopping:
        signal.pause()
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
