"""The floor: a hand-written asyncio echo server, no framework (used as the reference by the suite).

    python benchmarks/bare_echo.py [--loop asyncio|uvloop] [--mode raw|line] [--udp] [--click]

Listens on 127.0.0.1:$ECHO_PORT (0 picks a free port), prints
``bare echo starting on PORT``, and exits cleanly on SIGTERM or SIGINT.
With ``--udp`` it also echoes datagrams on the same port number
(``$ECHO_UDP_PORT`` overrides it), as examples/echo.tac does.
``raw`` echoes every chunk back (the shape of examples/echo.tac); ``line``
splits on CRLF and writes each line back (the shape of a LineReceiver echo),
so both servers do the same work per line. ``--click`` imports click first,
as any launcher with a command line does: the start-up floor for twistdlite,
which requires click.
"""

import asyncio
import os
import signal
import sys


class RawEcho(asyncio.Protocol):
    """Write back whatever arrives."""

    def connection_made(self, transport):
        """Keep the bound write."""
        self.write = transport.write

    def data_received(self, data):
        """Echo the chunk."""
        self.write(data)


class LineEcho(asyncio.Protocol):
    """Write back each CRLF-terminated line, written as tightly as a careful engineer would.

    A chunk that is exactly one whole line (the usual case) goes straight back; anything
    else is split by hand over a bytearray and the complete lines are written with one
    ``writelines``. Per connection it keeps the transport and, only while a line is
    incomplete, a buffer.
    """

    def connection_made(self, transport):
        """Keep the transport; no buffer until a line arrives in pieces."""
        self.transport = transport
        self.buffer = None

    def data_received(self, data):
        """Echo every complete line; keep the rest."""
        buffer = self.buffer
        if buffer is None:
            end = data.find(b"\r\n")
            if end >= 0 and end == len(data) - 2:  # exactly one whole line
                self.transport.write(data)
                return
            buffer = self.buffer = bytearray(data)
        else:
            buffer += data
        lines = []
        start = 0
        while True:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            lines.append(buffer[start:end + 2])
            start = end + 2
        if lines:
            self.transport.writelines(lines)
        if start == len(buffer):
            self.buffer = None
        elif start:
            del buffer[:start]


class UDPEcho(asyncio.DatagramProtocol):
    """Send every datagram back to its sender."""

    def connection_made(self, transport):
        """Keep the transport."""
        self.transport = transport

    def datagram_received(self, data, addr):
        """Send the datagram back."""
        self.transport.sendto(data, addr)


async def serve(mode, udp):
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    protocol = LineEcho if mode == "line" else RawEcho
    server = await loop.create_server(protocol, "127.0.0.1", int(os.environ.get("ECHO_PORT", "8007")), backlog=50)
    port = server.sockets[0].getsockname()[1]
    datagrams = None
    if udp:
        udp_port = int(os.environ.get("ECHO_UDP_PORT", str(port)))
        datagrams, _ = await loop.create_datagram_endpoint(UDPEcho, local_addr=("127.0.0.1", udp_port))
    print(f"bare echo starting on {port}", flush=True)
    await stop.wait()
    server.close()
    if datagrams is not None:
        datagrams.close()


def main(argv):
    """Run the server on the chosen loop."""
    if "--click" in argv:
        import click  # noqa: F401  (a fixed cost of every launcher with a command line)
    loop_name = argv[argv.index("--loop") + 1] if "--loop" in argv else "asyncio"
    mode = argv[argv.index("--mode") + 1] if "--mode" in argv else "raw"
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve(mode, "--udp" in argv))
    finally:
        loop.close()


if __name__ == "__main__":
    main(sys.argv[1:])
