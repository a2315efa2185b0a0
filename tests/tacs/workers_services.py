"""The protocol and services of tests/tacs/workers_app.tac (a module, so the shutdown .tap can hold them).

Shaped by environment variables, as the .tac is.

WORKERS_PORT: the TCP port on 127.0.0.1 (0: any). WORKERS_MODE:
  serve       an echo server (default); "pid" answers the worker's PID, "version" VERSION,
              "say" logs a line,
              "block" blocks the event loop, "gate" blocks it until the file WORKERS_GATE.loop exists,
              "crash" exits the worker at once
  failstart   startService raises in every worker
  crashloop   every worker exits half a second after it is ready
  wedge       stopService blocks SIGTERM and SIGALRM and never returns
  slowstop    stopService finishes once the file WORKERS_GATE exists (the loop keeps running);
              while WORKERS_GATE.hold exists, startService finishes once WORKERS_GATE.start does
  datagram    a UNIX datagram server at WORKERS_PATH
  client      a TCP client only
  latebind    as serve, and startService listens on a TCP port of its own (not in privilegedStartService)
  orphan      as serve, and each worker leaves an orphan (a shell's background sleep)
"""

import logging
import os
import signal
import subprocess
import time

from twistdlite import internet, protocol, service

VERSION = "1"  # the .tac sets it
MODE = os.environ.get("WORKERS_MODE", "serve")
PORT = int(os.environ.get("WORKERS_PORT", "0"))


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        for line in data.split(b"\n"):
            command = line.strip()
            if command == b"pid":
                self.transport.write(b"%d\n" % os.getpid())
            elif command == b"version":
                self.transport.write(VERSION.encode() + b"\n")
            elif command == b"say":
                logging.getLogger("pool").info("hello from %d", os.getpid())
                self.transport.write(b"said\n")
            elif command == b"block":
                time.sleep(3600)
            elif command == b"gate":
                self.transport.write(b"blocking\n")
                wait_for_gate(blocking=True, suffix=".loop")
                self.transport.write(b"unblocked\n")
            elif command == b"crash":
                os._exit(3)
            elif command:
                self.transport.write(command + b"\n")


def wait_for_gate(blocking, bound=60.0, suffix=""):
    """Until the file WORKERS_GATE (+ ``suffix``) exists (at most ``bound`` s): blocking the loop, or as an awaitable."""
    gate = os.environ["WORKERS_GATE"] + suffix
    end = time.monotonic() + bound
    if blocking:
        while not os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.01)
        return None

    async def wait():
        import asyncio

        while not os.path.exists(gate) and time.monotonic() < end:
            await asyncio.sleep(0.01)

    return wait()


class Misbehaving(service.Service):
    def startService(self):
        service.Service.startService(self)
        if MODE == "failstart":
            raise RuntimeError("this worker cannot start")
        if MODE == "crashloop":
            from twistdlite import reactor

            reactor.callLater(0.5, os._exit, 4)
        if MODE == "latebind":
            from twistdlite import reactor

            reactor.listenTCP(0, protocol.ServerFactory.forProtocol(Echo), interface="127.0.0.1")
        if MODE == "orphan":
            subprocess.Popen(["sh", "-c", "sleep 0.2 &"]).wait()
        if MODE == "slowstop" and os.path.exists(os.environ["WORKERS_GATE"] + ".hold"):
            return wait_for_gate(blocking=False, suffix=".start")

    def stopService(self):
        service.Service.stopService(self)
        if MODE == "slowstop":
            return wait_for_gate(blocking=False)
        if MODE == "wedge":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM, signal.SIGINT})
            time.sleep(3600)


