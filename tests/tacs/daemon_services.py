"""Services for the daemon-mode tests (tests/test_daemon_*.py), built by tests/tacs/daemon_app.tac.

Each logs what it does on the ``daemontest`` logger, so a test can read the
order of events in the log. They use only twistdlite.service and asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from twistdlite import service

log = logging.getLogger("daemontest")


class Recorder(service.Service):
    """Logs ``started NAME`` and ``stopped NAME``."""

    def __init__(self, name: str) -> None:
        self.setName(name)

    def startService(self):
        service.Service.startService(self)
        log.info("started %s", self.name)

    def stopService(self):
        service.Service.stopService(self)
        log.info("stopped %s", self.name)


class Listener(service.Service):
    """Binds 127.0.0.1:PORT in privilegedStartService.

    Each connection gets ``uid euid gid setuid0\\n``: the ids serving it and what
    ``os.setuid(0)`` did (``denied`` once privileges are dropped for good).
    """

    def __init__(self, port: int) -> None:
        self.setName("listener")
        self.port = port
        self.sock = None
        self.server = None

    def privilegedStartService(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        log.info("bound as uid %s", os.geteuid())

    async def _serve(self):
        async def answer(reader, writer):
            try:
                os.setuid(0)
                setuid0 = "allowed"
            except PermissionError:
                setuid0 = "denied"
            writer.write(f"{os.getuid()} {os.geteuid()} {os.getgid()} {setuid0}\n".encode())
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(answer, sock=self.sock)
        log.info("Listener starting on %s", self.sock.getsockname()[1])

    def startService(self):
        service.Service.startService(self)
        return self._serve()

    async def _close(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        log.info("stopped listener")

    def stopService(self):
        service.Service.stopService(self)
        return self._close()


class StartRaises(service.Service):
    """startService raises at once."""

    def startService(self):
        raise RuntimeError("boom at start")


class FailsLater(service.Service):
    """startService returns an awaitable that fails half a second later."""

    async def _start(self):
        await asyncio.sleep(0.5)
        raise RuntimeError("failed half a second later")

    def startService(self):
        service.Service.startService(self)
        return self._start()


class NeverStarts(service.Service):
    """startService returns an awaitable that never finishes."""

    async def _start(self):
        log.info("starting forever")
        await asyncio.get_running_loop().create_future()

    def startService(self):
        service.Service.startService(self)
        return self._start()


class SyncHang(service.Service):
    """startService blocks (synchronously) for a very long time."""

    def startService(self):
        log.info("blocking in startService")
        time.sleep(3600)


class ExitsAtStart(service.Service):
    """startService ends the process at once, without a word (as a crash would)."""

    def startService(self):
        os._exit(3)


class HangsStopping(service.Service):
    """stopService returns an awaitable that never finishes."""

    def __init__(self, name: str = "stuck") -> None:
        self.setName(name)

    async def _stop(self):
        log.info("stopping forever")
        await asyncio.get_running_loop().create_future()

    def stopService(self):
        service.Service.stopService(self)
        return self._stop()


class SlowStop(service.Service):
    """stopService takes SECONDS (from the constructor) to finish."""

    def __init__(self, seconds: float) -> None:
        self.setName("slowstop")
        self.seconds = seconds

    async def _stop(self):
        log.info("slow stop begins")
        await asyncio.sleep(self.seconds)
        log.info("slow stop done")

    def stopService(self):
        service.Service.stopService(self)
        return self._stop()


class SyncHangsStopping(service.Service):
    """stopService blocks (synchronously) for a very long time."""

    def __init__(self, name: str = "blocked") -> None:
        self.setName(name)

    def stopService(self):
        service.Service.stopService(self)
        log.info("blocking in stopService")
        time.sleep(3600)


class ForksWorker(service.Service):
    """startService forks a worker that lives on (up to a minute) and writes its PID to worker.pid."""

    def startService(self):
        service.Service.startService(self)
        worker = os.fork()
        if worker == 0:
            try:
                time.sleep(60)
            finally:
                os._exit(0)
        with open("worker.pid", "w") as handle:
            handle.write(f"{worker}\n")
        log.info("forked worker %s", worker)


def build(spec: str, application) -> None:
    """Add the services ``spec`` names (``kind[:arg],...``) to ``application``, in order."""
    for item in filter(None, spec.split(",")):
        kind, _, arg = item.partition(":")
        if kind == "record":
            made = Recorder(arg)
        elif kind == "listener":
            made = Listener(int(arg or 0))
        elif kind == "start_raises":
            made = StartRaises()
        elif kind == "fails_later":
            made = FailsLater()
        elif kind == "never_starts":
            made = NeverStarts()
            made.setName(arg or "neverstarts")
        elif kind == "sync_hang":
            made = SyncHang()
            made.setName(arg or "synchang")
        elif kind == "exits":
            made = ExitsAtStart()
        elif kind == "hangs_stopping":
            made = HangsStopping(arg or "stuck")
        elif kind == "sync_hangs_stopping":
            made = SyncHangsStopping(arg or "blocked")
        elif kind == "forks":
            made = ForksWorker()
            made.setName("forker")
        elif kind == "slow_stop":
            made = SlowStop(float(arg))
        else:
            raise ValueError(f"unknown service kind {kind!r}")
        made.setServiceParent(application)
